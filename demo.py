"""A web page for showing a keypoint model to others: `python demo.py`, then open the address
it prints (http://127.0.0.1:7860 by default). Needs the demo extra: pip install -e ".[demo]".

Upload a photo or take a webcam picture; the page shows every face with its keypoints and part
outlines, the keypoints as JSON (predict.py's layout) and the time each step took. The model
(the shipped one, your newest run, any checkpoint or ONNX file), refinement passes and the
flip test are chosen on the page.

Examples:
    python demo.py                                  # http://127.0.0.1:7860
    python demo.py port=8080 ckpt_path=newest       # start with your newest run's model
    python demo.py host=0.0.0.0                     # reachable from other machines
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from fkp.config import DEMO_RULES, build, validate
from fkp.data.io import decode_image
from fkp.errors import FkpError, reported_as_one_line
from fkp.predictor import FaceKeypointDetector, resolve_checkpoint
from predict import annotate

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests

MAX_MEGAPIXELS = 50  # a 50 MP photo takes about 150 MB decoded; beyond that, resize first


def model_choices(log_dir: Path, limit: int = 12) -> list[str]:
    """The dropdown: the shipped model, the newest run, then the newest best checkpoints and
    ONNX files under outputs/ (any other path can be typed in)."""
    files = [*log_dir.glob("**/checkpoints/epoch_*.ckpt"), *log_dir.glob("**/*.onnx")]
    files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return ["pretrained", "newest", *(str(p) for p in files[:limit])]


class Models:
    """Detectors by (model, refine, flip test), loaded once each: switching back is instant."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.loaded: dict[tuple, FaceKeypointDetector] = {}

    def get(self, spec: str, refine: int, flip_test: bool) -> FaceKeypointDetector:
        path = resolve_checkpoint(spec, Path(self.cfg.paths.log_dir), "pretrained")
        key = (str(path.resolve()) if path.exists() else str(path), refine, flip_test)
        if key not in self.loaded:
            detector = build(self.cfg.detector)
            if path.suffix == ".onnx":
                self.loaded[key] = FaceKeypointDetector.from_onnx(
                    path, detector, flip_test, threads=1, refine=refine
                )
            else:
                self.loaded[key] = FaceKeypointDetector.from_checkpoint(
                    path, detector=detector, flip_test=flip_test, refine=refine,
                    runtime="onnx",  # the faster runtime at batch 1 on a CPU
                )  # fmt: skip
        return self.loaded[key]


def read_upload(path: str | None) -> np.ndarray:
    """The uploaded file as RGB, or one sentence saying what is wrong with it."""
    if not path:
        raise FkpError("no photo yet: upload one or take a webcam picture.")
    from PIL import Image

    try:
        with Image.open(path) as probe:  # the header only: refuse a huge photo before decoding
            width, height = probe.size
    except Image.DecompressionBombError:  # PIL's own limit, far beyond the page's
        raise FkpError(
            f"this photo has far more than {MAX_MEGAPIXELS} megapixels, more than the page "
            "takes; resize it below that and upload it again."
        ) from None
    except Exception:  # not something PIL knows; OpenCV below says whether it is an image
        width = height = 0
    if width * height > MAX_MEGAPIXELS * 1e6:
        raise FkpError(
            f"this photo is {width}x{height} ({width * height / 1e6:.0f} megapixels), more "
            f"than the page takes ({MAX_MEGAPIXELS}); resize it below that and upload it again."
        )
    try:
        return decode_image(path)
    except FkpError:
        raise FkpError(
            "this file is not an image fkp can read (JPEG, PNG, WebP, BMP, TIFF); upload a photo."
        ) from None


