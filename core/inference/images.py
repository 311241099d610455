"""Safe decoding of user-supplied image files into RGBA arrays.

Everything a user uploads goes through `decode_image`: it either returns an RGBA uint8 array
(H, W, 4) or raises `ImageError` with one line that names the file. No exception from Pillow
escapes, and nothing is decoded before its size is known to be sane (`Image.open` only reads the
header; the pixel count is checked before `load()`).

Choices:
- Formats: PNG, JPEG (also MPO, which some phones write), WebP, BMP and GIF. Other formats Pillow
  knows (EPS runs Ghostscript, TIFF and others add attack surface) are refused as unsupported.
- Animated images (GIF, WebP, APNG): the first frame is used.
- 16-bit greyscale is scaled to 8 bit (65535 -> 255); CMYK, palette, LA/RGBA and transparency keys
  are converted to RGBA by Pillow; EXIF orientation is applied, so a phone photo is upright. An
  unreadable EXIF block is ignored (the picture itself is fine), not an error.
"""

from __future__ import annotations

import base64
import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # larger files are refused before Pillow sees them
MAX_PIXELS = 40_000_000  # decompression-bomb guard: width * height of the decoded image
MIN_SIDE = 2  # pixels; a 1-pixel-wide image carries no shape
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")  # JPEG includes MPO, which some phones write
_FORMAT_NAMES = "PNG, JPEG, WebP, BMP or GIF"
PNG_DATA_URL = "data:image/png;base64,"  # what a browser canvas's toDataURL("image/png") starts with

# Pillow's bomb limit is a module global; this lock makes our temporary change of it (and of the
# warnings filter) one at a time, and `finally` always puts the old values back.
_PILLOW_LIMIT_LOCK = threading.Lock()


class ImageError(ValueError):
    """A user's file cannot be used as an image; the message is one line naming the file."""


@contextmanager
def _pixel_limit(max_pixels: int) -> Iterator[None]:
    """Within the block, Pillow refuses images over `max_pixels` (its warning becomes an error)."""
    with _PILLOW_LIMIT_LOCK:
        old_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = old_limit


def _check_size(size: tuple[int, int], name: str) -> None:
    """Raise ImageError when an image of `size` (width, height) is too large or too small."""
    width, height = size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{name}: too large ({width}x{height} pixels, the limit is {MAX_PIXELS:,} pixels)"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"{name}: too small ({width}x{height} pixels, each side must be at least {MIN_SIDE})"
        )


def _exif_upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag; a broken EXIF block leaves the image as it is."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # orientation is best effort; the pixels themselves are fine
        return img


def _to_rgba(img: Image.Image) -> np.ndarray:
    """Convert a loaded Pillow image of any mode to an RGBA uint8 array (H, W, 4)."""
    if img.mode.startswith("I"):
        # 16-bit greyscale ("I;16", "I;16B", or "I" from older decoders): 0..65535 -> 0..255.
        # Pillow's own convert("L") clips instead of scaling, which turns most of it white.
        grey16 = np.asarray(img, dtype=np.float64)
        grey8 = np.clip(np.rint(grey16 / 257.0), 0, 255).astype(np.uint8)
        alpha = np.full_like(grey8, 255)
        return np.stack([grey8, grey8, grey8, alpha], axis=-1)
    return np.asarray(img.convert("RGBA"), dtype=np.uint8).copy()


def decode_image(data: bytes, name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an uploaded file into an RGBA uint8 array (H, W, 4), or raise ImageError; with `size` (width,
    height), any other size is refused as soon as the header is read."""
    if not data:
        raise ImageError(f"{name}: empty file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(
            f"{name}: file too large ({len(data) / 2**20:.1f} MiB, "
            f"the limit is {MAX_UPLOAD_BYTES // 2**20} MiB)"
        )
    try:
        with _pixel_limit(MAX_PIXELS):  # Pillow checks the size it read from the header in open()
            img = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
        _check_size(img.size, name)  # before any pixel is decoded
        if size is not None and img.size != tuple(size):
            raise ImageError(f"{name}: {img.size[0]}x{img.size[1]} pixels, expected {size[0]}x{size[1]}")
        img.load()  # first frame only; raises on truncated or corrupt data
        _check_size(img.size, name)  # some decoders only know the true size now
        return _to_rgba(_exif_upright(img))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a supported image (expected {_FORMAT_NAMES})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{name}: too large (over {MAX_PIXELS:,} pixels, possibly a decompression bomb)"
        ) from None
    except MemoryError:
        raise ImageError(f"{name}: too large to decode in memory") from None
    except Exception as exc:  # any other decoder failure is the file's fault, never a crash
        detail = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ImageError(f"{name}: damaged or truncated image ({detail})") from None


def decode_data_url(url: str, name: str, side: int) -> np.ndarray:
    """Decode a canvas's PNG data URL of a `side`-pixel square into RGBA uint8 (side, side, 4), or raise
    ImageError; its length is checked before anything is decoded."""
    if not isinstance(url, str) or not url.startswith(PNG_DATA_URL):
        raise ImageError(f"{name}: not a PNG data URL")
    encoded = url[len(PNG_DATA_URL):]
    # a PNG of side x side RGBA pixels is at most about 1.01x their raw bytes (stored deflate blocks): twice that,
    # plus room for metadata, is generous and still bounded by the picture's size
    max_bytes = min(MAX_UPLOAD_BYTES, 2 * side * side * 4 + 65_536)
    if len(encoded) > (max_bytes + 2) // 3 * 4:
        raise ImageError(f"{name}: too large for a {side}x{side} picture (over {max_bytes:,} bytes)")
    try:
        data = base64.b64decode(encoded, validate=True)
    except ValueError:  # binascii.Error is one
        raise ImageError(f"{name}: not valid base64") from None
    return decode_image(data, name, size=(side, side))


def decode_many(files: list[tuple[str, bytes]]) -> list[tuple[str, np.ndarray | None, str | None]]:
    """Decode each (name, bytes); returns (name, image, None) or (name, None, error) per file."""
    results: list[tuple[str, np.ndarray | None, str | None]] = []
    for name, data in files:
        try:
            results.append((name, decode_image(data, name), None))
        except ImageError as exc:
            results.append((name, None, str(exc)))
    return results
