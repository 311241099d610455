"""The robustness probe: its perturbations on one drawing and on a batch, and stability over a test set."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

from core.inference.preprocess import SIDE, centre_of_mass
from core.inference.probe import PERTURBATIONS, perturb, stability, variants
from tests.test_preprocess import SEVEN, canvas, digits


def test_variants_of_a_drawing():
    x = digits(canvas(line=SEVEN))
    out = dict(variants(x))
    assert list(out) == list(PERTURBATIONS) and len(out) == 10
    for v in out.values():
        assert v.shape == (SIDE, SIDE) and v.dtype == np.float32 and 0 <= v.min() <= v.max() <= 1
    cy, cx = centre_of_mass(x)
    assert centre_of_mass(out["shift right 3 px"])[1] == pytest.approx(cx + 3, abs=0.3)
    assert centre_of_mass(out["shift left 3 px"])[1] == pytest.approx(cx - 3, abs=0.3)
    assert centre_of_mass(out["shift up 3 px"])[0] == pytest.approx(cy - 3, abs=0.3)
    assert out["thinner strokes"].sum() < x.sum() < out["thicker strokes"].sum()
    assert out["thinner strokes"].max() == pytest.approx(x.max()) == pytest.approx(out["thicker strokes"].max())
    assert out["scale 0.8x"].sum() < x.sum() < out["scale 1.2x"].sum()
    for name in ("rotate -15°", "rotate +15°"):
        assert out[name].sum() == pytest.approx(x.sum(), rel=0.1)
        assert not np.allclose(out[name], x)
    assert variants(x[None])[0][1].shape == (SIDE, SIDE)
    assert all(not v.any() for _, v in variants(np.zeros((SIDE, SIDE))))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, (SIDE, SIDE), elements=st.floats(0, 1, width=32)))
def test_property_variants_stay_in_range(x):
    for _, v in variants(x):
        assert v.shape == (SIDE, SIDE) and v.dtype == np.float32
        assert np.isfinite(v).all() and v.min() >= 0 and v.max() <= 1


def test_a_batch_is_changed_image_by_image_as_one_drawing_is():
    """The test-set figure and the Predict page's probe see the same perturbations."""
    batch = torch.rand(5, 1, SIDE, SIDE) * (torch.rand(5, 1, SIDE, SIDE) > 0.7)
    for i, image in enumerate(batch):
        for name, single in variants(image.numpy()):
            assert np.allclose(perturb(batch, name)[i, 0].numpy(), single, atol=1e-6), name


class ColumnOfInk(nn.Module):
    """Class = which of ten 3-px-wide column bands (from column -1) holds the centre of mass of the ink."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # predict_probs reads the device off a parameter

    def forward(self, x):
        x = x - x.amin((1, 2, 3), keepdim=True)  # undo the standardisation's offset
        mass = x.sum((1, 2)).clamp_min(1e-6)
        col = (mass * torch.arange(x.shape[-1])).sum(1) / mass.sum(1)
        centres = torch.arange(10) * 3.0 + 0.5
        return -(col[:, None] - centres) ** 2


def _dots(columns: list[int]) -> torch.Tensor:
    """uint8 images [N,28,28], each a 2x2 dot at rows 13-14 and the given column (and the next)."""
    images = torch.zeros(len(columns), SIDE, SIDE, dtype=torch.uint8)
    for i, col in enumerate(columns):
        images[i, 13:15, col:col + 2] = 255
    return images


def test_stability_counts_kept_answers_and_accuracy_per_perturbation():
    columns = [6, 7, 9, 12, 13, 15, 18, 19, 21]  # dot centres 6.5 ... 21.5: classes 2, 2, 3, 4, 4, 5, 6, 6, 7
    images = _dots(columns)
    labels = torch.tensor([2, 2, 3, 4, 4, 5, 6, 6, 0])  # the last one is wrong on purpose
    result = stability(ColumnOfInk(), images, labels, 0.1, 0.3, batch_size=4)  # batches of 4, 4, 1
    assert result.accuracy == pytest.approx(8 / 9)
    # a 3-px shift sideways moves every dot by exactly one band; up and down never change its column
    assert result.kept["shift left 3 px"] == 0 and result.kept["shift right 3 px"] == 0
    assert result.kept["shift up 3 px"] == 1 and result.kept["shift down 3 px"] == 1
    assert result.accuracy_under["shift up 3 px"] == pytest.approx(8 / 9)
    assert result.accuracy_under["shift right 3 px"] == 0  # class 7 -> 8 for the mislabelled dot too
    # zooming about column 14 moves the dots far from it by more than a band's half-width
    assert 0 < result.kept["scale 1.2x"] < 1
    # symmetric strokes keep the centre of mass
    assert result.kept["thinner strokes"] == 1 and result.kept["thicker strokes"] == 1
    assert result.worst[1] == 0 and result.worst[0].startswith("shift")
    assert result.mean_kept == pytest.approx(np.mean(list(result.kept.values())))
    assert [r["perturbation"] for r in result.rows()] == list(PERTURBATIONS)


def test_stability_of_a_model_that_ignores_its_input_is_total():
    images = _dots([3, 10, 20])
    model = nn.Linear(SIDE * SIDE, 10)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.arange(10.0))  # always class 9
    result = stability(nn.Sequential(nn.Flatten(), model), images, torch.tensor([9, 1, 9]), 0.0, 1.0)
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.kept == dict.fromkeys(PERTURBATIONS, 1.0)
    assert result.accuracy_under == dict.fromkeys(PERTURBATIONS, pytest.approx(2 / 3))


def test_stability_needs_images():
    with pytest.raises(ValueError, match="at least one image"):
        stability(ColumnOfInk(), _dots([]), torch.zeros(0, dtype=torch.long), 0.0, 1.0)
