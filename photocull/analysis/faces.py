"""Faces and eyes: where the faces are, whether their eyes are open, where they look, how sharp they are.

:func:`find_faces` takes the upright RGB view of a photo the pipeline decoded (a 1/2 or
1/4 DCT-scaled JPEG decode, or a web photo at its own size) and returns a
:class:`FaceReport` (JSON for the catalog: :meth:`FaceReport.to_json`).  It needs numpy,
Pillow and ONNX Runtime only (no torch, no Qt) and three of Google MediaPipe's models
(Apache-2.0), converted to ONNX by ``scripts/convert_mediapipe_faces.py`` and shipped in
``resources/models/faces/`` (``resources/models/FACES_MODEL_CARD.md`` has what they are
and what was measured):

1. **Detection**: BlazeFace short range (``face_detection_short_range.onnx``), trained on
   128 px selfies; it finds faces whose box is ~16 to ~100 px tall in its input and, being
   fully convolutional, runs on whole levels of a small pyramid (anchors decoded on each
   level's grid), not on tiles:

   * the *fine* level is the view reduced by the integer factor that makes a face
     ``min_face`` of the short side :data:`FINE_FACE_PX` px tall (up to 7 % less).  It is
     never enlarged: in a small view the smallest face searched is ~15 view pixels
     (:attr:`FaceReport.searched` says what was searched).  A 1500 x 1000 view is searched
     at 750 x 500, a 3000 x 2000 one at 750 x 500 too (faces of 3 % = 30 / 60 view px).
   * *coarse* levels, each :data:`LEVEL_STEP` times smaller, until a face as tall as the
     frame fits; the last one on a grey margin, so that a face filling the frame (or cut
     by it) is found.  Coarse levels always look everywhere: faces from ~4 x the fine
     level's smallest face up (12 % of the short side at the default) are never skipped.
   * On a photo without faces the fine level is most of the cost, so it looks only near
     skin-coloured pixels (:func:`skin_cells`, a wide YCbCr box: every skin tone, warm or
     cool light; a face under strongly coloured light, green or blue, is the price): cells
     of 16 x 16 fine-level pixels of which 3 in 16 are skin-coloured at a quarter of its
     size, with 2 cells around each, in rectangles cut where that saves area
     (:func:`_cover`).  A grey photo has no colour to go by: its fine level is searched
     whole but for flat cells.
   * The detector runs as a rewritten graph, same answers (:func:`_blocked_detector`:
     channels in blocks of 8, no channel ``Pad``), 10-17 % faster on one core; all candidates
     of a photo are verified in one run.
   * Each candidate is detected again on a crop where the detector sees best (the face
     ~40 px of a 96 px input): bark, leaves and most animals score low there.
2. **Landmarks**: MediaPipe's face mesh (``face_landmark.onnx``: 468 points in 3-D and a
   face-presence score) on the face's square (1.5 x the box, eyes level), and once more on
   the square its own landmarks span when its roll was off (MediaPipe's tracking step, done
   on one frame).  It confirms the face, gives the head's yaw and the eye corners.  The
   verified looks at one face are averaged (MediaPipe's weighted NMS); when the mesh finds no
   face on the average (a tight and a loose look), it is asked about each look in turn
   (:func:`_confirmed`), and a look on a face already confirmed is not a second face.
3. **Eyelids**: MediaPipe's iris model (``iris_landmark.onnx``) on each eye (a square of
   2.3 x the eye corners' distance, as MediaPipe crops it; eyes narrower than
   :data:`MIN_EYE_PX` view pixels are not measured): 71 eye-contour points, 16 of them on
   the eyelids.  The mesh alone draws open and closed eyelids alike; the iris model's
   contours tell them apart.

Per face, each eye's openness is an eye-aspect ratio: the mean of three upper-to-lower
eyelid distances over the corner-to-corner width (open eyes ~0.25-0.45, shut ones
~0.08-0.20).  ``eyes_closed`` is a blink (the eyes' mean below :data:`CLOSED_EAR`) or a wink
(one eye below :data:`WINK_EAR`).  A squint or a look down often reads as open.  ``yaw`` is
the head's turn in degrees from the mesh's 3-D cheek points (0 facing the camera, positive
when the face turns towards the image's right); ``looking_away`` is ``|yaw| >``
:data:`AWAY_YAW_DEG`; past :data:`ONE_EYE_YAW_DEG` the far eye is hidden and only the near
one counts.

``sharpness`` is the face's detail in the view given: the grey inner face (brows to mouth,
cheek to cheek: no hair, no background) resampled to :data:`SHARP_FACE_PX` px tall, the RMS
of its Laplacian over its RMS contrast.  Lighting and skin tone hardly change it, blur
lowers it (a sharp face ~0.3-0.4 in a 1500 px view, 0.15 after a Gaussian blur of 1 px per
128 px of face, 0.1 after 1.5 px); a face smaller than ~128 view pixels has less detail to
show and reads lower.  Compare it between the frames of a burst (same face size); "face
soft" (below :data:`SOFT_SHARPNESS`) is only said of faces at least :data:`SOFT_FACE_PX`
view pixels tall.

Models load once, lazily, behind a lock; ONNX Runtime sessions may run from several threads
at once (the pipeline's decode threads call :func:`find_faces` side by side), each run on
one core.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from PIL import Image

from photocull.config import resource_path

log = logging.getLogger(__name__)

MODEL_DIR = ("models", "faces")
DETECTOR = "face_detection_short_range.onnx"
MESH = "face_landmark.onnx"
IRIS = "iris_landmark.onnx"

# -- detection ------------------------------------------------------------------------------
FINE_FACE_PX = 16        # a min_face face is this tall (detector box) at the fine level...
FINE_SLACK = 1.07        # ... or up to 7 % less: the fine level is an integer reduction of the view
LEVEL_FACE_MAX_PX = 96   # largest face a level is trusted with (the detector's own limit ~110)
LEVEL_STEP = 4           # each coarse level this much smaller (16..96 px = 6x: levels overlap 1.5x)
FINE_SCORE = 0.4         # detector score to look closer at a fine-level candidate (small faces score low)
COARSE_SCORE = 0.5       # ... at a coarse-level one (MediaPipe's own threshold)
VERIFY_SIZE = 96         # a candidate is detected again on a crop of VERIFY_SCALE x its box, this size
VERIFY_SCALE = 2.3
VERIFY_MIN = 0.5         # ... and kept when that score is at least this
VERIFY_SCORE = 0.65      # ... and its mean with the first look's is at least this (the face's confidence)
MAX_CANDIDATES = 24      # candidates looked at again (best scores first)
NMS_IOU = 0.3            # MediaPipe's suppression threshold (weighted NMS)
SAME_FACE_INSIDE = 0.6   # two looks are one face when the smaller box is this much inside the other
MIN_VIEW_SIDE = 24       # a view smaller than this has no face we could analyse
MAX_FACES = 64           # mesh and eyes for at most this many faces (largest first)
# -- confirmation, eyes, pose ---------------------------------------------------------------
MESH_SIZE = 192
MESH_SCALE = 1.5         # MediaPipe: the mesh sees 1.5x the detection box, eyes level
MESH_AGAIN_DEG = 6.0     # mesh again on its own square when its eye line is off the first square's by more
FACE_PRESENCE = 0.5      # mesh face-presence score below this: not a face
IRIS_SIZE = 64
IRIS_SCALE = 2.3         # MediaPipe: the iris model sees 2.3x the eye corners' distance
MIN_EYE_PX = 6.0         # an eye narrower than this in the view is not measured
CLOSED_EAR = 0.20        # the eyes' mean eye-aspect ratio below this: eyes shut (a blink)
WINK_EAR = 0.14          # one eye below this: that eye is shut (a wink)
AWAY_YAW_DEG = 30.0
ONE_EYE_YAW_DEG = 35.0   # turned further than this: the far eye is hidden, only the near one counts
# -- sharpness ------------------------------------------------------------------------------
SHARP_FACE_PX = 96       # the inner face (~3/4 of the box) is measured at this height
SOFT_FACE_PX = 64        # "face soft" only for faces at least this tall in the view
SOFT_SHARPNESS = 0.12
# -- skin gate of the fine level ------------------------------------------------------------
GATE_CELL = 16           # fine-level pixels per gate cell
GATE_SKIN = 0.15         # a cell with this fraction of skin-coloured pixels may hold a face (3 of a 4 x 4 cell)
GATE_GROW = 2            # cells added around each (a fine-level face is up to 64 px; coarse levels see larger ones)
GATE_SPLIT = 0.9         # a gated region is cut in two where the parts cover at most this fraction of it
GATE_GREY_CHROMA = 8     # a photo whose pixels are (99th percentile) this close to grey has no colour to go by
GATE_FULL = 0.6          # gated regions covering more of the level than this: run it whole
FINE_WHOLE_K = 4         # the fine level is made whole (not part by part) from this reduction of the view on
GATE_FLAT = 3.0          # grey photos: a cell whose grey levels vary less than this holds no face

# mesh landmark indices (MediaPipe's canonical face mesh)
_EYE_CORNERS = ((33, 133), (362, 263))   # eye on the image's left, on the image's right (frontal face)
_CHEEKS = (234, 454)
# iris model's 71 contour points: 0..8 lower lid from corner to corner, 9..15 upper lid
_EAR_PAIRS = ((11, 3), (12, 4), (13, 5))
_EAR_CORNERS = (0, 8)


# =========================================================================================
# results
# =========================================================================================
@dataclass(frozen=True)
class Face:
    """One face.  ``box`` is (x0, y0, x1, y1) in fractions of the upright image's width and
    height (the detector's box: brow to chin, ear to ear); ``confidence`` the detector's, two
    looks averaged (0.65-1).  Eyes are named by the side of the image they are on; their
    openness is an eye-aspect ratio, ``None`` when the eye is hidden (head turned past
    :data:`ONE_EYE_YAW_DEG`) or too small to measure.  ``yaw`` in degrees, positive when the
    face turns towards the image's right.  ``sharpness``: see the module's docstring."""

    box: tuple[float, float, float, float]
    confidence: float
    left_eye: float | None = None
    right_eye: float | None = None
    eyes_closed: bool = False
    yaw: float | None = None
    looking_away: bool = False
    sharpness: float = 0.0
    size_px: int = 0  # box height in pixels of the view it was found in

    @property
    def height(self) -> float:
        """Box height as a fraction of the image height."""
        return self.box[3] - self.box[1]

    @property
    def eyes_open(self) -> bool:
        """Both measurable eyes open (at least one measured)."""
        return not self.eyes_closed and (self.left_eye is not None or self.right_eye is not None)

    @property
    def soft(self) -> bool:
        """Big enough in the view to tell, and soft."""
        return self.size_px >= SOFT_FACE_PX and self.sharpness < SOFT_SHARPNESS


JSON_VERSION = 1
MAX_JSON_FACES = 1000
MAX_JSON_CHARS = 1_000_000


@dataclass(frozen=True)
class FaceReport:
    """The faces of one photo.  ``searched`` is the smallest face looked for, as a fraction
    of the short side (``min_face``, or more when the view was too small for it)."""

    faces: tuple[Face, ...] = ()
    searched: float = 0.0
    # what was run and how long it took (levels, regions, candidates, "ms"); not stored
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    # -- counts -----------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.faces)

    @property
    def eyes_closed_count(self) -> int:
        return sum(f.eyes_closed for f in self.faces)

    @property
    def eyes_open_count(self) -> int:
        return sum(f.eyes_open for f in self.faces)

    @property
    def looking_away_count(self) -> int:
        return sum(f.looking_away for f in self.faces)

    @property
    def sharpness(self) -> float | None:
        """The softest face's sharpness (a group frame is as good as its softest face); None without faces."""
        return min((f.sharpness for f in self.faces), default=None)

    def reason(self) -> str:
        """What is wrong with the faces, in plain words ('' when nothing)."""
        n = self.count
        if not n:
            return ""
        words = []
        shut = self.eyes_closed_count
        if shut:
            words.append("eyes closed" if shut == n else f"{shut} of {n} people blinking")
        away = sum(f.looking_away and not f.eyes_closed for f in self.faces)
        if away:
            words.append("looking away" if away == n else f"{away} of {n} looking away")
        soft = [f for f in self.faces if f.soft]
        if soft and len(soft) == n:
            words.append("face soft" if n == 1 else "faces soft")
        elif soft:
            words.append(f"{len(soft)} of {n} faces soft")
        return ", ".join(words)

    # -- storage ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Compact JSON-able form: one short list per face."""
        rows = []
        for f in self.faces:
            rows.append([*(round(float(v), 4) for v in f.box), round(float(f.confidence), 3),
                         _r(f.left_eye), _r(f.right_eye), int(f.eyes_closed), _r(f.yaw, 1),
                         int(f.looking_away), round(float(f.sharpness), 4), int(f.size_px)])
        return {"v": JSON_VERSION, "min": round(float(self.searched), 4), "faces": rows}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, data: str | bytes | dict) -> "FaceReport":
        """Parse :meth:`to_json`'s output; anything else raises ValueError (never another error)."""
        try:
            return cls._from_json(data)
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 - hostile catalog content: one error type out
            raise ValueError(f"not a face report: {type(exc).__name__}") from None

    @classmethod
    def _from_json(cls, data) -> "FaceReport":
        if isinstance(data, (bytes, bytearray)):
            data = bytes(data).decode("utf-8")
        if isinstance(data, str):
            if len(data) > MAX_JSON_CHARS:
                raise ValueError("face report too long")
            data = json.loads(data, parse_constant=_refuse_constant)
        if not isinstance(data, dict) or type(data.get("v")) is not int or data["v"] != JSON_VERSION:
            raise ValueError("not a face report (version)")
        rows = data.get("faces")
        if not isinstance(rows, list) or len(rows) > MAX_JSON_FACES:
            raise ValueError("face report: bad face list")
        searched = _num(data.get("min", 0.0), 0.0, 1.0)
        faces = []
        for row in rows:
            if not isinstance(row, list) or len(row) != 12:
                raise ValueError("face report: bad face row")
            x0, y0, x1, y1 = (_num(v, -0.5, 1.5) for v in row[:4])
            if not (x0 <= x1 and y0 <= y1):
                raise ValueError("face report: bad box")
            faces.append(Face(box=(x0, y0, x1, y1), confidence=_num(row[4], 0.0, 1.0),
                              left_eye=_opt(row[5], 0.0, 5.0), right_eye=_opt(row[6], 0.0, 5.0),
                              eyes_closed=_flag(row[7]), yaw=_opt(row[8], -180.0, 180.0),
                              looking_away=_flag(row[9]), sharpness=_num(row[10], 0.0, 1e3),
                              size_px=int(_num(row[11], 0, 1e6))))
        return cls(faces=tuple(faces), searched=searched)


