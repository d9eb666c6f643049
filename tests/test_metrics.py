"""Tests for pixelrnn_utils.metrics: the uniform 8.00 bits/dim baseline and unit conversions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pixelrnn_utils.metrics import (
    bits_per_dim,
    bits_per_dim_to_nats_per_image,
    nats_per_image_to_bits_per_dim,
    nats_to_bits_per_dim,
    nll,
    nll_per_subpixel,
)


def random_images(b: int = 2, c: int = 3, h: int = 4, w: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, c, h, w), generator=torch.Generator().manual_seed(seed))


def test_uniform_logits_give_eight_bits():
    x = random_images()
    logits = torch.zeros(x.shape[0], 256, *x.shape[1:])
    assert abs(float(bits_per_dim(logits, x)) - 8.0) < 1e-6
    assert abs(float(nll(logits, x)) - math.log(256)) < 1e-6


def test_confident_correct_logits_give_zero_bits():
    x = random_images()
    logits = torch.full((x.shape[0], 256, *x.shape[1:]), -1e4)
    logits.scatter_(1, x.unsqueeze(1), 1e4)
    assert float(bits_per_dim(logits, x)) < 1e-6


def test_bits_per_dim_matches_cross_entropy():
    x = random_images(seed=1)
    logits = torch.randn(x.shape[0], 256, *x.shape[1:], generator=torch.Generator().manual_seed(2))
    expected = F.cross_entropy(logits, x) / math.log(2)
    assert torch.allclose(bits_per_dim(logits, x), expected, atol=1e-6)
    assert nll_per_subpixel(logits, x).shape == x.shape
    assert torch.allclose(nll_per_subpixel(logits, x).mean(), nll(logits, x))


def test_nats_per_image_round_trip():
    dims = 3 * 32 * 32
    nats = bits_per_dim_to_nats_per_image(3.0, dims)
    assert nats == pytest.approx(3.0 * dims * math.log(2))
    assert nats_per_image_to_bits_per_dim(nats, dims) == pytest.approx(3.0)
    assert nats_to_bits_per_dim(math.log(256)) == pytest.approx(8.0)


@pytest.mark.parametrize(
    "logits_shape",
    [(2, 256, 3, 4, 6), (2, 256, 1, 4, 5), (2, 256, 12, 5)],
)
def test_shape_mismatch_raises(logits_shape):
    with pytest.raises(ValueError):
        bits_per_dim(torch.zeros(logits_shape), random_images())


@pytest.mark.parametrize("levels", [2, 4, 255])
def test_values_beyond_the_levels_are_refused(levels):
    """8-bit images scored by a model of fewer levels: a clear error, not an index error."""
    x = torch.full((2, 3, 4, 5), levels)  # one past the last level
    with pytest.raises(ValueError, match=f"predict {levels} levels"):
        bits_per_dim(torch.zeros(2, levels, 3, 4, 5), x)


@pytest.mark.parametrize("levels", [2, 4, 16])
def test_uniform_model_costs_log2_levels(levels):
    """bits/dim of a uniform L-way model is exactly log2 L (1 bit for binary images)."""
    x = torch.randint(0, levels, (2, 1, 4, 5), generator=torch.Generator().manual_seed(0))
    assert bits_per_dim(torch.zeros(2, levels, 1, 4, 5), x).item() == pytest.approx(
        math.log2(levels), abs=1e-6
    )


def test_bits_per_dim_by_row():
    from pixelrnn_utils.metrics import bits_per_dim, bits_per_dim_by_row

    torch.manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 4, 5))
    logits = torch.randn(2, 256, 3, 4, 5)
    logits[:, :, :, 2] = 0.0  # row 2 uniform: exactly 8 bits
    rows = bits_per_dim_by_row(logits, x)
    assert rows.shape == (4,)
    assert rows[2].item() == pytest.approx(8.0, abs=1e-5)
    assert rows.mean().item() == pytest.approx(bits_per_dim(logits, x).item(), abs=1e-5)
