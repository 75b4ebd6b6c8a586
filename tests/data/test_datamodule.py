import os

import numpy as np
import pytest
import torch

import fkp.data.io as io
from fkp.config import build, compose_config
from fkp.data import FaceKeypointsDataModule, KeypointsDataset
from fkp.data.io import person_of
from fkp.errors import FkpError
from fkp.geometry import to_image


def _datamodule(data_dir, *overrides: str) -> FaceKeypointsDataModule:
    cfg = compose_config(
        {"data": "youtube_faces", "paths": "default"},
        [f"data.data_dir={data_dir}", "data.image_size=64", "data.batch_size=4",
         "data.num_workers=0", *overrides],
    )  # fmt: skip
    return build(cfg.data)


def test_config_composes_and_overrides_reach_both_transforms(data_dir):
    dm = _datamodule(data_dir, "data.grayscale=false", "data.image_size=96")
    assert dm.train_transform.image_size == dm.eval_transform.image_size == 96
    assert dm.train_transform.channels == dm.eval_transform.channels == 3
    assert dm.train_transform.frame_size == 107  # 96 * 1.116: the write-up's 250 -> 224
    assert dm.train_transform.pipeline.transforms[0].height == 96


def test_person_split_keeps_people_apart(data_dir):
    dm = _datamodule(data_dir, "data.limit=400", "data.val_fraction=0.2", "data.seed=3")
    dm.setup("fit")
    train = {person_of(n) for n in dm.datasets["train"].names}
    val = {person_of(n) for n in dm.datasets["val"].names}
    assert train and val and not train & val
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 400
    assert 0.1 < len(val) / len(train | val) < 0.3
    other = _datamodule(data_dir, "data.limit=400", "data.val_fraction=0.2", "data.seed=4")
    other.setup("fit")
    assert set(other.datasets["val"].names) != set(dm.datasets["val"].names)


def test_write_up_split_validates_on_the_test_set(tiny_data):
    dm = _datamodule(tiny_data, "data.val_split=test")
    dm.setup("fit")
    dm.setup("test")
    assert len(dm.datasets["train"]) == 40 and len(dm.datasets["val"]) == 8
    assert list(dm.datasets["val"].names) == list(dm.datasets["test"].names)
    # one decode of the test images serves both splits
    assert dm.datasets["val"].images[0] is dm.datasets["test"].images[0]


def test_batches_hold_inputs_targets_and_the_way_back(tiny_data):
    dm = _datamodule(tiny_data, "data.val_split=frame", "data.val_fraction=0.25")
    dm.setup("fit")
    for loader in [dm.train_dataloader(), dm.val_dataloader()]:
        batch = next(iter(loader))
        assert batch["image"].shape == (4, 1, 64, 64) and batch["image"].dtype == torch.float32
        assert batch["keypoints"].shape == (4, 68, 2) and batch["keypoints"].abs().max() < 1.5
        assert batch["affine"].shape == (4, 2, 3) and batch["points"].shape == (4, 68, 2)
        assert len(batch["name"]) == 4
        back = to_image(batch["keypoints"], batch["affine"], 64)
        assert (back - batch["points"]).abs().max() < 1e-2


def test_images_are_decoded_once_for_all_epochs(tiny_data, monkeypatch):
    calls = []
    real = io.decode_image
    monkeypatch.setattr(io, "decode_image", lambda p: calls.append(p) or real(p))
    dm = _datamodule(tiny_data)
    dm.setup("fit")
    assert len(calls) == 40
    for _ in range(2):
        for loader in [dm.train_dataloader(), dm.val_dataloader()]:
            for _ in loader:
                pass
    dm.setup("fit")
    assert len(calls) == 40