def _r(v, nd=4):
    return None if v is None else round(float(v), nd)


def _refuse_constant(name):
    raise ValueError(f"face report: {name} is not a number")


def _num(v, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("face report: not a number")
    v = float(v)
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError("face report: number out of range")
    return v


def _opt(v, lo, hi):
    return None if v is None else _num(v, lo, hi)


def _flag(v) -> bool:
    if v not in (0, 1) or isinstance(v, float):
        raise ValueError("face report: bad flag")
    return bool(v)


# =========================================================================================
# models
# =========================================================================================
class _Models:
    """The three ONNX Runtime sessions, made on first use (thread-safe), one core per run."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sessions: dict[str, Any] | None = None

    def get(self) -> dict[str, Any]:
        s = self._sessions
        if s is None:
            with self._lock:
                if self._sessions is None:
                    t = time.perf_counter()
                    self._sessions = {n: _session(n) for n in (DETECTOR, MESH, IRIS)}
                    log.debug("face models loaded in %.2f s", time.perf_counter() - t)
                s = self._sessions
        return s


def _session(name: str):
    import onnxruntime as ort

    path = resource_path(*MODEL_DIR, name)
    if not path.is_file():
        raise FileNotFoundError(f"face model missing: {path}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    model: str | bytes = str(path)
    if name == DETECTOR:
        try:
            model = _blocked_detector(path.read_bytes())
        except (ValueError, KeyError, ImportError) as exc:  # another graph: run it as it is
            log.warning("face detector left as it is (%s)", exc)
            model = str(path)
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


_BLOCK = 8                     # ONNX Runtime's blocked convolutions work on 8 channels at a time (AVX2)
_BLOCKED_OPS = {"Conv", "Relu", "Add", "MaxPool", "Pad"}


def _blocked_detector(data: bytes) -> bytes:
    """The detector's graph, same outputs, rewritten for ONNX Runtime's blocked (NCHWc)
    convolutions, 10-17 % faster on one core (~85-95 ns per pixel searched instead of ~105):

    * every tensor widened to a multiple of 8 channels (the extra ones zero: zero weights
      and biases), so that no convolution falls back to the plain layout;
    * each residual's channel padding (a ``Pad``, which ONNX Runtime runs in the plain layout,
      converting the tensor there and back) replaced by a 1 x 1 convolution copying the
      channels, so that the ``Add`` and ``Relu`` after it fuse into that convolution;
    * the input's scaling folded into the first convolution: it takes ``pixel - 127.5``
      (:func:`_run_detector`), not ``pixel / 127.5 - 1``.

    Raises ValueError (KeyError) on a graph made of anything else."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load_from_string(data)
    g = m.graph
    weights = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    users: dict[str, set] = {}
    for n in g.node:
        for t in n.input:
            users.setdefault(t, set()).add(n.op_type)
    src = g.input[0].name
    real, wide = {src: 3}, {src: 3}  # channels of each tensor: meaningful, as run
    nodes, inits = [], []

    def up(c: int) -> int:
        return -(-c // _BLOCK) * _BLOCK

    def add_init(arr: np.ndarray, name: str) -> str:
        inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        return name

    for n in g.node:
        x = n.input[0] if n.input else ""
        if n.op_type == "Conv":
            k, b = weights[n.input[1]], weights[n.input[2]]
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            group = attrs.get("group", 1)
            cin = wide[x]
            if group == 1:
                if k.shape[1] != real[x]:
                    raise ValueError(f"{n.name}: unexpected input channels")
                head = not users.get(n.output[0], set()) <= _BLOCKED_OPS  # feeds the outputs: keep its width
                cout = k.shape[0] if head else up(k.shape[0])
                k2 = np.zeros((cout, cin, *k.shape[2:]), np.float32)
                k2[:k.shape[0], :k.shape[1]] = k
            elif group == k.shape[0] == real[x] and k.shape[1] == 1:  # depthwise
                cout = cin
                k2 = np.zeros((cin, 1, *k.shape[2:]), np.float32)
                k2[:k.shape[0]] = k
                attrs["group"] = cin
            else:
                raise ValueError(f"{n.name}: grouped convolution")
            if x == src:
                k2 *= 1.0 / 127.5
            b2 = np.zeros(cout, np.float32)
            b2[:b.shape[0]] = b
            ins = [x, add_init(k2, n.name + "/k8"), add_init(b2, n.name + "/b8")]
            nodes.append(helper.make_node("Conv", ins, list(n.output), name=n.name, **attrs))
            real[n.output[0]], wide[n.output[0]] = k.shape[0], cout
        elif n.op_type == "Pad":
            pads = weights[n.input[1]].tolist()
            mode = next((a.s for a in n.attribute if a.name == "mode"), b"constant")
            if len(pads) != 8 or any(pads[i] for i in (0, 1, 2, 3, 4, 6, 7)) or mode != b"constant":
                raise ValueError(f"{n.name}: not a channel padding")
            c = real[x] + pads[5]
            eye = np.zeros((up(c), wide[x], 1, 1), np.float32)
            eye[np.arange(real[x]), np.arange(real[x])] = 1.0
            nodes.append(helper.make_node("Conv", [x, add_init(eye, n.name + "/copy")], list(n.output),
                                          name=n.name, kernel_shape=[1, 1]))
            real[n.output[0]], wide[n.output[0]] = c, up(c)
        elif n.op_type in ("Relu", "MaxPool", "Add"):
            if n.op_type == "Add" and len({wide[t] for t in n.input}) != 1:
                raise ValueError(f"{n.name}: adds different widths")
            nodes.append(n)
            real[n.output[0]] = max(real[t] for t in n.input)
            wide[n.output[0]] = wide[x]
        elif n.op_type in ("Transpose", "Reshape", "Concat"):  # the heads' reshaping, at their own width
            if any(wide.get(t, 0) != real.get(t, 0) for t in n.input if t in wide):
                raise ValueError(f"{n.name}: widened input")
            nodes.append(n)
        else:
            raise ValueError(f"{n.name}: {n.op_type} not expected")
    used = {t for n in nodes for t in n.input}
    kept = [i for i in g.initializer if i.name in used]
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(kept + inits)
    return m.SerializeToString()


_MODELS = _Models()


def models_available() -> bool:
    """The model files are where :func:`find_faces` will look for them."""
    return all(resource_path(*MODEL_DIR, n).is_file() for n in (DETECTOR, MESH, IRIS))


def load_models() -> None:
    """Load the models now (otherwise the first :func:`find_faces` does)."""
    _MODELS.get()


# =========================================================================================
# input
# =========================================================================================
def _as_rgb(image) -> Image.Image:
    """An RGB PIL image from a PIL image of any mode or an HxW / HxWx{1,3,4} uint8 array."""
    if isinstance(image, Image.Image):
        if image.mode == "RGB":
            return image
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            a = np.asarray(image, dtype=np.float64)
            hi = float(a.max()) if a.size else 0.0
            a = np.clip(a * (255.0 / hi) if hi > 255 else a, 0, 255).astype(np.uint8)
            return Image.fromarray(a, "L").convert("RGB")
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
            return Image.alpha_composite(bg, rgba).convert("RGB")
        try:
            return image.convert("RGB")
        except (ValueError, OSError):  # a mode Pillow cannot turn into RGB (LAB...): its first band
            return image.getchannel(0).convert("L").convert("RGB")
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"find_faces: uint8 image expected, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(a), "L").convert("RGB")
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"find_faces: HxWx3 image expected, got shape {a.shape}")
    a = np.ascontiguousarray(a[:, :, :3])
    return Image.frombuffer("RGB", (a.shape[1], a.shape[0]), a, "raw", "RGB", 0, 1)  # no copy


