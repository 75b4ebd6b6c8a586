"""Following faces through video frames from their keypoints.

A face found in one frame is framed in the next from its own points (the training framing)
and predicted in a pass or two; the face detector runs only on the first frame, every
`detect_every` frames, and whenever a track is lost, to pick up faces that entered. A track
is lost when its points stop looking like a face in place (their spread jumps or collapses),
or when the detector, run on the track's own small region every `verify_every` frames, finds
no face there `patience` times in a row. Each track keeps its id and its own One Euro filter.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from fkp.geometry import crop_frame, frame_iou, invert, map_frames, points_box, snapped
from fkp.runtime.detect import reduced
from fkp.runtime.predictor import Face, FaceKeypointDetector, usage_defaults
from fkp.runtime.smooth import ShapeFilter


@dataclass
class Track:
    """One face followed over frames. keypoints: (68, 2) raw (unsmoothed) pixels; frame: (3,)
    the square the model saw last; box: (4,) x, y, w, h for drawing."""

    id: int
    keypoints: np.ndarray
    frame: np.ndarray
    box: np.ndarray
    smoother: ShapeFilter | None = None
    unverified: int = 0  # detector checks in a row that found no face here
    age: int = 0
    fit: float = 1.0  # overlap of its frame with the detector's at the last check
    shown: np.ndarray | None = None  # the (smoothed) points reported for the last frame


class FaceTracker:
    """Faces with ids across the frames of one video: `tracker(rgb)` per frame, in order.

    det: the keypoint model and detector (its `refine` passes are used for new faces).
    detect_every: run the detector on every N-th frame (and whenever a track is lost).
    detect_side: the detector searches the frame with its longer side reduced to at most
        this many pixels (a 640x480 frame searched at 320x240 takes a quarter of the time and
        still finds faces of about 30 pixels and up); 0: at the size the detector searches
        photos.
    verify_every, patience: check each track's region with the detector every N frames; a
        track whose region shows no face `patience` checks in a row is dropped.
    fps, min_cutoff, beta: the filter per track (`fkp.runtime.smooth.ShapeFilter`: a One Euro
        filter on the shape, none on the motion; smooth=False: raw points).
    passes: model passes per frame, each framed from the previous one's points (the first
        from the last frame's smoothed points).
    flip_test: average each pass with its mirrored input.
    Settings left as None are predict.py's (fkp/conf/predict.yaml, `video:`), the steadiest
    measured on a moving clip (bench/video_track.py).
    """

    def __init__(
        self,
        det: FaceKeypointDetector,
        detect_every: int | None = None,
        verify_every: int | None = None,
        patience: int = 2,
        smooth: bool | None = None,
        fps: float = 25.0,
        min_cutoff: float | None = None,
        beta: float | None = None,
        passes: int | None = None,
        flip_test: bool | None = None,
        detect_side: int | None = None,
    ) -> None:
        video = usage_defaults()["video"]  # predict.py's video settings, for every None
        detect_every = video["detect_every"] if detect_every is None else detect_every
        verify_every = video["verify_every"] if verify_every is None else verify_every
        detect_side = video["detect_side"] if detect_side is None else detect_side
        smooth = video["smooth"] if smooth is None else smooth
        min_cutoff = video["min_cutoff"] if min_cutoff is None else min_cutoff
        beta = video["beta"] if beta is None else beta
        passes = video["passes"] if passes is None else passes
        flip_test = video["flip_test"] if flip_test is None else flip_test
        self.det = copy.copy(det)  # the same model, with this tracker's flip setting
        self.det.flip_test = flip_test
        self.passes = passes
        self.detect_every, self.verify_every, self.patience = detect_every, verify_every, patience
        self.detect_side = detect_side
        self.smooth, self.fps, self.min_cutoff, self.beta = smooth, fps, min_cutoff, beta
        self.tracks: list[Track] = []
        self.frame_index = 0
        self._next_id = 0

    def __call__(self, rgb: np.ndarray) -> list[Face]:
        """image: (H, W, 3) RGB uint8 -> the faces of this frame, each with its track id."""
        prepared = self.det.transform.prepare(rgb)
        lost = self._follow(prepared)
        due = self.frame_index % self.detect_every == 0
        if due or lost or not self.tracks:
            self._detect(rgb, prepared)
        elif self.frame_index % self.verify_every == 0:
            self._verify(rgb)
        self.frame_index += 1
        return [self._face(t) for t in self.tracks]

    def _follow(self, prepared: np.ndarray) -> bool:
        """`passes` model passes per track, the first framed from its previous points; True if
        a track was lost."""
        if not self.tracks:
            return False
        # framed from the smoothed points: a steadier crop gives steadier points
        frames = snapped(np.stack([self.det.transform.frame_for(t.shown) for t in self.tracks]))
        keypoints, frames = self.det.refined(prepared, frames, self.passes - 1)
        kept = []
        for track, points, frame in zip(self.tracks, keypoints, frames):
            before, after = track.frame[2], self.det.transform.frame_for(points)[2]
            if not 0.7 < after / before < 1.4 or not np.isfinite(points).all():
                continue  # the spread jumped or collapsed: no face followed here
            track.keypoints, track.frame, track.age = points, frame, track.age + 1
            track.box = points_box(points)
            kept.append(track)
        lost = len(kept) < len(self.tracks)
        self.tracks = kept
        return lost

    def _detect(self, rgb: np.ndarray, prepared: np.ndarray) -> None:
        """Start tracks for detections no track covers; check the tracks against them."""
        small, scale = reduced(rgb, self.detect_side) if self.detect_side else (rgb, 1.0)
        boxes = self.det.detector.detect(small) / scale
        if len(boxes):
            frames = self.det.frames_of(boxes)
            covered = np.zeros(len(boxes), dtype=bool)
            for track in self.tracks:
                overlaps = [frame_iou(track.frame, f) for f in frames]
                track.fit = max(overlaps)
                if track.fit > 0.3:
                    covered[int(np.argmax(overlaps))] = True
                    track.unverified = 0
                else:
                    track.unverified += 1
            new = np.flatnonzero(~covered)
            if len(new):
                keypoints, refined = self.det.refined(prepared, frames[new], self.det.refine)
                for i, points, frame in zip(new, keypoints, refined):
                    self._start(points, frame, boxes[i])
        else:
            for track in self.tracks:
                track.unverified += 1
        self._drop_unverified_and_duplicates()

    def _verify(self, rgb: np.ndarray) -> None:
        """Run the detector on each track's own region (a small crop: cheap); the track is
        confirmed if a face found there frames about where the track does (a track drifting
        off its face onto a neighbour's is not)."""
        for track in self.tracks:
            side = float(track.frame[2]) * 1.5
            scale = min(1.0, 160 / side)  # the region at about 160 px is plenty for a detector
            size = max(32, int(round(side * scale)))
            region = np.array([track.frame[0], track.frame[1], side], dtype=np.float32)
            crop, affine = crop_frame(rgb, region, size)
            boxes = self.det.detector.detect(crop)
            track.fit = 0.0
            if len(boxes):
                found = map_frames(self.det.frames_of(boxes), invert(affine))
                track.fit = max(frame_iou(track.frame, f) for f in found)
            track.unverified = 0 if track.fit > 0.3 else track.unverified + 1
        self._drop_unverified_and_duplicates()

    def _drop_unverified_and_duplicates(self) -> None:
        kept: list[Track] = []
        # on one face, the confirmed track wins, then the one the detector's box fits best (a
        # track drifting off its own face onto another fits it worse), then the older one
        for track in sorted(self.tracks, key=lambda t: (t.unverified, -round(t.fit, 1), t.id)):
            if track.unverified >= self.patience:
                continue
            if any(frame_iou(track.frame, k.frame) > 0.4 for k in kept):
                continue  # two tracks on one face
            kept.append(track)
        self.tracks = kept

    def _start(self, keypoints: np.ndarray, frame: np.ndarray, box: np.ndarray) -> None:
        smoother = ShapeFilter(self.fps, self.min_cutoff, self.beta) if self.smooth else None
        self.tracks.append(Track(self._next_id, keypoints, frame, box, smoother))
        self._next_id += 1

    def _face(self, track: Track) -> Face:
        points = track.smoother(track.keypoints) if track.smoother else track.keypoints
        track.shown = np.asarray(points)
        return Face(track.box.copy(), np.asarray(points), track.frame.copy(), id=track.id)
