"""core.images: real files made with Pillow, good and bad, and fuzzing of the decoder."""

from __future__ import annotations

import base64
import io
import struct
import time
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, features

from core.inference.images import (
    MAX_PIXELS,
    MAX_UPLOAD_BYTES,
    PNG_DATA_URL,
    ImageError,
    decode_data_url,
    decode_image,
    decode_many,
)
from core.inference.preprocess import STYLES, preprocess

RNG = np.random.default_rng(0)


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    """Save a Pillow image to bytes."""
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def noise_rgb(w: int = 32, h: int = 24) -> Image.Image:
    """An RGB image of random pixels (so compressed data is long enough to truncate)."""
    return Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with a correct CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int, colour_type: int = 0) -> bytes:
    """A valid-looking PNG claiming width x height, with a tiny IDAT (a cheap bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + (
        png_chunk(b"IEND", b"")
    )


def assert_refused(data: bytes, name: str, *words: str) -> str:
    """decode_image raises a one-line ImageError naming the file (and containing `words`)."""
    with pytest.raises(ImageError) as info:
        decode_image(data, name)
    message = str(info.value)
    assert message.startswith(f"{name}: ")
    assert "\n" not in message
    for word in words:
        assert word in message
    return message


# --- good files -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP", "GIF", "JPEG"])
def test_common_formats_decode_to_rgba(fmt):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    img = Image.new("RGB", (30, 20), (200, 30, 40))
    params = {"lossless": True} if fmt == "WEBP" else {}
    out = decode_image(encode(img, fmt, **params), f"x.{fmt.lower()}")
    assert out.shape == (20, 30, 4) and out.dtype == np.uint8
    assert (out[..., 3] == 255).all()
    tolerance = 8 if fmt in ("JPEG", "GIF") else 0
    assert np.abs(out[..., :3].astype(int) - (200, 30, 40)).max() <= tolerance


def test_png_pixels_exact():
    arr = RNG.integers(0, 256, (17, 13, 3), dtype=np.uint8)
    out = decode_image(encode(Image.fromarray(arr), "PNG"), "a.png")
    np.testing.assert_array_equal(out[..., :3], arr)


def test_rgba_png_keeps_alpha():
    arr = RNG.integers(0, 256, (10, 12, 4), dtype=np.uint8)
    out = decode_image(encode(Image.fromarray(arr), "PNG"), "rgba.png")
    np.testing.assert_array_equal(out, arr)


def test_la_png_keeps_alpha():
    img = Image.new("LA", (8, 6), (90, 40))
    out = decode_image(encode(img, "PNG"), "la.png")
    assert (out[..., 0] == 90).all() and (out[..., 3] == 40).all()


def test_palette_png_with_transparency():
    img = Image.new("P", (8, 8), 0)
    img.putpalette([255, 255, 255, 10, 20, 30] + [0] * (256 * 3 - 6))
    img.paste(1, (2, 2, 6, 6))  # an opaque dark square on a transparent white background
    out = decode_image(encode(img, "PNG", transparency=0), "palette.png")
    assert (out[2:6, 2:6] == (10, 20, 30, 255)).all()
    assert (out[0, :, 3] == 0).all()


def test_grey_png_with_transparent_key():
    img = Image.new("L", (6, 6), 0)
    img.paste(200, (0, 0, 3, 6))
    out = decode_image(encode(img, "PNG", transparency=0), "key.png")
    assert (out[:, :3, 3] == 255).all() and (out[:, 3:, 3] == 0).all()


def test_16bit_greyscale_png_scaled_to_8bit():
    values = np.array([[0, 257 * 100, 65535], [32768, 1000, 65000]], dtype=np.uint16)
    img = Image.fromarray(np.repeat(np.repeat(values, 3, axis=0), 3, axis=1))
    assert img.mode.startswith("I;16")
    out = decode_image(encode(img, "PNG"), "depth16.png")
    expected = np.rint(values / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(out[::3, ::3, 0], expected)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 3] == 255).all()


def test_cmyk_jpeg_converted():
    img = Image.new("CMYK", (16, 16), (0, 0, 0, 0))  # no ink: white
    img.paste((255, 0, 0, 0), (0, 0, 8, 16))  # full cyan on the left
    out = decode_image(encode(img, "JPEG", quality=95), "cmyk.jpg").astype(int)
    assert np.abs(out[:, 12:, :3] - 255).max() <= 10
    assert np.abs(out[:, :4, :3] - (0, 255, 255)).max() <= 10


def test_exif_orientation_applied():
    img = Image.new("RGB", (40, 20), (255, 255, 255))
    img.paste((0, 0, 0), (0, 0, 10, 20))  # black band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a phone held upright
    out = decode_image(encode(img, "JPEG", exif=exif, quality=95), "phone.jpg")
    assert out.shape == (40, 20, 4)
    assert out[:10, :, :3].mean() < 30 and out[-10:, :, :3].mean() > 225  # band now on top


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    out = decode_image(data, "anim.gif").astype(int)
    assert np.abs(out[..., :3] - (255, 0, 0)).max() <= 8


def test_animated_webp_uses_first_frame():
    if not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    frames = [Image.new("RGB", (10, 10), c) for c in [(0, 255, 0), (0, 0, 255)]]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    out = decode_image(data, "anim.webp").astype(int)
    assert np.abs(out[..., :3] - (0, 255, 0)).max() <= 8


def test_mpo_phone_photo_uses_first_picture():
    pictures = [Image.new("RGB", (20, 10), c) for c in [(255, 0, 0), (0, 0, 255)]]
    data = encode(pictures[0], "MPO", save_all=True, append_images=pictures[1:])
    out = decode_image(data, "camera.jpg").astype(int)
    assert np.abs(out[..., :3] - (255, 0, 0)).max() <= 8


def test_large_but_allowed_image():
    out = decode_image(encode(Image.new("L", (3000, 2000), 7), "PNG"), "big.png")
    assert out.shape == (2000, 3000, 4)


# --- bad files --------------------------------------------------------------------------------


def test_text_file_refused():
    assert_refused(b"hello, these are my notes\n" * 10, "notes.txt", "not a supported image")


def test_empty_file_refused():
    assert_refused(b"", "empty.png", "empty")


def test_oversized_upload_refused():
    assert_refused(b"\x00" * (MAX_UPLOAD_BYTES + 1), "huge.png", "too large")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_refused(fmt):
    data = encode(noise_rgb(64, 64), fmt)
    assert_refused(data[: len(data) // 2], f"cut.{fmt.lower()}")


def test_bomb_header_refused_without_decoding():
    data = png_header_only(100_000, 100_000)
    start = time.perf_counter()
    assert_refused(data, "bomb.png", "too large")
    assert time.perf_counter() - start < 0.5


def test_over_our_limit_but_under_pillows_refused():
    side = int(MAX_PIXELS**0.5) + 100  # over 40 MP, under Pillow's own default limit
    assert_refused(png_header_only(side, side), "big.png", "too large")


# --- a drawing pad's PNG data URL (app/components/sketchpad.py) ----------------------------------------------


def data_url(png: bytes) -> str:
    return PNG_DATA_URL + base64.b64encode(png).decode("ascii")


def test_a_pads_png_data_url_decodes_to_its_pixels():
    drawing = np.zeros((280, 280, 4), np.uint8)
    drawing[..., 3] = 255
    drawing[40:60, 30:250, :3] = 255  # a white bar on black, opaque as the pad paints it
    assert np.array_equal(decode_data_url(data_url(encode(Image.fromarray(drawing), "PNG")), "the drawing", 280),
                          drawing)


def test_the_largest_png_a_pad_can_send_is_within_the_bound():
    """Random RGBA pixels do not compress: the worst PNG of a 280-pixel pad still decodes."""
    noise = RNG.integers(0, 256, (280, 280, 4), dtype=np.uint8)
    assert np.array_equal(decode_data_url(data_url(encode(Image.fromarray(noise), "PNG")), "the drawing", 280), noise)


@pytest.mark.parametrize("url, words", [
    ("data:image/jpeg;base64," + base64.b64encode(encode(noise_rgb(), "JPEG")).decode(), ["not a PNG data URL"]),
    ("not a url at all", ["not a PNG data URL"]),
    (PNG_DATA_URL + "%%% not base64 %%%", ["not valid base64"]),
    (PNG_DATA_URL + "A" * ((MAX_UPLOAD_BYTES + 2) // 3 * 4 + 4), ["too large for a 280x280 picture"]),
    (PNG_DATA_URL + "A" * ((2 * 280 * 280 * 4 + 65_536) // 3 * 4 + 8), ["too large for a 280x280 picture"]),
    (data_url(encode(noise_rgb(280, 279), "PNG")), ["280x279 pixels, expected 280x280"]),
    (data_url(png_header_only(20_000, 20_000)), ["too large"]),
    (data_url(b"\x89PNG\r\n\x1a\n broken"), []),
])
def test_a_doctored_drawing_is_refused_in_one_line(url, words):
    with pytest.raises(ImageError) as info:
        decode_data_url(url, "the drawing", 280)
    message = str(info.value)
    assert message.startswith("the drawing: ") and "\n" not in message
    assert all(word in message for word in words), message


def test_a_drawing_of_another_size_is_refused_from_its_header():
    """A pad sends its own size; a bigger picture is refused from its header, before a pixel is decoded (this
    one has no pixel data to decode)."""
    with pytest.raises(ImageError, match="6000x6000 pixels, expected 280x280"):
        decode_data_url(data_url(png_header_only(6000, 6000)), "the drawing", 280)


def test_pillow_global_state_restored():
    limit = Image.MAX_IMAGE_PIXELS
    filters = list(warnings.filters)
    with pytest.raises(ImageError):
        decode_image(png_header_only(100_000, 100_000), "bomb.png")
    decode_image(encode(Image.new("L", (4, 4)), "PNG"), "ok.png")
    assert Image.MAX_IMAGE_PIXELS == limit
    assert warnings.filters == filters


@pytest.mark.parametrize("size", [(1, 1), (1, 50), (50, 1)])
def test_one_pixel_images_refused(size):
    assert_refused(encode(Image.new("L", size, 255), "PNG"), "dot.png", "too small")


def test_unsupported_formats_refused():
    # EPS would run Ghostscript; TIFF is outside the list. Neither is decoded.
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert_refused(eps, "drawing.eps", "not a supported image")
    assert_refused(encode(Image.new("L", (8, 8)), "TIFF"), "scan.tiff", "not a supported image")


def test_decode_many_keeps_going():
    good = encode(Image.new("RGB", (5, 5), (1, 2, 3)), "PNG")
    results = decode_many([("a.png", good), ("notes.txt", b"text"), ("b.png", good)])
    assert [name for name, _, _ in results] == ["a.png", "notes.txt", "b.png"]
    (_, a, a_err), (_, bad, bad_err), (_, b, b_err) = results
    assert a is not None and b is not None and a_err is None and b_err is None
    assert bad is None and bad_err is not None and bad_err.startswith("notes.txt: ")


# --- fuzzing ----------------------------------------------------------------------------------

SEEDS = {
    "png": encode(noise_rgb(), "PNG"),
    "rgba.png": encode(Image.fromarray(RNG.integers(0, 256, (12, 9, 4), dtype=np.uint8)), "PNG"),
    "16bit.png": encode(Image.fromarray(RNG.integers(0, 65536, (9, 9), dtype=np.uint16)), "PNG"),
    "jpg": encode(noise_rgb(), "JPEG"),
    "progressive.jpg": encode(noise_rgb(), "JPEG", progressive=True),
    "gif": encode(noise_rgb().convert("P"), "GIF"),
    "bmp": encode(noise_rgb(8, 8), "BMP"),
}
if features.check("webp"):
    SEEDS["webp"] = encode(noise_rgb(), "WEBP")

# No wall-clock deadline: on a busy shared machine a slow example is not a failure (the decoder's own size
# limits bound the work; the 10 MB and pixel caps are tested above).
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decodes_or_refuses(data: bytes, name: str) -> None:
    """The only acceptable outcomes: ImageError naming the file in one line, or an RGBA uint8 array that
    preprocessing turns into a valid model input (float32, 1x28x28, finite, in [0, 1]) in every style."""
    try:
        out = decode_image(data, name)
    except ImageError as exc:
        assert str(exc).startswith(f"{name}: ") and "\n" not in str(exc)
        return
    assert out.ndim == 3 and out.shape[2] == 4 and out.dtype == np.uint8
    for style in STYLES:
        x = preprocess(out, style).tensor_input
        assert x.shape == (1, 28, 28) and x.dtype == np.float32, (style, x.shape, x.dtype)
        assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1, style


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_every_fuzz_seed_decodes_and_preprocesses_to_a_model_input(kind):
    """The unmutated seeds take the accepting branch below, so the fuzzers reach preprocessing."""
    image = decode_image(SEEDS[kind], f"seed.{kind}")
    for style in STYLES:
        assert preprocess(image, style).tensor_input.shape == (1, 28, 28)


@FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes(data):
    decodes_or_refuses(data, "random.bin")


@FUZZ
@given(
    st.sampled_from(sorted(SEEDS)),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_fuzz_mutated_real_files(kind, flips, cut):
    data = bytearray(SEEDS[kind])
    for position, value in flips:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    decodes_or_refuses(bytes(data), f"mutated.{kind}")


@FUZZ
@given(st.integers(0, 70_000), st.integers(0, 70_000), st.sampled_from([0, 2, 3, 4, 6]))
def test_fuzz_png_header_sizes(width, height, colour_type):
    # Valid CRCs, so Pillow believes the header: the size checks must stop big ones before load.
    decodes_or_refuses(png_header_only(width, height, colour_type), "sized.png")
