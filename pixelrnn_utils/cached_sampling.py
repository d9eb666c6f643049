"""The cached samplers: what each architecture keeps between the steps of :func:`sampling.sample`.

When sub-pixel (i, j, c) is drawn, everything that depends only on earlier pixels is final, so
each step computes one column of work instead of a whole forward pass: the 7x7 stem at (i, j),
then per layer what that layer needs there, then the head for colour c. :class:`_CachedModel`
does the stem and the head; one subclass per architecture keeps its layers' state
(``CACHED[arch]``): the Row LSTM the previous row's states and the current row's inputs, the
Diagonal BiLSTM its left states and the right map of the row above, PixelCNN each block's first
1x1 output, the Gated PixelCNN its vertical stack (a whole row at a time) and its horizontal
stack's inputs on the current row. ``tests/test_sampling.py`` checks that every one gives the naive sampler's images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .diagonal_bilstm import DiagonalBiLSTM, DiagonalLSTM
from .gated_pixelcnn import GatedBlock, gated
from .model import GatedPixelCNN, PixelRNN, preprocess
from .pixelcnn import PixelCNNBlock
from .row_lstm import RowLSTM, lstm_update

__all__ = ["CACHED"]


class _CachedModel:
    """Incremental forward pass: the stem and head at one position; layers are subclasses' job.

    ``x`` is the image being drawn (shared with :func:`sample`, which writes into it). The stem's
    7x7 mask-A window at (i, j) only covers rows i - 3 .. i, so it is one small matrix product.
    """

    def __init__(self, model: PixelRNN, x: torch.Tensor) -> None:
        self.model, self.x = model, x
        n, C, H, W = x.shape
        stem = model.stem
        self.r = r = stem.kernel_size[0] // 2  # stem radius (3 for 7x7)
        # mask A hides the rows below the centre: keep rows 0..r of the kernel only
        self.stem_w = stem.masked_weight()[:, :, : r + 1].reshape(stem.out_channels, -1)
        self.stem_b = stem.bias
        self.head_w1 = model.head[1].masked_weight()[:, :, 0, 0]
        self.head_b1 = model.head[1].bias
        self.head_w2 = model.head[3].masked_weight()[:, :, 0, 0].view(C, model.levels, -1)
        self.head_b2 = model.head[3].bias.view(C, model.levels)
        skips = model.skips or []
        self.skip_w = [skip.masked_weight()[:, :, 0, 0] for skip in skips]
        self.dtype = self.stem_w.dtype
        # the image drawn so far, scaled like the model's input, with the stem's zero padding
        self.image = x.new_zeros(n, C, H + 2 * r, W + 2 * r, dtype=self.dtype)
        self.row = 0

    biases: list[torch.Tensor] | None = None  # per layer, the conditioning bias (n, out, H, W)

    def condition_on(self, cond_map: torch.Tensor) -> None:
        """Each layer's conditioning bias for the whole image, computed once (it is all given)."""
        self.biases = [layer.condition_bias(cond_map) for layer in self.model.layers]

    def scaled(self, i: int, j: int) -> torch.Tensor:
        """Pixel (i, j) of the image drawn so far, scaled like the model's input."""
        return preprocess(self.x[:, :, i, j], self.dtype, self.model.levels)

    def zeros(self, *shape: int) -> torch.Tensor:
        return self.x.new_zeros(*shape, dtype=self.dtype)

    def new_row(self, i: int) -> None:
        """Row i starts: everything in rows before it is final."""

    def layer_at(self, index: int, layer, i: int, j: int, a: torch.Tensor) -> torch.Tensor:
        """Layer ``index``'s output at (i, j) from its input ``a`` ``(n, 2h)`` there."""
        raise NotImplementedError

    def pixel_done(self, i: int, j: int) -> None:
        """All colours of (i, j) are drawn: store the complete pixel for the next stems."""
        self.image[:, :, i + self.r, j + self.r] = self.scaled(i, j)

    def __call__(self, i: int, j: int, c: int, want_logits: bool) -> torch.Tensor | None:
        if i != self.row:
            self.row = i
            self.new_row(i)
        r = self.r
        self.image[:, :, i + r, j + r] = self.scaled(i, j)
        patch = self.image[:, :, i : i + r + 1, j : j + 2 * r + 1].reshape(self.x.shape[0], -1)
        a = patch @ self.stem_w.T + self.stem_b  # stem output at (i, j): (n, 2h)
        total = 0
        for index, layer in enumerate(self.model.layers):
            a = self.layer_at(index, layer, i, j, a)
            if self.skip_w:  # skip connections: each layer's output through its own 1x1
                total = total + a @ self.skip_w[index].T + self.model.skips[index].bias
        if not want_logits:
            return None
        hidden = F.relu(F.relu(total if self.skip_w else a) @ self.head_w1.T + self.head_b1)
        return (hidden @ self.head_w2[c].T + self.head_b2[c]).float()


