"""Every model is autoregressive, proved two independent ways, and its context is what the paper says.

* ``pixelrnn_utils.causality.dependency_map`` (one batched autograd backward pass) and
  ``perturb.perturbation_map`` (change one input sub-pixel, see which logits move; shares no code
  with the package) must both find no leak, and must agree exactly.
* The maps are taken of a copy whose ReLUs are leaky (``perturb.with_leaky_relu``): same
  connectivity, but no unit that happens to be off for the probe image can hide a dependency (or a
  leak). The plain ReLU models are checked for leaks too.
"""

from __future__ import annotations

import functools
import re

import pytest
import torch

from pixelrnn_utils.causality import (
    assert_causal,
    causal_violations,
    colour_dependency,
    dependency_map,
    missing_dependencies,
)
from pixelrnn_utils.diagonal_bilstm import DiagonalBiLSTM
from pixelrnn_utils.model import build_model

try:
    from perturb import earlier_than, perturbation_map, single_thread, with_leaky_relu
except ImportError:  # tests/ imported as a package
    from tests.perturb import earlier_than, perturbation_map, single_thread, with_leaky_relu

assert single_thread  # an autouse fixture: importing it applies it to this module

ARCHS = ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn")
SHAPES = ((3, 5, 5), (3, 6, 9), (1, 5, 6))  # square RGB, non-square RGB, grey
HIDDEN = 8
MESSAGE = re.compile(r"output \((\d+),(\d+),([RGBL])\) sees input \((\d+),(\d+),([RGBL])\)")


def small_model(arch: str, channels: int, layers: int = 2, seed: int = 0, leaky: bool = True):
    torch.manual_seed(seed)
    model = build_model(arch, channels, hidden=HIDDEN, layers=layers)
    return with_leaky_relu(model) if leaky else model


def maps(arch: str, shape: tuple[int, int, int], layers: int = 2, leaky: bool = True):
    """(autograd map, perturbation map) of a small model; cached, each is used by several tests."""
    return _maps(arch, tuple(shape), layers, leaky)


@functools.cache
def _maps(arch: str, shape: tuple[int, int, int], layers: int, leaky: bool):
    model = small_model(arch, shape[0], layers, leaky=leaky)
    return dependency_map(model, shape), perturbation_map(model, shape)


def allowed(shape: tuple[int, int, int]) -> torch.Tensor:
    return earlier_than(*shape)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("arch", ARCHS)
def test_no_leak_two_independent_ways(arch, shape):
    for leaky in (True, False):
        dep, pert = maps(arch, shape, leaky=leaky)
        for name, m in (("autograd", dep), ("perturbation", pert)):
            leaks = (m & ~allowed(shape)).nonzero().tolist()
            assert leaks == [], f"{arch} {shape} {name}: leaks {leaks[:5]}"
            if leaky:  # every output but the very first, (0,0,R), depends on something
                assert m.any(dim=(3, 4, 5)).sum() == m[..., 0, 0, 0].numel() - 1
        assert causal_violations(dep) == []
        assert_causal(None, shape, dep=dep)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("arch", ARCHS)
def test_autograd_and_perturbation_maps_agree_exactly(arch, shape):
    dep, pert = maps(arch, shape)
    assert dep.shape == pert.shape == (*shape, *shape)
    assert dep.dtype == pert.dtype == torch.bool
    disagree = (dep != pert).nonzero().tolist()
    assert disagree == [], f"maps disagree at {disagree[:5]}"


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("arch", ARCHS)
def test_colour_order_inside_a_pixel(arch, shape):
    C, H, W = shape
    dep, pert = maps(arch, shape)
    expected = torch.ones(C, C, dtype=torch.bool).tril(-1)  # G sees R; B sees R, G; R sees nothing
    for i in range(H):
        for j in range(W):
            assert torch.equal(colour_dependency(dep, i, j), expected), (i, j)
            assert torch.equal(pert[:, i, j, :, i, j], expected), (i, j)
    if C == 3:
        assert colour_dependency(dep, 2, 2).tolist() == [
            [False, False, False],
            [True, False, False],
            [True, True, False],
        ]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("arch", ARCHS)
def test_sees_left_and_upper_neighbours(arch, shape):
    C, H, W = shape
    dep, _ = maps(arch, shape)
    for i in range(H):
        for j in range(W):
            if j > 0:
                assert dep[:, i, j, :, i, j - 1].all(), f"({i},{j}) misses its left neighbour"
            if i > 0:
                assert dep[:, i, j, :, i - 1, j].all(), f"({i},{j}) misses its upper neighbour"
            if i > 0 and j + 1 < W:
                assert dep[:, i, j, :, i - 1, j + 1].all(), f"({i},{j}) misses upper right"


def _first_mask(model, arch):
    """A masked convolution inside the first layer."""
    layer = model.layers[0]
    return {
        "pixelcnn": lambda: layer.body[3],
        "row_lstm": lambda: layer.input_to_state,
        "diagonal_bilstm": lambda: layer.left.input_to_state,
        "gated_pixelcnn": lambda: layer.horizontal,
    }[arch]()


def _check_reported_pair(message: str, dep: torch.Tensor, pert: torch.Tensor, C: int) -> None:
    found = MESSAGE.search(message)
    assert found, f"message does not name the offending pair: {message!r}"
    names = "RGB" if C == 3 else "L"
    oi, oj, oc, ii, ij, ic = found.groups()
    out = (names.index(oc), int(oi), int(oj))
    inp = (names.index(ic), int(ii), int(ij))
    assert not earlier_than(*dep.shape[:3])[(*out, *inp)], "the named pair is not a leak"
    assert dep[(*out, *inp)] and pert[(*out, *inp)], "the named dependency does not exist"


