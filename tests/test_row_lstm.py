"""Row LSTM: equal to a slow per-row, per-pixel reference; trainable; the seed and paper configs."""

from __future__ import annotations

import pytest
import torch

from pixelrnn_utils.causality import assert_causal, dependency_map, missing_dependencies
from pixelrnn_utils.model import build_model
from pixelrnn_utils.row_lstm import RowLSTM, row_recurrence

try:
    from fast_paths import assert_same, fast_and_readable
    from perturb import earlier_than, perturbation_map, single_thread
except ImportError:  # tests/ imported as a package
    from tests.fast_paths import assert_same, fast_and_readable
    from tests.perturb import earlier_than, perturbation_map, single_thread

assert single_thread  # an autouse fixture: importing it applies it to this module


def sigmoid(v: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-v))


def reference_row_lstm(layer: RowLSTM, x: torch.Tensor) -> torch.Tensor:
    """The Row LSTM written out with explicit loops over rows, pixels and kernel taps."""
    B, C2, H, W = x.shape
    h_dim = layer.hidden
    k_is = layer.input_to_state.masked_weight()[:, :, 0, :]  # (4h, 2h, k)
    b_is = layer.input_to_state.bias
    k_ss = layer.state_to_state.weight  # (4h, h, k)
    b_ss = layer.state_to_state.bias
    k = k_is.shape[-1]
    half = k // 2
    w_out = layer.output.masked_weight()[:, :, 0, 0]  # (2h, h)
    b_out = layer.output.bias

    h_prev = torch.zeros(B, h_dim, W, dtype=x.dtype)  # row -1: zero state ...
    c_prev = torch.zeros(B, h_dim, W, dtype=x.dtype)
    if layer.h0 is not None:  # ... or the learned one, the same in every column
        for j in range(W):
            h_prev[:, :, j], c_prev[:, :, j] = layer.h0, layer.c0
    out = torch.empty_like(x)
    for r in range(H):
        h_row = torch.zeros(B, h_dim, W, dtype=x.dtype)
        c_row = torch.zeros(B, h_dim, W, dtype=x.dtype)
        for j in range(W):
            gates = b_is + b_ss  # (4h,) broadcast over the batch
            for t in range(k):
                col = j + t - half
                if 0 <= col < W:  # zero padding at both ends of the row
                    gates = gates + x[:, :, r, col] @ k_is[:, :, t].T  # this row: input-to-state
                    gates = gates + h_prev[:, :, col] @ k_ss[:, :, t].T  # row above: state-to-state
            o, f, i, g = (
                gates[:, :h_dim],
                gates[:, h_dim : 2 * h_dim],
                gates[:, 2 * h_dim : 3 * h_dim],
                gates[:, 3 * h_dim :],
            )
            c = sigmoid(f) * c_prev[:, :, j] + sigmoid(i) * torch.tanh(g)
            h = sigmoid(o) * torch.tanh(c)
            h_row[:, :, j], c_row[:, :, j] = h, c
            out[:, :, r, j] = x[:, :, r, j] + h @ w_out.T + b_out  # residual, masked 1x1
        h_prev, c_prev = h_row, c_row
    return out


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "readable"])
@pytest.mark.parametrize("colour_groups, kernel_size", [(3, 3), (1, 3), (3, 5)])
def test_row_lstm_equals_slow_reference(colour_groups, kernel_size, fast, monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setattr(RowLSTM, "fast", fast)
    layer = RowLSTM(12, 6, colour_groups, kernel_size=kernel_size).double()
    with torch.no_grad():  # make the gates matter: larger state-to-state and biases than default
        layer.state_to_state.weight.mul_(3)
        layer.state_to_state.bias.uniform_(-1, 1)
    x = torch.randn(2, 12, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        fast = layer(x)
        slow = reference_row_lstm(layer, x)
    assert fast.shape == (2, 12, 4, 5)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
    assert (fast - x).abs().max() > 1e-3  # the layer does something


def test_learned_initial_state_equals_slow_reference():
    torch.manual_seed(0)
    layer = RowLSTM(12, 6, learned_initial_state=True).double()
    assert layer.h0.shape == layer.c0.shape == (6,)
    x = torch.randn(2, 12, 4, 5, dtype=torch.float64)
    with torch.no_grad():
        at_zero = layer(x)
        layer.h0.uniform_(-1, 1)
        layer.c0.uniform_(-2, 2)
        fast = layer(x)
        slow = reference_row_lstm(layer, x)
        default = RowLSTM(12, 6).double()
        weights = layer.state_dict()
        default.load_state_dict({k: v for k, v in weights.items() if k not in ("h0", "c0")})
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
    # h0 = c0 = 0 (their initial value) is the default layer; learned values change every row
    torch.testing.assert_close(at_zero, default(x), atol=0, rtol=0)
    assert all((fast - at_zero)[:, :, r].abs().max() > 1e-4 for r in range(4))


def test_row_lstm_float32_matches_reference():
    torch.manual_seed(1)
    layer = RowLSTM(12, 6)
    x = torch.randn(2, 12, 4, 5)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), reference_row_lstm(layer, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "groups, shape, options",
    [
        (3, (2, 12, 5, 7), {}),
        (1, (3, 8, 4, 6), {"kernel_size": 5, "learned_initial_state": True}),
        (3, (2, 12, 1, 5), {}),  # one row
        (3, (2, 12, 5, 1), {"learned_initial_state": True}),  # one column
        (3, (1, 12, 4, 2), {"kernel_size": 5}),  # a kernel wider than the row
        (3, (2, 12, 4, 6), {"learned_initial_state": True, "condition_channels": 5}),
        (1, (2, 8, 3, 5), {"condition_channels": 2, "residual": False}),
    ],
    ids=str,
)
def test_fast_path_equals_the_readable_layer_outputs_and_gradients(groups, shape, options):
    """The fast recurrence (one product per row, hand-written backward) computes the same outputs
    and the same gradients, for every parameter, the input and the conditioning map, as the
    readable loop over ``row_step`` run through autograd."""
    torch.manual_seed(0)
    layer = RowLSTM(shape[1], shape[1] // 2, groups, **options).double()
    with torch.no_grad():  # livelier than the default initialisation: every gate matters
        for p in layer.parameters():
            p.normal_(0, 0.5)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    condition = None
    if "condition_channels" in options:
        c = options["condition_channels"]
        condition = torch.randn(shape[0], c, *shape[2:], dtype=torch.float64, requires_grad=True)
    probe = torch.randn(shape, dtype=torch.float64)  # a random direction for the gradients
    fast, readable = fast_and_readable(layer, (x, None, condition), probe)
    assert_same(fast, readable)
    gp_fast = fast[2]
    if condition is not None:
        assert fast[1][2].abs().max() > 0
    for name in gp_fast:
        one_row_from_zero = shape[2] == 1 and "learned_initial_state" not in options
        if not (name == "state_to_state.weight" and one_row_from_zero):  # reads only zeros
            assert gp_fast[name].abs().max() > 0, name  # every parameter gets a gradient
    # the masked taps get none: mask B hides the columns right of the centre
    masked = layer.input_to_state.mask == 0
    assert masked.any() and (gp_fast["input_to_state.weight"][masked] == 0).all()


def test_fast_path_with_products_in_a_lower_precision():
    """``product_dtype``: the products in a lower precision, the state in the model's. A float64
    layer with float32 products matches the all-float64 recurrence to float32 rounding, outputs
    and every gradient: the mixed path's casts, its separate state buffer and its batched weight
    gradient are right."""
    torch.manual_seed(0)
    layer = RowLSTM(12, 6, learned_initial_state=True, condition_channels=4).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.5)
    x = torch.randn(2, 12, 5, 7, dtype=torch.float64, requires_grad=True)
    condition = torch.randn(2, 4, 5, 7, dtype=torch.float64, requires_grad=True)
    probe = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    conv = layer.input_to_state
    results = []
    for product_dtype in (None, torch.float32):
        layer.zero_grad()
        x.grad = condition.grad = None
        states = row_recurrence(
            x,
            conv.masked_weight()[:, :, 0, :2],
            layer.state_to_state.weight,
            conv.bias + layer.state_to_state.bias,
            layer.condition_bias(condition),
            layer.h0,
            layer.c0,
            product_dtype=product_dtype,
        )
        assert states.dtype == torch.float64  # the state keeps the model's dtype
        (states * probe).sum().backward()
        grads = [x.grad, condition.grad] + [
            p.grad for p in layer.parameters() if p.grad is not None
        ]
        results.append((states.detach(), [g.clone() for g in grads]))
    (exact, exact_grads), (mixed, mixed_grads) = results
    assert (mixed - exact).abs().max() > 0  # the products did run in float32
    torch.testing.assert_close(mixed, exact, atol=1e-5, rtol=0)
    assert len(exact_grads) == 10  # x, condition, h0, c0; three convolutions' weights and biases
    for a, b in zip(mixed_grads, exact_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5 * b.abs().max().item(), rtol=0)


def test_fast_path_under_autocast_runs_its_products_in_bf16():
    """Under bf16 autocast the fast path runs (no per-row state-to-state convolution), its
    products in bf16 and its state in float32, and stays as close to the readable loop (whose
    convolutions run in bf16) as two bf16 computations can: the same gradient direction."""
    torch.manual_seed(0)
    layer = RowLSTM(128, 64)
    x = torch.randn(4, 128, 8, 8, requires_grad=True)
    calls = []
    layer.state_to_state.register_forward_hook(lambda *args: calls.append(1))
    results = []
    for fast in (True, False):
        layer.fast = fast
        layer.zero_grad()
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            states = layer.recurrence(x)
        assert states.dtype == torch.float32
        (states**2).sum().backward()
        used = [p.grad.flatten() for p in layer.parameters() if p.grad is not None]  # no output
        grads = torch.cat([x.grad.flatten(), *used])
        results.append((states.detach(), grads))
    assert len(calls) == 8  # the readable loop only: one state-to-state call per row
    (fast_states, fast_grads), (readable_states, readable_grads) = results
    assert 0 < (fast_states - readable_states).abs().max() < 0.02
    assert torch.nn.functional.cosine_similarity(fast_grads, readable_grads, dim=0) > 0.999


def test_row_lstm_recurrence_really_uses_the_row_above():
    """Changing row 0 must change every later row of the state (the reference would agree anyway)."""
    torch.manual_seed(0)
    layer = RowLSTM(6, 3).double()
    x = torch.randn(1, 6, 4, 5, dtype=torch.float64)
    y = x.clone()
    y[:, :, 0, 2] += 1.0
    with torch.no_grad():
        hx, hy = layer.recurrence(x), layer.recurrence(y)
    assert torch.equal(hx[:, :, 0, :2], hy[:, :, 0, :2])  # left of the change, same row: untouched
    for r in range(1, 4):
        assert not torch.allclose(hx[:, :, r], hy[:, :, r]), r


def test_seed_configuration_shapes():
    torch.manual_seed(0)
    model = build_model("row_lstm", 3, hidden=64, layers=4)
    assert model.stem.kernel_size == (7, 7) and model.stem.mask_type == "A"
    assert len(model.layers) == 4 and all(isinstance(m, RowLSTM) for m in model.layers)
    x = torch.randint(0, 256, (2, 3, 32, 32))
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, 256, 3, 32, 32)
    assert torch.isfinite(logits).all()