class _CachedRowLSTM(_CachedModel):
    """Row LSTM: per layer, the current row's inputs (for input-to-state), the previous row's
    states and their state-to-state contribution (computed once per row), the current row's states.
    """

    def __init__(self, model: PixelRNN, x: torch.Tensor) -> None:
        super().__init__(model, x)
        n, _, _, W = x.shape
        layers: list[RowLSTM] = list(model.layers)
        self.k = [
            layer.input_to_state.kernel_size[1] // 2 for layer in layers
        ]  # taps left of centre
        self.is_w = [
            layer.input_to_state.masked_weight()[:, :, 0, : k + 1]
            for layer, k in zip(layers, self.k, strict=True)
        ]
        self.out_w = [layer.output.masked_weight()[:, :, 0, 0] for layer in layers]
        feats = model.stem.out_channels
        self.inputs = [self.zeros(n, feats, W + k) for k in self.k]  # k zero columns on the left
        # row -1: zero, or the learned initial state; new_row(0) makes it the previous row
        states = [layer.initial_state(n, W, self.dtype, x.device) for layer in layers]
        self.h_cur = [h for h, _ in states]
        self.c_cur = [c for _, c in states]
        self.new_row(0)

    def new_row(self, i: int) -> None:
        self.h_prev, self.c_prev = self.h_cur, self.c_cur
        self.h_cur = [torch.zeros_like(h) for h in self.h_prev]
        self.c_cur = [torch.zeros_like(h) for h in self.h_prev]
        self.s2s = [
            layer.state_to_state(h) for layer, h in zip(self.model.layers, self.h_prev, strict=True)
        ]
        for buf in self.inputs:
            buf.zero_()

    def layer_at(self, index: int, layer: RowLSTM, i: int, j: int, a: torch.Tensor) -> torch.Tensor:
        k, buf = self.k[index], self.inputs[index]
        buf[:, :, j + k] = a
        window = buf[:, :, j : j + k + 1]  # layer inputs at (i, j - k) .. (i, j)
        gates = torch.einsum("nft,gft->ng", window, self.is_w[index])
        gates = gates + layer.input_to_state.bias + self.s2s[index][:, :, j]
        if self.biases is not None:
            gates = gates + self.biases[index][:, :, i, j]
        h, cell = lstm_update(gates, self.c_prev[index][:, :, j])
        self.h_cur[index][:, :, j] = h
        self.c_cur[index][:, :, j] = cell
        out = h @ self.out_w[index].T + layer.output.bias
        return a + out if layer.residual else out


