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

**Two ways to run it.** :meth:`RowLSTM.recurrence` reads like the equations above: the
input-to-state convolution over the whole map, then a loop over :meth:`RowLSTM.row_step` through
autograd (``RowLSTM.fast = False``). By default the layer runs :func:`row_recurrence` instead: the
same states (up to float rounding), faster, with one matrix product per row for both convolutions
and a hand-written backward; under autocast its products run in bf16 (or fp16) and its state in
float32, as the readable loop's convolutions and state do. The tests check that the two agree,
outputs and gradients.
"""

from __future__ import annotations

import torch
from torch import nn

from .conditioning import condition_bias_conv
from .masks import MaskedConv2d

__all__ = [
    "RowLSTM",
    "initial_state_parameters",
    "initial_states",
    "lstm_update",
    "lstm_update_backward",
    "row_recurrence",
    "state_dtype",
]


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


def lstm_update_backward(
    acts: torch.Tensor,
    tanh_c: torch.Tensor,
    c_prev: torch.Tensor,
    dh: torch.Tensor,
    dc: torch.Tensor,
    grad_gates: torch.Tensor,
    dim: int,
) -> None:
    """The backward of :func:`lstm_update`, used by the fast recurrences' hand-written backward.

    ``acts``: the activated gates ``[sigmoid(o); sigmoid(f); sigmoid(i); tanh(g)]`` stacked on
    ``dim``, ``tanh_c`` = tanh(c), ``c_prev`` the cell state the update read; ``dh``, ``dc``: the
    gradients of h and of c (from the later steps). Writes the pre-activation gates' gradient into
    ``grad_gates`` (shaped like ``acts``) and turns ``dc`` in place into the gradient of ``c_prev``:

        dc += dh * o (1 - tanh(c)^2)                        (h = o tanh(c))
        d_o = dh * tanh(c) o (1 - o)                        (sigmoid' = s (1 - s))
        d_f, d_i, d_g = dc * [c_prev f (1 - f), g i (1 - i), i (1 - g^2)]   (tanh' = 1 - tanh^2)
        dc_prev = dc * f
    """
    one = dh.new_ones(())
    o, f, i, g = acts.chunk(4, dim)
    d_o, d_f, d_i, d_g = grad_gates.chunk(4, dim)
    dc.addcmul_(dh * o, torch.addcmul(one, tanh_c, tanh_c, value=-1))
    torch.mul(dh, tanh_c, out=d_o)
    torch.mul(dc, c_prev, out=d_f)
    torch.mul(dc, g, out=d_i)
    hd3 = 3 * o.shape[dim]
    sig = acts.narrow(dim, 0, hd3)
    grad_gates.narrow(dim, 0, hd3).mul_(torch.addcmul(sig, sig, sig, value=-1))
    torch.addcmul(one, g, g, value=-1, out=d_g).mul_(i).mul_(dc)
    dc.mul_(f)


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

    fast: bool = True  # the recurrence as :func:`row_recurrence` (False: the readable loop)

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
        ``(B, c, H, W)`` is the conditioning map.

        Two ways to compute the same states (``tests/test_row_lstm.py`` checks that outputs and
        gradients agree): the **readable** one below, the input-to-state map in one convolution
        and then a loop over :meth:`row_step` through autograd; and the **fast** one,
        :func:`row_recurrence`, used when ``fast`` is True and ``row_step`` is this class's own.
        Under autocast (bf16, fp16) the fast one runs its products in the autocast dtype, as the
        readable one runs its convolutions; the LSTM state stays float32 in both.
        """
        B, _, H, W = x.shape
        if self.fast and type(self).row_step is RowLSTM.row_step:
            device = x.device.type
            autocast = torch.is_autocast_enabled(device)
            extra = None if condition is None else self.condition_bias(condition)
            conv, taps = self.input_to_state, self.input_to_state.kernel_size[1] // 2 + 1
            input_weight = conv.masked_weight()[:, :, 0, :taps]  # mask B: the rest are 0
            with torch.autocast(device, enabled=False):
                return row_recurrence(
                    x,
                    input_weight,
                    self.state_to_state.weight,
                    conv.bias + self.state_to_state.bias,
                    extra,
                    self.h0,
                    self.c0,
                    product_dtype=torch.get_autocast_dtype(device) if autocast else None,
                )
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


def row_recurrence(
    features: torch.Tensor,
    input_weight: torch.Tensor,
    state_weight: torch.Tensor,
    bias: torch.Tensor,
    extra: torch.Tensor | None = None,
    h0: torch.Tensor | None = None,
    c0: torch.Tensor | None = None,
    product_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """A whole Row LSTM recurrence, one matrix product per row; the fast path of :class:`RowLSTM`.

    ``features`` ``(B, C, H, W)``: the layer's input; ``input_weight`` ``(4h, C, k')``: the
    input-to-state kernel (masked) up to its centre, tap t reading the column k' - 1 - t to
    the left; ``state_weight`` ``(4h, h, k)``: the state-to-state kernel; ``bias`` ``(4h,)``:
    both convolutions' biases; ``extra`` ``(B, 4h, H, W)``: added to the gates (the
    conditioning), or None; ``h0``, ``c0`` ``(h,)``: learned initial states, or None for zero;
    ``product_dtype``: the dtype of the matrix products (bf16 or fp16 under mixed precision;
    None: the state's). Returns the hidden states ``(B, h, H, W)``, what the readable loop of
    :meth:`RowLSTM.recurrence` computes (the tests check outputs and gradients), in the
    state's dtype (float32; float64 for a float64 model). What makes it faster:

    * **one matrix product per row** for all the gates, ``[W_ss | W_is]`` times ``[the k
      shifted copies of the previous row's states; the k' shifted copies of this row's
      inputs]``: the input-to-state convolution is no separate pass, and every product is
      large enough to run near the processor's peak rate;
    * the map is stored row first, ``(H, features, B, W)``: every row is one contiguous block
      that the products and the LSTM's element-wise operations read in order;
    * a **hand-written backward** (:class:`_RowRecurrence`): a few operations per row instead of
      the few dozen that autograd records.
    """
    dtype = state_dtype(features)
    G, hd, k = state_weight.shape
    C, kx = input_weight.shape[1], input_weight.shape[2]
    # (4h, n, taps) -> (4h, taps n): the columns of one product, in the order of ``reads``
    matrix = torch.cat(
        [
            state_weight.permute(0, 2, 1).reshape(G, k * hd),
            input_weight.permute(0, 2, 1).reshape(G, kx * C),
        ],
        dim=1,
    ).to(dtype)
    # the gates' additive term: the bias, or the bias and ``extra`` in the (H, 4h, B, W) layout
    if extra is None:
        offset = bias.to(dtype)[:, None]
    else:
        offset = (extra.to(dtype) + bias.to(dtype)[:, None, None]).permute(2, 1, 0, 3).contiguous()
    zeros = matrix.new_zeros(hd)
    h0 = zeros if h0 is None else h0.to(dtype)
    c0 = zeros if c0 is None else c0.to(dtype)
    product_dtype = product_dtype or dtype
    states = _RowRecurrence.apply(features, matrix, offset, h0, c0, k, product_dtype)
    return states.permute(2, 1, 0, 3)


def _shift_taps(taps: torch.Tensor, width: int, centre: int) -> None:
    """Fill the taps of ``taps`` ``(..., k, n, B W)`` from tap ``centre``, a row of n maps.

    Tap t, column j, holds column j + t - centre of the same image, zero outside the row
    (a convolution's zero padding). A shift of the flat ``B W`` axis moves every image's row at
    once; the columns it carries across from a neighbouring image are then set to zero.
    """
    k, size = taps.shape[-3], taps.shape[-1]
    source = taps[..., centre, :, :]
    for t in range(k):
        off = t - centre
        tap = taps[..., t, :, :]
        per_image = tap.unflatten(-1, (size // width, width))
        if off < 0:  # the first -off columns of each image read the padding
            tap[..., -off:] = source[..., : size + off]
            per_image[..., :-off] = 0
        elif off > 0:  # the last off columns of each image read the padding
            tap[..., : size - off] = source[..., off:]
            per_image[..., width - off :] = 0


def _unshift_taps(grad: torch.Tensor, width: int, centre: int) -> torch.Tensor:
    """The backward of :func:`_shift_taps`: the gradient ``(..., n, B W)`` of tap ``centre``'s
    maps from every tap's gradient ``grad`` ``(..., k, n, B W)``, each moved back to the column
    it read (what the padding received is dropped). Changes ``grad``."""
    k, size = grad.shape[-3], grad.shape[-1]
    out = grad[..., centre, :, :].clone()
    for t in range(k):
        off = t - centre
        tap = grad[..., t, :, :]
        per_image = tap.unflatten(-1, (size // width, width))
        if off < 0:
            per_image[..., :-off] = 0
            out[..., : size + off] += tap[..., -off:]
        elif off > 0:
            per_image[..., width - off :] = 0
            out[..., off:] += tap[..., : size - off]
    return out


class _RowRecurrence(torch.autograd.Function):
    """The row loop of :func:`row_recurrence`, its backward written out by hand.

    Forward, row r, for every image and column at once; ``reads[r]`` stacks the k shifted
    copies of the states of row r - 1 (row -1: ``h0``, ``c0``) and the k' shifted copies of the
    inputs of row r, each zero outside the row:

        gates = offset[r] + matrix @ reads[r]
        o, f, i = sigmoid(gates[:3h]);  g = tanh(gates[3h:])
        c_r = f * c_{r-1} + i * g;  h_r = o * tanh(c_r)

    Backward walks the rows in reverse with the gradients dh, dc of h_r and c_r: the LSTM
    update's derivatives d (:func:`lstm_update_backward`), then ``d_reads[r] = matrix^T @ d``,
    whose states' part, its taps moved back (:func:`_unshift_taps`), is the gradient of the
    states of row r - 1. After the loop ``d_matrix`` = the sum over rows of ``d @ reads[r]^T``,
    one batched product.
    """

    @staticmethod
    def forward(ctx, features, matrix, offset, h0, c0, k, product_dtype):  # noqa: ANN001, ANN205
        B, C, H, W = features.shape
        G, K = matrix.shape
        hd, n = G // 4, B * W
        kx = (K - k * hd) // C
        mixed = product_dtype != offset.dtype  # products in bf16/fp16, the state in float32
        weights = matrix.to(product_dtype)
        centre = slice((k // 2) * hd, (k // 2 + 1) * hd)  # the states' centre tap
        # reads[r]: what row r reads, in the products' dtype
        reads = features.new_empty(H + 1, K, B, W, dtype=product_dtype)
        inputs = reads[:H, k * hd :]  # (H, k' C, B, W): the inputs' taps, all rows at once
        inputs[:, (kx - 1) * C :].copy_(features.permute(2, 1, 0, 3))  # the centre tap
        _shift_taps(inputs.view(H, kx, C, n), W, kx - 1)
        reads[0, centre] = h0[:, None, None]
        state = offset.dtype
        # the states h in the state's dtype: the centre taps of ``reads`` themselves, unless mixed
        states = features.new_empty(H, hd, B, W, dtype=state) if mixed else reads[1:, centre]
        cells = features.new_empty(H + 1, hd, B, W, dtype=state)  # cells[r + 1]: c of row r
        cells[0] = c0[:, None, None]
        acts = features.new_empty(H, G, B, W, dtype=state)  # sigmoid(o, f, i), tanh(g)
        tanh_c = features.new_empty(H, hd, B, W, dtype=state)
        for r in range(H):
            _shift_taps(reads[r, : k * hd].view(k, hd, n), W, k // 2)
            a = acts[r].view(G, n)
            bias = offset if offset.dim() == 2 else offset[r].view(G, n)
            if mixed:  # the product in its dtype, the gates in the state's
                torch.add(bias, weights @ reads[r].view(K, n), out=a)
            else:
                torch.addmm(bias, weights, reads[r].view(K, n), out=a)
            o, f, i, g = acts[r].chunk(4)
            acts[r, : 3 * hd].sigmoid_()
            g.tanh_()
            torch.addcmul(f * cells[r], i, g, out=cells[r + 1])
            torch.tanh(cells[r + 1], out=tanh_c[r])
            torch.mul(o, tanh_c[r], out=states[r])  # h of row r, read by row r + 1
            if mixed:
                reads[r + 1, centre] = states[r]
        ctx.save_for_backward(weights, reads, acts, cells, tanh_c)
        ctx.k, ctx.taps, ctx.per_pixel_offset = k, kx, offset.dim() != 2
        return states

    @staticmethod
    def backward(ctx, grad_states):  # noqa: ANN001, ANN205
        weights, reads, acts, cells, tanh_c = ctx.saved_tensors
        H, G, B, W = acts.shape
        K, k, kx = weights.shape[1], ctx.k, ctx.taps
        hd, n = G // 4, B * W
        C = (K - k * hd) // kx
        mixed = weights.dtype != acts.dtype
        grad_states = grad_states.contiguous()
        grad_gates = grad_states.new_empty(H, G, B, W)
        # the gates' gradient as the products read it: itself, or a copy in their dtype if mixed
        grad_products = grad_gates.view(H, G, n)
        if mixed:
            grad_products = grad_states.new_empty(H, G, n, dtype=weights.dtype)
        grad_reads = grad_states.new_empty(H, K, B, W, dtype=weights.dtype)
        dh = grad_states.new_zeros(hd, B, W)  # from row r + 1 (none for the last)
        dc = grad_states.new_zeros(hd, B, W)
        weights_t = weights.T.contiguous()
        for r in reversed(range(H)):
            dh += grad_states[r]
            d = grad_gates[r]
            lstm_update_backward(acts[r], tanh_c[r], cells[r], dh, dc, d, dim=0)
            if mixed:
                grad_products[r].copy_(d.view(G, n))
            torch.mm(weights_t, grad_products[r], out=grad_reads[r].view(K, n))
            # the states of row r - 1, from every tap that read them (summed in the state's dtype)
            taps = grad_reads[r, : k * hd].view(k, hd, n).to(grad_states.dtype)
            dh = _unshift_taps(taps, W, k // 2).view(hd, B, W)
        # every row's weight gradient in one batched product, summed in the state's dtype
        rows = torch.bmm(grad_products, reads[:H].view(H, K, n).transpose(1, 2))
        d_matrix = rows.to(grad_states.dtype).sum(0)
        # the inputs of every row, from every tap that read them
        taps = grad_reads[:, k * hd :].view(H, kx, C, n).to(grad_states.dtype)
        grad_inputs = _unshift_taps(taps, W, kx - 1)
        grad_features = grad_inputs.view(H, C, B, W).permute(2, 1, 0, 3)
        grad_offset = grad_gates if ctx.per_pixel_offset else grad_gates.sum((0, 2, 3))[:, None]
        d_h0, d_c0 = dh.sum((1, 2)), dc.sum((1, 2))
        return grad_features, d_matrix, grad_offset, d_h0, d_c0, None, None
