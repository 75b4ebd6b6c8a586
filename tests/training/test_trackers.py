"""logger=mlflow and logger=wandb: a tiny run writes what docs/training.md promises."""

import importlib.util
import json
import struct
from pathlib import Path

import pytest

from fkp.cli.train import train
from tests.conftest import QUICK, compose_train

needs_track = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None or importlib.util.find_spec("wandb") is None,
    reason="needs the track extra: pip install -e '.[track]'",
)


def _wandb_records(path):
    """The protobuf records of an offline W&B run file (a LevelDB-style log of 32 KiB blocks
    after a 7-byte header), read the way `wandb sync` reads them."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, pending = path.read_bytes(), 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)  # W&B writes either form


@needs_track
def test_mlflow_and_wandb_beside_tensorboard(tmp_path, monkeypatch):
    import mlflow

    for var in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    loggers = "logger=[tensorboard,mlflow,wandb]"
    cfg = compose_train(tmp_path, [*QUICK, "trainer=debug", "trainer.max_epochs=2", "seed=0",
                                   "optimizer.lr=0.002", loggers])  # fmt: skip
    metrics = train(cfg)
    assert (tmp_path / "tensorboard").is_dir()
    best = metrics["best_checkpoint"].rsplit("/", 1)[1]

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")  # the documented store
    (run,) = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["optimizer.lr"] == "0.002"  # the flattened config as params
    assert run.data.params["model.network"] == "custom_cnn"
    history = [m.value for m in client.get_metric_history(run.info.run_id, "val/nme")]
    assert len(history) >= 2  # per epoch (then the best checkpoint's)
    assert run.data.metrics["test/nme"] == pytest.approx(metrics["test/nme"])
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "records.csv", "loss_curve.png", "checkpoints"} <= files
    ckpts = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert ckpts == [f"checkpoints/{best}"]
    local = client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path / "dl"))
    assert json.loads(Path(local).read_text())["test/nme"] == metrics["test/nme"]

    (offline,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")  # for `wandb sync`
    config, nme, artifacts = {}, [], []
    for record in _wandb_records(offline):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            config.update({_key(i): i.value_json for i in record.config.update})
        elif kind == "history":
            nme += [i.value_json for i in record.history.item if _key(i) == "val/nme"]
        elif kind == "artifact":
            artifacts += [e.path for e in record.artifact.manifest.contents]
    assert config["optimizer.lr"] == "0.002" and config["model.network"] == '"custom_cnn"'
    assert len(nme) >= 2
    assert {"metrics.json", "records.csv", "loss_curve.png", f"checkpoints/{best}"} == set(
        artifacts
    )