class _CachedDiagonalBiLSTM(_CachedModel):
    """Diagonal BiLSTM without the skew: the left state at (i, j) needs the left states at
    (i, j - 1) and (i - 1, j), both already final in raster order. The right map row i needs the
    right states of row i - 1, which depend only on finished rows: they are computed once, right
    to left, when row i starts.
    """

    def __init__(self, model: PixelRNN, x: torch.Tensor) -> None:
        super().__init__(model, x)
        n, _, _, W = x.shape
        layers: list[DiagonalBiLSTM] = list(model.layers)
        feats = model.stem.out_channels
        self.inputs_prev = [self.zeros(n, feats, W) for _ in layers]  # layer inputs, row i - 1
        self.inputs = [self.zeros(n, feats, W) for _ in layers]  # layer inputs, row i
        shape = [(n, layer.left.hidden, W) for layer in layers]
        # states of row -1 (above the image): zero, or each direction's learned h0
        self.left_h_prev = [  # left states, row i - 1
            layer.left.initial_state(n, W, self.dtype, x.device)[0] for layer in layers
        ]
        self.left_h = [self.zeros(*s) for s in shape]  # left states, row i
        self.left_c = [self.zeros(*s) for s in shape]
        self.right_h = [  # right states, row i - 1 (the shifted map)
            layer.right.initial_state(n, W, self.dtype, x.device)[0] for layer in layers
        ]
        self.right_c = [self.zeros(*s) for s in shape]

    def _weights(self, direction: DiagonalLSTM) -> tuple[torch.Tensor, ...]:
        w = direction.state_to_state.weight  # (4h, h, 2): tap 0 = the state above, tap 1 = beside
        return direction.input_to_state.masked_weight()[:, :, 0, 0], w[:, :, 0], w[:, :, 1]

    def new_row(self, i: int) -> None:
        image_prev = self.image[:, :, i - 1 + self.r, self.r : self.image.shape[3] - self.r]
        for index, layer in enumerate(self.model.layers):
            self.inputs_prev[index], self.inputs[index] = (
                self.inputs[index],
                self.inputs_prev[index],
            )
            self.left_h_prev[index] = self.left_h[index].clone()
            bias = None  # the right direction's conditioning bias on row i - 1
            if self.biases is not None:
                bias = self.biases[index][:, 4 * layer.right.hidden :, i - 1]
            self._right_row(index, layer, self.inputs_prev[index], image_prev, bias)

    def _right_row(
        self, index: int, layer, inputs: torch.Tensor, image: torch.Tensor, bias=None
    ) -> None:
        """Right-to-left pass over the finished row: states (i, j) from (i, j + 1) and (i - 1, j)."""
        w_is, w_above, w_beside = self._weights(layer.right)
        right = layer.right
        above = self.right_h[index]
        h_row, c_row = torch.zeros_like(above), torch.zeros_like(above)
        n = above.shape[0]
        h, c = (s[:, :, 0] for s in right.initial_state(n, 1, self.dtype, above.device))
        full_context = layer.right_image  # the course's addition, None for the paper's layer
        w_img = None if full_context is None else full_context.weight[:, :, 0, 0]
        for j in reversed(range(inputs.shape[2])):
            gates = (
                inputs[:, :, j] @ w_is.T
                + right.input_to_state.bias
                + above[:, :, j] @ w_above.T
                + h @ w_beside.T
                + right.state_to_state.bias
            )
            if w_img is not None:
                gates = gates + image[:, :, j] @ w_img.T + full_context.bias
            if bias is not None:
                gates = gates + bias[:, :, j]
            h, c = lstm_update(gates, c)
            h_row[:, :, j], c_row[:, :, j] = h, c
        self.right_h[index], self.right_c[index] = h_row, c_row

    def layer_at(self, index: int, layer, i: int, j: int, a: torch.Tensor) -> torch.Tensor:
        self.inputs[index][:, :, j] = a
        w_is, w_above, w_beside = self._weights(layer.left)
        left = layer.left
        if j > 0:
            beside_h, beside_c = self.left_h[index][:, :, j - 1], self.left_c[index][:, :, j - 1]
        else:  # the state entering the row from the left: zero, or the learned h0, c0
            beside_h, beside_c = (
                s[:, :, 0] for s in left.initial_state(a.shape[0], 1, self.dtype, a.device)
            )
        gates = (
            a @ w_is.T
            + left.input_to_state.bias
            + self.left_h_prev[index][:, :, j] @ w_above.T
            + beside_h @ w_beside.T
            + left.state_to_state.bias
        )
        if self.biases is not None:  # the left direction's conditioning bias at (i, j)
            gates = gates + self.biases[index][:, : 4 * left.hidden, i, j]
        h, c = lstm_update(gates, beside_c)
        self.left_h[index][:, :, j], self.left_c[index][:, :, j] = h, c
        right = self.right_h[index][:, :, j]  # row -1 for i = 0: zero, or the learned h0
        out = (h + right) @ layer.output.masked_weight()[:, :, 0, 0].T + layer.output.bias
        return a + out if layer.residual else out


