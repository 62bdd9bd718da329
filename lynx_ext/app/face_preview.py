"""The face preview: what `FaceAnalyzer` found in an uploaded photo, drawn so a user can check it before a run."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from ..cli.common import USER_ERRORS
from ..conditioners import FaceAnalysisResult, FaceAnalyzer, load_image
from ..conditioners.standin import STANDIN_WARNING

# l-eye, r-eye, nose, l-mouth, r-mouth (the order of FaceAnalysisResult.kps)
LANDMARK_COLOURS = ((0, 200, 255), (0, 120, 255), (255, 200, 0), (255, 80, 160), (200, 60, 255))
BOX_COLOUR = (40, 220, 40)
NO_PHOTO = "Upload a photo with one clearly visible face: the box, the 5 landmarks and the two crops appear here."
ZOOM_MARGIN = 0.6  # box sizes shown around the face in the preview


@dataclass
class FacePreview:
    """The chosen face zoomed with its box and 5 landmarks drawn, the two aligned crops and a summary."""

    annotated: Image.Image
    aligned_112: Image.Image
    ref_crop: Image.Image
    summary: str
    result: FaceAnalysisResult


def draw_face(image: Image.Image, face: FaceAnalysisResult, margin: float = ZOOM_MARGIN) -> Image.Image:
    """The face's box and its 5 landmarks (coloured dots) drawn on ``image``, zoomed to the box plus ``margin``
    box sizes on each side (clipped to the photo), so the landmarks can be checked even in a wide shot."""
    x1, y1, x2, y2 = (float(v) for v in face.bbox)
    side = max(x2 - x1, y2 - y1, 1.0)
    left, top = max(0, int(x1 - margin * side)), max(0, int(y1 - margin * side))
    right, bottom = min(image.width, int(x2 + margin * side) + 1), min(image.height, int(y2 + margin * side) + 1)
    out = image.convert("RGB").crop((left, top, right, bottom))
    draw = ImageDraw.Draw(out)
    line = max(2, round(side / 60))
    draw.rectangle([x1 - left, y1 - top, x2 - left, y2 - top], outline=BOX_COLOUR, width=line)
    radius = max(3.0, side / 45)
    for (x, y), colour in zip(face.kps.tolist(), LANDMARK_COLOURS):
        x, y = x - left, y - top
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour, outline=(0, 0, 0))
    return out


def summarize(face: FaceAnalysisResult) -> str:
    """Markdown lines: faces found, detection score (with its detector's scale), box size, models, and the
    analyzer's warnings. Stand-in models are named as such: their box is not a detection."""
    x1, y1, x2, y2 = (float(v) for v in face.bbox)
    box = f"box {x2 - x1:.0f}x{y2 - y1:.0f} px at ({x1:.0f}, {y1:.0f})"
    scale = f" ({face.score_scale})" if face.score_scale else ""
    if face.standin:
        lines = [f"**Stand-in face models, not face models**: the stand-in detector reports a fixed {box} on any "
                 f"image; its score {face.det_score:.2f} is {face.score_scale or 'not a detection'}. Install dlib "
                 "(`pip install dlib-bin face-recognition-models`) or give `--face-models` for real detection."]
    else:
        lines = [f"**{face.num_faces} face{'s' if face.num_faces != 1 else ''} found**; using the largest: "
                 f"{box}, detection score {face.det_score:.2f}{scale}."]
    lines.append(f"Detector {face.detector}, embedder {face.embedder} ({face.embedding.shape[0]}-d identity "
                 "embedding).")
    lines += [f"Note: {w}" for w in face.warnings if not (face.standin and w == STANDIN_WARNING)]
    return "\n\n".join(lines)


def shown_name(text: str, image) -> str:
    """``text`` with the uploaded file's temporary path replaced by its file name (what the user chose)."""
    if isinstance(image, (str, Path)) and str(image):
        return text.replace(str(image), Path(image).name)
    return text


def face_preview(analyzer: FaceAnalyzer, image) -> FacePreview:
    """Analyse ``image`` (path / PIL / array) with ``analyzer``; `NoFaceError` / `LynxInputError` when unusable."""
    photo = load_image(image)
    if isinstance(image, (str, Path)):  # messages name the user's file, not the server's temporary copy
        photo.info["lynx_source"] = Path(image).name
    face = analyzer.analyze(photo)
    return FacePreview(annotated=draw_face(photo, face), aligned_112=face.aligned_112, ref_crop=face.ref_crop,
                       summary=summarize(face), result=face)


def preview_panel(analyzer: FaceAnalyzer, image) -> tuple:
    """``(annotated, aligned_112, ref_crop, markdown)`` for the page: no photo or an unusable one gives no
    images and a sentence saying what to do."""
    if image is None or (isinstance(image, str) and not image):
        return None, None, None, NO_PHOTO
    try:
        shown = face_preview(analyzer, image)
    except USER_ERRORS as err:
        return None, None, None, f"**This photo cannot be used:** {shown_name(str(err), image)}"
    return shown.annotated, shown.aligned_112, shown.ref_crop, shown.summary
