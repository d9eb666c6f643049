"""The Diagonal BiLSTM layer (paper §3.2).

The Row LSTM sees a triangle above each pixel and misses the rest of the context. The Diagonal
BiLSTM scans the image along **diagonals** in two directions so that every pixel sees the whole
past. The trick that makes a diagonal scan fast is the **skew**: row r is shifted right by r, so
the diagonals of the image become the columns of an H x (W + H - 1) map (H x (2W - 1) when
square). A diagonal LSTM then walks
that map column by column, left to right:

* **input-to-state**: a masked 1x1 convolution (mask B, colour groups), whole map in one call;
* **state-to-state**: a 2 x 1 convolution over the previous column: in the original image the
  state at (i, j) sees the states at (i, j - 1) (left) and (i - 1, j) (above);
* W + H - 1 sequential steps (2W - 1 for a square image), each batched over the whole column;
  states outside the image are 0.

**Initial state.** By default the states that enter the image from outside it are zero. With
``learned_initial_state=True`` (paper §5.2: "the initial recurrent state is learned") each
direction has two learned vectors ``h0`` and ``c0`` (``hidden`` features, zero at first): the
state (h0, c0) enters every row's first pixel from the left, (i, -1), and h0 is the state above
every pixel of row 0, (-1, j) (the cell state comes from the left only, so above row 0 only h0
is needed). On the skewed map that is: the state before column 0 of every row is h0/c0, and the
row above row 0 is h0. They are constants, so they are causal; states outside the image keep
them (left of it) or zero (right of it, where they never reach the image again).

The **right-to-left** direction is the same layer run on the mirrored image. On its own it would
let (i, j) see (i, j + 1), a pixel of the future, so its output map is **shifted down by one
row** before it is added to the left map: (i, j) then receives the right map of (i - 1, j), which
has seen only earlier rows. Left map (upper-left quadrant and the current row's left part) plus
shifted right map (everything in earlier rows to the right) = the full context.

One boundary needs care. The 7x7 mask-A stem at (i, j) covers only columns j - 3 .. j + 3 of
the row above, and no position of row i - 1 may see its own blue value. So the blue value of the
last pixel of row i - 1 (for grey images: that whole pixel) would enter the network only at
(i, W - 4), too late for (i, 0 .. W - 5). Because the right map is shifted down, its input may see
*all* of row r: an unmasked 1x1 convolution of the image is added to the right direction's
input-to-state, which gives every output the full context, sub-pixel by sub-pixel (the tests
check it). This addition is the course's, not the paper's: ``full_context=False`` builds the paper's
layer without it. A residual connection (masked 1x1 projection h -> 2h, added to the input) follows
as in the Row LSTM (``residual=False`` switches it off).

**Conditioning** (paper §3.6; ``condition_channels=c``): the layer's own 1x1 unmasked convolution
``condition_bias`` maps a c x H x W conditioning map to 8h x H x W: 4h added to each direction's
input-to-state map (the ``extra`` of :class:`DiagonalLSTM`), before the skew.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conditioning import condition_bias_conv
from .masks import MaskedConv2d
from .row_lstm import initial_state_parameters, initial_states, lstm_update, state_dtype

__all__ = ["skew", "unskew", "DiagonalLSTM", "DiagonalBiLSTM"]


def _shift_index(rows: int, width: int, sign: int, device: torch.device) -> torch.Tensor:
    r = torch.arange(rows, device=device)[:, None]
    t = torch.arange(width, device=device)[None, :]
    return t + sign * r


def skew(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, C, H, W + H - 1)``: row r shifted right by r, zeros elsewhere.

    For a square image the skewed map is H x (2W - 1).
    """
    B, C, H, W = x.shape
    S = W + H - 1
    idx = _shift_index(H, S, -1, x.device)  # source column t - r
    valid = (idx >= 0) & (idx < W)
    padded = F.pad(x, (0, 1))  # column W is a zero column
    idx = torch.where(valid, idx, torch.full_like(idx, W))
    return padded.gather(3, idx.expand(B, C, H, S))


