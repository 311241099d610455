"""core.preprocess: each stage on hand-made arrays, the two dataset styles, and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageDraw

from core.inference.preprocess import (
    CENTRE,
    DIGIT_BOX,
    REFERENCE_STATS,
    SIDE,
    STYLE_BY_DATASET,
    STYLES,
    as_rgba,
    centre_by_mass,
    centre_in_canvas,
    centre_of_mass,
    crop_to_ink,
    despeckle,
    detect_inverted,
    fit_in_box,
    flatten_alpha,
    ink_bbox,
    otsu_threshold,
    preprocess,
    shift,
    to_grey,
)

SEVEN = [(20, 20), (80, 20), (40, 100)]  # a "7", drawn in the top-left of a 200x160 canvas
ONE = [(150, 30), (150, 130)]  # a "1" on the right
ZERO = (60, 40, 120, 140)  # an ellipse's box


def canvas(shape=(160, 200), *, line=None, ellipse=None, width=9, ink=255, paper=0):
    """A grey uint8 image with a stroke drawn on it."""
    img = Image.new("L", (shape[1], shape[0]), paper)
    draw = ImageDraw.Draw(img)
    if line is not None:
        draw.line(line, fill=ink, width=width, joint="curve")
    if ellipse is not None:
        draw.ellipse(ellipse, outline=ink, width=width)
    return np.asarray(img).copy()


def digits(image):
    """The (28, 28) model input for `image` in the digits style."""
    return preprocess(image, "digits").tensor_input[0]


def check_output(result):
    """Invariants every result obeys."""
    x = result.tensor_input
    assert x.shape == (1, SIDE, SIDE) and x.dtype == np.float32
    assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0
    assert result.is_blank == (not x.any())
    for name, stage in result.stages:
        assert isinstance(name, str) and stage.dtype == np.uint8 and stage.ndim == 2
    assert set(result.ink_stats) >= {"mean_intensity", "ink_fraction", "bbox_fill"}


# --- digits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "drawing",
    [{"line": SEVEN}, {"line": ONE}, {"ellipse": ZERO}, {"line": [(5, 5), (40, 8), (10, 45)]}],
    ids=["seven", "one", "zero", "small-corner"],
)
def test_digit_fits_20_box_and_centre_of_mass_at_14(drawing):
    result = preprocess(canvas(**drawing), "digits")
    check_output(result)
    x = result.tensor_input[0]
    top, bottom, left, right = ink_bbox(x > 0)
    height, width = bottom - top + 1, right - left + 1
    assert max(height, width) == DIGIT_BOX and min(height, width) <= DIGIT_BOX
    cy, cx = centre_of_mass(x)
    assert abs(cy - CENTRE[0]) <= 1 and abs(cx - CENTRE[1]) <= 1
    assert x.max() == pytest.approx(1.0)
    assert not result.inverted and not result.is_blank


def test_digit_keeps_aspect_ratio():
    x = digits(canvas(line=ONE, width=9))  # 100 tall, 9 wide
    top, bottom, left, right = ink_bbox(x > 0.5)
    assert bottom - top + 1 >= 19 and right - left + 1 <= 4


def test_dark_on_light_is_inverted_and_matches_light_on_dark():
    light_on_dark = preprocess(canvas(line=SEVEN), "digits")
    dark_on_light = preprocess(canvas(line=SEVEN, ink=0, paper=255), "digits")
    assert dark_on_light.inverted and not light_on_dark.inverted
    assert [name for name, _ in dark_on_light.stages][:2] == ["grey", "inverted"]
    np.testing.assert_allclose(dark_on_light.tensor_input, light_on_dark.tensor_input, atol=0.02)


def test_phone_photo_of_paper():
    rng = np.random.default_rng(1)
    clean = canvas(line=SEVEN).astype(np.float32) / 255
    paper = 175 + np.linspace(-25, 25, 200)[None, :] + rng.normal(0, 4, (160, 200))  # shading
    photo = np.clip(paper - clean * 130, 0, 255).astype(np.uint8)  # grey pencil-ish ink
    result = preprocess(np.stack([photo] * 3, axis=-1), "digits")
    assert result.inverted
    x, reference = result.tensor_input[0], digits(canvas(line=SEVEN))
    assert np.corrcoef(x.ravel(), reference.ravel())[0, 1] > 0.95
    assert (x[reference == 0] < 0.1).mean() > 0.98  # the paper is gone, not grey


@pytest.mark.parametrize("ink_rgb", [(0, 0, 0), (255, 255, 255), (30, 60, 200)])
def test_ink_on_transparent_canvas(ink_rgb):
    strokes = canvas(line=SEVEN)
    rgba = np.zeros((160, 200, 4), np.uint8)  # transparent black, as a drawing canvas gives
    rgba[..., :3] = ink_rgb
    rgba[..., 3] = strokes  # anti-aliased edges are partly transparent
    result = preprocess(rgba, "digits")
    np.testing.assert_allclose(result.tensor_input[0], digits(strokes), atol=0.02)


def test_white_ink_on_opaque_black_canvas():
    rgba = np.zeros((160, 200, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[..., :3] = canvas(line=SEVEN)[..., None]
    np.testing.assert_allclose(digits(rgba), digits(canvas(line=SEVEN)), atol=1e-6)


@pytest.mark.parametrize("drawing", [{"line": SEVEN}, {"ellipse": ZERO}], ids=["seven", "zero"])
def test_digits_style_is_idempotent(drawing):
    once = digits(canvas(**drawing))
    twice = digits(np.rint(once * 255).astype(np.uint8))
    # Up to one pixel: a symmetric shape's centre of mass can sit exactly between two pixels.
    error = min(
        np.abs(shift(twice, dy, dx) - once).max() for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    )
    assert error < 0.05


def test_stray_specks_do_not_move_the_digit():
    img = canvas(line=SEVEN)
    noisy = img.copy()
    noisy[150, 190] = noisy[5, 195] = noisy[155, 3] = 255  # dust far from the stroke
    np.testing.assert_allclose(digits(noisy), digits(img), atol=1e-6)


BLANKS = {
    "black canvas": np.zeros((280, 280), np.uint8),
    "transparent canvas": np.zeros((280, 280, 4), np.uint8),
    "transparent with colour": np.dstack([np.full((50, 50, 3), 200, np.uint8), np.zeros((50, 50), np.uint8)]),
    "white": np.full((100, 120, 3), 255, np.uint8),
    "uniform grey": np.full((64, 64), 128, np.uint8),
    "blank paper photo": np.clip(
        150 + np.random.default_rng(2).normal(0, 5, (120, 160)), 0, 255
    ).astype(np.uint8),
    "stray pixels": np.zeros((200, 200), np.uint8),
    "one pixel": np.full((1, 1), 255, np.uint8),
}
BLANKS["stray pixels"][[10, 50, 90, 130, 170], [20, 160, 80, 30, 120]] = 255


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("name", sorted(BLANKS))
def test_blank_inputs(name, style):
    result = preprocess(BLANKS[name], style)
    check_output(result)
    assert result.is_blank and not result.tensor_input.any()
    assert result.stages and result.ink_stats["ink_fraction"] == 0


# --- fashion --------------------------------------------------------------------------------


def shirt(height: int, width: int, colour=60, backdrop=250) -> np.ndarray:
    """A dark RGB rectangle (with a lighter stripe) on a light studio backdrop."""
    img = np.full((height + 80, width + 100, 3), backdrop, np.uint8)
    img[30 : 30 + height, 60 : 60 + width] = colour
    img[30 + height // 2 : 30 + height // 2 + 4, 60 : 60 + width] = colour + 100  # dimmer after inversion
    return img


@pytest.mark.parametrize("size", [(120, 60), (40, 160), (90, 90)])
def test_fashion_longest_side_is_28_and_geometrically_centred(size):
    result = preprocess(shirt(*size), "fashion")
    check_output(result)
    assert result.inverted
    x = result.tensor_input[0]
    top, bottom, left, right = ink_bbox(x > 0.05)
    height, width = bottom - top + 1, right - left + 1
    assert max(height, width) == SIDE
    assert abs(min(height, width) - round(SIDE * min(size) / max(size))) <= 1
    assert abs(top - (SIDE - 1 - bottom)) <= 1 and abs(left - (SIDE - 1 - right)) <= 1


def test_fashion_keeps_dim_parts_of_the_object():
    x = preprocess(shirt(120, 60), "fashion").tensor_input[0]
    stripe = x[13:15, 10:18]  # the lighter stripe across the middle: dimmer, but not removed
    assert 0.1 < stripe.mean() < 0.9 and x[5, 14] == pytest.approx(1.0, abs=0.05)


def test_style_by_dataset_and_unknown_style():
    from core.data.datasets import DATASETS  # imports torch; core.preprocess must not

    assert STYLE_BY_DATASET == {name: spec.style for name, spec in DATASETS.items()}
    assert set(STYLE_BY_DATASET.values()) <= set(STYLES)
    with pytest.raises(ValueError, match="style"):
        preprocess(np.zeros((28, 28), np.uint8), "mnist")


@pytest.mark.parametrize("shape", [(0, 5), (5,), (4, 4, 5), (2, 3, 4, 1)])
def test_bad_shapes_raise_value_error(shape):
    with pytest.raises(ValueError, match="shape"):
        preprocess(np.zeros(shape, np.uint8), "digits")


@pytest.mark.parametrize(
    "image",
    [
        canvas(line=SEVEN).astype(np.float32) / 255,
        canvas(line=SEVEN) > 127,
        canvas(line=SEVEN).astype(np.uint16) * 257,
        canvas(line=SEVEN)[..., None],
    ],
    ids=["float01", "bool", "uint16", "HxWx1"],
)
def test_other_dtypes_and_layouts(image):
    np.testing.assert_allclose(digits(image), digits(canvas(line=SEVEN)), atol=0.2)


def test_large_photo_is_scaled_down_first():
    big = np.asarray(Image.fromarray(canvas(line=SEVEN)).resize((3000, 2400)))
    result = preprocess(big, "digits")
    assert max(result.stages[0][1].shape) <= 1024
    assert np.corrcoef(result.tensor_input.ravel(), digits(canvas(line=SEVEN)).ravel())[0, 1] > 0.95


def real_test_images(root, dataset: str, n: int) -> np.ndarray:
    """The first n test images of a real dataset, uint8 (n, 28, 28)."""
    from core.data.datasets import raw_dir

    data = (raw_dir(dataset, root) / "t10k-images-idx3-ubyte").read_bytes()
    return np.frombuffer(data, np.uint8, count=n * SIDE * SIDE, offset=16).reshape(n, SIDE, SIDE)


def photo_of(image: np.ndarray, rng) -> np.ndarray:
    """A dataset image as a shaded, noisy photo: dark on grey paper, 7x larger, off-centre."""
    big = np.asarray(Image.fromarray(image).resize((196, 196), Image.Resampling.BILINEAR), np.float32)
    ink = np.zeros((300, 360), np.float32)
    ink[20:216, 120:316] = big
    paper = 200 + np.linspace(-20, 20, 360)[None, :] + rng.normal(0, 4, ink.shape)
    return np.clip(paper - 0.7 * ink, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("dataset", "direct", "photo"), [("mnist", 0.99, 0.9), ("fashion-mnist", 0.97, 0.85)])
def test_real_dataset_images_survive_preprocessing(real_data_root, dataset, direct, photo):
    # The datasets' own images are already in their style, so preprocessing should barely change
    # them; a photo of one (inverted, shaded, noisy, larger, off-centre) should come back close.
    style, rng = STYLE_BY_DATASET[dataset], np.random.default_rng(0)
    images = real_test_images(real_data_root, dataset, 200)

    def similarity(image, source):
        return np.corrcoef(image.ravel() / 255.0, preprocess(source, style).tensor_input.ravel())[0, 1]

    assert np.mean([similarity(im, im) for im in images]) > direct
    assert np.mean([similarity(im, photo_of(im, rng)) for im in images[:100]]) > photo


def test_reference_stats_match_the_real_test_sets(real_data_root):
    for dataset, style in STYLE_BY_DATASET.items():
        x = real_test_images(real_data_root, dataset, 10_000) / 255.0
        assert x.mean() == pytest.approx(REFERENCE_STATS[style]["mean_intensity"], abs=0.002)
        assert (x > 0.5).mean() == pytest.approx(REFERENCE_STATS[style]["ink_fraction"], abs=0.002)


# --- stage functions ------------------------------------------------------------------------


def test_as_rgba_layouts():
    assert as_rgba(np.zeros((3, 4), np.uint8)).shape == (3, 4, 4)
    grey_alpha = as_rgba(np.dstack([np.full((2, 2), 9), np.full((2, 2), 7)]).astype(np.uint8))
    assert (grey_alpha[..., :3] == 9).all() and (grey_alpha[..., 3] == 7).all()
    assert (as_rgba(np.ones((2, 2, 3), np.float32))[..., :3] == 255).all()


def test_flatten_alpha_and_grey():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[1, 1] = (0, 0, 0, 255)  # black ink on transparent: composited onto white
    rgb = flatten_alpha(rgba)
    assert rgb[0, 0].tolist() == [1.0, 1.0, 1.0] and rgb[1, 1].tolist() == [0.0, 0.0, 0.0]
    assert to_grey(np.ones((2, 2, 3), np.float32)) == pytest.approx(1.0)


def test_detect_inverted():
    assert detect_inverted(canvas(line=SEVEN, ink=0, paper=255) / 255.0)
    assert not detect_inverted(canvas(line=SEVEN) / 255.0)


def test_otsu_separates_two_levels():
    values = np.concatenate([np.full(900, 0.2), np.full(100, 0.8)])
    assert 0.2 < otsu_threshold(values) <= 0.8


def test_despeckle_drops_dots_keeps_lines():
    mask = np.zeros((20, 20), bool)
    mask[3, 3] = mask[10, 17] = True  # isolated dots
    mask[15, 2:12] = True  # 1-pixel line
    np.fill_diagonal(mask[0:8, 10:18], True)  # diagonal line
    kept = despeckle(mask)
    assert not kept[3, 3] and not kept[10, 17]
    assert kept[15, 3:11].all() and kept[2, 12]


def test_crop_fit_and_centre():
    img = np.zeros((50, 40), np.float32)
    img[10:40, 5:20] = 1.0
    cropped = crop_to_ink(img)
    assert cropped.shape == (30, 15)
    fitted = fit_in_box(cropped, 20)
    assert fitted.shape == (20, 10) and fitted.dtype == np.float32
    placed = centre_in_canvas(fit_in_box(np.ones((5, 3), np.float32), SIDE))
    assert ink_bbox(placed > 0) == (0, 27, 6, 22)  # 17 wide; the odd margin's extra pixel on the left


def test_centre_by_mass_moves_blob_to_centre_and_never_cuts_ink():
    img = np.zeros((28, 28), np.float32)
    img[2:6, 3:7] = 1.0
    cy, cx = centre_of_mass(centre_by_mass(img))
    assert (cy, cx) == (pytest.approx(14.0, abs=0.5), pytest.approx(14.0, abs=0.5))
    lopsided = np.zeros((28, 28), np.float32)
    lopsided[4:24, 4] = 1.0
    lopsided[4, 4:24] = 1.0
    lopsided[4:8, 20:24] = 5.0  # heavy corner: full centring would push ink out
    moved = centre_by_mass(lopsided)
    assert moved.sum() == pytest.approx(lopsided.sum())


def test_shift_fills_with_black():
    img = np.arange(16, dtype=np.float32).reshape(4, 4)
    out = shift(img, 1, -2)
    assert out[0].tolist() == [0, 0, 0, 0] and out[1, :2].tolist() == [2, 3]
    assert not shift(img, 5, 0).any()


# --- properties -----------------------------------------------------------------------------


@st.composite
def images(draw):
    """uint8 images of random size and layout with a few kinds of content, built from a seed."""
    h, w = draw(st.integers(1, 200)), draw(st.integers(1, 200))
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    kind = draw(st.sampled_from(["noise", "constant", "blocks", "sparse", "gradient"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (h, w) if channels is None else (h, w, channels)
    if kind == "noise":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if kind == "constant":
        return np.full(shape, rng.integers(0, 256), np.uint8)
    if kind == "gradient":
        ramp = np.linspace(0, 255, w)[None, :] * np.ones((h, 1))
        base = ramp if channels is None else np.repeat(ramp[..., None], channels, axis=2)
        return base.astype(np.uint8)
    img = np.full(shape, rng.integers(0, 256), np.uint8)
    count = {"blocks": 3, "sparse": 6}[kind]
    for _ in range(count):
        y, x = rng.integers(0, h), rng.integers(0, w)
        dy, dx = (1, 1) if kind == "sparse" else (rng.integers(1, h + 1), rng.integers(1, w + 1))
        img[y : y + dy, x : x + dx] = rng.integers(0, 256)
    return img


@settings(max_examples=300, deadline=None)
@given(images(), st.sampled_from(STYLES))
def test_property_preprocess_never_fails(image, style):
    check_output(preprocess(image, style))


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 12), st.integers(1, 12), st.sampled_from([3, 4])),
    ),
    st.sampled_from(STYLES),
)
def test_property_small_arrays_any_values(image, style):
    check_output(preprocess(image, style))