@pytest.mark.parametrize("shape", [(3, 5, 5), (1, 5, 6)], ids=str)
@pytest.mark.parametrize("arch", ARCHS)
def test_injected_stem_self_connection_is_caught(arch, shape):
    C = shape[0]
    model = small_model(arch, C)
    with torch.no_grad():
        model.stem.mask[:, :, 3, 3] = 1  # every colour at the stem's centre sees its own pixel
    dep, pert = dependency_map(model, shape), perturbation_map(model, shape)
    name = "R" if C == 3 else "L"
    with pytest.raises(
        AssertionError, match=re.escape(f"output (0,0,{name}) sees input (0,0,{name})")
    ):
        assert_causal(model, shape)
    with pytest.raises(AssertionError) as info:
        assert_causal(model, shape, dep=dep)
    _check_reported_pair(str(info.value), dep, pert, C)
    assert pert[0, 0, 0, 0, 0, 0], "the independent checker misses the self-connection"
    assert (pert & ~allowed(shape)).any()


@pytest.mark.parametrize("arch", ARCHS)
def test_injected_all_ones_layer_mask_is_caught(arch):
    shape = (3, 5, 5)
    model = small_model(arch, 3)
    with torch.no_grad():
        _first_mask(model, arch).mask.fill_(1)
    dep, pert = dependency_map(model, shape), perturbation_map(model, shape)
    assert causal_violations(dep), "dependency_map misses the leak"
    assert (pert & ~allowed(shape)).any(), "perturbation_map misses the leak"
    with pytest.raises(AssertionError) as info:
        assert_causal(model, shape, dep=dep)
    _check_reported_pair(str(info.value), dep, pert, 3)


def test_injected_future_pixel_is_caught():
    """A stem that sees the pixel to its right: the leak is spatial, not just colour."""
    model = small_model("pixelcnn", 1)
    with torch.no_grad():
        model.stem.mask[:, :, 3, 4] = 1
    shape = (1, 4, 5)
    with pytest.raises(AssertionError, match=re.escape("output (0,0,L) sees input (0,1,L)")):
        assert_causal(model, shape)
    assert perturbation_map(model, shape)[0, 0, 0, 0, 0, 1]


class _UnshiftedBiLSTM(DiagonalBiLSTM):
    """The right direction without the one-row shift (as notebook 04 builds it)."""

    def right_map(self, x, image, bias=None):
        return self.right(x.flip(3), self.right_image(image).flip(3)).flip(3)


def test_model_without_right_map_shift_leaks():
    shape = (3, 4, 5)
    model = small_model("diagonal_bilstm", 3, layers=1)
    assert_causal(model, shape)  # as built: causal
    model.layers[0].__class__ = _UnshiftedBiLSTM  # a subclass that redefines right_map is used
    with pytest.raises(AssertionError) as info:
        assert_causal(model, shape)
    dep, pert = dependency_map(model, shape), perturbation_map(model, shape)
    _check_reported_pair(str(info.value), dep, pert, 3)
    # the right direction at (i, j) sees (i, j + 1), a future pixel
    assert dep[0, 1, 1, 0, 1, 2] and pert[0, 1, 1, 0, 1, 2]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm"])
def test_learned_initial_state_is_causal(arch, shape):
    """Learned initial states (non-zero here) are constants: no leak, and the same context."""
    torch.manual_seed(0)
    model = build_model(arch, shape[0], hidden=HIDDEN, layers=2, learned_initial_state=True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("h0", "c0")):
                p.uniform_(-1, 1)
    model = with_leaky_relu(model)
    dep, pert = dependency_map(model, shape), perturbation_map(model, shape)
    assert torch.equal(dep, pert)
    assert (dep & ~allowed(shape)).nonzero().tolist() == []
    assert_causal(None, shape, dep=dep)
    # the same dependencies as the model with zero initial states
    assert torch.equal(dep, maps(arch, shape)[0])


@pytest.mark.parametrize("layers", [2, 3])
def test_pixelcnn_blind_spot(layers):
    shape = (3, 6, 9)
    C, H, W = shape
    dep, pert = maps("pixelcnn", shape, layers)
    missing = set(missing_dependencies(dep))
    # (i - 1, j + 4) is in the past of (i, j) but outside every stack of 3x3 masked convolutions
    for i in range(1, H):
        for j in range(W - 4):
            for c in range(C):
                assert not dep[c, i, j, :, i - 1, j + 4 :].any(), (i, j, c)
                assert not pert[c, i, j, :, i - 1, j + 4 :].any(), (i, j, c)
                assert ((i, j, c), (i - 1, j + 4, 0)) in missing
    assert ((5, 0, 0), (4, 4, 0)) in missing


def test_row_lstm_triangle_misses_far_upper_right():
    shape = (3, 6, 9)
    dep, _ = maps("row_lstm", shape, 2)
    missing = set(missing_dependencies(dep))
    assert ((5, 0, 0), (0, 8, 0)) in missing  # far upper right
    assert ((5, 0, 0), (4, 4, 2)) in missing  # just out of reach on the row above
    assert dep[0, 5, 0, :, 4, 3].all() and dep[0, 5, 0, :, 0, 7].all()  # the triangle's edge
    assert len(missing) > 0


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("shape", [*SHAPES, (1, 6, 6), (1, 6, 4), (3, 5, 3)], ids=str)
def test_diagonal_bilstm_has_full_context(shape, layers):
    dep, pert = maps("diagonal_bilstm", shape, layers)
    assert missing_dependencies(dep) == []
    assert torch.equal(dep, allowed(shape))  # exactly the past, no more, no less
    assert torch.equal(pert, allowed(shape))
