"""The draw-or-upload input of the Predict and Compare pages: a canvas (white on black) or image files."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from app.components.sketchpad import sketchpad
from core.inference.images import MAX_UPLOAD_BYTES

THING_BY_STYLE = {"digits": "digit", "fashion": "piece of clothing"}  # what to draw, by preprocessing style
FORMATS_TEXT = "PNG, JPEG, WebP, BMP or GIF"
LIMIT_TEXT = f"up to {MAX_UPLOAD_BYTES // 2**20} MB"


@dataclass
class ImageInput:
    """What the visitor gave: a drawing (the canvas's RGBA pixels, None until one is sent) or files."""

    drawn: bool
    drawing: np.ndarray | None = None
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (file name, bytes), as uploaded


def draw_or_upload(key: str, style: str, side: int, multiple: bool, source_key: str | None = None) -> ImageInput:
    """A Draw/Upload choice, then a `side`-pixel canvas with a stroke slider, or a file uploader (one file or
    many). Widget keys: `source_key` (default KEY_source), KEY_stroke, KEY_canvas, KEY_upload."""
    thing = THING_BY_STYLE[style]
    source = st.radio("Input", ["Draw", "Upload"], horizontal=True, key=source_key or f"{key}_source",
                      format_func=lambda s: f"Draw a {thing}" if s == "Draw" else
                      ("Upload images" if multiple else "Upload an image"))
    if source == "Draw":
        canvas_col, help_col = st.columns(2)
        with help_col:
            stroke = st.slider("Stroke width", 6, 40, 18, key=f"{key}_stroke",
                               help="MNIST strokes are about a tenth of the digit's height")
            st.caption(f"Draw one {thing} in white on the black canvas, any size, anywhere. Undo takes back "
                       "the last stroke, Clear empties the canvas. The picture is sent the moment you lift the "
                       "mouse, pen or finger.")
        with canvas_col:
            drawing = sketchpad(side, stroke, key=f"{key}_canvas")
        return ImageInput(drawn=True, drawing=drawing)
    if multiple:
        uploads = st.file_uploader(f"Images: {FORMATS_TEXT} (one or many, {LIMIT_TEXT} each)",
                                   accept_multiple_files=True, key=f"{key}_upload") or []
    else:
        upload = st.file_uploader(f"An image: {FORMATS_TEXT} ({LIMIT_TEXT})", key=f"{key}_upload")
        uploads = [upload] if upload is not None else []
    return ImageInput(drawn=False, files=[(f.name, f.getvalue()) for f in uploads])
