"""Turn a user's image into the 28x28 input a model expects, the way each dataset was made.

Two styles, one per dataset (`STYLE_BY_DATASET` maps a dataset to its style):

- "digits", as MNIST was made: light ink on black, the ink's bounding box fitted into a 20x20 box
  (aspect ratio kept, anti-aliased), pasted into 28x28 so that the centre of mass sits at (14, 14).
- "fashion", as Fashion-MNIST was made: the object light on black, trimmed to its bounding box,
  the longest side scaled to 28 (aspect ratio kept), centred geometrically in 28x28.

Both start the same way: flatten alpha, convert to grey, invert when the object is dark on a light
background (paper, a white studio backdrop), remove the background tone. Each stage is a small pure
function on numpy arrays (float32 in [0, 1] unless a docstring says otherwise), so the Predict page
can show every stage ("what the model sees") and tests can check each one on hand-made arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

STYLE_BY_DATASET = {"mnist": "digits", "fashion-mnist": "fashion"}
STYLES = ("digits", "fashion")

SIDE = 28  # output is SIDE x SIDE
DIGIT_BOX = 20  # MNIST: the digit's bounding box fits in 20x20
CENTRE = (14.0, 14.0)  # MNIST: centre of mass (row, col) in pixel indices; test-set mean 13.99, 14.01
MAX_WORK_SIDE = 1024  # larger inputs are scaled down first (pixels on the longest side)
MIN_CONTRAST = 0.08  # ink must stand out from the background by this much (fraction of full scale)
NOISE_MARGIN = 0.02  # added to the background's noise estimate (fraction of full scale)
MIN_INK_PIXELS = 4  # fewer solid ink pixels than this (after despeckling) is a blank image
MIN_INK_FRACTION = 5e-5  # ... or fewer than this fraction of the (working-size) image

# What the 28x28 inputs look like in each dataset's test set (ink = value > 0.5), for judging
# whether a user's image is out of distribution. Measured on the real test sets (10,000 each).
REFERENCE_STATS = {
    "digits": {"mean_intensity": 0.133, "ink_fraction": 0.134},
    "fashion": {"mean_intensity": 0.287, "ink_fraction": 0.315},
}


@dataclass
class Preprocessed:
    """The model's input plus what it took to get there."""

    tensor_input: np.ndarray  # float32 (1, 28, 28) in [0, 1], light object on black
    stages: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (name, uint8 grey image)
    is_blank: bool = False  # no ink found: tensor_input is all zeros
    ink_stats: dict[str, float] = field(default_factory=dict)  # see `ink_stats`
    inverted: bool = False  # the input was dark on light and was inverted


# --- input normalisation ---------------------------------------------------------------------


def as_rgba(image: np.ndarray) -> np.ndarray:
    """Any grey/grey+alpha/RGB/RGBA array of any numeric dtype -> RGBA uint8 (H, W, 4)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (2, 3, 4)) or a.size == 0:
        raise ValueError(f"expected an image array (H, W) or (H, W, 2|3|4), got shape {a.shape}")
    a = _as_uint8(a)
    if a.ndim == 3 and a.shape[2] == 4:
        return np.ascontiguousarray(a)
    if a.ndim == 2:
        a = a[:, :, None]
    channels = a.shape[2]
    colour = a[:, :, :3] if channels >= 3 else np.repeat(a[:, :, :1], 3, axis=2)
    if channels in (2, 4):
        alpha = a[:, :, -1:]
    else:
        alpha = np.full(a.shape[:2] + (1,), 255, np.uint8)
    return np.ascontiguousarray(np.concatenate([colour, alpha], axis=2))


def _as_uint8(a: np.ndarray) -> np.ndarray:
    """Scale an array to uint8: floats in [0, 1] (or [0, 255]), bools, 16-bit ints."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    f = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(f.max())
    if np.issubdtype(a.dtype, np.floating) and top <= 1.0:
        f = f * 255.0
    elif top > 255.0:
        f = f / 257.0  # 16-bit
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def limit_size(rgba: np.ndarray, max_side: int = MAX_WORK_SIDE) -> np.ndarray:
    """Scale an RGBA uint8 image down (anti-aliased) so its longest side is at most max_side."""
    h, w = rgba.shape[:2]
    if max(h, w) <= max_side:
        return rgba
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Pillow resizes RGBA with premultiplied alpha, so transparent pixels do not bleed colour.
    small = Image.fromarray(rgba).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(small).copy()


# --- stages shared by both styles ------------------------------------------------------------


