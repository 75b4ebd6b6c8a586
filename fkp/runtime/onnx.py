"""An exported ONNX network run by onnxruntime: NumPy in, NumPy out, nothing of PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fkp.errors import FkpError


class OnnxModel:
    """images (B, C, S, S) float32 -> keypoints (B, K, 2) float32 in [-1, 1], as the network
    was exported (export.py, or `fkp.training.export.onnx_runtime_model` in memory)."""

    def __init__(self, path: str | Path | bytes, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise FkpError(
                "onnxruntime is not installed; pip install onnxruntime, or use runtime=torch."
            ) from None
        self.name = "in memory" if isinstance(path, bytes) else Path(path).name
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                path if isinstance(path, bytes) else str(path), options,
                providers=["CPUExecutionProvider"],
            )  # fmt: skip
        except Exception as e:  # onnxruntime raises its own types for unreadable files
            name = "the exported model" if isinstance(path, bytes) else path
            raise FkpError(f"{name}: not a readable ONNX model ({type(e).__name__}).") from None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"image": np.asarray(images, dtype=np.float32)})[0]
