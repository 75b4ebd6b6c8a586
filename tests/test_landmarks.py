import numpy as np
import pytest

from fkp.errors import FkpError
from fkp.landmarks import IBUG68, LANDMARKS_DIR, LandmarkSet, landmark_set, load_landmark_set

SHIPPED = sorted(p.stem for p in LANDMARKS_DIR.glob("*.yaml"))


def test_the_shipped_sets():
    assert SHIPPED == ["cofw29", "ibug68", "wflw98"]
    assert [load_landmark_set(n).num_points for n in SHIPPED] == [29, 68, 98]
    assert landmark_set(None) is IBUG68  # models from before sets were data


def test_ibug68_flip_index_swaps_every_listed_pair():
    flip = IBUG68.flip_index
    for a, b in [(0, 16), (7, 9), (17, 26), (31, 35), (36, 45), (39, 42), (48, 54), (65, 67)]:
        assert flip[a] == b
    for midline in [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]:
        assert flip[midline] == midline
    assert IBUG68.names[IBUG68.nme_points[0]] == "right_eye_0"
    assert IBUG68.names[IBUG68.nme_points[1]] == "left_eye_3"


@pytest.mark.parametrize("name", SHIPPED)
def test_each_set_is_consistent(name):
    marks = load_landmark_set(name)
    n = marks.num_points
    assert (marks.flip_index[marks.flip_index] == np.arange(n)).all()  # an involution
    covered = [i for first, last, _ in marks.parts.values() for i in range(first, last + 1)]
    assert sorted(covered) == list(range(n))  # every point in exactly one part
    assert len(set(marks.names)) == n
    regions = sorted(marks.regions.values())
    assert regions[0][0] == 0 and all(a[1] <= b[0] for a, b in zip(regions, regions[1:]))
    a, b = marks.nme_points
    assert marks.flip_index[a] == b  # the normalising points are a mirror pair
    assert LandmarkSet.from_dict(marks.to_dict()) == marks  # what checkpoints store


def test_wflw98_facts():
    wflw = load_landmark_set("wflw98")
    assert wflw.nme_points == (60, 72)
    assert wflw.flip_index[96] == 97 and wflw.flip_index[0] == 32 and wflw.flip_index[16] == 16


def test_a_custom_set_is_one_yaml_file(tmp_path):
    path = tmp_path / "five.yaml"
    path.write_text(
        "name: five\nnum_points: 5\nparts: {eyes: [0, 1, false], nose: [2, 2, false], "
        "mouth: [3, 4, false]}\nflip_pairs: [[0, 1], [3, 4]]\nnme_points: [0, 1]\n"
        "regions: {eyes: [0, 2], rest: [2, 5]}\n"
    )
    five = landmark_set(str(path))
    assert five.num_points == 5 and list(five.flip_index) == [1, 0, 2, 4, 3]
    assert five.names == ("eyes_0", "eyes_1", "nose", "mouth_0", "mouth_1")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"flip_pairs": [[0, 70]]}, "outside 0..67"),
        ({"flip_pairs": [[0, 16], [16, 1]]}, "two flip pairs"),
        ({"regions": {"jaw": [10, 5]}}, "region"),
        ({"nme_points": [36, 36]}, "two different points"),
        ({"num_points": "many"}, "not a landmark set"),
    ],
)
def test_a_broken_set_is_one_sentence(change, message):
    with pytest.raises(FkpError, match=message):
        LandmarkSet.from_dict({**IBUG68.to_dict(), **change}, "my.yaml")
    with pytest.raises(FkpError, match="no such landmark set; use cofw29, ibug68, wflw98"):
        load_landmark_set("ibug69")
