"""Tiny stand-in ONNX files with the I/O contract of insightface's buffalo_l, for tests and the offline demo.

They are **not** face models. They let insightface's real loading and inference code (model routing, SCRFD
decoding and NMS, ArcFaceONNX preprocessing) run where the real weights cannot be downloaded.

- Detector (``det_10g.onnx`` contract): input ``[1, 3, H, W]``, nine outputs ``score/bbox/kps`` for strides
  8, 16, 32 with 2 anchors per cell. It ignores the pixels: each configured `StandinFace` fires at exactly
  one anchor with a constant box and landmarks, everything else scores 0. The default is one face whose
  geometry was taken from scikit-image's ``astronaut`` photo (in the 640x640 network input), so any photo gives
  one deterministic face with plausible landmarks.
- Recognizer (``w600k_r50.onnx`` contract): input ``[N, 3, 112, 112]`` -> ``[N, 512]``: 14x14 average pooling
  and a fixed seeded random projection. Deterministic and content-dependent, but blind to identity.

Both build with the ``onnx`` helper API in milliseconds; no torch export.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..conditioners.standin import STANDIN_KEY

OPSET = 17
IR_VERSION = 8  # readable by every onnxruntime that supports opset 17
STRIDES = (8, 16, 32)
NUM_ANCHORS = 2
DETECTOR_NOTE = "not a face model: reports fixed boxes on any image, whatever its pixels"
RECOGNIZER_NOTE = "not a face model: a random projection, blind to identity"


@dataclass(frozen=True)
class StandinFace:
    """A face the stand-in detector reports, in network-input pixels (640x640 letterboxed image).

    insightface resizes the photo to fit 640x640 (top-left aligned) before the network; detections are divided
    by that scale, so in photo pixels the face lands at ``coords * photo_long_side / 640``.
    """

    bbox: tuple[float, float, float, float]
    kps: tuple[tuple[float, float], ...]
    score: float = 0.92

    def stride(self) -> int:
        size = min(self.bbox[2] - self.bbox[0], self.bbox[3] - self.bbox[1])
        return 32 if size >= 96 else 16 if size >= 48 else 8

    def anchor(self) -> tuple[int, int]:
        """Grid cell (column, row) whose centre is nearest the box centre."""
        s = self.stride()
        cx, cy = (self.bbox[0] + self.bbox[2]) / 2, (self.bbox[1] + self.bbox[3]) / 2
        return int(round(cx / s)), int(round(cy / s))

    def regressions(self) -> tuple[np.ndarray, np.ndarray]:
        """SCRFD targets in stride units: box distances (l, t, r, b) and landmark offsets from the anchor."""
        s = self.stride()
        gx, gy = self.anchor()
        ax, ay = gx * s, gy * s
        x1, y1, x2, y2 = self.bbox
        box = np.array([ax - x1, ay - y1, x2 - ax, y2 - ay], dtype=np.float32) / s
        kps = (np.asarray(self.kps, dtype=np.float32) - np.array([ax, ay], dtype=np.float32)) / s
        return box, kps.reshape(-1)


# One face on scikit-image's astronaut (landmarks found with dlib's 68-point model, scaled 512 -> 640).
ASTRONAUT_FACE = StandinFace(
    bbox=(212.0, 78.0, 350.0, 234.0),
    kps=((254.0, 126.9), (308.1, 130.2), (281.3, 158.8), (251.3, 173.8), (307.5, 176.3)),
)


def scaled_face(face: StandinFace, scale: float, offset: tuple[float, float] = (0.0, 0.0),
                score: Optional[float] = None) -> StandinFace:
    """A copy of ``face`` scaled about its box centre and moved by ``offset`` (for multi-face variants)."""
    cx, cy = (face.bbox[0] + face.bbox[2]) / 2, (face.bbox[1] + face.bbox[3]) / 2
    nx, ny = cx + offset[0], cy + offset[1]

    def move(x: float, y: float) -> tuple[float, float]:
        return nx + (x - cx) * scale, ny + (y - cy) * scale

    (x1, y1), (x2, y2) = move(face.bbox[0], face.bbox[1]), move(face.bbox[2], face.bbox[3])
    return StandinFace(bbox=(x1, y1, x2, y2), kps=tuple(move(x, y) for x, y in face.kps),
                       score=face.score if score is None else score)


def build_standin_detector(path: str | os.PathLike, faces: Sequence[StandinFace] = (ASTRONAUT_FACE,)) -> Path:
    """Write an SCRFD-shaped detector that reports exactly ``faces`` (none if empty) on any input."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def const(name: str, value) -> str:
        if all(t.name != name for t in inits):
            inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=f"{op.lower()}_{name}", **attrs))
        return name

    const("zero", np.float32(0.0))
    outputs = {"score": [], "bbox": [], "kps": []}
    for s in STRIDES:
        # A [1, 1, H/s, W/s] map of ones (zero-weight strided conv + bias 1), then the cell indices.
        ones = node("Conv", ["input.1", const(f"w{s}", np.zeros((1, 3, s, s), np.float32)),
                             const(f"b{s}", np.ones(1, np.float32))], f"ones{s}", strides=[s, s])
        score = node("Mul", [ones, "zero"], f"s0_{s}")
        box = node("Mul", [ones, const(f"z4_{s}", np.zeros((1, 4, 1, 1), np.float32))], f"box0_{s}")
        kps = node("Mul", [ones, const(f"z10_{s}", np.zeros((1, 10, 1, 1), np.float32))], f"kps0_{s}")
        here = [f for f in faces if f.stride() == s]
        if here:
            one, half = const("one", np.float32(1.0)), const("half", np.float32(0.5))
            col = node("Sub", [node("CumSum", [ones, const("axis_w", np.int64(3))], f"cw{s}"), one], f"col{s}")
            row = node("Sub", [node("CumSum", [ones, const("axis_h", np.int64(2))], f"ch{s}"), one], f"row{s}")
        for i, face in enumerate(here):
            gx, gy = face.anchor()
            box_t, kps_t = face.regressions()
            hit_x = node("Less", [node("Abs", [node("Sub", [col, const(f"gx{s}_{i}", np.float32(gx))],
                                                          f"dx{s}_{i}")], f"ax{s}_{i}"), half], f"hx{s}_{i}")
            hit_y = node("Less", [node("Abs", [node("Sub", [row, const(f"gy{s}_{i}", np.float32(gy))],
                                                          f"dy{s}_{i}")], f"ay{s}_{i}"), half], f"hy{s}_{i}")
            mask = node("Cast", [node("And", [hit_x, hit_y], f"hit{s}_{i}")], f"m{s}_{i}", to=TensorProto.FLOAT)
            score = node("Add", [score, node("Mul", [mask, const(f"sc{s}_{i}", np.float32(face.score))],
                                             f"ms{s}_{i}")], f"s{s}_{i}")
            box = node("Add", [box, node("Mul", [mask, const(f"bt{s}_{i}", box_t.reshape(1, 4, 1, 1))],
                                         f"mb{s}_{i}")], f"box{s}_{i}")
            kps = node("Add", [kps, node("Mul", [mask, const(f"kt{s}_{i}", kps_t.reshape(1, 10, 1, 1))],
                                         f"mk{s}_{i}")], f"kps{s}_{i}")
        # Anchor 0 carries the face, anchor 1 never fires; layout [cell, anchor] like SCRFD's heads.
        per_anchor = {
            "score": (node("Concat", [score, node("Mul", [score, "zero"], f"s1_{s}")], f"sa{s}", axis=1), 1),
            "bbox": (node("Concat", [box, box], f"ba{s}", axis=1), 4),
            "kps": (node("Concat", [kps, kps], f"ka{s}", axis=1), 10),
        }
        for kind, (tensor, width) in per_anchor.items():
            nhwc = node("Transpose", [tensor], f"{kind}_nhwc{s}", perm=[0, 2, 3, 1])
            shape = const(f"{kind}_shape{s}", np.array([-1, width], dtype=np.int64))
            outputs[kind].append((node("Reshape", [nhwc, shape], f"{kind}_{s}"), width))
    graph_outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"n{name}", width])
        for kind in ("score", "bbox", "kps") for name, width in outputs[kind]
    ]
    graph = helper.make_graph(
        nodes, "standin_scrfd",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "height", "width"])],
        graph_outputs, initializer=inits,
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path, DETECTOR_NOTE)


