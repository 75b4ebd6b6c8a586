"""The 68-point iBUG 300-W markup, as data: every other module reads its facts from here.

"Left" and "right" are the subject's: on a frontal face the subject's right eye (points
36-41) appears on the image's left.
"""

from __future__ import annotations

import numpy as np

NUM_KEYPOINTS = 68

# part name -> (first index, last index inclusive, closed polyline?)
PARTS: dict[str, tuple[int, int, bool]] = {
    "jaw": (0, 16, False),
    "right_brow": (17, 21, False),
    "left_brow": (22, 26, False),
    "nose_bridge": (27, 30, False),
    "nose_lower": (31, 35, False),
    "right_eye": (36, 41, True),
    "left_eye": (42, 47, True),
    "outer_lip": (48, 59, True),
    "inner_lip": (60, 67, True),
}

KEYPOINT_NAMES: tuple[str, ...] = tuple(
    f"{part}_{i - first}"
    for part, (first, last, _) in PARTS.items()
    for i in range(first, last + 1)
)

# Regions for per-region NME (mmpose / 300-W convention).
REGIONS: dict[str, tuple[int, int]] = {
    "jaw": (0, 17),
    "brows": (17, 27),
    "nose": (27, 36),
    "eyes": (36, 48),
    "mouth": (48, 68),
}

# Points that trade places when the face is mirrored; points on the midline map to themselves.
FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    *((i, 16 - i) for i in range(8)),  # jaw 0<->16 ... 7<->9
    *((17 + i, 26 - i) for i in range(5)),  # brows 17<->26 ... 21<->22
    (31, 35), (32, 34),  # nostrils
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),  # outer lip
    (60, 64), (61, 63), (65, 67),  # inner lip
)  # fmt: skip


def _flip_index() -> np.ndarray:
    index = np.arange(NUM_KEYPOINTS)
    for a, b in FLIP_PAIRS:
        index[a], index[b] = b, a
    return index


# keypoints[FLIP_INDEX] relabels a mirrored face so that index i is again the subject's point i.
FLIP_INDEX: np.ndarray = _flip_index()

# NME normaliser: inter-ocular distance between the outer eye corners.
EYE_CORNERS: tuple[int, int] = (36, 45)
