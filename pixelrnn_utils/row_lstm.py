"""The Row LSTM layer (paper §3.1).

The layer processes the image one **row** at a time, top to bottom. For every row it computes the
four LSTM gates of all its pixels at once:

    [o, f, i, g] = sigma(K_ss (*) h_{row-1} + K_is (*) x_row)
    c_row = f * c_{row-1} + i * g
    h_row = o * tanh(c_row)

* **input-to-state** ``K_is``: a masked 1 x k convolution (mask B, colour groups) along the row.
  It does not depend on the recurrence, so it is computed for the whole map in one call.
* **state-to-state** ``K_ss``: an unmasked 1-D convolution of width k over the previous row's
  hidden state. The previous row is entirely in the past, so it needs no mask.
* gates o, f, i use a sigmoid, g a tanh. Every gate keeps the colour-group layout of the state, so
  the R part of the state never sees G or B of the current pixel.
* **residual** (paper §3.3): the h-feature output is projected back to 2h features by a masked 1x1
  convolution and added to the layer's 2h-feature input (``residual=False``: not added, for the
  paper's Table 2 ablation).

**Conditioning** (paper §3.6; ``condition_channels=c``): the layer's own 1x1 unmasked convolution
``condition_bias`` maps a c x H x W conditioning map (a class, or an upsampled small image) to
4h x H x W, added to the input-to-state map. Unconditioned layers have no such convolution.

The initial state (row -1) is zero for both h and c, or, with ``learned_initial_state=True``
(paper §5.2: "the initial recurrent state is learned"), two learned vectors ``h0`` and ``c0`` of
``hidden`` features, the same for every column of row -1. They are constants, so the layer stays
causal; they start at zero (the layer then computes what the default layer computes) and are
trained like every other weight. The state-to-state convolution still pads the row with zeros at
its two ends, as on every other row. There are H sequential steps, each a batched
operation over the whole row: no Python loop over pixels. With k = 3 each state sees three pixels
of the row above, which gives the Row LSTM its triangular receptive field.
"""

from __future__ import annotations

import torch
from torch import nn

from .conditioning import condition_bias_conv
from .masks import MaskedConv2d

__all__ = ["RowLSTM", "initial_state_parameters", "initial_states", "lstm_update", "state_dtype"]


def state_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype an LSTM state is carried in: float32, or float64 for a float64 model."""
    return torch.promote_types(t.dtype, torch.float32)


def lstm_update(gates: torch.Tensor, c_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM update from pre-activation gates ``[o, f, i, g]`` stacked on dim 1.

    Computed in float32 whatever the gates' dtype: under mixed precision the convolutions run in
    bfloat16/float16, but the state ``c`` (and so ``h``) is carried through every row in float32.
    """
    o, f, i, g = gates.to(state_dtype(gates)).chunk(4, dim=1)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def initial_state_parameters(
    hidden: int, learned: bool
) -> tuple[nn.Parameter | None, nn.Parameter | None]:
    """The learned initial states ``(h0, c0)``, each ``(hidden,)`` and zero at first; ``None`` if not learned."""
    if not learned:
        return None, None
    return nn.Parameter(torch.zeros(hidden)), nn.Parameter(torch.zeros(hidden))


def initial_states(
    h0: torch.Tensor | None,
    c0: torch.Tensor | None,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial ``h, c`` of ``shape`` ``(B, hidden, n)``: zeros, or ``h0``/``c0`` along dim 1."""
    if h0 is None:
        h = torch.zeros(shape, dtype=dtype, device=device)
        return h, torch.zeros_like(h)
    return (
        h0.to(dtype)[:, None].expand(shape).contiguous(),
        c0.to(dtype)[:, None].expand(shape).contiguous(),
    )


class RowLSTM(nn.Module):
    """Row LSTM with residual connection: ``(B, 2h, H, W) -> (B, 2h, H, W)``."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        colour_groups: int = 3,
        kernel_size: int = 3,
        residual: bool = True,
        learned_initial_state: bool = False,
        condition_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.residual = residual
        self.input_to_state = MaskedConv2d(
            channels, 4 * hidden, (1, kernel_size), "B", colour_groups, out_blocks=4
        )
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)
        self.output = MaskedConv2d(hidden, channels, 1, "B", colour_groups)
        # registered last, so that a layer with and without them shares every other initial weight
        self.h0, self.c0 = initial_state_parameters(hidden, learned_initial_state)
        self.condition_bias = condition_bias_conv(condition_channels, 4 * hidden)

    def initial_state(
        self, batch: int, width: int, dtype: torch.dtype, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """States ``h, c`` ``(B, h, W)`` of row -1: zero, or the learned ``h0``, ``c0`` in every column."""
        return initial_states(self.h0, self.c0, (batch, self.hidden, width), dtype, device)

    def row_step(
        self, is_row: torch.Tensor, h_prev: torch.Tensor, c_prev: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One row: input-to-state row ``(B, 4h, W)`` and previous states ``(B, h, W)``."""
        return lstm_update(is_row + self.state_to_state(h_prev), c_prev)

    def recurrence(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states ``(B, h, H, W)`` of the whole map, row by row; ``condition``
        ``(B, c, H, W)`` is the conditioning map."""
        B, _, H, W = x.shape
        x_is = self.input_to_state(x)
        if condition is not None:
            x_is = x_is + self.condition_bias(condition)
        h, c = self.initial_state(B, W, state_dtype(x_is), x.device)
        rows = []
        for is_row in x_is.unbind(2):  # unbind, not x_is[:, :, r]: its backward is one stack
            h, c = self.row_step(is_row, h, c)
            rows.append(h)
        return torch.stack(rows, dim=2)

    def forward(
        self,
        x: torch.Tensor,
        image: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``image`` is unused: every layer takes ``(features, image, condition)`` (``model.py``)."""
        out = self.output(self.recurrence(x, condition))
        return x + out if self.residual else out
