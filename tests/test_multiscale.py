"""The Multi-Scale PixelRNN (paper §3.6): two stages, one exact likelihood, causal in its order."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pixelrnn_utils.causality import causal_violations, dependency_map
from pixelrnn_utils.conditioning import subsample, subsample_mask, upsample_nearest
from pixelrnn_utils.model import build_model
from pixelrnn_utils.multiscale import MultiScalePixelRNN, multiscale_order, sample_multiscale
from pixelrnn_utils.sampling import sample

try:
    from perturb import perturbation_map, single_thread, with_leaky_relu
except ImportError:  # tests/ imported as a package
    from tests.perturb import perturbation_map, single_thread, with_leaky_relu

assert single_thread  # an autouse fixture: importing it applies it to this module

ARCHS = ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn")


def _model(arch: str, factor: int = 2, levels: int = 2, **kw) -> MultiScalePixelRNN:
    torch.manual_seed(0)
    return build_model(arch, 1, hidden=8, layers=2, multiscale=factor, levels=levels, **kw)


def test_subsample_is_strided_and_keeps_values():
    x = torch.arange(64).view(1, 1, 8, 8)
    assert subsample(x, 4).tolist() == [[[[0, 4], [32, 36]]]]
    assert subsample_mask((8, 8), 4).sum() == 4 and subsample_mask((8, 8), 4)[4, 4]
    assert upsample_nearest(subsample(x, 4), 4)[0, 0, 7, 3] == 32


@pytest.mark.parametrize("arch", ARCHS)
def test_the_two_stages_are_one_exact_likelihood(arch):
    model = _model(arch).eval()
    x = torch.randint(0, 2, (3, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
        small_logits, big_logits = model.stage_logits(x)
    assert logits.shape == (3, 2, 1, 8, 8)
    assert torch.equal(logits[..., ::2, ::2], small_logits)  # the small stage's pixels
    keep = ~subsample_mask((8, 8), 2)
    assert torch.equal(logits[..., keep], big_logits[..., keep])  # the big stage's
    parts = model.nll_parts(x)
    per_image = F.cross_entropy(logits, x, reduction="none").flatten(1).sum(1)
    torch.testing.assert_close(parts["total"], per_image)
    torch.testing.assert_close(parts["total"], parts["small"] + parts["big"])
    assert (parts["big_on_known"] > 0).all()  # what the paper's variant spends on known pixels
    # the small stage is an unconditional model of the small image; the big one takes it
    assert model.small.conditioner is None and model.big.config["upsample"] == 2
    assert model.config["multiscale"] == 2 and "upsample" not in model.config


@pytest.mark.parametrize("arch", ARCHS)
def test_causal_in_the_multiscale_order_not_in_raster_order(arch):
    """Each logit depends only on sub-pixels before it in the order: small image first, then the
    rest. In raster order it is not causal: the big stage reads small pixels further down."""
    shape = (1, 6, 8)
    model = with_leaky_relu(_model(arch, levels=4))
    dep = dependency_map(model, shape)
    assert torch.equal(dep, perturbation_map(model, shape))
    order = multiscale_order(shape, 2)
    before = order.flatten()[None, :] < order.flatten()[:, None]  # [output, input]
    assert not (dep.reshape(48, 48) & ~before).any()
    assert causal_violations(dep)  # raster order: leaks (the small image is drawn first)
    # a big pixel next to (2, 2) reads (2, 2) itself, the small image's pixel (1, 1)
    assert dep[0, 2, 3, 0, 2, 2] and dep[0, 2, 1, 0, 2, 2]


def test_multiscale_order_puts_the_small_image_first():
    order = multiscale_order((1, 4, 4), 2)
    assert order[0, ::2, ::2].flatten().tolist() == [0, 1, 2, 3]
    assert order[0, 0, 1] == 16 + 1 and order[0, 3, 3] == 16 + 15
    assert sorted(order.flatten().tolist()) == sorted(set(order.flatten().tolist()))


@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm"])
def test_two_stage_sampling_keeps_the_small_image_and_cached_equals_naive(arch):
    model = _model(arch, levels=2)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    small, big = sample_multiscale(model, 3, (1, 8, 8), "cached", generator=g())
    assert small.shape == (3, 1, 4, 4) and big.shape == (3, 1, 8, 8)
    assert torch.equal(subsample(big, 2), small)
    naive = sample(model, 3, (1, 8, 8), "naive", generator=g())
    assert torch.equal(naive, big)
    assert torch.equal(sample(model, 3, (1, 8, 8), "cached", generator=g()), big)


def test_multiscale_refuses_what_it_cannot_do():
    model = _model("row_lstm")
    with pytest.raises(ValueError, match="cannot be subsampled by 2"):
        model(torch.zeros(1, 1, 5, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="makes its own condition"):
        model(torch.zeros(1, 1, 4, 4, dtype=torch.long), condition=torch.zeros(1))
    with pytest.raises(ValueError, match="sampled whole"):
        sample(model, 1, (1, 4, 4), condition=0)
    with pytest.raises(ValueError, match="drop classes="):
        build_model("row_lstm", 1, hidden=8, layers=1, multiscale=2, classes=3)
