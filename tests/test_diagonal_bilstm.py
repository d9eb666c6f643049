"""Diagonal BiLSTM: skew/unskew, per-pixel references for both directions, paper configurations."""

from __future__ import annotations

import pytest
import torch

from pixelrnn_utils.diagonal_bilstm import DiagonalBiLSTM, DiagonalLSTM, skew, unskew
from pixelrnn_utils.model import build_model

try:
    from fast_paths import assert_same, fast_and_readable
    from perturb import single_thread
except ImportError:  # tests/ imported as a package
    from tests.fast_paths import assert_same, fast_and_readable
    from tests.perturb import single_thread

assert single_thread  # an autouse fixture: importing it applies it to this module


@pytest.mark.parametrize(
    "shape",
    [
        (2, 3, 4, 4),
        (1, 2, 3, 7),
        (2, 1, 1, 5),  # H = 1
        (1, 2, 1, 1),
        (3, 2, 5, 5),
        (1, 1, 3, 1),  # W = 1, taller than wide
        (2, 3, 6, 4),
    ],
    ids=str,
)
def test_unskew_inverts_skew(shape):
    torch.manual_seed(0)
    x = torch.randn(shape)
    B, C, H, W = shape
    s = skew(x)
    assert s.shape[:3] == (B, C, H)
    assert s.shape[3] == W + H - 1  # 2W - 1 for a square image
    assert torch.equal(unskew(s), x)
    assert s.abs().sum() == pytest.approx(x.abs().sum())  # nothing lost, nothing added


def test_skew_shifts_row_r_by_r():
    x = torch.arange(1, 13, dtype=torch.float).view(1, 1, 3, 4)  # rows 1..4, 5..8, 9..12
    expected = torch.tensor(
        [
            [1, 2, 3, 4, 0, 0],
            [0, 5, 6, 7, 8, 0],
            [0, 0, 9, 10, 11, 12],
        ],
        dtype=torch.float,
    )
    assert torch.equal(skew(x)[0, 0], expected)
    # column t of the skewed map is the anti-diagonal i + j = t of the image
    for t in range(6):
        diagonal = {x[0, 0, i, t - i].item() for i in range(3) if 0 <= t - i < 4}
        assert set(skew(x)[0, 0, :, t].tolist()) - {0.0} == diagonal


def test_skew_tall_image():
    x = torch.arange(1, 7, dtype=torch.float).view(1, 1, 3, 2)
    expected = torch.tensor([[1, 2, 0, 0], [0, 3, 4, 0], [0, 0, 5, 6]], dtype=torch.float)
    assert torch.equal(skew(x)[0, 0], expected)


def test_skew_keeps_batch_and_channels_apart():
    x = torch.randn(2, 3, 3, 3)
    s = skew(x)
    for b in range(2):
        for c in range(3):
            assert torch.equal(s[b, c], skew(x[b : b + 1, c : c + 1])[0, 0])


def sigmoid(v: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-v))