def _row_lstm_params(in_channels: int, hidden: int, layers: int, k: int = 3) -> int:
    f = 2 * hidden
    stem = in_channels * f * 49 + f
    layer = (
        (f * 4 * hidden * k + 4 * hidden)
        + (hidden * 4 * hidden * k + 4 * hidden)
        + (hidden * f + f)
    )
    head = (f * f + f) + (f * 256 * in_channels + 256 * in_channels)
    return stem + layers * layer + head


def test_paper_cifar_configuration_builds():
    model = build_model("row_lstm", 3, hidden=128, layers=12)
    assert len(model.layers) == 12
    n = sum(p.numel() for p in model.parameters())
    assert n == _row_lstm_params(3, 128, 12)
    assert 5_000_000 < n < 10_000_000
    assert sum(
        p.numel() for p in build_model("row_lstm", 3, 64, 4).parameters()
    ) == _row_lstm_params(3, 64, 4)


def test_skip_connections_work_and_are_causal():
    torch.manual_seed(0)
    plain = build_model("row_lstm", 3, hidden=8, layers=2)
    torch.manual_seed(0)
    skip = build_model("row_lstm", 3, hidden=8, layers=2, skip=True)
    assert skip.config["skip"] is True
    x = torch.randint(0, 256, (2, 3, 5, 6))
    with torch.no_grad():
        a, b = plain(x), skip(x)
    assert b.shape == (2, 256, 3, 5, 6)
    assert not torch.allclose(a, b)  # same weights, different wiring
    # the head reads the sum of every layer's output, each through its own learned 1x1
    assert len(skip.skips) == 2 and plain.skips is None
    with torch.no_grad():
        image = x.double() / 127.5 - 1
        skip_d = skip.double()
        h = skip_d.stem(image)
        total = 0
        for layer, through in zip(skip_d.layers, skip_d.skips, strict=True):
            h = layer(h, image)
            total = total + through(h)
        expected = skip_d.to_logits(skip_d.head[:-1](total))
        torch.testing.assert_close(skip_d(x), expected)
        skip_d.skips[0].weight.zero_()  # the first layer's contribution is learned, not fixed
        assert not torch.allclose(skip_d(x), expected)
    shape = (3, 4, 5)
    dep = dependency_map(skip, shape)
    assert_causal(skip, shape, dep=dep)
    pert = perturbation_map(skip, shape)
    assert not (pert & ~earlier_than(*shape)).any()
    assert missing_dependencies(dep)  # still a triangle: some of the past is out of reach
