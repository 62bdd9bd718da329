"""One face photo -> identity embedding, landmarks and the two aligned crops Lynx needs (one detection).

Follows the official preprocessing (``lynx_spec.md`` §4): detect, keep the largest face by box area, ArcFace
embedding of the 112-px ``norm_crop``, and the 256-px extended crop for the reference path.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image

from .alignment import arcface_crop, reference_crop
from .errors import FaceModelsMissingError, LynxInputError, NoFaceError
from .images import ImageSource, describe_source, load_image
from .model_files import INSIGHTFACE_ROOT
from .protocols import DetectedFace, FaceDetector, FaceEmbedder
from .standin import STANDIN_WARNING, is_standin

MIN_FACE_PX = 64  # below this box side the identity signal gets weak; we warn
MAX_OUTSIDE_FRACTION = 0.10  # warn when more of the reference crop than this lies outside the photo


@dataclass
class FaceAnalysisResult:
    """What `FaceAnalyzer.analyze` found; coordinates are pixels of the (EXIF-rotated) input photo."""

    embedding: np.ndarray  # (D,) float32, L2-normalised
    kps: np.ndarray  # (5, 2) float32: l-eye, r-eye, nose, l-mouth, r-mouth
    bbox: np.ndarray  # (4,) x1, y1, x2, y2
    det_score: float
    num_faces: int
    aligned_112: Image.Image  # the ArcFace crop (RGB)
    ref_crop: Image.Image  # 256x256 RGB extended crop for the reference path
    warnings: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (0, 0)  # (width, height)
    source: str = ""
    detector: str = ""
    embedder: str = ""
    score_scale: str = ""  # what ``det_score`` means: detectors score on different scales
    standin: bool = False  # the detector or the embedder is a stand-in (not a face model)

    def report(self) -> dict:
        """JSON-serialisable summary (no embedding values)."""
        return {
            "source": self.source,
            "image_size": [int(v) for v in self.image_size],
            "detector": self.detector,
            "embedder": self.embedder,
            "num_faces": int(self.num_faces),
            "det_score": round(float(self.det_score), 4),
            "det_score_scale": self.score_scale,
            "standin": bool(self.standin),
            "bbox": [round(float(v), 2) for v in self.bbox],
            "kps": [[round(float(x), 2), round(float(y), 2)] for x, y in self.kps],
            "embedding_dim": int(self.embedding.shape[0]),
            "embedding_norm": round(float(np.linalg.norm(self.embedding)), 4),
            "aligned_size": list(self.aligned_112.size),
            "ref_crop_size": list(self.ref_crop.size),
            "warnings": list(self.warnings),
        }


class FaceAnalyzer:
    """A `FaceDetector` plus a `FaceEmbedder`.

    Args:
        detector: e.g. `InsightFaceDetector` (official) or `DlibDetector`.
        embedder: e.g. `FacexlibArcFaceEmbedder` (official), `InsightFaceArcFaceEmbedder`, `DlibResNetEmbedder`.
        max_detect_side: photos with a longer side than this are detected on a smaller copy (``detect_side`` px)
            to save time and avoid aliasing; the crops are still cut from the full-resolution photo. Photos up to
            this size go to the detector untouched, as in the official code.
        detect_side: long side of that copy.
    """

    def __init__(self, detector: FaceDetector, embedder: FaceEmbedder, max_detect_side: int = 4096,
                 detect_side: int = 1280):
        self.detector = detector
        self.embedder = embedder
        self.max_detect_side = int(max_detect_side)
        self.detect_side = int(detect_side)

    # ------------------------------------------------------------------------------------------------ detection
    def detect(self, image: ImageSource) -> tuple[list[DetectedFace], list[str]]:
        """All faces (photo coordinates) and notes about how detection ran."""
        img = load_image(image)
        return self._detect(img)

    def _detect(self, img: Image.Image) -> tuple[list[DetectedFace], list[str]]:
        notes = []
        width, height = img.size
        scale = 1.0
        if max(width, height) > self.max_detect_side:
            scale = self.detect_side / max(width, height)
            small = img.resize((max(1, round(width * scale)), max(1, round(height * scale))),
                               Image.Resampling.LANCZOS, reducing_gap=3.0)
            notes.append(f"photo is {width}x{height}; faces were detected on a {small.size[0]}x{small.size[1]} "
                         "copy and the crops cut from the full photo")
            img = small
        faces = self.detector.detect(np.asarray(img))
        if scale != 1.0:
            faces = [DetectedFace(bbox=f.bbox / scale, kps=f.kps / scale, score=f.score) for f in faces]
        return faces, notes

    # ------------------------------------------------------------------------------------------------ analysis
    def analyze(self, image: ImageSource) -> FaceAnalysisResult:
        """Detect, keep the largest face, embed it and cut the 112 / 256 crops.

        Raises:
            LynxInputError: unreadable image. NoFaceError: no face found.
        """
        img = load_image(image)
        name = img.info.get("lynx_source") or describe_source(image)
        faces, notes = self._detect(img)
        width, height = img.size
        if not faces:
            raise NoFaceError(
                f"No face found in {name} ({width}x{height}) by {self.detector.name}. Use a photo with one clearly "
                f"visible, roughly frontal face at least {MIN_FACE_PX} px wide, not cut by the edge."
            )
        face = max(faces, key=lambda f: f.area)  # the official rule: largest box area (first one on ties)
        if len(faces) > 1:
            box = ", ".join(f"{v:.0f}" for v in face.bbox)
            notes.append(f"{len(faces)} faces found; using the largest (bbox [{box}]). Crop the photo to one "
                         "person to choose another.")
        rgb = np.asarray(img)
        aligned = arcface_crop(rgb, face.kps, 112)
        size = int(self.embedder.input_size)
        crop = aligned if size == 112 else arcface_crop(rgb, face.kps, size)
        embedding = self._check_embedding(self.embedder.embed_aligned(crop))
        ref = reference_crop(rgb, face.kps)
        notes.extend(self._quality_notes(face, rgb.shape))
        if is_standin(self.detector) or is_standin(self.embedder):
            notes.append(STANDIN_WARNING)
        return FaceAnalysisResult(
            embedding=embedding, kps=face.kps.astype(np.float32), bbox=face.bbox.astype(np.float32),
            det_score=float(face.score), num_faces=len(faces), aligned_112=Image.fromarray(aligned),
            ref_crop=Image.fromarray(ref), warnings=notes, image_size=(width, height), source=name,
            detector=self.detector.name, embedder=self.embedder.name,
            score_scale=str(getattr(self.detector, "score_scale", "")),
            standin=is_standin(self.detector) or is_standin(self.embedder),
        )

    def embed_aligned(self, aligned_112_rgb: Image.Image | np.ndarray) -> np.ndarray:
        """Embedding of an already aligned square RGB crop (e.g. a generated frame's ``aligned_112``)."""
        crop = np.asarray(load_image(aligned_112_rgb))
        if crop.shape[0] != crop.shape[1]:
            raise LynxInputError(f"An aligned face crop must be square, got {crop.shape[1]}x{crop.shape[0]}.")
        size = int(self.embedder.input_size)
        if crop.shape[0] != size:
            import cv2

            grow = crop.shape[0] < size
            crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC if grow else cv2.INTER_AREA)
        return self._check_embedding(self.embedder.embed_aligned(crop))

    def _check_embedding(self, vec: np.ndarray) -> np.ndarray:
        vec = np.asarray(vec, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vec))
        if vec.shape[0] != self.embedder.dim or not np.isfinite(norm) or norm == 0.0:
            raise RuntimeError(f"{self.embedder.name} returned an invalid embedding (shape {vec.shape}, norm {norm}).")
        return vec / norm

    @staticmethod
    def _quality_notes(face: DetectedFace, shape: tuple) -> list[str]:
        import cv2

        from .alignment import ref_crop_template, similarity_matrix

        notes = []
        side = min(face.bbox[2] - face.bbox[0], face.bbox[3] - face.bbox[1])
        if side < MIN_FACE_PX:
            notes.append(f"the face is small ({side:.0f} px); identity may come out weak. Use a closer photo.")
        inside = np.full(shape[:2], 255, np.uint8)
        matrix = similarity_matrix(face.kps, ref_crop_template())
        outside = 1.0 - cv2.warpAffine(inside, matrix, (256, 256), borderValue=0).mean() / 255.0
        if outside > MAX_OUTSIDE_FRACTION:
            notes.append(f"{outside:.0%} of the 256-px reference crop lies outside the photo (black border); "
                         "a photo with more room around the head works better.")
        return notes

    # ------------------------------------------------------------------------------------------------ factory
    @classmethod
    def from_options(
        cls,
        models: str | Path | None = None,
        embedder: str = "facexlib",
        device: str = "cpu",
        providers: Optional[Sequence[Any]] = None,
        det_size: int | tuple[int, int] = 640,
        offline_ok: Optional[bool] = None,
        *,
        detector: str = "insightface",
        det_thresh: float = 0.5,
        rgb_as_bgr: bool = True,
        root: str | os.PathLike = INSIGHTFACE_ROOT,
    ) -> "FaceAnalyzer":
        """Build the analyzer from names and paths (what the CLI's ``--face-models`` etc. map to).

        Args:
            models: insightface detector: a pack folder (``det_10g.onnx`` inside), a ``.onnx`` file, a pack
                name under ``root/models`` or None (``~/.insightface/models/buffalo_l``). A folder is also
                searched for ``recognition_arcface_ir_se50.pth``.
            embedder: ``"facexlib"`` (official: ArcFace IR-SE50), ``"insightface"`` (the pack's ArcFace ONNX,
                e.g. ``w600k_r50.onnx``), ``"dlib"`` (dlib ResNet, 128-d), or a ``.pth`` / ``.onnx`` path.
            device: ``"cpu"`` or ``"cuda[:i]"`` for the torch embedder and the default onnxruntime providers.
            providers: explicit onnxruntime providers (overrides ``device`` for the ONNX models).
            det_size: detector input size (Lynx: 640).
            offline_ok: True = never download, a missing file raises `FaceModelsMissingError` at once;
                False = download missing files (insightface's buffalo_l zip, facexlib's ``.pth``), and a failed
                download raises `FaceModelsMissingError`; None = True if ``LYNX_EXT_OFFLINE`` or
                ``HF_HUB_OFFLINE`` is set, else False.
            detector: ``"insightface"`` (official SCRFD) or ``"dlib"`` (HOG + 68 landmarks, no download).
            det_thresh: detector score threshold.
            rgb_as_bgr: reproduce the official RGB-as-BGR detector input (see `InsightFaceDetector`).
            root: insightface's model root.
        """
        from . import model_files as mf

        if mf.offline_mode(offline_ok):  # nothing can be fetched: name every missing file now, not one per run
            missing = mf.missing_face_files(models, embedder, detector, root)
            if len(missing) > 1:
                raise mf.missing_face_files_error(missing)
        providers, ctx_id = onnx_providers(device, providers)
        pack_dir: Optional[Path] = None
        if detector == "insightface":
            from .detection import InsightFaceDetector

            det_file = mf.resolve_detector_file(models, root=root, offline_ok=offline_ok)
            pack_dir = det_file.parent
            det = InsightFaceDetector(det_file, providers=providers, ctx_id=ctx_id, det_size=det_size,
                                      det_thresh=det_thresh, rgb_as_bgr=rgb_as_bgr)
        elif detector == "dlib":
            from .dlib_detector import DlibDetector

            det = DlibDetector(model_dir=_user_folder(models))
        else:
            raise LynxInputError(f"Unknown face detector {detector!r}; use 'insightface' or 'dlib'.")

        search = [Path(os.path.expanduser(str(models)))] if models is not None else []
        search = [p for p in search + ([pack_dir] if pack_dir else []) if p.is_dir()]
        emb = _make_embedder(embedder, device, providers, ctx_id, pack_dir, search, root, offline_ok,
                             _user_folder(models))
        return cls(det, emb)