def reference_diagonal(
    lstm: DiagonalLSTM, x: torch.Tensor, extra: torch.Tensor | None = None, reverse: bool = False
) -> torch.Tensor:
    """Per-pixel recursion in image coordinates, no skewing.

    Left to right: h(i, j) = LSTM(input-to-state at (i, j) + K0 h(i - 1, j) + K1 h(i, j - 1)) with the
    cell state carried from (i, j - 1). K0, K1 are the two taps of the 2x1 state-to-state kernel: on
    the skewed map tap 0 meets row r - 1 of the previous column, i.e. (i - 1, j), and tap 1 row r,
    i.e. (i, j - 1). ``reverse`` runs right to left, (i, j + 1) instead of (i, j - 1), explicitly.
    States outside the image are zero, or with a learned initial state: (h0, c0) beside the first
    pixel of every row and h0 above every pixel of row 0.
    """
    B, _, H, W = x.shape
    hd = lstm.hidden
    w_is = lstm.input_to_state.masked_weight()[:, :, 0, 0]  # (4h, 2h)
    b_is = lstm.input_to_state.bias
    k0, k1 = lstm.state_to_state.weight[:, :, 0], lstm.state_to_state.weight[:, :, 1]  # (4h, h)
    b_ss = lstm.state_to_state.bias
    h = torch.zeros(B, hd, H, W, dtype=x.dtype)
    c = torch.zeros(B, hd, H, W, dtype=x.dtype)
    zero = torch.zeros(B, hd, dtype=x.dtype)
    h0 = zero if lstm.h0 is None else lstm.h0.expand(B, hd)
    c0 = zero if lstm.c0 is None else lstm.c0.expand(B, hd)
    columns = range(W - 1, -1, -1) if reverse else range(W)
    for i in range(H):
        for j in columns:
            up_h = h[:, :, i - 1, j] if i > 0 else h0
            side = j + 1 if reverse else j - 1  # the horizontal neighbour already computed
            inside = 0 <= side < W
            side_h = h[:, :, i, side] if inside else h0
            side_c = c[:, :, i, side] if inside else c0
            gates = x[:, :, i, j] @ w_is.T + b_is + up_h @ k0.T + side_h @ k1.T + b_ss
            if extra is not None:
                gates = gates + extra[:, :, i, j]
            o, f, ig, g = gates.split(hd, dim=1)
            c[:, :, i, j] = sigmoid(f) * side_c + sigmoid(ig) * torch.tanh(g)
            h[:, :, i, j] = sigmoid(o) * torch.tanh(c[:, :, i, j])
    return h


def reference_bilstm(layer: DiagonalBiLSTM, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Left map + right map (right to left, with the unmasked image term) shifted down one row."""
    left = reference_diagonal(layer.left, x)
    w_img = layer.right_image.weight[:, :, 0, 0]  # (4h, C), unmasked
    extra = torch.einsum("oc,bchw->bohw", w_img, image) + layer.right_image.bias[:, None, None]
    right = reference_diagonal(layer.right, x, extra, reverse=True)
    shifted = torch.zeros_like(right)
    shifted[:, :, 1:] = right[:, :, :-1]  # (i, j) receives the right state of (i - 1, j)
    if layer.right.h0 is not None:  # row 0: the right direction's state above row 0
        shifted[:, :, 0] = layer.right.h0[None, :, None]
    w_out = layer.output.masked_weight()[:, :, 0, 0]
    total = left + shifted
    return x + torch.einsum("oc,bchw->bohw", w_out, total) + layer.output.bias[:, None, None]


def _livelier(module: torch.nn.Module) -> None:
    """Default init keeps the recurrence weak; larger weights make a wrong tap visible.

    Learned initial states (zero at first) get non-zero values, so that a wrong one shows.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.Conv1d):
                m.weight.mul_(3)
                m.bias.uniform_(-1, 1)
        for name, p in module.named_parameters():
            if name.endswith(("h0", "c0")):
                p.uniform_(-1, 1)


@pytest.mark.parametrize(
    "shape",
    [
        (2, 12, 4, 5),
        (1, 12, 5, 5),
        (2, 12, 1, 4),
        (1, 12, 2, 6),
        (1, 12, 3, 1),
        (1, 12, 5, 3),
    ],
    ids=str,
)
@pytest.mark.parametrize("learned", [False, True], ids=["zero-state", "learned-state"])
def test_diagonal_lstm_equals_per_pixel_reference(shape, learned):
    torch.manual_seed(0)
    lstm = DiagonalLSTM(12, 6, learned_initial_state=learned).double()
    _livelier(lstm)
    x = torch.randn(shape, dtype=torch.float64)
    with torch.no_grad():
        fast = lstm(x)
        slow = reference_diagonal(lstm, x)
    assert fast.shape == (shape[0], 6, *shape[2:])
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


