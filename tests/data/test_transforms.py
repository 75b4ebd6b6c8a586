import albumentations as A
import numpy as np
import pytest
import torch

from fkp.data.io import decode_image, read_keypoints_csv
from fkp.data.transforms import KeypointTransform, RandomSimilarity
from fkp.geometry import (
    denormalise,
    frame_affine,
    normalise,
    points_extent,
    square_frame,
    to_image,
)
from fkp.landmarks import IBUG68

RIGHT = [a for a, _ in IBUG68.flip_pairs]  # the subject's right side (image left)
LEFT = [b for _, b in IBUG68.flip_pairs]


@pytest.fixture(scope="module")
def faces(data_dir):
    table = read_keypoints_csv(data_dir / "test_frames_keypoints.csv")
    images = [decode_image(data_dir / "test" / n) for n in table.names[:12]]
    return images, table.keypoints[:12]


def test_normalise_round_trip_and_mirror_is_negation():
    size = 96
    px = np.array([[0.0, 95.0], [47.5, 10.0]])
    u = normalise(px, size)
    assert np.allclose(denormalise(u, size), px)
    assert np.allclose(u[0], [-1 + 1 / size, 1 - 1 / size]) and u[1, 0] == 0  # centre is 0
    assert np.allclose(normalise(size - 1 - px, size), -u)  # albumentations' flip is u -> -u


def test_box_is_a_square_around_the_points_with_margin():
    pts = np.array([[10.0, 20.0], [50.0, 30.0]])
    assert points_extent(pts).tolist() == [30.0, 25.0, 40.0]
    assert square_frame(points_extent(pts), 0.5).tolist() == [30.0, 25.0, 60.0]
    assert np.allclose(frame_affine(np.array([30.0, 25.0, 60.0]), 60) @ [30, 25, 1], [29.5, 29.5])


def test_eval_transform_maps_back_to_original_pixels(faces):
    images, keypoints = faces
    t = KeypointTransform(96, [A.CenterCrop(96, 96)], frame_scale=1.2, grayscale=True)
    for image, kp in zip(images, keypoints):
        out = t(image, t.frame_for(kp), kp)
        assert out["image"].shape == (1, 96, 96) and out["image"].dtype == torch.float32
        assert not out["mirrored"]
        assert np.abs(to_image(out["keypoints"], out["affine"], 96) - kp).max() < 1e-3
        assert np.abs(out["keypoints"]).max() < 1  # the eval frame holds the whole face
    # the torch version (used on batches) agrees
    batch_kp = torch.from_numpy(np.stack([out["keypoints"]] * 2))
    batch_affine = torch.from_numpy(np.stack([out["affine"]] * 2))
    back = to_image(batch_kp, batch_affine, 96)
    assert back.shape == (2, 68, 2) and (back - torch.from_numpy(kp)).abs().max() < 1e-3


@pytest.mark.parametrize(
    "affine",
    [
        A.Affine(rotate=(-30, 30), scale=(0.8, 1.2), translate_percent=(-0.1, 0.1), p=1),
        RandomSimilarity(rotate=(-30, 30), scale=(0.8, 1.2), translate=(-0.1, 0.1), p=1),
    ],
)
def test_random_affine_augmentation_maps_back_exactly(faces, affine):
    images, keypoints = faces
    t = KeypointTransform(
        64, [A.RandomCrop(64, 64), A.HorizontalFlip(p=0.5), affine], frame_scale=1.25
    )
    t.reseed(0)
    mirrored = 0
    for image, kp in zip(images, keypoints):
        out = t(image, t.frame_for(kp), kp)
        expected = kp[IBUG68.flip_index] if out["mirrored"] else kp
        mirrored += out["mirrored"]
        assert out["keypoints"].shape == (68, 2)
        assert np.abs(to_image(out["keypoints"], out["affine"], 64) - expected).max() < 1e-2
    assert 0 < mirrored < len(images)


def test_all_points_survive_when_pushed_out_of_the_image(faces):
    images, keypoints = faces
    t = KeypointTransform(64, [A.Affine(translate_px={"x": 60, "y": 0}, p=1)])
    out = t(images[0], t.frame_for(keypoints[0]), keypoints[0])
    assert out["keypoints"].shape == (68, 2)
    assert (denormalise(out["keypoints"][:, 0], 64) > 63).sum() > 10


def test_flip_twice_is_identity(faces):
    images, keypoints = faces
    plain = KeypointTransform(96, grayscale=True, mean=[0.0], std=[1 / 255])
    flip = KeypointTransform(96, [A.HorizontalFlip(p=1)], grayscale=True, mean=[0.0], std=[1 / 255])
    whole = np.array([47.5, 47.5, 96.0])  # the box of a whole 96 x 96 image: identity framing
    for image, kp in zip(images, keypoints):
        box = plain.frame_for(kp)
        base = plain(image, box, kp)
        once = flip(image, box, kp)
        assert once["mirrored"]
        pixels = once["image"][0].numpy().round().astype(np.uint8)
        twice = flip(pixels, whole, denormalise(once["keypoints"], 96))
        assert np.allclose(twice["keypoints"], base["keypoints"], atol=1e-5)
        assert torch.equal(twice["image"].round(), base["image"].round())