def _make_embedder(embedder: str, device: str, providers, ctx_id: int, pack_dir: Optional[Path],
                   search: list[Path], root, offline_ok: Optional[bool], user: Optional[Path] = None) -> FaceEmbedder:
    from . import model_files as mf

    text = str(embedder)
    if text.endswith(".pth"):
        from .arcface_facexlib import load_facexlib_embedder

        return load_facexlib_embedder(text, device=device, offline_ok=offline_ok)
    if text.endswith(".onnx"):
        from .arcface_onnx import InsightFaceArcFaceEmbedder

        path = Path(os.path.expanduser(text))
        if not path.is_file():
            raise FaceModelsMissingError("ArcFace ONNX recognizer", path.name, path)
        return InsightFaceArcFaceEmbedder(path, providers=providers, ctx_id=ctx_id)
    if text == "facexlib":
        from .arcface_facexlib import load_facexlib_embedder

        try:
            return load_facexlib_embedder(None, device=device, offline_ok=offline_ok, search_dirs=search)
        except FaceModelsMissingError as err:
            if user is None:
                raise
            # The user gave a folder: name it as the place for the file (the caches were searched too).
            raise FaceModelsMissingError("facexlib ArcFace weights", err.filename, user / err.filename, err.url,
                                         hint=f"Or place it at {err.destination}.") from None
    if text in ("insightface", "onnx"):
        from .arcface_onnx import InsightFaceArcFaceEmbedder

        if pack_dir is None and user is not None:  # e.g. the dlib detector with the insightface recognizer
            pack_dir = user / "models" / mf.DEFAULT_PACK if (user / "models" / mf.DEFAULT_PACK).is_dir() else user
        if pack_dir is None:
            pack_dir = mf.resolve_detector_file(None, root=root, offline_ok=offline_ok).parent
        return InsightFaceArcFaceEmbedder(mf.resolve_recognizer_file(pack_dir), providers=providers, ctx_id=ctx_id)
    if text == "dlib":
        from .dlib_resnet import DlibResNetEmbedder

        return DlibResNetEmbedder(model_dir=user)
    raise LynxInputError(
        f"Unknown face embedder {embedder!r}; use 'facexlib' (official), 'insightface', 'dlib', or a .pth/.onnx path."
    )


def _user_folder(models) -> Optional[Path]:
    """The face-model folder the user gave (None for a pack name, a file or nothing)."""
    if models is None:
        return None
    path = Path(os.path.expanduser(str(models)))
    return path if path.is_dir() else None


def onnx_providers(device: str, providers: Optional[Sequence[Any]] = None) -> tuple[list, int]:
    """onnxruntime providers and insightface ``ctx_id`` for ``device`` (explicit ``providers`` win)."""
    if providers is not None:
        names = [p[0] if isinstance(p, (tuple, list)) else p for p in providers]
        return list(providers), -1 if names == ["CPUExecutionProvider"] else 0
    if str(device).startswith("cuda"):
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            index = int(str(device).split(":", 1)[1]) if ":" in str(device) else 0
            return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"], 0
        warnings.warn(
            "onnxruntime has no CUDA provider (the CPU package `onnxruntime` is installed), so face detection runs "
            "on the CPU. On a CUDA machine: pip uninstall -y onnxruntime && pip install onnxruntime-gpu "
            "(see docs/faces.md).",
            stacklevel=3,
        )
    return ["CPUExecutionProvider"], -1