def test_the_next_job_of_a_sweep_reuses_the_decoded_images(tiny_data, monkeypatch):
    """Jobs of an in-process sweep decode the same files once; a change of colour mode or a
    replaced image file decodes afresh."""
    calls = []
    real = io.decode_image
    monkeypatch.setattr(io, "decode_image", lambda p: calls.append(p) or real(p))

    def setup(*overrides: str) -> FaceKeypointsDataModule:
        dm = _datamodule(tiny_data, "data.val_split=frame", *overrides)
        dm.setup("fit")
        return dm

    first = setup()
    second = setup("data.image_size=96")  # another input size: the same decoded images
    assert len(calls) == 40
    assert second._images["train"] is first._images["train"]
    assert len(second.datasets["train"]) == len(first.datasets["train"])
    setup("data.grayscale=false")
    assert len(calls) == 80
    image = tiny_data / "training" / first.datasets["train"].names[0]
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    setup("data.grayscale=false")
    assert len(calls) == 120


def test_without_cache_images_are_read_when_drawn(tiny_data, monkeypatch):
    """data.cache=false: nothing is decoded up front, each access reads its image, and the
    samples are the ones the cached data set gives."""
    calls = []
    real = io.decode_image
    monkeypatch.setattr(io, "decode_image", lambda p: calls.append(p) or real(p))
    lazy = _datamodule(tiny_data, "data.cache=false", "data.val_split=frame")
    lazy.setup("fit")
    assert calls == [] and isinstance(lazy.datasets["val"].images, io.ImageFiles)
    cached = _datamodule(tiny_data, "data.val_split=frame")
    cached.setup("fit")
    calls.clear()
    batches = [next(iter(dm.val_dataloader())) for dm in (lazy, cached)]
    assert len(calls) == 4  # the lazy batch read its 4 images; the cached one none
    assert batches[0]["name"] == batches[1]["name"]
    assert torch.equal(batches[0]["image"], batches[1]["image"])
    assert torch.equal(batches[0]["keypoints"], batches[1]["keypoints"])
    workers = _datamodule(tiny_data, "data.cache=false", "data.num_workers=2")
    workers.setup("fit")
    assert sum(len(b["name"]) for b in workers.train_dataloader()) == len(workers.datasets["train"])


def test_without_cache_a_missing_image_is_named_before_training(tiny_data):
    (tiny_data / "training" / io.read_keypoints_csv(tiny_data / "training_frames_keypoints.csv")
     .names[3]).unlink()  # fmt: skip
    with pytest.raises(FkpError, match="1 listed image missing"):
        _datamodule(tiny_data, "data.cache=false").setup("fit")


def test_workers_draw_different_augmentations(tiny_data):
    dm = _datamodule(tiny_data, "data.num_workers=2", "data.batch_size=2")
    dm.setup("fit")
    train = dm.datasets["train"]
    data = KeypointsDataset(  # four copies of one face
        train.images[:1] * 4, train.keypoints[[0] * 4], [train.names[0]] * 4, train.transform
    )
    loader = torch.utils.data.DataLoader(
        data, batch_size=2, num_workers=2, worker_init_fn=dm.train_dataloader().worker_init_fn
    )
    first, second = [b["keypoints"][0] for b in loader]  # one batch from each worker
    assert not torch.equal(first, second)


def test_seeded_loading_is_reproducible(tiny_data):
    def first_batch():
        torch.manual_seed(5)
        dm = _datamodule(tiny_data)
        dm.setup("fit")
        return next(iter(dm.train_dataloader()))["keypoints"]

    assert torch.equal(first_batch(), first_batch())


def test_missing_data_is_one_clear_error(tmp_path):
    dm = _datamodule(tmp_path / "absent", "data.download=false")
    with pytest.raises(FkpError, match="data folder not found; set FKP_DATA_DIR"):
        dm.setup("fit")


def test_bad_settings_are_named(tiny_data):
    with pytest.raises(FkpError, match="data.val_split='people' is unknown"):
        _datamodule(tiny_data, "data.val_split=people")
    with pytest.raises(FkpError, match="config: .*nope"):
        _datamodule(tiny_data, "data.nope=1")


def test_custom_data_set_in_the_same_layout(tiny_data):
    (tiny_data / "training").rename(tiny_data / "imgs")
    (tiny_data / "training_frames_keypoints.csv").rename(tiny_data / "mine.csv")
    dm = _datamodule(tiny_data, "data.train_csv=mine.csv", "data.train_images=imgs")
    dm.setup("fit")
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 40
    assert np.isfinite(dm.datasets["train"][0]["keypoints"]).all()