class _CachedPixelCNN(_CachedModel):
    """PixelCNN: per block, the output of its first 1x1 convolution (after the ReLU) at every
    position computed so far. At (i, j) a block computes that 1x1 at (i, j) alone, then its masked
    k x k convolution as one product over the window of rows i - k // 2 .. i (the rows below are
    masked out; the taps right of (i, j) on row i are masked too), then its last 1x1. Everything
    it reads of earlier rows is final: row i - 1 was finished before row i started.
    """

    def __init__(self, model: PixelRNN, x: torch.Tensor) -> None:
        super().__init__(model, x)
        n, _, H, W = x.shape
        layers: list[PixelCNNBlock] = list(model.layers)
        self.first = [layer.body[1] for layer in layers]  # 1x1, 2h -> h
        self.masked = [layer.body[3] for layer in layers]  # k x k, h -> h
        self.last = [layer.body[5] for layer in layers]  # 1x1, h -> 2h
        self.k = [conv.kernel_size[0] // 2 for conv in self.masked]  # the window's radius
        self.first_w = [conv.masked_weight()[:, :, 0, 0] for conv in self.first]
        self.masked_w = [  # rows 0 .. k of the kernel: the ones above and on the centre row
            conv.masked_weight()[:, :, : k + 1] for conv, k in zip(self.masked, self.k, strict=True)
        ]
        self.last_w = [conv.masked_weight()[:, :, 0, 0] for conv in self.last]
        # the first 1x1's output, with the k x k convolution's zero padding (k rows on top)
        self.hidden = [
            self.zeros(n, conv.out_channels, H + k, W + 2 * k)
            for conv, k in zip(self.first, self.k, strict=True)
        ]

    def layer_at(
        self, index: int, layer: PixelCNNBlock, i: int, j: int, a: torch.Tensor
    ) -> torch.Tensor:
        k, hidden = self.k[index], self.hidden[index]
        u = F.relu(F.relu(a) @ self.first_w[index].T + self.first[index].bias)
        hidden[:, :, i + k, j + k] = u
        window = hidden[:, :, i : i + k + 1, j : j + 2 * k + 1]  # rows i - k .. i
        v = torch.einsum("nfyx,gfyx->ng", window, self.masked_w[index]) + self.masked[index].bias
        if self.biases is not None:  # the conditioning bias, added to the masked convolution
            v = v + self.biases[index][:, :, i, j]
        out = F.relu(v) @ self.last_w[index].T + self.last[index].bias
        return a + out if layer.residual else out


class _CachedGatedPixelCNN(_CachedModel):
    """Gated PixelCNN: the vertical stack at row i depends on the rows above only, so when row i
    starts it is computed for the whole row, layer by layer (each layer's vertical convolution
    applied to the rows it reads, ``VerticalConv2d``'s last output row). Per position only the
    horizontal stack is left: its 1 x k masked convolution over the layer's inputs on row i (kept
    like the Row LSTM's), plus the vertical stack's contribution at (i, j), gated, then the
    output 1x1.
    """

    def __init__(self, model: GatedPixelCNN, x: torch.Tensor) -> None:
        super().__init__(model, x)
        n, _, H, W = x.shape
        layers: list[GatedBlock] = list(model.layers)
        feats = model.stem.out_channels
        self.k = [layer.horizontal.kernel_size[1] // 2 for layer in layers]  # taps left of (i, j)
        self.rows = [layer.vertical.kernel_size[0] for layer in layers]  # rows it reads
        self.h_w = [
            layer.horizontal.masked_weight()[:, :, 0, : k + 1]
            for layer, k in zip(layers, self.k, strict=True)
        ]
        self.out_w = [layer.output.masked_weight()[:, :, 0, 0] for layer in layers]
        self.inputs = [self.zeros(n, feats, W + k) for k in self.k]  # k zero columns on the left
        # the vertical stack: each layer's input, every row (row i is filled when row i starts)
        self.vertical = [self.zeros(n, feats, H, W) for _ in range(len(layers) + 1)]
        self.to_horizontal: list[torch.Tensor] = []  # per layer, row i: (n, 2 feats, W)
        self.new_row(0)

    def new_row(self, i: int) -> None:
        model, r = self.model, self.r
        stem, rows = model.vertical_stem, model.vertical_stem.kernel_size[0]
        # image rows i - rows .. i (row i still being drawn): the last output row reads the others
        above = self.image[:, :, i + r - rows : i + r + 1, r : self.image.shape[3] - r]
        self.vertical[0][:, :, i] = stem(above)[:, :, -1]
        self.to_horizontal = []
        for index, layer in enumerate(model.layers):
            rows = self.vertical[index][:, :, max(0, i - self.rows[index] + 1) : i + 1]
            v_pre = layer.vertical(rows)[:, :, -1:]  # (n, 2 feats, 1, W)
            self.to_horizontal.append(layer.vertical_to_horizontal(v_pre)[:, :, 0])
            if self.biases is not None:  # the vertical stack's half of the conditioning bias
                v_pre = v_pre + self.biases[index][:, : v_pre.shape[1], i : i + 1]
            self.vertical[index + 1][:, :, i] = gated(v_pre)[:, :, 0]
        for buf in self.inputs:
            buf.zero_()

    def condition_on(self, cond_map: torch.Tensor) -> None:
        super().condition_on(cond_map)
        self.new_row(self.row)  # row 0's vertical stack was computed without the bias

    def layer_at(
        self, index: int, layer: GatedBlock, i: int, j: int, a: torch.Tensor
    ) -> torch.Tensor:
        k, buf = self.k[index], self.inputs[index]
        buf[:, :, j + k] = a
        window = buf[:, :, j : j + k + 1]  # layer inputs at (i, j - k) .. (i, j)
        h_pre = torch.einsum("nft,gft->ng", window, self.h_w[index]) + layer.horizontal.bias
        h_pre = h_pre + self.to_horizontal[index][:, :, j]
        if self.biases is not None:  # the horizontal stack's half of the conditioning bias
            h_pre = h_pre + self.biases[index][:, h_pre.shape[1] :, i, j]
        out = gated(h_pre) @ self.out_w[index].T + layer.output.bias
        return a + out if layer.residual else out


CACHED = {
    "row_lstm": _CachedRowLSTM,
    "diagonal_bilstm": _CachedDiagonalBiLSTM,
    "pixelcnn": _CachedPixelCNN,
    "gated_pixelcnn": _CachedGatedPixelCNN,
}
