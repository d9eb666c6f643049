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
    lstm_derivative_factors,
    lstm_update,
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
            return F.pad(right, (0, 0, 1, 0)).narrow(2, 0, right.shape[2])
        B, _, _, W = right.shape
        top = self.right.h0.to(right.dtype)[None, :, None, None].expand(B, -1, 1, W)
        return torch.cat([top, right.narrow(2, 0, right.shape[2] - 1)], dim=2)

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
        weights = [left.masked_weight().flatten(1), right.masked_weight().flatten(1)]
        biases = [
            left.bias + self.left.state_to_state.bias,
            right.bias + self.right.state_to_state.bias,
        ]
        if self.right_image is not None:
            image = self.right_image.weight.flatten(1)
            weights = [
                torch.cat([weights[0], torch.zeros_like(image)], 1),
                torch.cat([weights[1], image], 1),
            ]
            biases[1] = biases[1] + self.right_image.bias
        if conditioned:
            halves = self.condition_bias.weight.flatten(1).chunk(2)
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
                torch.stack([p.permute(1, 2, 3, 0) for p in (inputs, inputs.flip(3))]),
                weight,
                bias,
                torch.stack([left.state_to_state.weight, right.state_to_state.weight]),
                h0,
                c0,
            )  # (2, B, h, H, W)
        left_states, right_states = states.unbind(0)
        return left_states + self.shift_down(right_states.flip(3))

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

    ``inputs`` ``(D, K, H, W, B)``: what each direction reads at each pixel (on its own, possibly
    mirrored, image), the B images of a pixel side by side; ``input_weight`` ``(D, 4h, K)``: its input-to-state 1x1 convolution as a
    matrix; ``bias`` ``(D, 4h)``: every bias of the gates; ``state_to_state`` ``(D, 4h, h, 2)``:
    the 2 x 1 kernels (tap 0 reads the row above, tap 1 the same row); ``h0``, ``c0`` ``(D, h)``:
    learned initial states, or None for zero. Returns the hidden states ``(D, B, h, H, W)``, for
    each direction what :class:`DiagonalLSTM` computes (the tests check outputs and gradients).

    What makes it faster than running :class:`DiagonalLSTM` twice (``benchmarks/
    diagonal_bilstm_speed.py`` measures it):

    * **both directions** in one loop of W + H - 1 steps per layer: the D directions are one LSTM
      of D h state features whose state-to-state kernel is block diagonal (no direction reads
      another's state);
    * the **input-to-state** products of every pixel are one product before the loop (they do
      not depend on the recurrence); a column then takes two products, one with the states
      above, one with the states beside;
    * **only the pixels of the image**: column t of the skewed map holds the pixels of rows
      max(0, t - W + 1) .. min(t, H - 1), half of its H rows on average, and every operation of
      the column runs on those rows alone;
    * the skewed map is stored **position first**, ``(S, H, B, features)``: the rows of a column
      are one contiguous block, and so are the states above them (the same block one row up);
    * a **hand-written backward** (:class:`_DiagonalRecurrence`) of six operations per column.
    """
    states = _DiagonalRecurrence.apply(
        inputs, input_weight, bias, state_to_state, h0, c0
    )  # (H, W, B, D, h)
    return states.permute(3, 2, 4, 0, 1)


def _image_in_skewed(
    buffer: torch.Tensor, height: int, width: int, column: int = 0, row: int = 0
) -> torch.Tensor:
    """The view ``(height, width, ...)`` of a skewed buffer ``(columns, rows, ...)``: pixel (r, j)
    is at column r + j + ``column``, row r + ``row``. ``buffer`` is a whole, contiguous tensor
    (not a view into another; slice the view this returns instead), so that its storage starts
    at its first element: ``torch.compile`` cannot read a tensor's storage offset.

    Moving one row down moves one column right as well, so the row stride is the buffer's row
    stride plus its column stride.
    """
    # a whole tensor's strides, from its shape (torch.compile in PyTorch 2.6 cannot read them)
    strides = [1]
    for size in reversed(buffer.shape[1:]):
        strides.insert(0, strides[0] * size)
    s_column, s_row, *rest = strides
    return buffer.as_strided(
        (height, width, *buffer.shape[2:]),
        (s_column + s_row, s_column, *rest),
        column * s_column + row * s_row,
    )


def _direction_blocks(kernels: torch.Tensor) -> torch.Tensor:
    """The diagonal blocks ``(2, h, 4, h, D)`` of block-diagonal kernels ``(2, D, h, 4, D, h)``:
    direction d's own entries (rows of direction d, columns of direction d), for every d."""
    return torch.diagonal(kernels, dim1=1, dim2=4)


def _rows_in_image(t: int, height: int, width: int) -> tuple[int, int]:
    """``(first, last)``: the rows of column t of the skewed map that hold a pixel of the image."""
    return max(0, t - width + 1), min(t, height - 1)


class _DiagonalRecurrence(torch.autograd.Function):
    """The column loop of :func:`diagonal_recurrence` with its backward written out by hand.

    Forward, column t of the skewed map, for every image and row r of the image at once, with
    F = D h state features (both directions) and 4F gates:

        gates = pre_t(r) + h_{t-1}(r - 1) @ above + h_{t-1}(r) @ beside   (h_{t-1}(-1) = h0)
        o, f, i = sigmoid(gates[:3F]);  g = tanh(gates[3F:])
        c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)

    ``pre`` holds every pixel's input-to-state product and bias, computed before the loop.
    Pixel (t, 0), the first of its row, is the last row of column t; it reads the initial
    state (h0, c0) beside it, placed in the buffers before the loop.

    Backward walks the columns in reverse with the gradients dh, dc of h_t and c_t. The LSTM's
    derivatives are products of dh and dc with factors the forward pass fixed, computed for all
    columns at once before the loop (as in :class:`~pixelrnn_utils.row_lstm._RowRecurrence`);
    a column then takes six operations: dh (the loss's share, placed before the loop, plus what
    the next column's rows read above and beside), dc += dh * o (1 - tanh(c)^2), the gates'
    gradient d in place of the factors, dc *= f, and ``[d_above; d_beside] = d @ [above;
    beside]^T``. The weight gradients are products over every pixel after the loop.
    """

    @staticmethod
    def forward(ctx, inputs, input_weight, bias, state_to_state, h0, c0):  # noqa: ANN001, ANN205
        D, K, H, W, B = inputs.shape
        S, hd = W + H - 1, state_to_state.shape[2]
        F, F4 = D * hd, 4 * D * hd
        # the state-to-state kernels of the D directions as one block-diagonal matrix per tap:
        # rows (direction, feature read), columns (gate, direction, feature), zero where one
        # direction would read another's state
        kernels = state_to_state.new_zeros(2, D, hd, 4, D, hd)
        _direction_blocks(kernels).copy_(
            state_to_state.view(D, 4, hd, hd, 2).permute(4, 3, 1, 2, 0)
        )
        above, beside = kernels.view(2, F, F4)
        # every pixel's input-to-state gates, in the skewed layout (S, H, B, 4, D, h)
        flat_inputs = inputs.reshape(D, K, H * W * B)
        gates_in = torch.baddbmm(  # (D, H W B, 4h): a pixel's gates side by side
            bias[:, None], flat_inputs.transpose(1, 2), input_weight.transpose(1, 2)
        )
        pre = inputs.new_empty(S, H, B, 4, D, hd)
        _image_in_skewed(pre, H, W).copy_(
            gates_in.view(D, H, W, B, 4, hd).permute(1, 2, 3, 4, 0, 5)
        )
        pre = pre.view(S, H, B, F4)
        acts = inputs.new_empty(S, H, B, F4)  # sigmoid(o, f, i), tanh(g)
        # hs[t + 1, r + 1]: h of column t, row r; row 0 is the state above row 0 (h0)
        hs = inputs.new_zeros(S + 1, H + 1, B, F)
        cells = inputs.new_zeros(S + 1, H, B, F)  # cells[t + 1, r]: c of column t, row r
        if h0 is not None:  # learned initial states; else the zeros already there
            h0, c0 = h0.reshape(F), c0.reshape(F)  # (D, h): the directions' states side by side
            hs[:, 0] = h0
            # pixel (r, 0) is row r of column r; beside it, in column r - 1, the initial state
            _image_in_skewed(hs, H, 1, row=1).copy_(h0.expand(H, 1, B, F))
            _image_in_skewed(cells, H, 1).copy_(c0.expand(H, 1, B, F))
        tanh_c = inputs.new_empty(S, H, B, F)
        for t in range(S):
            lo, hi = _rows_in_image(t, H, W)
            n = (hi - lo + 1) * B
            a = acts[t, lo : hi + 1].view(n, F4)
            torch.addmm(
                pre[t, lo : hi + 1].view(n, F4), hs[t, lo : hi + 1].view(n, F), above, out=a
            )
            a.addmm_(hs[t, lo + 1 : hi + 2].view(n, F), beside)
            a[:, : 3 * F].sigmoid_()
            a[:, 3 * F :].tanh_()
            o, f, i, g = a.chunk(4, dim=1)
            c = cells[t + 1, lo : hi + 1].view(n, F)
            torch.addcmul(f * cells[t, lo : hi + 1].view(n, F), i, g, out=c)
            torch.tanh(c, out=tanh_c[t, lo : hi + 1].view(n, F))
            torch.mul(
                o, tanh_c[t, lo : hi + 1].view(n, F), out=hs[t + 1, lo + 1 : hi + 2].view(n, F)
            )
        ctx.save_for_backward(flat_inputs, input_weight, kernels, acts, hs, cells, tanh_c)
        ctx.learned = h0 is not None
        return _image_in_skewed(hs, H, W, 1, 1).unflatten(3, (D, hd))  # a view of hs

    @staticmethod
    def backward(ctx, grad_states):  # noqa: ANN001, ANN205
        flat_inputs, input_weight, kernels, acts, hs, cells, tanh_c = ctx.saved_tensors
        S, H, B, F = hs.shape[0] - 1, hs.shape[1] - 1, hs.shape[2], hs.shape[3]
        D, K, W = flat_inputs.shape[0], flat_inputs.shape[1], S - H + 1
        hd = F // D
        # the factors of the LSTM's derivatives at every position (see the class docstring);
        # ``fac`` becomes the gates' gradient d, column by column, in place
        # on the pixels of the image only, then placed in the skewed layout the loop reads:
        # fac[t, r] = [o (1 - tanh(c)^2); d_o / dh; d_f / dc; d_i / dc; d_g / dc], and its last
        # four become the gates' gradient d, column by column, in place
        image = [_image_in_skewed(buffer, H, W) for buffer in (acts, tanh_c, cells)]
        fac = acts.new_empty(S, H, B, 5 * F)
        factors = lstm_derivative_factors(*image, dim=3)  # (5, H, W, B, F)
        _image_in_skewed(fac, H, W).unflatten(3, (5, F)).copy_(factors.permute(1, 2, 3, 0, 4))
        f = acts[..., F : 2 * F]
        # grad_reads[t + 1, r + 1]: the gradients of h of column t, row r, that column t + 1
        # read above (the first F features; at row r + 2) and beside (the last F; at row r + 1),
        # the loss's share placed beside before the loop
        grad_reads = grad_states.new_zeros(S + 1, H + 2, B, 2 * F)
        beside_image = _image_in_skewed(grad_reads, H, W, 1, 1)[..., F:]
        beside_image.unflatten(3, grad_states.shape[3:]).copy_(grad_states)
        dc = grad_states.new_zeros(H, B, F)
        weights_t = kernels.view(2 * F, 4 * F).T  # [above; beside]^T
        for t in reversed(range(S)):
            lo, hi = _rows_in_image(t, H, W)
            n = (hi - lo + 1) * B
            read = grad_reads[t + 1]
            dh = read[lo + 1 : hi + 2, :, F:] + read[lo + 2 : hi + 3, :, :F]
            dc_t = dc[lo : hi + 1]
            dc_t.addcmul_(dh, fac[t, lo : hi + 1, :, :F])
            d = fac[t, lo : hi + 1, :, F:]
            d[..., :F].mul_(dh)
            d[..., F:].view(hi - lo + 1, B, 3, F).mul_(dc_t[:, :, None])
            dc_t.mul_(f[t, lo : hi + 1])
            grad_reads[t, lo + 1 : hi + 2].view(n, 2 * F).addmm_(d.view(n, 4 * F), weights_t)
        d_h0 = d_c0 = None
        if ctx.learned:  # h0 above row 0 (columns 0 .. W - 1) and beside pixel (r, 0), which is
            # row r of column r; c0 beside pixel (r, 0), whose gradient dc now holds
            beside_first = _image_in_skewed(grad_reads, H, 1, row=1)[..., F:]
            d_h0 = grad_reads[:W, 1, :, :F].sum((0, 1)) + beside_first.sum((0, 1, 2))
            d_h0, d_c0 = d_h0.view(D, hd), dc.sum((0, 1)).view(D, hd)
        # per direction: the input-to-state products' gradient (D, 4h, H W B), and the
        # state-to-state kernels' from what every pixel read (its above and beside states)
        d_image = _image_in_skewed(fac, H, W)[..., F:].unflatten(3, (4, D, hd))
        d_pre = d_image.permute(4, 0, 1, 2, 3, 5).reshape(D, H * W * B, 4 * hd)
        image_reads = [_image_in_skewed(hs, H, W, row=row).unflatten(3, (D, hd)) for row in (0, 1)]
        reads = torch.stack(
            [r.permute(3, 0, 1, 2, 4) for r in image_reads], 4
        )  # (D, H, W, B, 2, h)
        d_taps = torch.bmm(d_pre.transpose(1, 2), reads.view(D, H * W * B, 2 * hd))
        d_state_to_state = d_taps.view(D, 4 * hd, 2, hd).transpose(2, 3).contiguous()
        d_inputs = torch.bmm(d_pre, input_weight).transpose(1, 2).view(D, K, H, W, B)
        d_input_weight = torch.bmm(d_pre.transpose(1, 2), flat_inputs.transpose(1, 2))
        return d_inputs, d_input_weight, d_pre.sum(1), d_state_to_state, d_h0, d_c0
