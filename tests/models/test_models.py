import http.server
import io
import threading

import pytest
import torch

from fkp.errors import FkpError
from fkp.models.backbones import (
    PRETRAINED_URLS,
    CustomCNN,
    FastNet,
    build_network,
    load_pretrained,
    resnet18,
)

# Facts of torchvision's resnet18/34/50 (IMAGENET1K_V1 layout): parameter count, state_dict
# size, and a sample of names with their shapes.
TORCHVISION = {
    "resnet18": (11_689_512, 122, {"layer1.0.conv1.weight": (64, 64, 3, 3),
                                   "layer2.0.downsample.0.weight": (128, 64, 1, 1),
                                   "layer4.1.bn2.running_var": (512,), "fc.weight": (1000, 512)}),
    "resnet34": (21_797_672, 218, {"layer3.5.conv2.weight": (256, 256, 3, 3),
                                   "layer4.2.bn2.num_batches_tracked": (), "fc.bias": (1000,)}),
    "resnet50": (25_557_032, 320, {"conv1.weight": (64, 3, 7, 7),
                                   "layer1.0.downsample.0.weight": (256, 64, 1, 1),
                                   "layer2.0.conv2.weight": (128, 128, 3, 3),
                                   "layer4.2.conv3.weight": (2048, 512, 1, 1),
                                   "fc.weight": (1000, 2048)}),
}  # fmt: skip


def _torchvision_state(name: str) -> dict[str, torch.Tensor]:
    """A state dict in torchvision's format: fkp's backbone and a 1000-class `fc`."""
    net = build_network(name, 3, 64, num_points=500)  # pooled regression head: 1000 outputs
    return {k.replace("head.2.", "fc."): v for k, v in net.state_dict().items()}


@pytest.mark.parametrize("name", list(PRETRAINED_URLS))
def test_resnet_layout_matches_torchvision(name):
    count, keys, shapes = TORCHVISION[name]
    state = _torchvision_state(name)
    assert (
        sum(v.numel() for k, v in state.items() if "running" not in k and "tracked" not in k)
        == count
    )
    assert len(state) == keys
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key


@pytest.mark.parametrize("name", ["custom_cnn", "fast_net", "resnet18"])
@pytest.mark.parametrize("size,channels", [(64, 1), (96, 3), (128, 1)])
def test_networks_give_68_points_at_any_size(name, size, channels):
    net = build_network(name, channels, size)
    assert net(torch.zeros(2, channels, size, size)).shape == (2, 68, 2)


def test_custom_cnn_is_the_write_up_network():
    net = build_network("custom_cnn", 1, 224)
    assert isinstance(net, CustomCNN)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    pools = [m for m in net.modules() if isinstance(m, torch.nn.MaxPool2d)]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    drops = [m for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    assert (len(convs), len(pools), len(norms), len(linears)) == (8, 4, 4, 3)
    assert len(drops) == 2 and linears[-1].out_features == 136
    with pytest.raises(FkpError, match="too small"):
        CustomCNN(1, 8)


def test_fast_net_keeps_the_map_layout_and_fits_a_shipped_model():
    net = build_network("fast_net", 1, 96)
    assert isinstance(net, FastNet)
    strided = [
        m.stride for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.stride != (1, 1)
    ]
    assert len(strided) == 4 + 3  # stem + 3 stages, and their 1x1 shortcuts
    assert net.features(torch.zeros(1, 1, 96, 96)).shape == (1, 48, 6, 6)  # flattened, not pooled
    assert 4 * sum(p.numel() for p in net.parameters()) < 5 * 2**20  # under 5 MiB as float32
    deeper = build_network(
        "fast_net", 1, 128, channels=[16, 32, 64, 128, 256], blocks=[1, 1, 2, 2, 1]
    )
    assert deeper(torch.zeros(2, 1, 128, 128)).shape == (2, 68, 2)
    with pytest.raises(FkpError, match="one block count per stage"):
        FastNet(1, 96, blocks=[1, 1])
    with pytest.raises(FkpError, match="multiple of 16"):
        FastNet(1, 100)


@pytest.fixture
def weights_server(monkeypatch, tmp_path):
    """Serves a torchvision-format resnet18 state dict on 127.0.0.1; torch.hub caches in tmp."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(0)
    reference = resnet18(3, 224)
    state = reference.state_dict()
    state.update({"fc.weight": torch.randn(1000, 512), "fc.bias": torch.zeros(1000)})
    buffer = io.BytesIO()
    torch.save(state, buffer)
    body = buffer.getvalue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield reference, f"http://127.0.0.1:{httpd.server_address[1]}/resnet18-test.pth"
    httpd.shutdown()
    httpd.server_close()


def test_pretrained_weights_load_from_a_url_and_grayscale_sums_rgb(weights_server):
    reference, url = weights_server
    model = build_network("resnet18", 1, 64, pretrained=True, weights=url)
    expected = reference.conv1.weight.sum(dim=1, keepdim=True)
    assert torch.allclose(model.conv1.weight, expected)
    assert torch.equal(model.layer3[1].conv2.weight, reference.layer3[1].conv2.weight)
    assert model.head[-1].out_features == 136  # the classifier is not copied


def test_pretrained_weights_from_a_local_file(weights_server, tmp_path):
    reference, _ = weights_server
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    model = build_network("resnet18", 3, 64, weights=str(path))
    assert torch.equal(model.conv1.weight, reference.conv1.weight)


def test_offline_download_failure_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = resnet18(1, 224)
    with pytest.raises(
        FkpError, match=r"could not load pretrained resnet18 .*model.pretrained=false"
    ):
        load_pretrained(model, "resnet18", "http://127.0.0.1:9/resnet18.pth")


@pytest.mark.parametrize("other", ["resnet34", "resnet50"])
def test_wrong_weights_are_named(tmp_path, other):
    path = tmp_path / f"{other}.pth"
    torch.save(_torchvision_state(other), path)
    with pytest.raises(FkpError, match=f"{other}.pth does not fit resnet18"):
        build_network("resnet18", 3, 64, weights=str(path))
