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

__all__ = ["skew", "unskew", "DiagonalLSTM", "DiagonalBiLSTM", "diagonal_recurrence"]


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
    """Diagonal BiLSTM with residual connection: ``(B, 2h, H, W) -> (B, 2h, H, W)``.

    Two ways to compute the same layer (``tests/test_diagonal_bilstm.py`` checks that outputs and
    gradients agree):

    * the **readable** way, ``left(x) + right_map(x, image)``: two :class:`DiagonalLSTM` runs, one
      after the other, through autograd. Used when ``fast = False``, and by subclasses that
      redefine ``right_map`` (notebook 04 does, to show what the shift is for);
    * the **fast** way (the default), :meth:`both_directions`: see :func:`diagonal_recurrence`.
    """

    fast: bool = True

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

    def image_term(self, image: torch.Tensor) -> torch.Tensor | None:
        """The right direction's extra input-to-state from the image (full context), or None."""
        if self.right_image is None:
            return None
        with torch.autocast(image.device.type, enabled=False):  # float32, like the model's stem
            return self.right_image(image)

    def right_extra(
        self, image: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """Everything added to the right direction's input-to-state: the image term and the
        conditioning's share ``bias`` ``(B, 4h, H, W)``, unflipped; None when there is neither."""
        extra = self.image_term(image)
        if bias is not None:
            extra = bias if extra is None else extra + bias
        return extra

    def shift_down(self, right: torch.Tensor) -> torch.Tensor:
        """The right map shifted down one row; row 0 gets the state above row 0 (0 or ``h0``)."""
        if self.right.h0 is None:
            return F.pad(right, (0, 0, 1, 0))[:, :, :-1]
        B, _, _, W = right.shape
        top = self.right.h0.to(right.dtype)[None, :, None, None].expand(B, -1, 1, W)
        return torch.cat([top, right[:, :, :-1]], dim=2)

    def right_map(
        self, x: torch.Tensor, image: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The right-to-left direction, already shifted down by one row.

        Row 0 receives the right direction's state above row 0: zero, or its learned ``h0``.
        ``bias`` ``(B, 4h, H, W)`` (the conditioning's share) is added to its input-to-state.
        """
        extra = self.right_extra(image, bias)
        right = self.right(x.flip(3), None if extra is None else extra.flip(3)).flip(3)
        return self.shift_down(right)

    def both_directions(
        self,
        x: torch.Tensor,
        image: torch.Tensor,
        left_bias: torch.Tensor | None = None,
        right_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``left(x, left_bias) + right_map(x, image, right_bias)`` in one recurrence of W + H - 1 steps.

        The input-to-state maps are computed as in the readable path: 1x1 convolutions on the
        image-sized map (under autocast in its dtype), plus the image term and the conditioning.
        The right direction is the left one on the mirrored map, with its own weights; the two are
        independent until they are added, so their gates are stacked on a new first dimension
        (direction) and :func:`diagonal_recurrence` runs both at once, its state in float32.
        """
        left, right = self.left, self.right
        gates_left = left.input_to_state(x)
        if left_bias is not None:
            gates_left = gates_left + left_bias
        gates_right = right.input_to_state(x)  # a 1x1 convolution: mirroring commutes with it
        extra = self.right_extra(image, right_bias)
        if extra is not None:
            gates_right = gates_right + extra
        dtype = state_dtype(gates_left)
        gates = torch.stack([gates_left.to(dtype), gates_right.to(dtype).flip(3)])
        h0 = c0 = None
        if left.h0 is not None:
            h0, c0 = torch.stack([left.h0, right.h0]), torch.stack([left.c0, right.c0])
        with torch.autocast(x.device.type, enabled=False):
            states = diagonal_recurrence(
                gates,
                torch.stack([left.state_to_state.bias, right.state_to_state.bias]),
                torch.stack([left.state_to_state.weight, right.state_to_state.weight]),
                h0,
                c0,
            )  # (2, B, h, H, W)
        return states[0] + self.shift_down(states[1].flip(3))

    def forward(
        self, x: torch.Tensor, image: torch.Tensor, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x`` ``(B, 2h, H, W)`` features, ``image`` ``(B, C, H, W)`` the scaled input image,
        ``condition`` ``(B, c, H, W)`` the conditioning map (or None)."""
        left_bias = right_bias = None
        if condition is not None:
            left_bias, right_bias = self.condition_bias(condition).chunk(2, dim=1)
        readable = not self.fast or type(self).right_map is not DiagonalBiLSTM.right_map
        if readable:
            # right_map(x, image) as notebook 04's subclasses define it, when unconditioned
            biased = () if right_bias is None else (right_bias,)
            states = self.left(x, left_bias) + self.right_map(x, image, *biased)
        else:
            states = self.both_directions(x, image, left_bias, right_bias)
        out = self.output(states)
        return x + out if self.residual else out


def diagonal_recurrence(
    gates: torch.Tensor,
    bias: torch.Tensor,
    state_to_state: torch.Tensor,
    h0: torch.Tensor | None = None,
    c0: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run D diagonal LSTMs side by side; the fast path of :class:`DiagonalBiLSTM`.

    ``gates`` ``(D, B, 4h, H, W)``: each direction's input-to-state map (on its own, possibly
    mirrored, image); ``bias`` ``(D, 4h)``: the state-to-state biases; ``state_to_state``
    ``(D, 4h, h, 2)``: the 2 x 1 kernels (tap 0 reads the row above, tap 1 the same row); ``h0``,
    ``c0`` ``(D, h)``: learned initial states, or None for zero. Returns the hidden states
    ``(D, B, h, H, W)``, for each direction what :class:`DiagonalLSTM` computes (the tests check
    outputs and gradients).

    What makes it faster than running :class:`DiagonalLSTM` twice (``benchmarks/
    diagonal_bilstm_speed.py`` measures it):

    * **both directions** in one loop: W + H - 1 steps per layer instead of 2 (W + H - 1);
    * the skewed map is stored column first, ``(S, D, 4h, B, H)``: each column is one block, the
      gates of a column are one contiguous block each, and the skew itself is a strided view
      (pixel (r, j) is column r + j; :func:`_image_in_skewed`), written once and read once;
    * one **matrix product** per column for the 2 x 1 state-to-state convolution: the kernel as a
      (4h, 2h) matrix times ``[state of row r - 1; state of row r]``, batched over the directions;
    * no mask per column: rows r > t of column t lie left of the image, and the one that pixel
      (t + 1, 0) reads next is set to the initial state; states right of the image never reach
      it again;
    * a **hand-written backward** (:class:`_DiagonalRecurrence`): seven operations per column
      instead of the few dozen autograd records for two directions.
    """
    D, _, G, _, _ = gates.shape
    hd = G // 4
    columns = _SkewColumns.apply(gates + bias.to(gates.dtype)[:, None, :, None, None])
    zeros = gates.new_zeros(D, hd)
    h0 = zeros if h0 is None else h0.to(gates.dtype)
    c0 = zeros if c0 is None else c0.to(gates.dtype)
    # (D, 4h, h, 2) -> (D, 4h, 2h): columns [0, h) multiply the state above, [h, 2h) the one beside
    weight = state_to_state.permute(0, 1, 3, 2).reshape(D, G, 2 * hd).to(gates.dtype)
    hs = _DiagonalRecurrence.apply(columns, weight, h0, c0)
    return _UnskewColumns.apply(hs)


def _image_in_skewed(buffer: torch.Tensor, width: int) -> torch.Tensor:
    """The view ``(D, B, n, H, W)`` of a skewed buffer ``(S, D, n, B, H)``: pixel (r, j) is at column r + j.

    Moving one row down moves one column right as well, so the row stride is the buffer's row
    stride plus its column stride.
    """
    S, D, n, B, H = buffer.shape
    sS, sD, sn, sB, sH = buffer.stride()
    return buffer.as_strided((D, B, n, H, width), (sD, sB, sn, sH + sS, sS))


def _skew_columns(x: torch.Tensor) -> torch.Tensor:
    """``(D, B, F, H, W)`` -> the skewed map, column first, ``(S, D, F, B, H)``; zero outside."""
    D, B, F_, H, W = x.shape
    out = x.new_zeros(W + H - 1, D, F_, B, H)
    _image_in_skewed(out, W).copy_(x)
    return out


def _unskew_columns(y: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`_skew_columns`: the image ``(D, B, F, H, W)`` out of the skewed map."""
    S, _, _, _, H = y.shape
    return _image_in_skewed(y, S - H + 1).contiguous()


class _SkewColumns(torch.autograd.Function):
    """:func:`_skew_columns`, whose gradient is :func:`_unskew_columns` (and the reverse below)."""

    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        return _skew_columns(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return _unskew_columns(grad)


class _UnskewColumns(torch.autograd.Function):
    """:func:`_unskew_columns`, whose gradient is :func:`_skew_columns`."""

    @staticmethod
    def forward(ctx, y):  # noqa: ANN001, ANN205
        return _unskew_columns(y)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return _skew_columns(grad)


class _DiagonalRecurrence(torch.autograd.Function):
    """The column loop of :func:`diagonal_recurrence` with its backward written out by hand.

    Forward, column t of the skewed map, for every direction, image and row r at once
    (``[a; b]``: the features of a stacked on those of b):

        gates = x_t + weight @ [h_{t-1}(r - 1); h_{t-1}(r)]        (h_{t-1}(-1) = h0)
        o, f, i = sigmoid(gates[:3h]);  g = tanh(gates[3h:])
        c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
        row t + 1 (left of the image, read next by pixel (t + 1, 0)): h_t, c_t = h0, c0

    Backward walks the columns in reverse with the gradients dh, dc of h_t and c_t:

        dc += dh * o (1 - tanh(c)^2)                        (h = o tanh(c))
        d_o = dh * tanh(c) o (1 - o)                        (sigmoid' = s (1 - s))
        d_f, d_i, d_g = dc * [c_prev f (1 - f), g i (1 - i), i (1 - g^2)]   (tanh' = 1 - tanh^2)
        dc_prev = dc * f;  [dh_above; dh_beside] = weight^T @ d

    The factors that do not depend on dh, dc are computed for all columns at once before the
    loop, and set to zero left of the image (those states are the initial state, not computed).
    The gradients of the weights and of h0, c0 are sums over all columns, taken after the loop.
    """

    @staticmethod
    def forward(ctx, columns, weight, h0, c0):  # noqa: ANN001, ANN205
        S, D, G, B, H = columns.shape
        hd, N = G // 4, B * H
        hs = columns.new_empty(S, D, hd, B, H)  # hidden states of every column
        reads = columns.new_empty(S, D, 2 * hd, B, H)  # [above; beside], what each column read
        reads[:, :, :hd, :, 0] = h0[:, :, None]  # above row 0: h0, in every column
        acts = columns.new_empty(S, D, G, B, H)  # sigmoid(o, f, i), tanh(g)
        cells = columns.new_empty(S + 1, D, hd, B, H)  # c before column 0, then after each
        tanh_c = columns.new_empty(S, D, hd, B, H)
        h = h0[:, :, None, None].expand(D, hd, B, H)
        cells[0] = c0[:, :, None, None]
        for t in range(S):
            read = reads[t]
            read[:, :hd, :, 1:] = h[..., :-1]
            read[:, hd:] = h
            a = acts[t]
            torch.baddbmm(
                columns[t].view(D, G, N), weight, read.view(D, 2 * hd, N), out=a.view(D, G, N)
            )
            a[:, : 3 * hd].sigmoid_()
            a[:, 3 * hd :].tanh_()
            o, f, i, g = a.chunk(4, dim=1)
            c = cells[t + 1]
            torch.addcmul(f * cells[t], i, g, out=c)
            torch.tanh(c, out=tanh_c[t])
            h = torch.mul(o, tanh_c[t], out=hs[t])
            if t + 1 < H:  # pixel (t + 1, 0) starts from the initial state
                h[..., t + 1] = h0[:, :, None]
                c[..., t + 1] = c0[:, :, None]
        ctx.save_for_backward(weight, reads, acts, cells, tanh_c)
        return hs

    @staticmethod
    def backward(ctx, grad_hs):  # noqa: ANN001, ANN205
        weight, reads, acts, cells, tanh_c = ctx.saved_tensors
        S, D, G, B, H = acts.shape
        hd, N = G // 4, B * H
        o, f, i, g = acts.chunk(4, dim=2)
        # rows r > t of column t are left of the image: no gradient flows through them
        inside = acts.new_ones(S, H).tril()[:, None, None, None, :]  # (S, 1, 1, 1, H): r <= t
        dc_from_dh = o * (1 - tanh_c * tanh_c) * inside
        do_from_dh = tanh_c * o * (1 - o) * inside
        d_fig_from_dc = (
            torch.stack([cells[:-1] * f * (1 - f), g * i * (1 - i), i * (1 - g * g)], dim=2)
            * inside[:, :, None]
        )  # (S, D, 3, h, B, H)
        f_inside = f * inside
        grad_gates = torch.empty_like(acts)  # the gradient of ``columns``
        grad_cells = torch.empty_like(cells[1:])  # grad_cells[t]: of the c that column t read
        d_read = grad_hs.new_empty(D, 2 * hd, B, H)
        dh = grad_hs.new_zeros(D, hd, B, H)
        dc = grad_hs.new_zeros(D, hd, B, H)
        weight_t = weight.transpose(1, 2)
        for t in reversed(range(S)):
            dh += grad_hs[t]
            dc.addcmul_(dh, dc_from_dh[t])
            d = grad_gates[t]
            torch.mul(dh, do_from_dh[t], out=d[:, :hd])
            torch.mul(dc[:, None], d_fig_from_dc[t], out=d[:, hd:].view(D, 3, hd, B, H))
            dc = torch.mul(dc, f_inside[t], out=grad_cells[t])
            torch.bmm(weight_t, d.view(D, G, N), out=d_read.view(D, 2 * hd, N))
            dh = d_read[:, hd:]  # row r read its own row of the previous column ...
            dh[..., :-1] += d_read[:, :hd, :, 1:]  # ... and row r + 1 read it as "above"
        # sums over every column: the kernel, and h0, c0 where they were read
        d_weight = torch.matmul(
            grad_gates.view(S, D, G, N), reads.view(S, D, 2 * hd, N).transpose(2, 3)
        ).sum(0)
        rows = torch.arange(min(H, S), device=acts.device)
        first = grad_gates[rows, :, :, :, rows].sum((0, 3))  # gates of pixels (r, 0): (D, 4h)
        above = grad_gates[..., 0].sum((0, 3))  # gates of row 0, which read h0 above: (D, 4h)
        d_h0 = torch.bmm(weight_t[:, hd:], first[..., None])[..., 0]  # beside of (r, 0)
        d_h0 += torch.bmm(weight_t[:, :hd], above[..., None])[..., 0]
        d_c0 = grad_cells[rows, :, :, :, rows].sum((0, 3))
        return grad_gates, d_weight, d_h0, d_c0
