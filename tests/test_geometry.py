"""fkp.geometry: frames, affines, the way back to image pixels, mirroring, the normaliser."""

import numpy as np
import torch

from fkp.geometry import (
    apply_affine,
    box_centres,
    crop_frame,
    denormalise,
    frame_affine,
    frame_iou,
    frame_of_points,
    interocular,
    invert,
    map_frames,
    mirror_points,
    normalise,
    points_box,
    points_extent,
    square_frame,
    to_image,
    unmirror_normalised,
)
from fkp.landmarks import IBUG68
from fkp.runtime.detect import HaarFaceDetector

RNG = np.random.default_rng(0)


def test_a_frame_is_the_points_square_widened_by_the_margin():
    points = np.array([[10.0, 20.0], [50.0, 30.0]])
    assert points_extent(points).tolist() == [30.0, 25.0, 40.0]
    assert square_frame(points_extent(points), 0.5).tolist() == [30.0, 25.0, 60.0]
    assert frame_of_points(points, 0.5).tolist() == [30.0, 25.0, 60.0]
    assert points_box(points).tolist() == [10.0, 20.0, 40.0, 10.0]


def test_the_frame_maps_onto_the_crop_centre_to_centre_and_back():
    frame = np.array([30.0, 25.0, 60.0])
    affine = frame_affine(frame, 60)
    assert np.allclose(apply_affine(affine, frame[:2]), [29.5, 29.5])  # the crop's centre
    points = RNG.uniform(-50, 150, (10, 68, 2))
    frames = frame_of_points(points, 0.25)
    affines = np.stack([frame_affine(f, 64) for f in frames])
    inside = np.stack([apply_affine(a, p) for a, p in zip(affines, points)])
    assert np.abs(to_image(normalise(inside, 64), affines, 64) - points).max() < 1e-9
    torch_back = to_image(torch.from_numpy(normalise(inside, 64)), torch.from_numpy(affines), 64)
    assert np.abs(torch_back.numpy() - points).max() < 1e-9
    assert np.allclose(denormalise(normalise(points, 64), 64), points)


def test_crops_shift_with_their_frame_and_pad_black_outside():
    image = RNG.integers(1, 255, (40, 50, 3), dtype=np.uint8)
    crop, affine = crop_frame(image, np.array([24.5, 19.5, 50.0]), 50)  # the whole width
    assert np.array_equal(crop[5:45], image)  # 5 black rows above and below
    assert not crop[:5].any() and not crop[45:].any()
    assert np.allclose(apply_affine(invert(affine), [0.0, 5.0]), [0.0, 0.0])


def test_frames_move_through_a_similarity():
    affine = frame_affine(np.array([100.0, 80.0, 40.0]), 160)  # zoom 4
    frames = np.array([[100.0, 80.0, 10.0], [90.0, 70.0, 4.0]])
    moved = map_frames(frames, affine)
    assert np.allclose(moved[:, 2], [40.0, 16.0])
    assert np.allclose(map_frames(moved, invert(affine)), frames, atol=1e-4)


def test_mirroring_relabels_and_is_its_own_inverse():
    points = RNG.uniform(0, 99, (3, 68, 2))
    mirrored = mirror_points(points, 100, IBUG68.flip_index)
    assert np.allclose(mirrored[:, 45, 0], 99 - points[:, 36, 0])  # outer eye corners trade
    assert np.allclose(mirror_points(mirrored, 100, IBUG68.flip_index), points)
    widths = np.array([100.0, 80.0, 60.0])
    per_image = mirror_points(points, widths, IBUG68.flip_index)
    assert np.allclose(per_image[1, 45, 0], 79 - points[1, 36, 0])
    # in the model's [-1, 1] frame a mirror about the centre is a sign change of x
    normalised = normalise(points[0], 100)
    assert np.allclose(
        unmirror_normalised(normalise(mirrored[0], 100), IBUG68.flip_index), normalised
    )


def test_interocular_is_the_distance_of_the_normalising_points_in_numpy_and_torch():
    points = RNG.uniform(0, 100, (4, 68, 2))
    a, b = IBUG68.nme_points
    expected = np.linalg.norm(points[:, a] - points[:, b], axis=-1)
    assert np.allclose(interocular(points, IBUG68.nme_points), expected)
    assert np.allclose(interocular(torch.from_numpy(points), IBUG68.nme_points).numpy(), expected)


def test_boxes_and_frames_overlap_and_detector_boxes_invert():
    assert np.allclose(box_centres(np.array([[0, 0, 10, 10]])), [[4.5, 4.5]])
    assert frame_iou(np.array([0.0, 0.0, 10.0]), np.array([0.0, 0.0, 10.0])) == 1.0
    assert np.isclose(frame_iou(np.array([0.0, 0.0, 10.0]), np.array([5.0, 0.0, 10.0])), 1 / 3)
    haar = HaarFaceDetector()
    boxes = np.array([[10.0, 20.0, 100.0, 100.0], [200.0, 50.0, 60.0, 60.0]])
    assert np.allclose(haar.boxes_for(haar.face_extent(boxes)), boxes, atol=1e-4)