def flatten_alpha(rgba: np.ndarray) -> np.ndarray:
    """Composite RGBA uint8 onto white if its visible content is dark, else black -> RGB float."""
    rgb = rgba[:, :, :3].astype(np.float32) / 255.0
    alpha = rgba[:, :, 3].astype(np.float32) / 255.0
    if alpha.min() >= 1.0:
        return rgb
    weight = float(alpha.sum())
    luma = to_grey(rgb)
    content = float((luma * alpha).sum()) / weight if weight > 0 else 1.0
    background = 1.0 if content < 0.5 else 0.0  # contrast with the ink: black ink on a transparent
    a = alpha[:, :, None]  # canvas stays visible, and so does white ink
    return rgb * a + background * (1.0 - a)


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """RGB float (H, W, 3) -> grey float (H, W) with ITU-R 601 luma weights (as Pillow's "L")."""
    return (rgb @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


def detect_inverted(grey: np.ndarray) -> bool:
    """True when the object is dark on a light background (so the image must be inverted)."""
    background = float(np.median(border_pixels(grey)))
    lo, hi = (float(v) for v in np.percentile(grey, [0.5, 99.5]))
    if max(background - lo, hi - background) < MIN_CONTRAST:  # ink too sparse for percentiles
        lo, hi = float(grey.min()), float(grey.max())
    # The ink is whichever extreme lies further from the background: dark ink on paper (even a
    # grey, unevenly lit photo of paper) is far below it, white ink on a black canvas far above.
    return background - lo > hi - background


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of values in [0, 1]: the cut maximising between-class variance."""
    hist, edges = np.histogram(values, bins=256, range=(0.0, 1.0))
    p = hist / max(1, hist.sum())
    centres = (edges[:-1] + edges[1:]) / 2
    omega = np.cumsum(p)
    mu = np.cumsum(p * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1.0 - omega))
    between = np.nan_to_num(between, nan=-1.0, posinf=-1.0)
    return float(edges[int(np.argmax(between)) + 1])


def border_pixels(image: np.ndarray) -> np.ndarray:
    """The pixels of the outer ring (5% of the shorter side, at least 1 pixel), flattened."""
    h, w = image.shape
    ring = max(1, min(h, w) // 20)
    parts = [image[:ring], image[-ring:], image[:, :ring], image[:, -ring:]]
    return np.concatenate([part.ravel() for part in parts])


def remove_background(ink: np.ndarray, style: str = "digits") -> tuple[np.ndarray, np.ndarray]:
    """Subtract the background tone (light ink on dark); returns (cleaned [0, 1], solid-ink mask).

    The noise floor is the border's median plus 3 MADs (paper grain, uneven light, JPEG noise).
    Solid ink is what stands clear of it and above Otsu's threshold, with stray specks dropped;
    too little of it means a blank image (both arrays all zero/False). The level subtracted is
    the noise floor; for digits it is lowered to the 98th percentile of Otsu's background when
    that is lower, so the grey anti-aliased edges of strokes keep their values. Digits then keep
    only the strokes and their edges; fashion keeps every pixel above the floor (dim parts of
    a garment are part of it) except isolated specks.
    """
    blank = np.zeros(ink.shape, np.float32), np.zeros(ink.shape, bool)
    ring = border_pixels(ink)
    median = float(np.median(ring))
    floor = median + 3.0 * float(np.median(np.abs(ring - median))) + NOISE_MARGIN
    threshold = otsu_threshold(ink)
    mask = despeckle(ink > max(threshold, floor + MIN_CONTRAST))
    if mask.sum() < max(MIN_INK_PIXELS, MIN_INK_FRACTION * ink.size):
        return blank
    level = floor
    below = ink[ink <= threshold]
    if style == "digits" and below.size:
        level = min(level, float(np.percentile(below, 98)))
    peak = float((ink[mask] - level).max())  # > 0: the mask lies above the floor
    cleaned = np.clip((ink - level) / peak, 0.0, 1.0).astype(np.float32)
    if style == "digits":
        return keep_near_ink(cleaned, mask), mask
    return np.where(despeckle(cleaned > 0), cleaned, 0.0).astype(np.float32), mask


def despeckle(mask: np.ndarray) -> np.ndarray:
    """Drop mask pixels with fewer than 2 of their 8 neighbours set (stray dots, not 1-px lines)."""
    neighbours = _window3(mask.astype(np.uint8), "sum") - mask
    return mask & (neighbours >= 2)


def keep_near_ink(cleaned: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero everything further than 1 pixel from the solid ink (keeps anti-aliased edges)."""
    return np.where(_window3(mask, "max"), cleaned, 0.0).astype(np.float32)


def ink_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (top, bottom, left, right), inclusive, of the True pixels; None if none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def crop_to_ink(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Crop to the bounding box of `mask` (default: the non-zero pixels); empty mask -> unchanged."""
    box = ink_bbox(image > 0 if mask is None else mask)
    if box is None:
        return image
    top, bottom, left, right = box
    return image[top : bottom + 1, left : right + 1]


def fit_in_box(image: np.ndarray, box: int) -> np.ndarray:
    """Scale so the longest side is exactly `box` pixels, keeping the aspect ratio (anti-aliased)."""
    h, w = image.shape
    scale = box / max(h, w)
    size = (min(box, max(1, round(w * scale))), min(box, max(1, round(h * scale))))
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR
    resized = Image.fromarray(image.astype(np.float32)).resize(size, resample)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def centre_in_canvas(image: np.ndarray, side: int = SIDE) -> np.ndarray:
    """Paste an image (at most side x side) into the middle of a black side x side canvas."""
    h, w = image.shape
    canvas = np.zeros((side, side), np.float32)
    top, left = (side - h + 1) // 2, (side - w + 1) // 2  # odd margin: extra pixel top/left, as in Fashion-MNIST
    canvas[top : top + h, left : left + w] = image
    return canvas


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, col) of the intensity-weighted centre, in pixel indices; the middle if all zero."""
    total = float(image.sum())
    if total <= 0:
        return (image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2
    rows = float((image.sum(axis=1) * np.arange(image.shape[0])).sum()) / total
    cols = float((image.sum(axis=0) * np.arange(image.shape[1])).sum()) / total
    return rows, cols


def shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move an image by whole pixels (down, right), filling with black; what leaves is lost."""
    h, w = image.shape
    out = np.zeros_like(image)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src_rows, dst_rows = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    src_cols, dst_cols = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    out[dst_rows, dst_cols] = image[src_rows, src_cols]
    return out


def centre_by_mass(image: np.ndarray, target: tuple[float, float] = CENTRE) -> np.ndarray:
    """Shift by whole pixels so the centre of mass lands on `target` (row, col).

    The shift is limited so that no ink leaves the frame: a lopsided shape ends up a little off
    centre rather than cut.
    """
    box = ink_bbox(image > 0)
    if box is None:
        return image.copy()
    top, bottom, left, right = box
    h, w = image.shape
    cy, cx = centre_of_mass(image)
    dy = int(np.clip(round(target[0] - cy), -top, h - 1 - bottom))
    dx = int(np.clip(round(target[1] - cx), -left, w - 1 - right))
    return shift(image, dy, dx)


def normalise_peak(image: np.ndarray) -> np.ndarray:
    """Scale intensities so the maximum is 1 (all-zero stays zero), clipped to [0, 1]."""
    top = float(image.max())
    if top <= 0:
        return np.zeros_like(image, dtype=np.float32)
    return np.clip(image / top, 0.0, 1.0).astype(np.float32)


def ink_stats(x: np.ndarray) -> dict[str, float]:
    """Summary of a 28x28 input for out-of-distribution checks (compare with REFERENCE_STATS).

    mean_intensity: mean pixel value; ink_fraction: share of pixels > 0.5; bbox_height and
    bbox_width: extent of those pixels; bbox_fill: share of that box they cover.
    """
    ink = x > 0.5
    box = ink_bbox(ink)
    height = width = 0
    if box is not None:
        height, width = box[1] - box[0] + 1, box[3] - box[2] + 1
    return {
        "mean_intensity": float(x.mean()),
        "ink_fraction": float(ink.mean()),
        "bbox_height": float(height),
        "bbox_width": float(width),
        "bbox_fill": float(ink.sum()) / (height * width) if box is not None else 0.0,
    }


def _to_uint8_image(x: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8 grey image for display."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


# --- the pipeline ----------------------------------------------------------------------------


def preprocess(image: np.ndarray, style: str) -> Preprocessed:
    """Make the (1, 28, 28) float32 model input from a grey/RGB/RGBA image, in a dataset's style."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {', '.join(STYLES)}")
    stages: list[tuple[str, np.ndarray]] = []

    grey = to_grey(flatten_alpha(limit_size(as_rgba(image))))
    stages.append(("grey", _to_uint8_image(grey)))
    inverted = detect_inverted(grey)
    ink = 1.0 - grey if inverted else grey
    if inverted:
        stages.append(("inverted", _to_uint8_image(ink)))

    cleaned, mask = remove_background(ink, style)
    stages.append(("background removed", _to_uint8_image(cleaned)))
    if not mask.any():
        return _blank(stages, inverted)

    cropped = crop_to_ink(cleaned)
    if style == "digits":
        resized = fit_in_box(cropped, DIGIT_BOX)
        centred = centre_by_mass(centre_in_canvas(resized))
    else:
        resized = fit_in_box(cropped, SIDE)
        centred = centre_in_canvas(resized)
    stages += [("cropped", _to_uint8_image(cropped)), ("resized", _to_uint8_image(resized))]
    x = normalise_peak(centred)
    stages.append(("centred", _to_uint8_image(x)))
    if not x.any():
        return _blank(stages, inverted)
    return Preprocessed(x[None], stages, is_blank=False, ink_stats=ink_stats(x), inverted=inverted)


def _blank(stages: list[tuple[str, np.ndarray]], inverted: bool) -> Preprocessed:
    """The result for an image with no ink: an all-zero input."""
    x = np.zeros((SIDE, SIDE), np.float32)
    return Preprocessed(x[None], stages, is_blank=True, ink_stats=ink_stats(x), inverted=inverted)


def _window3(a: np.ndarray, op: str) -> np.ndarray:
    """3x3 neighbourhood "sum", "max" or "min" of a 2-D array."""
    fill = {"sum": 0, "max": a.min() if a.size else 0, "min": a.max() if a.size else 0}[op]
    padded = np.pad(a, 1, constant_values=fill)
    h, w = a.shape
    windows = np.stack([padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)])
    if op == "sum":
        return windows.sum(axis=0, dtype=np.int32)
    return windows.max(axis=0) if op == "max" else windows.min(axis=0)
