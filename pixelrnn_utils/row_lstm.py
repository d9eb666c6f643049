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
import torch.nn.functional as F
from torch import nn

from .conditioning import condition_bias_conv
from .masks import MaskedConv2d

__all__ = [
    "RowLSTM",
    "initial_state_parameters",
    "initial_states",
    "lstm_update",
    "lstm_derivative_factors",
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


def lstm_derivative_factors(
    acts: torch.Tensor, tanh_c: torch.Tensor, c_prev: torch.Tensor, dim: int
) -> torch.Tensor:
    """What the fast recurrences' hand-written backward multiplies dh and dc by, every step at once.

    ``acts``: the activated gates ``[sigmoid(o); sigmoid(f); sigmoid(i); tanh(g)]`` stacked on
    ``dim``; ``tanh_c`` = tanh(c) and ``c_prev``, the cell state the update read, each shaped
    like one gate. The derivatives of :func:`lstm_update` (h = o tanh(c), c = f c_prev + i g;
    sigmoid' = s (1 - s), tanh' = 1 - tanh^2) are, with dh and dc the gradients of h and c:

        dc += dh * o (1 - tanh(c)^2)
        d_o = dh * tanh(c) o (1 - o)
        [d_f, d_i, d_g] = dc * [c_prev f (1 - f), g i (1 - i), i (1 - g^2)]
        dc_prev = dc * f

    Returns the five factors ``[o (1 - tanh(c)^2), tanh(c) o (1 - o), c_prev f (1 - f),
    g i (1 - i), i (1 - g^2)]`` stacked on a new first dimension, each shaped like one gate.
    They depend only on the forward pass, so they are computed for every row (column) before
    the backward's loop, which then takes a few products per step.
    """
    o, f, i, g = acts.chunk(4, dim)
    one = acts.new_ones(())
    sig = acts.narrow(dim, 0, 3 * o.shape[dim])
    slope_o, slope_f, slope_i = torch.addcmul(sig, sig, sig, value=-1).chunk(3, dim)  # s (1 - s)
    factors = acts.new_empty(5, *o.shape)
    torch.addcmul(one, tanh_c, tanh_c, value=-1, out=factors[0]).mul_(o)
    torch.mul(slope_o, tanh_c, out=factors[1])
    torch.mul(slope_f, c_prev, out=factors[2])
    torch.mul(slope_i, g, out=factors[3])
    torch.addcmul(one, g, g, value=-1, out=factors[4]).mul_(i)
    return factors


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
    """A whole Row LSTM recurrence in few, large operations; the fast path of :class:`RowLSTM`.

    ``features`` ``(B, C, H, W)``: the layer's input; ``input_weight`` ``(4h, C, k')``: the
    input-to-state kernel (masked) up to its centre, tap t reading the column k' - 1 - t to
    the left; ``state_weight`` ``(4h, h, k)``: the state-to-state kernel; ``bias`` ``(4h,)``:
    both convolutions' biases; ``extra`` ``(B, 4h, H, W)``: added to the gates (the
    conditioning), or None; ``h0``, ``c0`` ``(h,)``: learned initial states, or None for zero;
    ``product_dtype``: the dtype of the products (bf16 or fp16 under mixed precision; None: the
    state's). Returns the hidden states ``(B, h, H, W)``, what the readable loop of
    :meth:`RowLSTM.recurrence` computes (the tests check outputs and gradients), in the
    state's dtype (float32; float64 for a float64 model). What makes it fast:

    * **one matrix product per row** computes both convolutions and the bias: ``[W_ss | W_is |
      b]`` times ``[the k shifted copies of the previous row's states; the k' shifted copies of
      this row's inputs; ones]``. The inputs' copies do not depend on the recurrence: they are
      laid out for every row in one copy before the loop;
    * the k taps of a row's states are k overlapping views of one flat buffer, the B images'
      rows side by side: one multiplication by a 0/1 mask lays them out for the product and
      zeroes what a tap reads past its image's edge (the convolution's zero padding), where
      the view runs into the neighbouring image (no per-row shifting, no zero columns);
    * the layout is feature first, ``(features, B x W)``: the gates o, f, i, g are
      contiguous blocks, and the product reads and writes whole rows of them;
    * a **hand-written backward** (:class:`_RowRecurrence`) of eight operations per row.

    (One product per row, rather than the input-to-state product for the whole map before the
    loop, is what a CPU runs fastest: each row's product and gates stay in its caches; a GPU
    launches the same number of kernels either way.)

    Under mixed precision the products (and the gates' pre-activations, as the readable loop's
    bf16 convolutions give them) are in ``product_dtype``; the LSTM state c, the hidden state h
    and the activations are in the state's dtype.
    """
    dtype = state_dtype(features)
    product_dtype = product_dtype or dtype
    B, C, H, W = features.shape
    G, hd, k = state_weight.shape
    pad, taps = k // 2, input_weight.shape[2]
    n = B * W  # columns of one row
    # The layer's input in the layout (C, H, B, W), flat, after ``pad`` zeros: input tap t of
    # column q reads column q - pad + t, which is t positions on from q.
    inputs = F.pad(features.to(product_dtype).permute(1, 2, 0, 3).reshape(-1), (pad, 0))
    # the conditioning, row by row: what every row's gates add to its product
    offset = None
    if extra is not None:
        offset = extra.to(product_dtype).permute(2, 1, 0, 3).reshape(H, G, n)
    # both kernels and the bias as one matrix: the state-to-state taps, the input-to-state
    # taps, then the bias (the product's last row of reads is ones)
    matrix = torch.cat(
        [
            F.pad(state_weight.permute(0, 2, 1), (0, 1)).reshape(G, k * (hd + 1)),
            input_weight.permute(0, 2, 1).reshape(G, taps * C),
            bias[:, None],
        ],
        dim=1,
    ).to(dtype)
    h_init, c_init = (
        s.to(dtype)[:, None].expand(hd, n)
        if s is not None
        else features.new_zeros(hd, n, dtype=dtype)
        for s in (h0, c0)
    )
    # which columns each of the k taps reads inside its own image (the input's k' taps, which
    # read up to the centre, are the first k' of them)
    inside = _inside(k, pad, W, B, inputs)
    states = _RowRecurrence.apply(
        inputs, offset, matrix, h_init, c_init, inside, taps
    )  # (H, h, B W)
    return states.view(H, hd, B, W).permute(2, 1, 0, 3)


def _inside(taps: int, pad: int, width: int, batch: int, like: torch.Tensor) -> torch.Tensor:
    """``(taps, B W)``: 1 where tap t of a column reads a column of its own image (t - pad
    columns on), 0 where it would read past the image's edge; ``like``'s dtype and device."""
    inside = like.new_ones(taps, batch, width)
    for t in range(taps):
        if t < pad:  # reads to the left: the first pad - t columns would read the image before
            inside[t, :, : pad - t] = 0
        elif t > pad:  # reads to the right: the last t - pad columns would read the next image
            inside[t, :, width - (t - pad) :] = 0
    return inside.view(taps, batch * width)


class _RowRecurrence(torch.autograd.Function):
    """The row loop of :func:`row_recurrence`, its backward written out by hand.

    ``inputs``: the layer's input, flat, in the layout of :func:`row_recurrence`; ``offset``
    ``(H, 4h, n)``: what every row's gates add (the conditioning; n = B x W columns), or None;
    ``matrix`` ``(4h, k (h + 1) + k' C + 1)``: the state-to-state kernel (tap-major, each tap
    followed by a zero column), the input-to-state kernel (tap-major), then the bias;
    ``h_init``, ``c_init`` ``(h, n)``: the states of row -1; ``inside``: the mask of
    :func:`_inside` for the k taps (the input's ``taps`` = k' are its first k').
    ``reads[r]`` stacks what row r's product reads: the k shifted copies of the states of row
    r - 1 (each h + 1 rows: the last one, whatever the view reads there, meets the zero
    column), then the k' shifted copies of row r's inputs (laid out for every row at once,
    before the loop) and a row of ones, each copy zero where it would read past its image's
    edge. Forward, row r, for every image and column at once:

        gates = offset[r] + matrix @ reads[r]
        o, f, i = sigmoid(gates[:3h]);  g = tanh(gates[3h:])
        c_r = f * c_{r-1} + i * g;  h_r = o * tanh(c_r)

    Backward walks the rows in reverse with the gradients dh, dc of h_r and c_r. The LSTM's
    derivatives are products of the dh and dc of the row with factors that the forward pass
    fixed; those factors are computed for all rows at once before the loop, so that a row takes
    four operations (``d`` the gates' gradient):

        dc += dh * o (1 - tanh(c)^2)
        d_o = dh * tanh(c) o (1 - o)
        [d_f, d_i, d_g] = dc * [c_{r-1} f (1 - f), g i (1 - i), i (1 - g^2)]
        dc *= f                                 (the gradient of c_{r-1})

    then ``d_reads[r] = matrix^T @ d``: its state taps, masked as in the forward, moved back to
    the columns they read and summed, are the gradient of h_{r-1} (what a view reads past the
    end of a feature's row is a zero row's: 0). After the loop the inputs' taps are moved back
    the same way (the gradient of ``inputs``), ``d_matrix`` = the sum over rows of
    ``d @ reads[r]^T`` (one batched product), and the gradient of ``offset`` (when it has one)
    is ``d``.
    """

    @staticmethod
    def forward(ctx, inputs, offset, matrix, h_init, c_init, inside, taps):  # noqa: ANN001, ANN205
        G, K = matrix.shape
        hd, n = G // 4, h_init.shape[1]
        k = inside.shape[0]
        # S: the rows of ``reads`` that hold the state's taps, hd + 1 each: one more row that the
        # matrix multiplies by zero, so that a tap's view running past its last column or before
        # its first reads it, not the next tap's (and the backward moves back a zero from it)
        pad, S = k // 2, k * (hd + 1)
        C = (K - S - 1) // taps  # taps: k', the input's
        N = (inputs.numel() - pad) // C  # columns of the whole map
        H = N // n
        weights = matrix.to(inputs.dtype)  # the products' dtype; the gradient stays matrix's
        reads = inputs.new_empty(H, K, n)  # in the products' dtype
        # input tap t, feature c, row r, column q reads the map at t + c N + r n + q
        taps_in = reads[:, S:-1].view(H, taps, C, n)
        taps_in.copy_(inputs.as_strided((H, taps, C, n), (n, 1, N, 1))).mul_(inside[:taps, None])
        # the states' mask as a whole tensor, first in the product below: the layout of its
        # result (traced, its ``out=`` becomes a copy) follows the first operand
        mask = h_init.new_empty(k, hd + 1, n).copy_(inside[:, None])  # in the state's dtype
        reads[:, -1] = 1  # what the bias multiplies
        # hs[r + 1]: the states h of row r, flat, with ``pad`` zeros before and after (the
        # strides below are computed, not read: torch.compile in PyTorch 2.6 cannot read them)
        row = hd * n + 2 * pad
        hs = h_init.new_zeros(H + 1, row)
        hs[0, pad : pad + hd * n] = h_init.flatten()
        gates = reads.new_empty(G, n)
        acts = h_init.new_empty(H, 4, hd, n)  # sigmoid(o, f, i), tanh(g)
        cells = h_init.new_empty(H + 1, hd, n)  # cells[r + 1]: c of row r
        cells[0] = c_init
        tanh_c = h_init.new_empty(H, hd, n)
        for r in range(H):
            # state tap t of feature j, column p: h of column p + t - pad, at j n + p + t in hs[r]
            taps_r = hs.as_strided((k, hd + 1, n), (1, n, 1), r * row)
            torch.mul(mask, taps_r, out=reads[r, :S].view(k, hd + 1, n))
            if offset is None:
                torch.mm(weights, reads[r], out=gates)
            else:
                torch.addmm(offset[r], weights, reads[r], out=gates)
            torch.sigmoid(gates[: 3 * hd].view(3, hd, n), out=acts[r, :3])
            torch.tanh(gates[3 * hd :], out=acts[r, 3])
            o, f, i, g = acts[r]
            torch.mul(f, cells[r], out=cells[r + 1]).addcmul_(i, g)
            torch.tanh(cells[r + 1], out=tanh_c[r])
            torch.mul(o, tanh_c[r], out=hs[r + 1, pad : pad + hd * n].view(hd, n))
        ctx.save_for_backward(weights, reads, acts, cells, tanh_c, inside)
        ctx.sizes = taps, C, N
        return hs[1:, pad : pad + hd * n].view(H, hd, n)

    @staticmethod
    def backward(ctx, grad_states):  # noqa: ANN001, ANN205
        weights, reads, acts, cells, tanh_c, inside = ctx.saved_tensors
        taps, C, N = ctx.sizes
        k = inside.shape[0]
        H, _, hd, n = acts.shape
        pad, S, K = k // 2, k * (hd + 1), reads.shape[1]
        # the factors of the LSTM's derivatives, every row at once (see the class docstring)
        factors = lstm_derivative_factors(acts, tanh_c[:, None], cells[:H, None], dim=1)[:, :, 0]
        f = acts[:, 1]
        grad_gates = grad_states.new_empty(H, 4, hd, n, dtype=weights.dtype)
        # d_reads[r]: the gradient of reads[r]; d_reads[H]'s state taps: zero (no row H)
        d_reads = grad_states.new_empty(H + 1, *reads.shape[1:], dtype=weights.dtype)
        d_reads[H, :S].zero_()
        dc = grad_states.new_zeros(hd, n)

        def moved_back(r: int) -> torch.Tensor:
            # the gradient of h_{r-1} from row r's k state taps: tap t of column p read h of
            # column p + t - pad, so it is found at t (hd + 1) n + j n + p - t + pad in d_reads[r]
            at = r * K * n + pad  # d_reads[r]'s first element is r K n on
            moved = d_reads.as_strided((k, hd, n), ((hd + 1) * n - 1, n, 1), at)
            return moved.sum(0, dtype=dc.dtype)

        for r in reversed(range(H)):
            dh = grad_states[r] + moved_back(r + 1)
            dc.addcmul_(dh, factors[0, r])
            torch.mul(dh, factors[1, r], out=grad_gates[r, 0])
            torch.mul(factors[2:, r], dc, out=grad_gates[r, 1:])
            dc.mul_(f[r])
            torch.mm(weights.T, grad_gates[r].view(4 * hd, n), out=d_reads[r])
            # what a tap read past its image's edge came from no h of this image
            d_reads[r, :S].view(k, hd + 1, n).mul_(inside[:, None])
        # the inputs' gradient: input tap t of row r, column q read the map at t + c N + r n + q
        d_inputs = d_reads.new_zeros(C * N + pad)
        for t in range(taps):
            rows = d_reads[:H, S + t * C : S + (t + 1) * C].transpose(0, 1)  # (C, H, n)
            d_inputs[t : t + C * N].view(C, H, n).addcmul_(rows, inside[t])
        grad = grad_gates.view(H, 4 * hd, n)
        d_offset = grad if ctx.needs_input_grad[1] else None  # (H, 4h, n): the conditioning's
        d_matrix = torch.bmm(grad, reads.transpose(1, 2)).sum(0, dtype=dc.dtype)
        return d_inputs, d_offset, d_matrix, moved_back(0), dc, None, None