def test_after_a_flip_the_right_eye_is_still_on_the_image_left(faces):
    images, keypoints = faces
    flip = KeypointTransform(96, [A.HorizontalFlip(p=1)])
    for image, kp in zip(images, keypoints):
        out = flip(image, flip.frame_for(kp), kp)["keypoints"]
        assert out[36:42, 0].mean() < out[42:48, 0].mean()
        assert out[0, 0] < out[16, 0] and out[48, 0] < out[54, 0]


def _asymmetry(keypoints: np.ndarray) -> float:
    """Mean x of the subject's right-side points minus their left partners (< 0 when upright)."""
    return float((keypoints[..., RIGHT, 0] - keypoints[..., LEFT, 0]).mean())


def test_dataset_asymmetry_keeps_its_sign_under_flips(data_dir):
    table = read_keypoints_csv(data_dir / "test_frames_keypoints.csv")
    images = [decode_image(data_dir / "test" / n) for n in table.names[:200]]
    keypoints = table.keypoints[:200]
    before = _asymmetry(keypoints)
    flip = KeypointTransform(64, [A.HorizontalFlip(p=1)], grayscale=True)
    after = np.stack(
        [flip(im, flip.frame_for(k), k)["keypoints"] for im, k in zip(images, keypoints)]
    )
    assert before < 0 and _asymmetry(after) < 0
    # without the relabelling the sign would turn: mirror the points and keep their labels
    assert _asymmetry(after[:, IBUG68.flip_index]) > 0


def test_reseeding_reproduces_augmentation(faces):
    images, keypoints = faces
    t = KeypointTransform(64, [A.Affine(rotate=(-30, 30), p=1), A.HorizontalFlip()])
    box = t.frame_for(keypoints[0])
    t.reseed(7)
    first = [t(images[0], box, keypoints[0])["keypoints"] for _ in range(3)]
    t.reseed(7)
    again = [t(images[0], box, keypoints[0])["keypoints"] for _ in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], first[1])


def test_to_pixels_undoes_input_normalisation(faces):
    images, keypoints = faces
    t = KeypointTransform(64)
    out = t(images[0], t.frame_for(keypoints[0]))
    pixels = t.to_pixels(out["image"])
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
    assert "keypoints" not in out  # prediction: no labels needed


def test_random_similarity_moves_image_and_points_together():
    image = np.zeros((64, 64), np.uint8)
    image[20, 40] = 255
    pipeline = A.Compose(
        [RandomSimilarity(rotate=(-40, 40), scale=(0.7, 1.3), translate=(-0.1, 0.1), p=1)],
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
    )
    pipeline.set_random_seed(1)
    for _ in range(5):
        out = pipeline(image=image, keypoints=np.array([[40.0, 20.0]], np.float32))
        y, x = np.unravel_index(out["image"].argmax(), out["image"].shape)
        assert np.abs(np.array([x, y]) - out["keypoints"][0]).max() <= 1.0


def test_framing_steps_warp_from_the_original_image(faces):
    """A rotation in the framing shows the image around the box; the same rotation applied to
    the frame shows black corners. Both map back to the labelled points exactly."""
    images, keypoints = faces
    image = np.full((600, 600, 3), 200, np.uint8)  # a plain image much larger than the face
    points = keypoints[0] - points_extent(keypoints[0])[:2] + 300  # the face in its middle
    spin = dict(rotate=(30, 30), scale=(0.8, 0.8), translate=(0, 0), p=1)
    framed = KeypointTransform(64, framing=[RandomSimilarity(**spin)], margin=0.5)
    after = KeypointTransform(64, transforms=[RandomSimilarity(**spin)], margin=0.5)
    for transform in (framed, after):
        out = transform(image, transform.frame_for(points), points)
        back = to_image(out["keypoints"], out["affine"], 64)
        assert np.abs(back - points).max() < 1e-3
        # the draw turned the face 30 degrees and shrank it to 0.8x of the plain framing
        (a, b), _ = out["affine"][:, :2]
        assert np.isclose(np.hypot(a, b), 0.8 * 64 / transform.frame_for(points)[2], rtol=1e-4)
        assert np.isclose(np.degrees(np.arctan2(b, a)), 30, atol=1e-3)
    corner = slice(0, 4)
    framed_pixels = framed.to_pixels(framed(image, framed.frame_for(points))["image"])
    after_pixels = after.to_pixels(after(image, after.frame_for(points))["image"])
    assert framed_pixels[corner, corner].min() == 200
    assert after_pixels[corner, corner].max() == 0


def test_framing_takes_only_geometric_steps():
    from fkp.data.transforms import build_framing
    from fkp.errors import FkpError

    spec = {"_target_": "fkp.data.transforms.FramingJitter", "shift_std": [0.1, 0.1]}
    assert type(build_framing([spec])[0]).__name__ == "FramingJitter"
    with pytest.raises(FkpError, match=r"data.train_framing\[0\]: GaussianBlur cannot be part"):
        build_framing([{"_target_": "albumentations.GaussianBlur"}], "data.train_framing")


def test_framing_draws_are_reseeded(faces):
    images, keypoints = faces
    step = RandomSimilarity(rotate=(-40, 40), scale=(0.7, 1.2), p=0.6)
    transform = KeypointTransform(64, framing=[step], margin=0.5)

    def draws():
        transform.reseed(7)
        return [transform(images[0], transform.frame_for(keypoints[0]))["affine"] for _ in range(6)]

    first, second = draws(), draws()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert len({a.tobytes() for a in first}) > 1  # the draws differ from sample to sample
