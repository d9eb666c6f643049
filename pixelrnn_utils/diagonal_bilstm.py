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
from .row_lstm import (
    initial_state_parameters,
    initial_states,
    lstm_update,
    lstm_update_backward,
    state_dtype,
)

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

    def input_to_state_matrices(self, conditioned: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Every input-to-state term of both directions as one matrix product: ``(weight, bias)``.

        Each term is a 1x1 convolution of something at the same pixel: the features (masked), the
        image (the right direction's full-context term) and the conditioning map (each direction
        has its half of ``condition_bias``). Stacked, they are one matrix per direction, ``weight``
        ``(2, 4h, K)`` for the inputs ``[x; image; condition]`` (zeros where the left direction
        does not read the image), and ``bias`` ``(2, 4h)``, every bias of the gates, the
        state-to-state one included.
        """
        left, right = self.left.input_to_state, self.right.input_to_state
        weights = [left.masked_weight()[:, :, 0, 0], right.masked_weight()[:, :, 0, 0]]
        biases = [
            left.bias + self.left.state_to_state.bias,
            right.bias + self.right.state_to_state.bias,
        ]
        if self.right_image is not None:
            image = self.right_image.weight[:, :, 0, 0]
            weights = [
                torch.cat([weights[0], torch.zeros_like(image)], 1),
                torch.cat([weights[1], image], 1),
            ]
            biases[1] = biases[1] + self.right_image.bias
        if conditioned:
            halves = self.condition_bias.weight[:, :, 0, 0].chunk(2)
            weights = [torch.cat([w, half], 1) for w, half in zip(weights, halves, strict=True)]
            biases = [
                b + half for b, half in zip(biases, self.condition_bias.bias.chunk(2), strict=True)
            ]
        return torch.stack(weights), torch.stack(biases)

    def both_directions(
        self, x: torch.Tensor, image: torch.Tensor, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``left(x) + right_map(x, image)``, each with its share of ``condition``, in one
        recurrence of W + H - 1 steps (:func:`diagonal_recurrence`).

        The right direction is the left one on the mirrored map with its own weights; the two are
        independent until they are added, so they run side by side on a new first dimension
        (direction). The input-to-state terms (:meth:`input_to_state_matrices`) are taken into
        the recurrence's column step, and everything runs in float32 whatever the autocast dtype.
        """
        dtype = state_dtype(x)
        parts = [x, image] if self.right_image is not None else [x]
        if condition is not None:
            parts.append(condition)
        left, right = self.left, self.right
        with torch.autocast(x.device.type, enabled=False):
            inputs = torch.cat([p.to(dtype) for p in parts], dim=1)  # (B, K, H, W)
            weight, bias = self.input_to_state_matrices(condition is not None)
            h0 = c0 = None
            if left.h0 is not None:
                h0, c0 = torch.stack([left.h0, right.h0]), torch.stack([left.c0, right.c0])
            states = diagonal_recurrence(
                torch.stack([inputs, inputs.flip(3)]),
                weight,
                bias,
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
        readable = not self.fast or type(self).right_map is not DiagonalBiLSTM.right_map
        if readable:
            left_bias = right_bias = None
            if condition is not None:
                left_bias, right_bias = self.condition_bias(condition).chunk(2, dim=1)
            # right_map(x, image) as notebook 04's subclasses define it, when unconditioned
            biased = () if right_bias is None else (right_bias,)
            states = self.left(x, left_bias) + self.right_map(x, image, *biased)
        else:
            states = self.both_directions(x, image, condition)
        out = self.output(states)
        return x + out if self.residual else out


def diagonal_recurrence(
    inputs: torch.Tensor,
    input_weight: torch.Tensor,
    bias: torch.Tensor,
    state_to_state: torch.Tensor,
    h0: torch.Tensor | None = None,
    c0: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run D diagonal LSTMs side by side; the fast path of :class:`DiagonalBiLSTM`.

    ``inputs`` ``(D, B, K, H, W)``: what each direction reads at each pixel (on its own, possibly
    mirrored, image); ``input_weight`` ``(D, 4h, K)``: its input-to-state 1x1 convolution as a
    matrix; ``bias`` ``(D, 4h)``: every bias of the gates; ``state_to_state`` ``(D, 4h, h, 2)``:
    the 2 x 1 kernels (tap 0 reads the row above, tap 1 the same row); ``h0``, ``c0`` ``(D, h)``:
    learned initial states, or None for zero. Returns the hidden states ``(D, B, h, H, W)``, for
    each direction what :class:`DiagonalLSTM` computes (the tests check outputs and gradients).

    What makes it faster than running :class:`DiagonalLSTM` twice (``benchmarks/
    diagonal_bilstm_speed.py`` measures it):

    * **both directions** in one loop: W + H - 1 steps per layer instead of 2 (W + H - 1);
    * **one matrix product per column** for all the gates: ``[W_ss | W_is | bias]`` times
      ``[state of row r - 1; state of row r; inputs; 1]``, batched over the directions. The
      input-to-state convolution is no separate pass whose output (4h maps) must be skewed: the
      inputs (K maps, fewer) are skewed instead, straight into the buffer the products read;
    * **only the pixels of the image**: column t of the skewed map holds the pixels of rows
      max(0, t - W + 1) .. min(t, H - 1), half of its H rows on average, and every operation of
      the column runs on those rows alone; nothing outside the image is computed or masked;
    * the skewed map is stored column first, ``(S, D, features, H, B)``: the rows of a column are
      one block, and a pixel's B images are contiguous, so that the skew is a copy of contiguous
      runs (pixel (r, j) is column r + j; :func:`_image_in_skewed`);
    * a **hand-written backward** (:class:`_DiagonalRecurrence`): a few operations per column
      instead of the few dozen autograd records for two directions.
    """
    D, G, _, _ = state_to_state.shape
    hd = G // 4
    # (D, 4h, h, 2) -> (D, 4h, 2h): columns [0, h) multiply the state above, [h, 2h) the one beside
    above_beside = state_to_state.permute(0, 1, 3, 2).reshape(D, G, 2 * hd)
    weight = torch.cat([above_beside, input_weight, bias[:, :, None]], 2)
    zeros = bias.new_zeros(D, hd)
    h0 = zeros if h0 is None else h0
    c0 = zeros if c0 is None else c0
    # (D, B, K, H, W) -> (D, K, H, W, B): the layout of the skewed buffer, a pixel's images last
    states = _DiagonalRecurrence.apply(inputs.permute(0, 2, 3, 4, 1), weight, h0, c0)
    return states.permute(0, 4, 1, 2, 3)  # (D, h, H, W, B) -> (D, B, h, H, W)


def _image_in_skewed(buffer: torch.Tensor, width: int) -> torch.Tensor:
    """The view ``(D, n, H, W, B)`` of a skewed buffer ``(S, D, n, H, B)``: pixel (r, j) is at column r + j.

    Moving one row down moves one column right as well, so the row stride is the buffer's row
    stride plus its column stride.
    """
    S, D, n, H, B = buffer.shape
    sS, sD, sn, sH, sB = buffer.stride()
    return buffer.as_strided((D, n, H, width, B), (sD, sn, sH + sS, sS, sB))


def _rows_in_image(t: int, height: int, width: int) -> tuple[int, int]:
    """``(first, last)``: the rows of column t of the skewed map that hold a pixel of the image."""
    return max(0, t - width + 1), min(t, height - 1)


class _DiagonalRecurrence(torch.autograd.Function):
    """The column loop of :func:`diagonal_recurrence` with its backward written out by hand.

    Forward, column t of the skewed map, for every direction, image and row r of the image at
    once (``[a; b; c]``: the features of a, b and c stacked):

        gates = weight @ [h_{t-1}(r - 1); h_{t-1}(r); x_t(r); 1]     (h_{t-1}(-1) = h0)
        o, f, i = sigmoid(gates[:3h]);  g = tanh(gates[3h:])
        c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)

    Pixel (t, 0), the first of its row, is the last row of column t; it reads the initial state
    (h0, c0) beside it, as row t of column t - 1. ``reads`` holds what every column read; the
    states of column t are written straight into column t + 1's "beside" block.

    Backward walks the columns in reverse with the gradients dh, dc of h_t and c_t: the LSTM
    update's derivatives d (:func:`~pixelrnn_utils.row_lstm.lstm_update_backward`), then

        [dh_above; dh_beside; dx_t; _] = weight^T @ d;  d_weight += d @ read^T

    The gradients that reach the initial state (pixels (r, 0) beside, row 0 above) go to h0, c0.
    """

    @staticmethod
    def forward(ctx, inputs, weight, h0, c0):  # noqa: ANN001, ANN205
        D, K, H, W, B = inputs.shape
        S, G, R = W + H - 1, weight.shape[1], weight.shape[2]
        hd = G // 4
        # what each column read: [above; beside; inputs; 1]; reads[t + 1] holds column t's states
        reads = inputs.new_empty(S + 1, D, R, H, B)
        _image_in_skewed(reads[:S, :, 2 * hd : R - 1], W).copy_(inputs)
        reads[:, :, R - 1] = 1  # the bias's input
        reads[:, :, :hd, 0] = h0[:, :, None]  # above row 0: h0, in every column
        first = torch.arange(H, device=inputs.device)  # pixel (r, 0) is row r of column r ...
        reads[first, :, hd : 2 * hd, first] = h0[None, :, :, None]  # ... beside it: h0, c0
        cells = inputs.new_empty(S + 1, D, hd, H, B)  # cells[t + 1]: c of column t
        cells[first, :, :, first] = c0[None, :, :, None]
        acts = inputs.new_empty(S, D, G, H, B)  # sigmoid(o, f, i), tanh(g)
        tanh_c = inputs.new_empty(S, D, hd, H, B)
        for t in range(S):
            lo, hi = _rows_in_image(t, H, W)
            rows, nb = slice(lo, hi + 1), (hi - lo + 1) * B
            read = reads[t]
            top = max(lo, 1)  # row r >= 1 reads row r - 1 of the previous column above it
            read[:, :hd, top : hi + 1] = read[:, hd : 2 * hd, top - 1 : hi]
            a = acts[t][:, :, rows]
            torch.bmm(weight, read[:, :, rows].view(D, R, nb), out=a.view(D, G, nb))
            a[:, : 3 * hd].sigmoid_()
            a[:, 3 * hd :].tanh_()
            o, f, i, g = a.chunk(4, dim=1)
            c = cells[t + 1][:, :, rows]
            torch.addcmul(f * cells[t][:, :, rows], i, g, out=c)
            torch.tanh(c, out=tanh_c[t][:, :, rows])
            torch.mul(o, tanh_c[t][:, :, rows], out=reads[t + 1][:, hd : 2 * hd, rows])
        ctx.save_for_backward(weight, reads, acts, cells, tanh_c)
        return _image_in_skewed(reads[1:, :, hd : 2 * hd], W).contiguous()

    @staticmethod
    def backward(ctx, grad_states):  # noqa: ANN001, ANN205
        weight, reads, acts, cells, tanh_c = ctx.saved_tensors
        S, D, G, H, B = acts.shape
        R, hd, W = weight.shape[2], G // 4, S - H + 1
        grad_hs = grad_states.new_empty(S, D, hd, H, B)  # skewed; only the image is read
        _image_in_skewed(grad_hs, W).copy_(grad_states)
        grad_reads = grad_states.new_empty(S, D, R, H, B)
        grad_gates = grad_states.new_empty(D, G, H, B)  # of one column
        dh_next = grad_states.new_zeros(D, hd, H, B)  # from column t + 1 (none for the last)
        dc = grad_states.new_zeros(D, hd, H, B)
        d_weight = grad_states.new_zeros(D, G, R)
        d_h0 = grad_states.new_zeros(D, hd)
        d_c0 = grad_states.new_zeros(D, hd)
        weight_t = weight.transpose(1, 2).contiguous()
        for t in reversed(range(S)):
            lo, hi = _rows_in_image(t, H, W)
            rows, nb = slice(lo, hi + 1), (hi - lo + 1) * B
            dh = dh_next[:, :, rows]
            dh += grad_hs[t][:, :, rows]
            d = grad_gates[:, :, rows]
            a, c_prev = acts[t][:, :, rows], cells[t][:, :, rows]
            # dc of these rows becomes, in place, the gradient of the c this column read
            lstm_update_backward(a, tanh_c[t][:, :, rows], c_prev, dh, dc[:, :, rows], d, dim=1)
            d_flat = d.view(D, G, nb)
            d_weight.baddbmm_(d_flat, reads[t][:, :, rows].view(D, R, nb).transpose(1, 2))
            d_read = grad_reads[t]
            torch.bmm(weight_t, d_flat, out=d_read[:, :, rows].view(D, R, nb))
            # column t - 1's states: row r was read beside by row r, above by row r + 1
            dh_next = d_read[:, hd : 2 * hd]
            if t < H:  # pixel (t, 0) read the initial state beside it
                d_h0 += dh_next[:, :, t].sum(-1)
                d_c0 += dc[:, :, t].sum(-1)
            if lo == 0:  # row 0 read h0 above it
                d_h0 += d_read[:, :hd, 0].sum(-1)
            else:  # row lo - 1 of column t - 1 is read only above row lo
                dh_next[:, :, lo - 1] = d_read[:, :hd, lo]
            dh_next[:, :, lo:hi] += d_read[:, :hd, lo + 1 : hi + 1]
        d_inputs = _image_in_skewed(grad_reads[:, :, 2 * hd : R - 1], W).contiguous()
        return d_inputs, d_weight, d_h0, d_c0
