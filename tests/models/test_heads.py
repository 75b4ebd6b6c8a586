"""Heads and their target codings: round trips, training, export, prediction, old checkpoints."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fkp.cli.train import train
from fkp.models.backbones import BACKBONES, build_network
from fkp.models.codecs import HeatmapCoding, PixelInPixelCoding, SimCCCoding
from fkp.models.heads import HEADS
from fkp.runtime.predictor import FaceKeypointDetector
from fkp.training.export import onnx_runtime_model
from fkp.training.module import KeypointModule
from tests.conftest import QUICK, compose_train


def _points() -> torch.Tensor:
    """(2, 68, 2): points spread over the crop, its corners and its borders."""
    torch.manual_seed(0)
    inside = torch.rand(2, 60, 2) * 1.8 - 0.9
    border = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-0.99, 0.3], [0.97, -0.5],
                           [0.0, 1.0], [0.5, -1.0], [1.1, 0.0], [-0.2, -1.15]])  # fmt: skip
    return torch.cat([inside, border.expand(2, 8, 2)], dim=1)


def test_heatmap_coding_round_trip():
    # the Gaussian target maps, taken as the prediction, decode to the labels; near the edge
    # of the coded range (1.25) the cut-off Gaussian pulls the expectation inwards a little
    coding = HeatmapCoding((28, 28), extent=1.25, sigma=1.0)
    points = _points()
    maps = coding.encode(points)
    assert maps.shape == (2, 68, 28, 28)
    assert torch.allclose(maps.sum(dim=(-2, -1)), torch.ones(2, 68))
    error = (coding.decode(maps.clamp_min(1e-30).log()) - points).abs()
    assert error[:, :66].max() < 0.001  # within the crop: a twentieth of a 112 px input's pixel
    assert error[:, 66:].max() < 0.25 * 2.5 / 28  # beyond it: within a quarter of a cell
    far = coding.decode(coding.encode(torch.tensor([[[3.0, -3.0]]])).log())
    assert torch.allclose(far, torch.tensor([[[1.25, -1.25]]]), atol=2.5 / 28)  # the edge cell


def test_simcc_coding_round_trip():
    coding = SimCCCoding(bins=280, extent=1.25, sigma=3.0, window=9)
    points = _points()
    tx, ty = coding.encode(points)
    assert tx.shape == ty.shape == (2, 68, 280)
    decoded = coding.decode(tx.log(), ty.log())
    assert (decoded - points).abs().max() < 2e-4  # a window of 3 sigma: nearly exact
    far = coding.decode(*(t.log() for t in coding.encode(torch.tensor([[[2.0, -2.0]]]))))
    assert (far - torch.tensor([[[1.25, -1.25]]])).abs().max() < 3 * 2.5 / 280  # sigma of the edge


def test_pixel_in_pixel_coding_round_trip_is_exact_even_beyond_the_crop():
    coding = PixelInPixelCoding((7, 7))
    points = torch.cat([_points(), torch.tensor([[[1.6, -1.4]]]).expand(2, 1, 2)], dim=1)
    cell, offsets = coding.encode(points)
    assert cell.min() >= 0 and cell.max() < 49
    scores = torch.nn.functional.one_hot(cell, 49).float().view(2, 69, 7, 7)
    offset_maps = offsets[..., None, None].expand(2, 69, 2, 7, 7).contiguous()
    assert torch.allclose(coding.decode(scores, offset_maps), points, atol=1e-5)


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("backbone", ["fast_net", "custom_cnn", "resnet18"])
def test_every_backbone_and_head_combine_and_export(backbone, head):
    size = 64 if backbone == "fast_net" else 32
    model = KeypointModule(backbone, image_size=size, head={"name": head}).eval()
    images = torch.randn(3, 1, size, size)
    with torch.no_grad():
        expected = model(images)
    assert expected.shape == (3, 68, 2) and expected.dtype == torch.float32
    onnx = onnx_runtime_model(model, SimpleNamespace(channels=1, image_size=size), threads=1)
    assert np.abs(onnx(images.numpy()) - expected.numpy()).max() < 1e-4


@pytest.mark.parametrize("head", sorted(HEADS))
def test_head_losses_fall_when_fitting_a_batch(head):
    torch.manual_seed(0)
    net = build_network("fast_net", 1, 64, head={"name": head})
    images, target = torch.randn(4, 1, 64, 64), torch.rand(4, 68, 2) * 1.6 - 0.8
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    losses = []
    for _ in range(60):
        raw = net.forward_head(net.forward_features(images))
        loss = net.head.loss(raw, target, torch.nn.functional.smooth_l1_loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    net.eval()
    with torch.no_grad():
        before = (net(images) - target).abs().mean()
    assert before < 0.3  # what it learnt decodes back to the points


@pytest.mark.parametrize("head", sorted(HEADS))
def test_each_head_trains_evaluates_and_predicts_through_train_py(tmp_path, head):
    cfg = compose_train(
        tmp_path,
        [*QUICK, "model=fast_net", f"model/head={head}", "trainer=debug", "trainer.max_epochs=1"],
    )
    metrics = train(cfg)
    assert 0 < metrics["val/nme"] < 10 and 0 < metrics["test/nme"] < 10
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    restored = KeypointModule.restore(ckpt)
    assert restored.hparams.head["name"] == head
    image = (torch.rand(200, 200, 3) * 255).byte().numpy()
    detector = FaceKeypointDetector.from_checkpoint(ckpt, flip_test=True, refine=1)
    points = detector.keypoints_in(image, np.array([[100.0, 100.0, 100.0]]))  # cx, cy, side
    assert points.shape == (1, 68, 2) and np.isfinite(points).all()


@pytest.mark.parametrize("head", sorted(HEADS))
def test_decoding_stays_float32_under_bf16_autocast(head):
    # 16-bit mixed precision: a coordinate in bf16 keeps 8 bits, so a point at 453.58 px
    # would come back as 453.75; the head and its decode run in float32
    torch.manual_seed(0)
    net = build_network("fast_net", 1, 64, head={"name": head}).eval()
    images = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        features = net.forward_features(images)
        exact = net.head.decode(net.forward_head(features))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert net.forward_features(images).dtype == torch.bfloat16
            mixed = net.head.decode(net.forward_head(features))
            assert net(images).dtype == torch.float32
    assert mixed.dtype == torch.float32
    assert torch.equal(mixed, exact)


def test_checkpoints_from_before_heads_still_load(tmp_path):
    # ResNet weights were saved with torchvision's `fc` name and no head setting
    model = KeypointModule("resnet18", image_size=64).eval()
    state = {k.replace("net.head.2.", "net.fc."): v for k, v in model.state_dict().items()}
    assert "net.fc.weight" in state
    settings = {k: v for k, v in model.hparams.items() if k != "head"}
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": settings}, path)
    restored = KeypointModule.restore(path)
    images = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(restored(images), model(images))


def test_the_registries_are_what_the_configs_offer():
    from fkp import CONF_DIR

    assert set(BACKBONES) == {p.stem for p in (CONF_DIR / "model").glob("*.yaml")}
    assert set(HEADS) == {p.stem for p in (CONF_DIR / "model" / "head").glob("*.yaml")}


def test_to_image_keeps_sub_pixel_values_of_half_precision_input():
    from fkp.geometry import to_image

    affine = torch.tensor([[[0.25, 0.0, -60.0], [0.0, 0.25, -10.0]]])  # a 4x downscale
    exact = to_image(torch.tensor([[[0.3, 0.1]]]), affine, 112)
    half = to_image(torch.tensor([[[0.3, 0.1]]], dtype=torch.bfloat16), affine, 112)
    assert half.dtype == exact.dtype == torch.float32
    assert (half - exact).abs().max() < 1.0  # bf16 input: its own rounding, not the output's
    assert exact[0, 0, 0].item() == pytest.approx(4 * ((0.3 * 112 + 111) / 2 + 60), abs=1e-3)
