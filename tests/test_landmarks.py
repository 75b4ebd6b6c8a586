import numpy as np

from fkp.landmarks import EYE_CORNERS, FLIP_INDEX, FLIP_PAIRS, KEYPOINT_NAMES, PARTS


def test_flip_index_is_an_involution_that_swaps_every_listed_pair():
    assert (FLIP_INDEX[FLIP_INDEX] == np.arange(68)).all()
    for a, b in FLIP_PAIRS:
        assert FLIP_INDEX[a] == b and FLIP_INDEX[b] == a
    # the pairs the issue lists, spot-checked; midline points stay put
    for a, b in [(0, 16), (7, 9), (17, 26), (31, 35), (36, 45), (39, 42), (48, 54), (65, 67)]:
        assert FLIP_INDEX[a] == b
    for midline in [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]:
        assert FLIP_INDEX[midline] == midline


def test_parts_cover_all_points_once():
    covered = [i for first, last, _ in PARTS.values() for i in range(first, last + 1)]
    assert covered == list(range(68))
    assert len(KEYPOINT_NAMES) == 68 and len(set(KEYPOINT_NAMES)) == 68
    assert KEYPOINT_NAMES[EYE_CORNERS[0]] == "right_eye_0"
    assert KEYPOINT_NAMES[EYE_CORNERS[1]] == "left_eye_3"
