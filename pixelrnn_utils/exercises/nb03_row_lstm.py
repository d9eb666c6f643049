"""The exercise checks of notebook 03, the Row LSTM.

Its exercises are at the end of ``notebooks/03_row_lstm.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..row_lstm import RowLSTM, lstm_update
from .feedback import _attempted, _number, _verdict


def _check_update(fn: Callable[[torch.Tensor, torch.Tensor], Any], order: str, hint: str) -> bool:
    """``fn(gates, c_prev) -> (h, c)`` with the gates stacked on dim 1 in ``order`` (e.g.
    ``"ofig"``), against the package's ``lstm_update`` (which takes o, f, i, g)."""
    generator = torch.Generator().manual_seed(0)
    gates = torch.randn(2, 4 * 5, 7, generator=generator)
    c_prev = torch.randn(2, 5, 7, generator=generator)
    mine = fn(gates, c_prev)
    if not _attempted(mine) or not _attempted(mine[0]):
        return False
    named = dict(zip(order, gates.chunk(4, dim=1), strict=True))
    h, c = lstm_update(torch.cat([named[gate] for gate in "ofig"], dim=1), c_prev)
    ok = torch.allclose(mine[1], c, atol=1e-6) and torch.allclose(mine[0], h, atol=1e-6)
    return _verdict(ok, hint)


def check_lstm_update(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> bool:
    """``fn(gates, c_prev) -> (h, c)`` with gates [o, f, i, g] stacked on dim 1."""
    return _check_update(
        fn,
        "ofig",
        "sigmoid for o, f, i; tanh for g; c = f * c_prev + i * g; h = o * tanh(c); "
        "gates.chunk(4, dim=1) gives o, f, i, g in that order",
    )


def check_lstm_update_torch_order(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> bool:
    """``fn(gates, c_prev) -> (h, c)`` with the gates stacked on dim 1 in ``torch.nn.LSTM``'s
    order [i, f, g, o] (the package's ``lstm_update`` takes [o, f, i, g])."""
    return _check_update(
        fn,
        "ifgo",
        "gates.chunk(4, dim=1) gives i, f, g, o in torch.nn.LSTM's order; sigmoid for i, f, o, "
        "tanh for g; c = f * c_prev + i * g; h = o * tanh(c)",
    )


def check_row_lstm_steps(answer: int | None) -> bool:
    """Sequential steps of one Row LSTM layer on a 32 x 48 (H x W) image."""
    return _number(answer, 32, "one step per row: the whole row is computed at once")


def check_row_step(fn: Callable[..., Any] | None) -> bool:
    """``fn(is_row, h_prev, c_prev, weight, bias) -> (h, c)``: one Row LSTM row step, with the
    state-to-state kernel ``weight`` ``(4h, h, k)`` and ``bias`` ``(4h,)``, against
    ``RowLSTM.row_step`` on random inputs."""
    if not _attempted(fn):
        return False
    for k in (3, 5):
        hint = _row_step_mistake(fn, k)
        if hint == "":  # not attempted: said so already
            return False
        if hint is not None:
            return _verdict(False, hint)
    return _verdict(True, "")


def _row_step_mistake(fn: Callable[..., Any], k: int) -> str | None:
    """What is wrong with ``fn`` for a state-to-state kernel of width ``k`` (None: nothing)."""
    generator = torch.Generator().manual_seed(k)
    layer = RowLSTM(12, 5, kernel_size=k)  # 2h = 12 input features, h = 5
    with torch.no_grad():  # reproducible weights, and a bias large enough that forgetting it shows
        for p in layer.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=generator))
    weight, bias = layer.state_to_state.weight.detach(), layer.state_to_state.bias.detach()
    is_row = torch.randn(2, 20, 7, generator=generator)
    h_prev = torch.randn(2, 5, 7, generator=generator)
    c_prev = torch.randn(2, 5, 7, generator=generator)
    with torch.no_grad():
        try:
            mine = fn(is_row, h_prev, c_prev, weight, bias)
        except RuntimeError as e:  # shapes that do not fit: the padding, most often
            return (
                f"for a kernel of width k = {k} it raised {type(e).__name__}: {e}; pad the row "
                "with k // 2 zeros at each end (padding=weight.shape[2] // 2)"
            )
        if not _attempted(mine):
            return ""
        h, c = layer.row_step(is_row, h_prev, c_prev)
        if not isinstance(mine, tuple | list) or len(mine) != 2:
            return "return the pair (h, c)"
        mine_h, mine_c = (torch.as_tensor(t) for t in mine)
        if mine_h.shape != h.shape or mine_c.shape != c.shape:
            return (
                f"h and c should be {tuple(h.shape)} like h_prev, got {tuple(mine_h.shape)} and "
                f"{tuple(mine_c.shape)} for k = {k}: pad the row with k // 2 zeros at each end "
                "(padding=weight.shape[2] // 2) so the width stays W"
            )
        if not torch.allclose(mine_c, c, atol=1e-5):
            if torch.allclose(mine_c, lstm_update(is_row, c_prev)[1], atol=1e-5):
                hint = "the row above is missing: add conv1d(h_prev, weight, bias, padding=k // 2)"
            elif torch.allclose(
                mine_c, lstm_update(is_row + F.conv1d(h_prev, weight, padding=k // 2), c_prev)[1]
            ):
                hint = "the state-to-state bias is missing"
            else:
                hint = (
                    "gates = is_row + conv1d(h_prev, weight, bias, padding=k // 2), split in the "
                    "order o, f, i, g; c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g)"
                )
            return f"c differs (k = {k}): {hint}"
        if not torch.allclose(mine_h, h, atol=1e-5):
            return "c is right, h differs: h = sigmoid(o) * tanh(c), with the new c"
        return None


def check_triangle_width(answer: int | None) -> bool:
    """Input pixels of row i - 2 that the state at (i, j) of one Row LSTM layer with k = 5 (no
    stem) depends on, far from the borders."""
    k = 5
    return _number(
        answer,
        (k // 2) * (2 * 2 + 1) + 1,
        "on its own row the state sees input pixels j - 2 .. j (input-to-state, a masked 1x5: "
        "nothing right of j); it also sees the states j - 2 .. j + 2 of row i - 1 "
        "(state-to-state, 1x5), each of which saw the pixels up to 2 left of its own column: "
        "row i - 1 gives j - 4 .. j + 2; each row further up adds 2 pixels on each side",
        tol=0,
    )