def test_diagonal_lstm_taps_are_up_and_left():
    """Swapping the two taps must break the match: the reference is not vacuous."""
    torch.manual_seed(0)
    lstm = DiagonalLSTM(12, 6).double()
    _livelier(lstm)
    x = torch.randn(1, 12, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        fast = lstm(x)
        lstm.state_to_state.weight.copy_(lstm.state_to_state.weight.flip(-1))
        swapped = reference_diagonal(lstm, x)
    assert (fast - swapped).abs().max() > 1e-3


@pytest.mark.parametrize("learned", [False, True], ids=["zero-state", "learned-state"])
@pytest.mark.parametrize("channels, groups", [(12, 3), (8, 1)])
def test_diagonal_bilstm_equals_reference(channels, groups, learned):
    torch.manual_seed(0)
    layer = DiagonalBiLSTM(channels, channels // 2, groups, learned_initial_state=learned).double()
    _livelier(layer)
    x = torch.randn(2, channels, 4, 5, dtype=torch.float64)
    image = torch.rand(2, groups, 4, 5, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        fast = layer(x, image)
        slow = reference_bilstm(layer, x, image)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
    # the right map's first row after the shift: zero (row 0 only gets the left direction), or
    # the right direction's learned state above row 0
    with torch.no_grad():
        top = layer.right_map(x, image)[:, :, 0]
        expected = 0 if not learned else layer.right.h0[None, :, None]
        assert torch.equal(top, torch.zeros_like(top) + expected)
        assert learned == bool(top.abs().max() > 0)


def test_learned_initial_state_starts_at_zero_and_matters():
    """h0 = c0 = 0 (their initial value) is the default layer; other values change the output."""
    torch.manual_seed(0)
    layer = DiagonalBiLSTM(12, 6, learned_initial_state=True).double()
    default = DiagonalBiLSTM(12, 6).double()
    weights = layer.state_dict()
    names = [k for k in weights if k.endswith(("h0", "c0"))]
    assert sorted(names) == ["left.c0", "left.h0", "right.c0", "right.h0"]
    default.load_state_dict({k: v for k, v in weights.items() if k not in names})
    x = torch.randn(2, 12, 4, 5, dtype=torch.float64)
    image = torch.rand(2, 3, 4, 5, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(layer(x, image), default(x, image))
        for name in names:  # each of the four vectors reaches the output
            before = layer(x, image)
            layer.get_parameter(name).uniform_(-1, 1)
            assert (layer(x, image) - before).abs().max() > 1e-4, name


def test_paper_mnist_configuration_runs():
    torch.manual_seed(0)
    model = build_model("diagonal_bilstm", 1, hidden=16, layers=7)
    assert len(model.layers) == 7
    x = torch.randint(0, 2, (2, 1, 8, 8)) * 255  # binarised, MNIST-like
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, 256, 1, 8, 8)
    assert torch.isfinite(logits).all()


def test_cifar_size_configuration_runs():
    torch.manual_seed(0)
    model = build_model("diagonal_bilstm", 3, hidden=16, layers=2)
    x = torch.randint(0, 256, (2, 3, 32, 32))
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, 256, 3, 32, 32)
    assert torch.isfinite(logits).all()
    big = build_model("diagonal_bilstm", 3, hidden=128, layers=7)  # paper CIFAR: 7 layers, h=128
    assert len(big.layers) == 7 and sum(p.numel() for p in big.parameters()) > 1_000_000


@pytest.mark.parametrize(
    "groups, shape, options",
    [
        (3, (2, 12, 5, 7), {}),
        (1, (2, 8, 6, 4), {}),  # taller than wide
        (3, (1, 12, 4, 4), {"learned_initial_state": True}),
        (1, (2, 8, 3, 6), {"learned_initial_state": True, "full_context": False}),
        (3, (2, 12, 1, 5), {}),  # one row
        (3, (2, 12, 5, 1), {"learned_initial_state": True}),  # one column
        (3, (2, 12, 4, 6), {"learned_initial_state": True, "condition_channels": 5}),
        (1, (2, 8, 5, 3), {"condition_channels": 2, "full_context": False}),
    ],
    ids=str,
)
def test_fast_path_equals_the_readable_layer_outputs_and_gradients(groups, shape, options):
    """The fast recurrence (both directions at once, hand-written backward) computes the same
    outputs and the same gradients, for every parameter and both inputs, as the readable
    per-direction, per-column layer run through autograd."""
    torch.manual_seed(0)
    layer = DiagonalBiLSTM(shape[1], shape[1] // 2, groups, **options).double()
    _livelier(layer)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    image = torch.rand(shape[0], groups, *shape[2:], dtype=torch.float64, requires_grad=True)
    condition = None
    if "condition_channels" in options:  # a conditioning map (paper section 3.6)
        c = options["condition_channels"]
        condition = torch.randn(shape[0], c, *shape[2:], dtype=torch.float64, requires_grad=True)
    probe = torch.randn(shape, dtype=torch.float64)  # a random direction for the gradients
    fast, readable = fast_and_readable(layer, (x, image, condition), probe)
    assert_same(fast, readable)
    gp_fast = fast[2]
    if condition is not None:
        assert fast[1][2].abs().max() > 0
    for name in gp_fast:
        # every parameter gets a gradient; with one row the right map is shifted out entirely
        unused = (name.startswith("right") and shape[2] == 1 and name != "right.h0") or (
            "right_image" in name and not options.get("full_context", True)
        )
        assert unused or gp_fast[name].abs().max() > 0, name


def test_fast_path_in_float32_and_under_autocast():
    """float32: equal to the readable layer to float tolerance. Under bf16 autocast the fast path
    runs its whole recurrence in float32: its states are the float32 states, whatever the CPU;
    only the output projection runs in bf16. Both paths' bf16 outputs stay within bf16's
    rounding of the float32 result (1 % of its scale; measured 0.13 %). Which of two bf16
    errors is the smaller depends on the CPU's kernels, so it is not compared."""
    torch.manual_seed(0)
    layer = DiagonalBiLSTM(12, 6, 3, learned_initial_state=True)
    _livelier(layer)
    x = torch.randn(2, 12, 6, 6)
    image = torch.rand(2, 3, 6, 6) * 2 - 1
    with torch.no_grad():
        fast = layer(x, image)
        states = layer.both_directions(x, image)
        layer.fast = False
        slow = layer(x, image)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            slow_bf16 = layer(x, image)
            layer.fast = True
            fast_bf16 = layer(x, image)
            states_bf16 = layer.both_directions(x, image)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    assert fast_bf16.dtype == states_bf16.dtype == torch.float32
    assert torch.equal(states_bf16, states)  # the recurrence ignores autocast
    bound = 0.01 * fast.abs().max()
    assert 0 < (fast_bf16 - fast).abs().max() < bound  # the output projection did run in bf16
    assert 0 < (slow_bf16.float() - slow).abs().max() < bound


def test_a_subclass_that_redefines_right_map_is_used():
    """Notebook 04 subclasses the layer to drop the shift: the fast path must not bypass it."""

    class NoRightMap(DiagonalBiLSTM):
        def right_map(self, x, image):
            return torch.zeros_like(self.left(x))

    torch.manual_seed(0)
    layer = DiagonalBiLSTM(12, 6).double()
    other = NoRightMap(12, 6).double()
    other.load_state_dict(layer.state_dict())
    x = torch.randn(1, 12, 4, 5, dtype=torch.float64)
    image = torch.rand(1, 3, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        expected = other.output(other.left(x)) + x
        torch.testing.assert_close(other(x, image), expected)
        assert not torch.allclose(layer(x, image), expected)
