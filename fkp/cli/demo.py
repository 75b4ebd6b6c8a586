"""A web page for showing a keypoint model to others: `python demo.py`, then open the address
it prints (http://127.0.0.1:7860 by default). Needs the demo extra: pip install -e ".[demo]".

Upload a photo or take a webcam picture; the page shows every face with its keypoints and part
outlines, the keypoints as JSON (predict.py's layout) and the time each step took. The model
(the shipped one, the newest run, the best checkpoints and ONNX files under outputs/, and any
named with ckpt_path= or models=[...] at start-up), refinement passes and the flip test are
chosen on the page; visitors choose from that list and cannot name files.

Examples:
    python demo.py                                  # http://127.0.0.1:7860
    python demo.py port=8080 ckpt_path=newest       # start with your newest run's model
    python demo.py host=0.0.0.0                     # reachable from other machines
    python demo.py 'models=[exports/a.onnx,exports/b.ckpt]'   # offer these models too
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

import cv2
import hydra
import numpy as np
from omegaconf import DictConfig

from fkp.config import DEMO_RULES, one_line_errors, validate
from fkp.errors import FkpError, counted, reported_as_one_line
from fkp.runtime.detect import build_detector
from fkp.runtime.predictor import FaceKeypointDetector, resolve_checkpoint
from fkp.viz import annotate

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests

MAX_MEGAPIXELS = 50  # a 50 MP photo takes about 150 MB decoded; beyond that, resize first
MAX_FACES = 64  # the largest faces of a photo get keypoints; a crowd cannot stall the page
QUEUE_WORKERS, QUEUE_SIZE = 2, 32  # requests served at once, and waiting
THUMBNAIL_SIDE = 256  # the uploaded photo, shown under its file name at most this many pixels
CACHED_MODELS = 4  # detectors kept loaded (about 30 MB each); the least recently used goes


def model_choices(log_dir: Path, extra: list[str] = (), limit: int = 12) -> list[str]:
    """What a visitor may choose, fixed when the page starts: the shipped model, the newest
    run, the newest best checkpoints and ONNX files under the outputs folder, and the models
    the operator named at start-up (ckpt_path=, models=[...]). Visitors cannot name files."""
    files = [*log_dir.glob("**/checkpoints/epoch_*.ckpt"), *log_dir.glob("**/*.onnx")]
    files.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    choices = ["pretrained", "newest", *(str(p) for p in files[:limit])]
    return [*(str(e) for e in extra if str(e) not in choices), *choices]


class Models:
    """Detectors by (model, refine, flip test), loaded on first use and kept for the next
    request, at most CACHED_MODELS of them; models come only from `choices`."""

    def __init__(self, cfg: DictConfig, choices: list[str]) -> None:
        self.cfg = cfg
        self.choices = list(choices)
        self.loaded: OrderedDict[tuple, FaceKeypointDetector] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, spec: str, refine: int, flip_test: bool) -> FaceKeypointDetector:
        if spec not in self.choices:  # a request made outside the page's list
            raise FkpError("choose a model from the list.")
        if not 0 <= refine <= 4:
            raise FkpError("refinement passes: choose 0 to 4.")
        key = (spec, refine, flip_test)
        with self.lock:
            if key in self.loaded:
                self.loaded.move_to_end(key)
                return self.loaded[key]
        path = resolve_checkpoint(spec, Path(self.cfg.paths.log_dir), "pretrained")
        detector = build_detector(self.cfg.detector)
        if path.suffix == ".onnx":
            loaded = FaceKeypointDetector.from_onnx(
                path, detector, flip_test, threads=1, refine=refine
            )
        else:
            loaded = FaceKeypointDetector.from_checkpoint(
                path, detector=detector, flip_test=flip_test, refine=refine,
                runtime="onnx",  # the faster runtime at batch 1 on a CPU
            )  # fmt: skip
        with self.lock:
            self.loaded[key] = loaded
            while len(self.loaded) > CACHED_MODELS:
                self.loaded.popitem(last=False)
        return loaded


def read_upload(path: str | None) -> np.ndarray:
    """The uploaded file as RGB, or one sentence saying what is wrong with it.

    The size is read from the header by the same decoder that then decodes the file, so the
    pixel limit holds for what is decoded; a file whose size cannot be read is refused."""
    if not path:
        raise FkpError("no photo yet: upload one or take a webcam picture.")
    from PIL import Image

    not_an_image = FkpError(
        "this file is not an image fkp can read (JPEG, PNG, WebP, BMP, TIFF); upload a photo."
    )
    too_large = (
        f"more than the page takes ({MAX_MEGAPIXELS}); resize it below that and upload it again."
    )
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_MEGAPIXELS * 1e6:
                raise FkpError(
                    f"this photo is {width}x{height} ({width * height / 1e6:.0f} megapixels), "
                    + too_large
                )
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L"):  # 16-bit gray: the top 8 bits
                gray = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
                return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
            return np.ascontiguousarray(image.convert("RGB"))
    except Image.DecompressionBombError:  # PIL's own limit, far beyond the page's
        raise FkpError(
            f"this photo has far more megapixels than {MAX_MEGAPIXELS}, " + too_large
        ) from None
    except FkpError:
        raise
    except Exception:  # PIL cannot read it (or its header is damaged): refused unmeasured
        raise not_an_image from None


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The photo reduced to THUMBNAIL_SIDE, shown under its file name so the visitor sees
    which photo the keypoints are for."""
    scale = THUMBNAIL_SIDE / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def find_keypoints(
    models: Models, image: np.ndarray, spec: str, refine: int, flip_test: bool, parts: bool
) -> tuple[np.ndarray | None, str, str]:
    """One request on a photo `read_upload` decoded: (annotated image, JSON text, timing
    line)."""
    start = time.perf_counter()
    det = models.get(spec or "pretrained", int(refine), bool(flip_test))
    loaded = time.perf_counter()
    boxes = det.detector.detect(image)
    if len(boxes) > MAX_FACES:  # the largest faces, still left to right
        largest = np.sort(np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")[:MAX_FACES])
        boxes = boxes[largest]
    detected = time.perf_counter()
    faces = det(image, boxes=boxes)
    done = time.perf_counter()
    result = {"width": image.shape[1], "height": image.shape[0],
              "faces": [f.to_dict() for f in faces]}  # fmt: skip
    points = det.transform.landmarks.num_points
    timing = (
        f"**{counted(len(faces), 'face')}**, {points} points each · face detection "
        f"{1000 * (detected - loaded):.0f} ms · keypoints {1000 * (done - detected):.0f} ms "
        f"({counted(int(refine), 'refinement pass')}{', flip test' if flip_test else ''})"
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

    initial = str(cfg.ckpt_path)
    choices = model_choices(Path(cfg.paths.log_dir), [initial, *(cfg.get("models") or [])])
    models = Models(cfg, choices)

    def run(upload, picture, spec, refine, flip_test, parts):
        """(thumbnail of an uploaded photo, or no change for a webcam picture, then
        find_keypoints' outputs); the photo is decoded once for both."""
        try:
            image = read_upload(upload or picture)
            found = find_keypoints(models, image, spec, refine, flip_test, parts)
        except FkpError as e:  # the user's file or choice: a message in the page
            raise gr.Error(str(e), print_exception=False) from None
        return (thumbnail(image) if upload else gr.skip(), *found)

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
                preview = gr.Image(label="your photo", interactive=False, height=160,
                                   elem_id="thumbnail", buttons=[])  # fmt: skip
                picture = gr.Image(label="or a webcam picture", sources=["webcam"],
                                   type="filepath", elem_id="webcam")  # fmt: skip
                model = gr.Dropdown(choices, value=initial, label="model", elem_id="model")
                passes = (
                    cfg.refine if cfg.refine is not None else build_detector(cfg.detector).refine
                )
                refine = gr.Slider(0, 4, value=int(passes), step=1, label="refinement passes")
                flip = gr.Checkbox(value=bool(cfg.flip_test), label="flip test")
                parts = gr.Checkbox(value=True, label="part outlines")
                button = gr.Button("Find keypoints", variant="primary", elem_id="run")
            with gr.Column():
                shown = gr.Image(label="keypoints", elem_id="result", format="png")
                timing = gr.Markdown(elem_id="timing")
                text = gr.Textbox(label="keypoints JSON", lines=8, max_lines=20,
                                  elem_id="json")  # fmt: skip
        outputs = [preview, shown, text, timing]
        button.click(run, [upload, picture, model, refine, flip, parts], outputs)
        # a new file clears the last one's thumbnail first: a file fkp refuses shows none
        upload.upload(lambda: None, None, preview).then(
            run, [upload, picture, model, refine, flip, parts], outputs
        )
        upload.clear(lambda: None, None, preview)
        no_file = gr.State(None)  # a new webcam picture wins over an earlier upload
        picture.input(run, [no_file, picture, model, refine, flip, parts], outputs)
    # one queue for every visitor: QUEUE_WORKERS requests at a time, the rest wait their turn
    # (up to QUEUE_SIZE; later ones are told the page is busy)
    app.queue(default_concurrency_limit=QUEUE_WORKERS, max_size=QUEUE_SIZE)
    return app, theme


@one_line_errors("demo")
@hydra.main(version_base="1.3", config_path="../conf", config_name="demo")
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
                   inbrowser=False, share=False, prevent_thread_lock=True)  # fmt: skip
        serve_until_ctrl_c(app)


def serve_until_ctrl_c(app) -> None:
    """Serve until Ctrl-C, then stop within about two seconds: Gradio's own shutdown waits
    for the browser's open connections (about 30 s); the page holds nothing to save."""
    try:
        while app.is_running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("stopping the demo", flush=True)
        closing = threading.Thread(target=app.close, daemon=True)
        closing.start()
        closing.join(timeout=2)