def find_keypoints(
    models: Models, path: str | None, spec: str, refine: int, flip_test: bool, parts: bool
) -> tuple[np.ndarray | None, str, str]:
    """One request: (annotated image, JSON text, timing line)."""
    image = read_upload(path)
    start = time.perf_counter()
    det = models.get(spec or "pretrained", int(refine), bool(flip_test))
    loaded = time.perf_counter()
    boxes = det.detector.detect(image)
    detected = time.perf_counter()
    faces = det(image, boxes=boxes)
    done = time.perf_counter()
    result = {"width": image.shape[1], "height": image.shape[0],
              "faces": [f.to_dict() for f in faces]}  # fmt: skip
    points = det.transform.landmarks.num_points
    timing = (
        f"**{len(faces)} face(s)**, {points} points each · face detection "
        f"{1000 * (detected - loaded):.0f} ms · keypoints {1000 * (done - detected):.0f} ms "
        f"({int(refine)} refinement pass(es){', flip test' if flip_test else ''})"
        + (f" · model loaded in {1000 * (loaded - start):.0f} ms" if loaded - start > 0.05 else "")
    )
    if not faces:
        timing += (" · no face found: the detector looks for upright, roughly frontal faces; "
                   "try a photo where the face is larger or better lit.")  # fmt: skip
    shown = annotate(image, faces, parts, det.transform.landmarks)
    # one line per point and per box, not per number
    text = re.sub(r"\[\s+([^\[\]]+?)\s+\]", lambda m: "[" + " ".join(m[1].split()) + "]",
                  json.dumps(result, indent=1))  # fmt: skip
    return shown, text, timing


def build_app(cfg: DictConfig):
    import gradio as gr

    models = Models(cfg)
    choices = model_choices(Path(cfg.paths.log_dir))
    initial = str(cfg.ckpt_path)
    if initial not in choices:
        choices.insert(0, initial)

    def run(upload, picture, spec, refine, flip_test, parts):
        try:
            return find_keypoints(models, upload or picture, spec, refine, flip_test, parts)
        except FkpError as e:  # the user's file or choice: a message in the page
            raise gr.Error(str(e), print_exception=False) from None

    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # fmt: skip
    with gr.Blocks(title="fkp: facial keypoints", analytics_enabled=False) as app:
        gr.Markdown("# fkp: facial keypoints\nUpload a photo or take a webcam picture.")
        with gr.Row():
            with gr.Column():
                # a file box, not an image box: fkp reads the file itself, so anything that is
                # not a photo gets fkp's message rather than the widget's
                upload = gr.File(label="photo", file_types=["image"], type="filepath",
                                 elem_id="photo")  # fmt: skip
                picture = gr.Image(label="or a webcam picture", sources=["webcam"],
                                   type="filepath", elem_id="webcam")  # fmt: skip
                model = gr.Dropdown(choices, value=initial, allow_custom_value=True,
                                    label="model (pretrained, newest, or a .ckpt / .onnx path)",
                                    elem_id="model")  # fmt: skip
                refine = gr.Slider(0, 4, value=int(cfg.refine), step=1, label="refinement passes")
                flip = gr.Checkbox(value=bool(cfg.flip_test), label="flip test")
                parts = gr.Checkbox(value=True, label="part outlines")
                button = gr.Button("Find keypoints", variant="primary", elem_id="run")
            with gr.Column():
                shown = gr.Image(label="keypoints", elem_id="result", format="png")
                timing = gr.Markdown(elem_id="timing")
                text = gr.Textbox(label="keypoints JSON", lines=8, max_lines=20,
                                  elem_id="json")  # fmt: skip
        outputs = [shown, text, timing]
        button.click(run, [upload, picture, model, refine, flip, parts], outputs)
        upload.upload(run, [upload, picture, model, refine, flip, parts], outputs)
        no_file = gr.State(None)  # a new webcam picture wins over an earlier upload
        picture.input(run, [no_file, picture, model, refine, flip, parts], outputs)
    return app, theme


@hydra.main(version_base="1.3", config_path="conf", config_name="demo")
def main(cfg: DictConfig) -> None:
    with reported_as_one_line():
        validate(cfg, DEMO_RULES)
        try:
            import gradio  # noqa: F401
        except ImportError:
            raise FkpError(
                'demo.py needs Gradio: pip install -e ".[demo]" (nothing else in fkp needs it).'
            ) from None
        app, theme = build_app(cfg)
        print(f"fkp demo on http://{cfg.host}:{cfg.port} (Ctrl-C stops it)", flush=True)
        app.launch(server_name=str(cfg.host), server_port=int(cfg.port), theme=theme,
                   max_file_size=cfg.max_file_size, show_error=True, quiet=True,
                   inbrowser=False, share=False)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
