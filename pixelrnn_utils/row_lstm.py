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

The initial state (row -1) is zero for both h and c. There are H sequential steps, each a batched
operation over the whole row: no Python loop over pixels. With k = 3 each state sees three pixels
of the row above, which gives the Row LSTM its triangular receptive field.
"""

from __future__ import annotations

import torch
from torch import nn

from .masks import MaskedConv2d

__all__ = ["RowLSTM", "lstm_update", "state_dtype"]


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


class RowLSTM(nn.Module):
    """Row LSTM with residual connection: ``(B, 2h, H, W) -> (B, 2h, H, W)``."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        colour_groups: int = 3,
        kernel_size: int = 3,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.residual = residual
        self.input_to_state = MaskedConv2d(
            channels, 4 * hidden, (1, kernel_size), "B", colour_groups, out_blocks=4
        )
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel_size, padding=kernel_size // 2)
        self.output = MaskedConv2d(hidden, channels, 1, "B", colour_groups)

    def row_step(
        self, is_row: torch.Tensor, h_prev: torch.Tensor, c_prev: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One row: input-to-state row ``(B, 4h, W)`` and previous states ``(B, h, W)``."""
        return lstm_update(is_row + self.state_to_state(h_prev), c_prev)

    def recurrence(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(B, h, H, W)`` of the whole map, row by row."""
        B, _, H, W = x.shape
        x_is = self.input_to_state(x)
        h = torch.zeros(B, self.hidden, W, dtype=state_dtype(x_is), device=x.device)
        c = torch.zeros_like(h)
        rows = []
        for is_row in x_is.unbind(2):  # unbind, not x_is[:, :, r]: its backward is one stack
            h, c = self.row_step(is_row, h, c)
            rows.append(h)
        return torch.stack(rows, dim=2)

    def forward(self, x: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        """``image`` is unused: every layer takes ``(features, image)`` (see ``model.py``)."""
        out = self.output(self.recurrence(x))
        return x + out if self.residual else out