# =========================================================================================
# detection
# =========================================================================================
_ANCHOR_CACHE: dict[tuple[int, int], np.ndarray] = {}
_ANCHOR_LOCK = threading.Lock()


def _anchors(h: int, w: int) -> np.ndarray:
    """Anchor centres (x, y, in input pixels) of the short-range detector on an h x w input:
    2 per cell of the stride-8 grid, then 6 per cell of the stride-16 grid (MediaPipe's
    SSD anchors with fixed size; boxes are regressed in input pixels around them)."""
    key = (h, w)
    a = _ANCHOR_CACHE.get(key)
    if a is None:
        parts = []
        for stride, n in ((8, 2), (16, 6)):
            gy, gx = np.mgrid[0:h // stride, 0:w // stride]
            c = np.stack([(gx + 0.5) * stride, (gy + 0.5) * stride], -1).reshape(-1, 1, 2)
            parts.append(np.repeat(c, n, axis=1).reshape(-1, 2))
        a = np.concatenate(parts).astype(np.float32)
        with _ANCHOR_LOCK:
            if len(_ANCHOR_CACHE) > 64:
                _ANCHOR_CACHE.clear()
            _ANCHOR_CACHE[key] = a
    return a


def _run_detector(sess, arr: np.ndarray, offset=(0.0, 0.0), scale: float = 1.0,
                  score: float = COARSE_SCORE) -> list[np.ndarray]:
    """Detections on an HxWx3 uint8 array (padded here to multiples of 16):
    rows [score, x0, y0, x1, y1, 6 keypoints (x, y)] in view pixels (``/ scale + offset``)."""
    out = _run_detector_batch(sess, arr[None], score)[0]
    if out.size:
        out[:, 1:] /= scale
        out[:, 1::2] += offset[0]
        out[:, 2::2] += offset[1]
    return list(out)


def _run_detector_batch(sess, arrs: np.ndarray, score: float) -> list[np.ndarray]:
    """Detections on each of N HxWx3 uint8 images (an NxHxWx3 array) in one run: per image an
    array of rows [score, x0, y0, x1, y1, 6 keypoints (x, y)] in its pixels."""
    n, h, w = arrs.shape[:3]
    ph, pw = max(64, -(-h // 16) * 16), max(64, -(-w // 16) * 16)
    x = np.zeros((n, 3, ph, pw), np.float32)  # the model takes pixel - 127.5: zero is mid grey
    np.subtract(arrs.transpose(0, 3, 1, 2), np.float32(127.5), out=x[:, :, :h, :w])
    reg, cls = sess.run(None, {"input": x})
    thr = math.log(score / (1.0 - score))
    anchors = _anchors(ph, pw)
    out = []
    for i in range(n):
        logits = cls[i, :, 0]
        keep = np.nonzero(logits > thr)[0]
        if not keep.size:
            out.append(np.zeros((0, 17), np.float32))
            continue
        a = anchors[keep]
        r = reg[i, keep]
        cx, cy = a[:, 0] + r[:, 0], a[:, 1] + r[:, 1]
        bw, bh = np.abs(r[:, 2]), np.abs(r[:, 3])
        kp = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        out.append(np.concatenate([1.0 / (1.0 + np.exp(-logits[keep, None])), boxes, kp.reshape(-1, 12)], 1))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = min(a[3], b[3]) - max(a[1], b[1])
    iy = min(a[4], b[4]) - max(a[2], b[2])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    return float(inter / ((a[3] - a[1]) * (a[4] - a[2]) + (b[3] - b[1]) * (b[4] - b[2]) - inter))


def _groups(dets: list[np.ndarray], iou: float = NMS_IOU) -> list[list[np.ndarray]]:
    """MediaPipe's non-maximum suppression, its groups kept: best score first, each group a
    detection and those overlapping it by more than ``iou`` (the best first, then by score)."""
    if not dets:
        return []
    d = np.array(dets)
    d = d[np.argsort(-d[:, 0])]
    out = []
    alive = np.ones(len(d), bool)
    area = np.maximum(d[:, 3] - d[:, 1], 0) * np.maximum(d[:, 4] - d[:, 2], 0)
    for i in range(len(d)):
        if not alive[i]:
            continue
        xx0 = np.maximum(d[i, 1], d[:, 1])
        yy0 = np.maximum(d[i, 2], d[:, 2])
        xx1 = np.minimum(d[i, 3], d[:, 3])
        yy1 = np.minimum(d[i, 4], d[:, 4])
        inter = np.maximum(xx1 - xx0, 0) * np.maximum(yy1 - yy0, 0)
        group = alive & (inter / np.maximum(area[i] + area - inter, 1e-9) > iou)
        group[i] = True
        out.append(list(d[group]))  # i is the first alive: the group's best
        alive &= ~group
    return out


def _merge(group: list[np.ndarray]) -> np.ndarray:
    """Detections averaged, weighted by their scores; the best score kept (MediaPipe's weighted NMS)."""
    d = np.array(group)
    merged = (d * d[:, 0:1]).sum(0) / d[:, 0].sum()
    merged[0] = d[:, 0].max()
    return merged


def _weighted_nms(dets: list[np.ndarray], iou: float = NMS_IOU) -> list[np.ndarray]:
    """MediaPipe's weighted non-maximum suppression: overlapping detections are averaged
    (weights = scores), the best score kept."""
    return [_merge(g) for g in _groups(dets, iou)]


def _same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Two looks at one face: boxes overlapping as NMS counts it, or the smaller mostly
    (:data:`SAME_FACE_INSIDE`) inside the other (a loose look around a face; two people's
    faces hardly ever overlap so much)."""
    ix = min(a[3], b[3]) - max(a[1], b[1])
    iy = min(a[4], b[4]) - max(a[2], b[2])
    if ix <= 0 or iy <= 0:
        return False
    inter = ix * iy
    area_a, area_b = (a[3] - a[1]) * (a[4] - a[2]), (b[3] - b[1]) * (b[4] - b[2])
    return inter > NMS_IOU * (area_a + area_b - inter) or inter > SAME_FACE_INSIDE * min(area_a, area_b)


def _tries(group: list[np.ndarray]) -> list[np.ndarray]:
    """What the mesh is asked about, in turn, for one face's verified looks (best score
    first): their average (MediaPipe's weighted NMS), then each look alone (the average of a
    tight and a loose look can sit between them, on no face)."""
    return [_merge(group)] + (group if len(group) > 1 else [])


def skin_cells(small: Image.Image, cell: int) -> np.ndarray | None:
    """Which ``cell`` x ``cell`` cells of ``small`` may hold a face: at least :data:`GATE_SKIN`
    of their pixels skin-coloured (YCbCr box of Chai & Ngan, widened for dark and light skin
    and for warm and cool light; red above blue).  None when the photo is (near) grey."""
    a = np.asarray(small, dtype=np.int16)
    ycc = np.asarray(small.convert("YCbCr"), dtype=np.int16)
    y, cb, cr = ycc[..., 0], ycc[..., 1], ycc[..., 2]
    chroma = np.abs(cb - 128) + np.abs(cr - 128)
    if np.count_nonzero(chroma >= GATE_GREY_CHROMA) <= 0.01 * (chroma.size - 1):  # 99 % of it near grey
        return None
    skin = ((cr >= 135) & (cr <= 180) & (cb >= 80) & (cb <= 130) & (y >= 35) & (y <= 245)
            & (a[..., 0] > a[..., 2]) & (a[..., 0] >= a[..., 1] - 5))
    h, w = skin.shape
    bh, bw = -(-h // cell), -(-w // cell)
    pad = np.zeros((bh * cell, bw * cell), np.uint16)
    pad[:h, :w] = skin
    return pad.reshape(bh, cell, bw, cell).sum((1, 3)) >= GATE_SKIN * cell * cell


def _textured_cells(small: Image.Image, cell: int) -> np.ndarray:
    """Cells of ``small`` whose grey levels vary (standard deviation at least
    :data:`GATE_FLAT`): a flat cell (sky, wall, a grey card) holds no face's eyes and mouth."""
    g = np.asarray(small.convert("L"), dtype=np.float32)
    h, w = g.shape
    bh, bw = -(-h // cell), -(-w // cell)
    pad = np.zeros((bh * cell, bw * cell), np.float32)
    pad[:h, :w] = g
    if bh * cell > h:
        pad[h:, :w] = g[-1:]
    if bw * cell > w:
        pad[:, w:] = pad[:, w - 1:w]
    return pad.reshape(bh, cell, bw, cell).std(axis=(1, 3)) >= GATE_FLAT


def _dilate(mask: np.ndarray, n: int) -> np.ndarray:
    """Binary dilation by a (2n+1)-cell square."""
    out = mask.copy()
    for _ in range(n):
        m = out.copy()
        m[1:] |= out[:-1]
        m[:-1] |= out[1:]
        out = m.copy()
        out[:, 1:] |= m[:, :-1]
        out[:, :-1] |= m[:, 1:]
    return out


_EIGHT = np.ones((3, 3), bool)


def _boxes_of(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (r0, c0, r1, c1, exclusive) of the 8-connected True regions of ``mask``,
    in the raster order of their first cell."""
    from scipy import ndimage  # (not on import: parsing a stored report needs no scipy)
    labels, n = ndimage.label(mask, structure=_EIGHT)
    return [(sl[0].start, sl[1].start, sl[0].stop, sl[1].stop) for sl in ndimage.find_objects(labels, n)]


def _cover(cells: np.ndarray, grown: np.ndarray, grow: int) -> list[tuple[int, int, int, int]]:
    """Rectangles (r0, c0, r1, c1, exclusive) of cells, each True cell of ``cells`` with the
    ``grow`` cells around it inside one of them: the bounding box of each connected region of
    ``grown`` (``cells`` dilated by ``grow``), cut in two, and again, where the two parts'
    rectangles cover at most :data:`GATE_SPLIT` of its area (a diagonal streak of warm colour
    costs its own area, not its bounding box's)."""
    h, w = cells.shape

    def rect(rs, cs):
        return (max(int(rs.min()) - grow, 0), max(int(cs.min()) - grow, 0),
                min(int(rs.max()) + grow + 1, h), min(int(cs.max()) + grow + 1, w))

    def area(r):
        return (r[2] - r[0]) * (r[3] - r[1])

    todo = []
    for r0, c0, r1, c1 in _boxes_of(grown):
        rs, cs = np.nonzero(cells[r0:r1, c0:c1])
        if rs.size:
            todo.append((rs + r0, cs + c0))
    out = []
    while todo:
        rs, cs = todo.pop()
        whole = rect(rs, cs)
        best = None
        for v in (rs, cs):
            u = np.unique(v)
            if u.size < 2:
                continue
            gaps = np.diff(u)  # cut at the widest gap between occupied rows (columns), else in the middle
            cut = u[np.argmax(gaps)] if gaps.max() > 1 else u[(u.size - 1) // 2]
            part = v <= cut
            cost = area(rect(rs[part], cs[part])) + area(rect(rs[~part], cs[~part]))
            if best is None or cost < best[0]:
                best = (cost, part)
        if best is not None and best[0] <= GATE_SPLIT * area(whole):
            todo += [(rs[best[1]], cs[best[1]]), (rs[~best[1]], cs[~best[1]])]
        else:
            out.append(whole)
    return out


def _fine_regions(fine_size: tuple[int, int], small: Image.Image) -> list[tuple[int, int, int, int]]:
    """The parts (x0, y0, x1, y1) of the fine level (``fine_size``) the detector looks at:
    around the cells where a face may be (:func:`skin_cells` on ``small``, the fine level
    reduced), or all of it."""
    fw, fh = fine_size
    whole = [(0, 0, fw, fh)]
    f = fw / small.size[0]
    cell = max(1, round(GATE_CELL / f))
    if fw * fh <= 192 * 192 or small.size[0] < 4 * cell:
        return whole
    cells = skin_cells(small, cell)
    if cells is None:  # a grey photo: no colour to go by, but a face is never flat
        cells = _textured_cells(small, cell)
    grown = _dilate(cells, GATE_GROW)
    if grown.mean() > GATE_FULL:
        return whole
    step = cell * f
    regions = []
    for r0, c0, r1, c1 in _cover(cells, grown, GATE_GROW):
        x0, y0 = int(c0 * step), int(r0 * step)
        x1, y1 = min(fw, int(math.ceil(c1 * step))), min(fh, int(math.ceil(r1 * step)))
        if x1 - x0 >= 16 and y1 - y0 >= 16:
            regions.append((x0, y0, x1, y1))
    if sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in regions) > GATE_FULL * fw * fh:
        return whole
    return regions


def _pyramid(im: Image.Image, min_face: float) -> tuple[int, list[int]]:
    """The fine level's reduction factor and the coarse levels' (see the module's docstring)."""
    short = min(im.size)
    ideal = FINE_FACE_PX / (min_face * short)  # scale putting a min_face face at FINE_FACE_PX
    k = 1 if ideal * FINE_SLACK >= 1 else math.ceil(1.0 / (ideal * FINE_SLACK))
    coarse = []
    f = k
    # a level of reduction f sees faces up to LEVEL_FACE_MAX_PX * f view pixels tall
    while LEVEL_FACE_MAX_PX * f < short:
        f *= LEVEL_STEP
        coarse.append(f)
    return k, coarse


def _detect(sess, im: Image.Image, min_face: float, gate: bool = True) -> tuple[list[np.ndarray], float, dict]:
    """Candidate detections in view pixels (after NMS), the smallest face searched (fraction
    of the short side), and what was run (for the benchmark).

    A 1500 x 1000 view is reduced straight to the first coarse level (1.1 ms, half of what
    making the 750 x 500 fine level costs), and its fine level is then only made where the
    detector runs on it (Pillow reduces a box of the view to the same pixels as the whole
    view's reduction there).  From 4x reductions on (a 3000 x 2000 view) reading the view
    costs the same whatever the factor: the fine level is made whole, the coarse ones from it."""
    w, h = im.size
    short = min(w, h)
    k, coarse = _pyramid(im, min_face)
    searched = max(min_face, FINE_FACE_PX / FINE_SLACK * k / short)
    fw, fh = -(-w // k), -(-h // k)  # Image.reduce's size
    info: dict[str, Any] = {"fine": (fw, fh), "fine_px": fw * fh, "fine_px_run": 0, "coarse": []}
    dets: list[np.ndarray] = []
    fine = im.reduce(k) if k >= FINE_WHOLE_K or (k > 1 and not coarse) else None
    prev, prev_f = (fine, k) if fine is not None else (im, 1)
    first = None
    for i, f in enumerate(coarse):
        lvl = prev.reduce(f // prev_f)
        prev, prev_f = lvl, f
        first = lvl if first is None else first
        arr = np.asarray(lvl)
        if i == len(coarse) - 1:
            # the last level sits on a mid-grey margin: a face filling the frame (or cut by
            # it) is then a face inside the detector's input
            ch = max(64, -(-(arr.shape[0] + 64) // 16) * 16)
            cw = max(64, -(-(arr.shape[1] + 64) // 16) * 16)
            canvas = np.full((ch, cw, 3), 128, np.uint8)
            oy, ox = (ch - arr.shape[0]) // 2, (cw - arr.shape[1]) // 2
            canvas[oy:oy + arr.shape[0], ox:ox + arr.shape[1]] = arr
            found = _run_detector(sess, canvas, offset=(-ox * f, -oy * f), scale=1.0 / f)
        else:
            found = _run_detector(sess, arr, scale=1.0 / f)
        dets += found
        info["coarse"].append((lvl.size, len(found)))
    whole = [(0, 0, fw, fh)]
    regions = whole
    if gate:
        small = first if first is not None else (fine if fine is not None else im.reduce(k)).reduce(LEVEL_STEP)
        regions = _fine_regions((fw, fh), small)
    # the whole fine level when it is made already, is the view, or is all searched; else each part on its own
    if fine is None and (k == 1 or regions == whole):
        fine = im.reduce(k) if k > 1 else im
    farr = None if fine is None else np.asarray(fine)
    # a fine-level candidate taller than the level is trusted with is the coarse levels' business
    biggest = LEVEL_FACE_MAX_PX * k if coarse else math.inf
    for x0, y0, x1, y1 in regions:
        info["fine_px_run"] += (x1 - x0) * (y1 - y0)
        if farr is None:
            part = np.asarray(im.reduce(k, box=(x0 * k, y0 * k, min(x1 * k, w), min(y1 * k, h))))
        else:
            part = farr[y0:y1, x0:x1]
        found = _run_detector(sess, part, offset=(x0 * k, y0 * k), scale=1.0 / k, score=FINE_SCORE)
        dets += [d for d in found if d[4] - d[2] <= biggest]
    info["regions"] = len(regions)
    return _weighted_nms(dets), searched, info


# =========================================================================================
# landmarks
# =========================================================================================
def _crop(im: Image.Image, cx: float, cy: float, side: float, angle: float, size: int) -> np.ndarray:
    """A ``size`` x ``size`` RGB crop of ``im``: a square of ``side`` view pixels centred on
    (cx, cy), its x axis along ``angle`` (radians), edges replicated outside the image
    (coordinates: pixel i spans [i, i + 1])."""
    w, h = im.size
    k = max(1, int(side / size / 1.5))  # shrink large crops first: bilinear sampling would alias
    src, off, f = im, (0.0, 0.0), 1.0
    half = side * 0.75  # covers the rotated square (its half-diagonal is side / sqrt 2)
    bx0, by0 = int(math.floor(cx - half)), int(math.floor(cy - half))
    bx1, by1 = int(math.ceil(cx + half)), int(math.ceil(cy + half))
    if k >= 2 or bx0 < 0 or by0 < 0 or bx1 > w or by1 > h:
        cx0, cy0, cx1, cy1 = max(bx0, 0), max(by0, 0), min(bx1, w), min(by1, h)
        if cx1 <= cx0 or cy1 <= cy0:
            return np.zeros((size, size, 3), np.uint8)
        part = im.crop((cx0, cy0, cx1, cy1))
        if k >= 2:
            part = part.reduce(k)
        a = np.asarray(part)
        # replicate the edges where the square leaves the image (whole pixels of ``part``)
        px0, py0 = -(-(cx0 - bx0) // k), -(-(cy0 - by0) // k)
        px1, py1 = -(-(bx1 - cx1) // k), -(-(by1 - cy1) // k)
        if px0 or py0 or px1 or py1:
            a = np.pad(a, ((py0, py1), (px0, px1), (0, 0)), mode="edge")
        src = Image.fromarray(a)
        f = 1.0 / k
        off = (cx0 - px0 * k, cy0 - py0 * k)
    c, s = math.cos(angle), math.sin(angle)
    step = side / size * f
    # PIL's AFFINE samples the source at A . (u + .5, v + .5) + (c0, f0), in coordinates where
    # pixel i spans [i, i + 1]; we want centre + R(angle) . ((u + .5, v + .5) - size / 2) * step
    ox, oy = (cx - off[0]) * f, (cy - off[1]) * f
    a0, b0 = c * step, -s * step
    d0, e0 = s * step, c * step
    c0 = ox - (a0 + b0) * size / 2
    f0 = oy - (d0 + e0) * size / 2
    out = src.transform((size, size), Image.Transform.AFFINE, (a0, b0, c0, d0, e0, f0),
                        resample=Image.Resampling.BILINEAR)
    return np.asarray(out)


def _to_view(pts: np.ndarray, cx, cy, side, angle, size) -> np.ndarray:
    """Points in crop pixels (x, y[, z]) -> view pixels (z scaled like x)."""
    c, s = math.cos(angle), math.sin(angle)
    step = side / size
    u = (pts[:, 0] - size / 2) * step
    v = (pts[:, 1] - size / 2) * step
    out = np.empty_like(pts)
    out[:, 0] = cx + c * u - s * v
    out[:, 1] = cy + s * u + c * v
    if pts.shape[1] > 2:
        out[:, 2] = pts[:, 2] * step
    return out


@dataclass
class _Geom:
    presence: float
    mesh: np.ndarray        # 468 x 3, view pixels, z scaled like x
    roll: float
    yaw: float


def _verify(sess, im: Image.Image, dets: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """Each candidate detected again where the detector sees best (its box ~40 px of a 96 px
    crop, whatever level found it; all crops in one run): the detection nearest the crop's
    centre (score, box, keypoints in view pixels), or None.  Most false candidates (bark,
    leaves, a dog) score low here."""
    if not dets:
        return []
    rois, crops = [], []
    for det in dets:
        x0, y0, x1, y1 = det[1:5]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        side = max(x1 - x0, y1 - y0) * VERIFY_SCALE
        rois.append((cx, cy, side))
        crops.append(_crop(im, cx, cy, side, 0.0, VERIFY_SIZE))
    out: list[np.ndarray | None] = []
    for (cx, cy, side), found in zip(rois, _run_detector_batch(sess, np.stack(crops), score=0.1)):
        best = None
        for d in found:
            dist = math.hypot((d[1] + d[3]) / 2 - VERIFY_SIZE / 2, (d[2] + d[4]) / 2 - VERIFY_SIZE / 2)
            if dist < VERIFY_SIZE * 0.2 and (best is None or d[0] > best[0]):
                best = d
        if best is not None:
            best = best.copy()
            best[1:] *= side / VERIFY_SIZE
            best[1::2] += cx - side / 2
            best[2::2] += cy - side / 2
        out.append(best)
    return out


def _mesh(sess, im: Image.Image, det: np.ndarray, passes: int = 2) -> _Geom:
    """The face mesh on the detection's square (1.5 x the box, eyes level), then, as MediaPipe
    does from one video frame to the next, again on the square the first mesh spans (its
    roll from the eye corners: the detector's eye keypoints are rough on a tilted face)."""
    x0, y0, x1, y1 = det[1:5]
    kp = det[5:17].reshape(6, 2)
    angle = math.atan2(kp[1, 1] - kp[0, 1], kp[1, 0] - kp[0, 0])
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0) * MESH_SCALE
    for k in range(passes):
        crop = _crop(im, cx, cy, side, angle, MESH_SIZE)
        x = crop.transpose(2, 0, 1)[None].astype(np.float32) * (1.0 / 255.0)
        pts, flag = sess.run(None, {sess.get_inputs()[0].name: x})
        presence = 1.0 / (1.0 + math.exp(-float(np.clip(flag.reshape(-1)[0], -50, 50))))
        p = pts.reshape(468, 3).astype(np.float64)
        mesh = _to_view(p, cx, cy, side, angle, MESH_SIZE)
        if presence < FACE_PRESENCE or k == passes - 1:
            break
        a, b = mesh[33, :2], mesh[263, :2]
        new_angle = math.atan2(b[1] - a[1], b[0] - a[0])
        turn = abs((new_angle - angle + math.pi) % (2 * math.pi) - math.pi)
        extent = float(np.ptp(p[:, :2], axis=0).max()) * side / MESH_SIZE
        if turn < math.radians(MESH_AGAIN_DEG) and 0.5 < extent * MESH_SCALE / side < 1.3:
            break  # the first square was right: eyes level, face well framed
        # MediaPipe's face_landmark_landmarks_to_roi: rotation from the eye corners 33 -> 263,
        # the landmarks' extent in that frame, 1.5x, square
        a, b = mesh[33, :2], mesh[263, :2]
        angle = math.atan2(b[1] - a[1], b[0] - a[0])
        c, s = math.cos(angle), math.sin(angle)
        u = mesh[:, 0] * c + mesh[:, 1] * s
        v = -mesh[:, 0] * s + mesh[:, 1] * c
        uc, vc = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
        cx, cy = uc * c - vc * s, uc * s + vc * c
        side = max(u.max() - u.min(), v.max() - v.min()) * MESH_SCALE
    # yaw: the cheeks' depth difference against their spread, in the eyes-level frame
    a, b = p[_CHEEKS[0]], p[_CHEEKS[1]]
    yaw = math.degrees(math.atan2(b[2] - a[2], b[0] - a[0]))
    return _Geom(presence, mesh, angle, yaw)


def _eyes(sess, im: Image.Image, mesh: np.ndarray) -> list[tuple[float | None, np.ndarray | None]]:
    """(eye-aspect ratio, 71 contour points in view pixels) of the eye on the image's left and
    on its right; (None, None) for an eye too small to measure."""
    crops, rois = [], []
    for i, (a, b) in enumerate(_EYE_CORNERS):
        p, q = mesh[a, :2], mesh[b, :2]
        width = float(np.hypot(*(q - p)))
        if width < MIN_EYE_PX:
            rois.append(None)
            continue
        angle = math.atan2(q[1] - p[1], q[0] - p[0])
        cx, cy = (p + q) / 2
        side = width * IRIS_SCALE
        crop = _crop(im, cx, cy, side, angle, IRIS_SIZE)
        flip = i == 0  # the model was trained on the eye on the image's right: mirror the other one
        if flip:
            crop = crop[:, ::-1]
        crops.append(crop)
        rois.append((cx, cy, side, angle, flip))
    out: list[tuple[float | None, np.ndarray | None]] = []
    if not crops:
        return [(None, None), (None, None)]
    x = np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) * (1.0 / 255.0)
    contours = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x)})[0].reshape(len(crops), 71, 3)
    j = 0
    for roi in rois:
        if roi is None:
            out.append((None, None))
            continue
        cx, cy, side, angle, flip = roi
        c = contours[j].astype(np.float64)
        j += 1
        if flip:
            c[:, 0] = IRIS_SIZE - c[:, 0]
        ear = _ear(c)
        out.append((ear, _to_view(c, cx, cy, side, angle, IRIS_SIZE)))
    return out


def _ear(c: np.ndarray) -> float:
    """Eye-aspect ratio of the iris model's eyelid contour (crop pixels)."""
    width = float(np.hypot(*(c[_EAR_CORNERS[1], :2] - c[_EAR_CORNERS[0], :2])))
    if width <= 1e-6:
        return 0.0
    gaps = [float(np.hypot(*(c[u, :2] - c[l, :2]))) for u, l in _EAR_PAIRS]
    return float(np.mean(gaps) / width)


# =========================================================================================
# sharpness
# =========================================================================================
def face_sharpness(im: Image.Image, box_px: Sequence[float]) -> float:
    """Detail of the face in ``box_px`` (x0, y0, x1, y1, view pixels): the grey inner face
    (brows to mouth, cheek to cheek: no hair, no background) resampled to
    :data:`SHARP_FACE_PX` px tall, RMS of its Laplacian over its RMS contrast (+4 grey levels,
    so that a flat patch is not all noise).  Blur lowers it, lighting and skin tone hardly do."""
    x0, y0, x1, y1 = box_px
    bw, bh = x1 - x0, y1 - y0
    w, h = im.size
    ix0, ix1 = max(0, int(round(x0 + 0.15 * bw))), min(w, int(round(x1 - 0.15 * bw)))
    iy0, iy1 = max(0, int(round(y0 + 0.1 * bh))), min(h, int(round(y1 - 0.15 * bh)))
    if ix1 - ix0 < 4 or iy1 - iy0 < 4:
        return 0.0
    face = im.crop((ix0, iy0, ix1, iy1)).convert("L")
    scale = SHARP_FACE_PX / face.size[1]
    tw = max(8, round(face.size[0] * scale))
    if scale < 0.5:
        face = face.reduce(int(1 / scale))
    face = face.resize((tw, SHARP_FACE_PX), Image.Resampling.BILINEAR)
    g = np.asarray(face, dtype=np.float32)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(np.sqrt(np.mean(lap * lap)) / (float(g.std()) + 4.0))


# =========================================================================================
# the analysis
# =========================================================================================
def find_faces(image, *, min_face: float = 0.03) -> FaceReport:
    """The faces of an upright RGB view (PIL image of any mode, or a uint8 array): boxes,
    eyes, yaw, sharpness.  Faces at least ``min_face`` of the short side tall are looked for
    (never fewer than :data:`FINE_FACE_PX` view pixels); smaller ones are ignored."""
    if isinstance(min_face, bool) or not isinstance(min_face, (int, float)) or not 0.0 < min_face <= 1.0:
        raise ValueError(f"min_face must be in (0, 1], got {min_face!r}")
    im = _as_rgb(image)
    w, h = im.size
    short = min(w, h)
    if short < MIN_VIEW_SIDE:
        return FaceReport(faces=(), searched=1.0)
    sess = _MODELS.get()
    t0 = time.perf_counter()
    dets, searched, info = _detect(sess[DETECTOR], im, float(min_face))
    t1 = time.perf_counter()
    dets.sort(key=lambda d: -d[0])
    verified: list[np.ndarray] = []
    looked, i = 0, 0
    while looked < MAX_CANDIDATES and i < len(dets):
        # the best MAX_CANDIDATES candidates that are not a face already confirmed, looked at
        # again in one run; one found meanwhile makes the others on it moot
        chunk = []
        while i < len(dets) and len(chunk) < MAX_CANDIDATES - looked:
            if not any(_iou(dets[i], v) > NMS_IOU for v in verified):
                chunk.append(dets[i])
            i += 1
        for det, v in zip(chunk, _verify(sess[DETECTOR], im, chunk)):
            if any(_iou(det, u) > NMS_IOU for u in verified):
                continue
            looked += 1
            if v is None or v[0] < VERIFY_MIN:
                continue
            score = (det[0] + v[0]) / 2
            if score >= VERIFY_SCORE:
                best = v.copy() if v[0] >= det[0] - 0.1 else det.copy()  # the better-placed look's geometry
                best[0] = score
                verified.append(best)
    info["candidates"], info["verified"] = looked, len(verified)
    t2 = time.perf_counter()
    faces = _confirmed(verified, lambda det: _face(sess, im, det), min_px=min(searched, 1.0) * short * 0.75)
    faces.sort(key=lambda f: (f.box[0], f.box[1]))
    info["ms"] = {"detect": (t1 - t0) * 1e3, "verify": (t2 - t1) * 1e3, "faces": (time.perf_counter() - t2) * 1e3}
    return FaceReport(faces=tuple(faces), searched=round(float(searched), 4), extra=info)


def _confirmed(verified: list[np.ndarray], face_of, min_px: float) -> list[Face]:
    """The faces of the verified looks: MediaPipe's weighted NMS, but each group's looks are
    kept, and the mesh (``face_of``: a look -> Face or None) is asked about their average,
    then each look alone, until one is a face; one face per person (a look on a face already
    confirmed is not asked about).  The largest :data:`MAX_FACES` groups, best score first;
    looks shorter than ``min_px`` (well below what was searched) are not guessed at."""
    groups = _groups(verified)
    groups = sorted(groups, key=lambda g: -(g[0][4] - g[0][2]))[:MAX_FACES]
    groups.sort(key=lambda g: -g[0][0])
    faces, taken = [], []
    for group in groups:
        for det in _tries(group):
            if det[4] - det[2] < min_px or any(_same_face(det, t) for t in taken):
                continue
            face = face_of(det)
            if face is not None:
                faces.append(face)
                taken.append(det)
                break
    return faces


def _face(sess, im: Image.Image, det: np.ndarray) -> Face | None:
    """Mesh, eyes, yaw and sharpness of one verified detection; None when the mesh says it is no face."""
    w, h = im.size
    geom = _mesh(sess[MESH], im, det)
    if geom.presence < FACE_PRESENCE:
        return None
    ears = [e for e, _ in _eyes(sess[IRIS], im, geom.mesh)]
    # when the head turns far its far eye is hidden: positive yaw turns the face towards
    # the image's right, and its eye on the image's right goes away from the camera
    if abs(geom.yaw) > ONE_EYE_YAW_DEG:
        ears[1 if geom.yaw > 0 else 0] = None
    x0, y0, x1, y1 = (float(v) for v in det[1:5])
    return Face(
        box=(_clip01(x0 / w), _clip01(y0 / h), _clip01(x1 / w), _clip01(y1 / h)),
        confidence=round(float(det[0]), 3),
        left_eye=None if ears[0] is None else round(float(ears[0]), 4),
        right_eye=None if ears[1] is None else round(float(ears[1]), 4),
        eyes_closed=eyes_shut(ears),
        yaw=round(float(geom.yaw), 1),
        looking_away=abs(geom.yaw) > AWAY_YAW_DEG,
        sharpness=round(face_sharpness(im, (x0, y0, x1, y1)), 4),
        size_px=int(round(y1 - y0)),
    )


def eyes_shut(ears: Sequence[float | None]) -> bool:
    """A blink (both eyes measured, their mean openness below :data:`CLOSED_EAR`) or a wink
    (an eye below :data:`WINK_EAR`, the stricter test, which is also all one eye can tell)."""
    m = [e for e in ears if e is not None]
    if not m:
        return False
    return min(m) < WINK_EAR or (len(m) >= 2 and float(np.mean(m)) < CLOSED_EAR)


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, v))