def unskew(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`skew`: ``(B, C, H, W + H - 1) -> (B, C, H, W)``."""
    B, C, H, S = y.shape
    W = S - H + 1
    idx = _shift_index(H, W, +1, y.device)  # source column j + r
    return y.gather(3, idx.expand(B, C, H, W))


class DiagonalLSTM(nn.Module):
    """One direction (left to right) of the Diagonal BiLSTM: ``(B, 2h, H, W) -> (B, h, H, W)``."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        colour_groups: int = 3,
        learned_initial_state: bool = False,
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.input_to_state = MaskedConv2d(
            channels, 4 * hidden, 1, "B", colour_groups, out_blocks=4
        )
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel_size=2)
        # registered last, so that a layer with and without them shares every other initial weight
        self.h0, self.c0 = initial_state_parameters(hidden, learned_initial_state)

    def initial_state(
        self, batch: int, n: int, dtype: torch.dtype, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """States ``h, c`` ``(B, h, n)`` entering from outside: zero, or ``h0``, ``c0`` everywhere."""
        return initial_states(self.h0, self.c0, (batch, self.hidden, n), dtype, device)

    def column_step(
        self,
        is_col: torch.Tensor,
        h_prev: torch.Tensor,
        c_prev: torch.Tensor,
        h_top: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One column of the skewed map; ``h_prev`` is ``(B, h, H)``, row r sees rows r-1 and r.

        ``h_top`` ``(B, h, 1)`` is the state above row 0 (zero if ``None``).
        """
        above = F.pad(h_prev, (1, 0)) if h_top is None else torch.cat([h_top, h_prev], dim=2)
        return lstm_update(is_col + self.state_to_state(above), c_prev)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states ``(B, h, H, W)``; ``extra`` ``(B, 4h, H, W)`` is added to input-to-state."""
        B, _, H, W = x.shape
        x_is = self.input_to_state(x)
        if extra is not None:
            x_is = x_is + extra
        x_is = skew(x_is)  # (B, 4h, H, W + H - 1)
        S = x_is.shape[3]
        inside = skew(x_is.new_ones(1, 1, H, W))[0, 0]  # 1 on the image, 0 outside
        h, c = self.initial_state(B, H, state_dtype(x_is), x.device)  # before column 0
        h_top, before = None, None
        if self.h0 is not None:  # learned: h0/c0 left of the image (t < r), h0 above row 0
            h_top = h[:, :, :1]
            before = torch.arange(S, device=x.device) < torch.arange(H, device=x.device)[:, None]
            h_left, c_left = h, c
        cols = []
        # unbind, not x_is[..., t]: its backward is one stack instead of a full-size map per column
        for t, (is_col, in_image) in enumerate(zip(x_is.unbind(3), inside.unbind(1), strict=True)):
            h, c = self.column_step(is_col, h, c, h_top)
            h, c = h * in_image, c * in_image  # states outside the image stay zero
            if before is not None:  # ... or, left of the image, the learned initial state
                left_of_image = before[:, t].to(h.dtype)
                h, c = h + h_left * left_of_image, c + c_left * left_of_image
            cols.append(h)
        return unskew(torch.stack(cols, dim=3))


class DiagonalBiLSTM(nn.Module):
    """Diagonal BiLSTM with residual connection: ``(B, 2h, H, W) -> (B, 2h, H, W)``."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        colour_groups: int = 3,
        residual: bool = True,
        full_context: bool = True,
        learned_initial_state: bool = False,
        condition_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.left = DiagonalLSTM(channels, hidden, colour_groups, learned_initial_state)
        self.right = DiagonalLSTM(channels, hidden, colour_groups, learned_initial_state)
        # the image itself, unmasked, for the right map (see the module docstring); this course's
        # addition to the paper's layer, switched off by full_context=False to measure what it does
        self.right_image = nn.Conv2d(colour_groups, 4 * hidden, 1) if full_context else None
        self.output = MaskedConv2d(hidden, channels, 1, "B", colour_groups)
        self.condition_bias = condition_bias_conv(condition_channels, 8 * hidden)

    def right_map(
        self, x: torch.Tensor, image: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The right-to-left direction, already shifted down by one row.

        Row 0 receives the right direction's state above row 0: zero, or its learned ``h0``.
        ``bias`` ``(B, 4h, H, W)`` (the conditioning's share) is added to its input-to-state.
        """
        extra = None
        if self.right_image is not None:  # reads the image: in float32, like the model's stem
            with torch.autocast(image.device.type, enabled=False):
                extra = self.right_image(image).flip(3)
        if bias is not None:
            extra = bias.flip(3) if extra is None else extra + bias.flip(3)
        right = self.right(x.flip(3), extra).flip(3)
        if self.right.h0 is None:
            return F.pad(right, (0, 0, 1, 0))[:, :, :-1]
        B, _, _, W = right.shape
        top = self.right.h0.to(right.dtype)[None, :, None, None].expand(B, -1, 1, W)
        return torch.cat([top, right[:, :, :-1]], dim=2)

    def forward(
        self, x: torch.Tensor, image: torch.Tensor, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x`` ``(B, 2h, H, W)`` features, ``image`` ``(B, C, H, W)`` the scaled input image,
        ``condition`` ``(B, c, H, W)`` the conditioning map (or None)."""
        left_bias = right_bias = None
        if condition is not None:
            left_bias, right_bias = self.condition_bias(condition).chunk(2, dim=1)
        out = self.output(self.left(x, left_bias) + self.right_map(x, image, right_bias))
        return x + out if self.residual else out