def build_standin_recognizer(path: str | os.PathLike, dim: int = 512, seed: int = 0) -> Path:
    """Write an ArcFace-shaped recognizer: ``[N, 3, 112, 112] -> [N, dim]`` (pooling + seeded projection)."""
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(seed).standard_normal((3 * 8 * 8, dim)).astype(np.float32) / 14.0
    nodes = [
        helper.make_node("AveragePool", ["input.1"], ["pooled"], name="pool", kernel_shape=[14, 14], strides=[14, 14]),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten", axis=1),
        helper.make_node("MatMul", ["flat", "proj_weight"], ["embedding"], name="proj"),
    ]
    graph = helper.make_graph(
        nodes, "standin_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        initializer=[numpy_helper.from_array(weight, "proj_weight")],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), path, RECOGNIZER_NOTE)


def write_standin_pack(folder: str | os.PathLike, faces: Sequence[StandinFace] = (ASTRONAUT_FACE,)) -> Path:
    """A buffalo_l-shaped folder (``det_10g.onnx`` + ``w600k_r50.onnx``) of stand-ins; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build_standin_detector(folder / "det_10g.onnx", faces)
    build_standin_recognizer(folder / "w600k_r50.onnx")
    return folder


def standin_pack(folder: str | os.PathLike) -> Path:
    """The stand-in pack in ``folder``, written there unless a marked one is already in place."""
    import onnx

    folder = Path(folder)
    try:
        marked = all(any(p.key == STANDIN_KEY for p in onnx.load(str(folder / name), load_external_data=False)
                         .metadata_props) for name in ("det_10g.onnx", "w600k_r50.onnx"))
    except Exception:  # noqa: BLE001 - missing or unreadable: write it
        marked = False
    return folder if marked else write_standin_pack(folder)


def _save(model, path: str | os.PathLike, note: str) -> Path:
    import onnx

    model.ir_version = IR_VERSION
    onnx.helper.set_model_props(model, {STANDIN_KEY: note})
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
