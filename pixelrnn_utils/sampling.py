"""Sampling images from an autoregressive model, one sub-pixel at a time.

An image of C x H x W sub-pixels takes C * H * W sequential steps: sub-pixel (i, j, c) is drawn
from the model's distribution given everything drawn before it (raster order, R -> G -> B).

* ``method="naive"`` runs a full forward pass of the whole image for every step: simple, works for
  every architecture, and does H * W * C times the work of one forward pass.
* ``method="cached"`` (every architecture) keeps what earlier steps already computed. When pixel (i, j) is
  drawn, the Row LSTM states of row i - 1 are final, and the layer inputs at (i, j - 1) and before
  are final. So each step recomputes only one column: the 7x7 stem at (i, j), then per layer the
  input-to-state at (i, j), one LSTM update and the residual, then the head for colour c.
  State-to-state is computed once per row. That is O(layers) small matrix products per step
  instead of a whole forward pass. The Diagonal BiLSTM is cached the same way without any skew:
  its left state at (i, j) needs only the left states at (i, j - 1) and (i - 1, j), and its
  (shifted) right map for row i needs only row i - 1, computed once when row i starts. PixelCNN
  keeps each block's first 1x1 output: its masked k x k convolution at (i, j) reads only that
  output on rows i - k // 2 .. i, all final but (i, j) itself, computed at this step.

**Conditioned models** (``classes=K``, ``upsample=f``): ``condition=`` is passed to every forward
pass (naive); the cached sampler computes each layer's conditioning bias for the whole image once,
since the condition is given before the first pixel, and adds it at (i, j). A Multi-Scale model
(``multiscale=f``) is sampled in its two stages (:func:`sample_multiscale`): the small image by its
unconditioned PixelRNN, then the big one by the PixelRNN conditioned on it.

Both methods draw one uniform number per image per step from ``generator`` and turn it into a
value by inverse-CDF sampling, so with the same generator they return the same images.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .conditioning import subsample_mask
from .diagonal_bilstm import DiagonalBiLSTM, DiagonalLSTM
from .model import MultiScalePixelRNN, PixelRNN, preprocess
from .pixelcnn import PixelCNNBlock
from .progress import progress_bar
from .row_lstm import RowLSTM, lstm_update
from .settings import exact_float32

__all__ = [
    "sample",
    "sample_multiscale",
    "compare_samplers",
    "draw",
    "check_temperature",
    "MIN_TEMPERATURE",
]


def draw(logits: torch.Tensor, u: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Inverse-CDF sample from ``(n, L)`` logits with uniforms ``u`` ``(n,)`` in [0, 1).

    Temperature divides the logits: below 1 sharpens, above 1 flattens, -> 0 gives the argmax.
    Computed in float64 so that tiny float differences between methods almost never matter.
    """
    probs = F.softmax(logits.double() / temperature, dim=-1)
    cdf = probs.cumsum(-1)
    value = torch.searchsorted(cdf, (u.double() * cdf[:, -1]).unsqueeze(-1)).squeeze(-1)
    return value.clamp_(max=logits.shape[-1] - 1)


#: The lowest temperature sampled at: lower ones are the argmax already, and near 1e-308 the
#: logits divided by it overflow float64, which makes every probability NaN.
MIN_TEMPERATURE = 1e-6


def check_temperature(temperature: float) -> float:
    """``temperature`` if :func:`draw` can use it; else an error that says what it means.

    Infinity would flatten every distribution to uniform noise, and a temperature near 0 (below
    :data:`MIN_TEMPERATURE`) would give NaN probabilities and images of one value, both silently.
    """
    if not (math.isfinite(temperature) and temperature >= MIN_TEMPERATURE):
        raise ValueError(
            f"temperature must be a finite number from {MIN_TEMPERATURE:g} up (1: the model's own "
            f"distribution, 0.01: nearly its most likely values, 10: nearly uniform), got {temperature}"
        )
    return temperature


def _check(
    model: PixelRNN, n: int, shape: tuple[int, int, int], method: str, temperature: float
) -> None:
    if method not in ("naive", "cached"):
        raise ValueError(f"method must be 'naive' or 'cached', got {method!r}")
    check_temperature(temperature)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if len(shape) != 3 or shape[0] != model.in_channels or min(shape) < 1:
        raise ValueError(
            f"shape must be (C, H, W) with C = {model.in_channels} for this model, got {tuple(shape)}"
        )
    if method == "cached" and model.config["arch"] not in CACHED:
        raise ValueError(
            f"cached sampling is implemented for {sorted(CACHED)}; use method='naive' for "
            f"{model.config['arch']!r}"
        )


def _labels(condition, n: int, device) -> torch.Tensor | None:
    """``condition`` on ``device``: one int becomes ``n`` equal labels; None stays None."""
    if isinstance(condition, int):
        condition = torch.full((n,), condition, dtype=torch.long)
    return None if condition is None else torch.as_tensor(condition).to(device)


def _prefix(
    prefix, n: int, shape: tuple[int, int, int], device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Known values and mask, both ``(n, C, H, W)``."""
    if prefix is None:
        return torch.zeros(n, *shape, dtype=torch.long, device=device), torch.zeros(
            n, *shape, dtype=torch.bool, device=device
        )
    images, mask = prefix
    images = torch.as_tensor(images).to(device=device, dtype=torch.long)
    mask = torch.as_tensor(mask).to(device=device, dtype=torch.bool)
    try:
        return images.expand(n, *shape).clone(), mask.expand(n, *shape).clone()
    except RuntimeError as e:
        raise ValueError(
            f"prefix must be (images, mask), each broadcastable to (n, C, H, W) = ({n}, {shape[0]}, "
            f"{shape[1]}, {shape[2]}); got {tuple(images.shape)} and {tuple(mask.shape)}"
        ) from e


@torch.no_grad()
@exact_float32()  # TF32 convolutions (naive) and float32 matmuls (cached) would differ
def sample(
    model: PixelRNN,
    n: int,
    shape: tuple[int, int, int],
    method: str = "naive",
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    prefix: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = False,
    condition: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """Draw ``n`` images of ``shape = (C, H, W)``; returns long ``(n, C, H, W)`` in 0..L-1.

    ``prefix = (images, mask)`` gives image completion: where ``mask`` is True the value from
    ``images`` is kept exactly and the model fills in the rest. ``generator`` is a CPU
    ``torch.Generator``; the same generator state gives the same images with either method.
    ``condition``: for a class-conditional model the labels ``(n,)`` (or one int for all ``n``),
    for the conditional stage of a Multi-Scale model the small images ``(n, C, s, s)``.
    """
    if isinstance(model, MultiScalePixelRNN):
        if prefix is not None or condition is not None:
            raise ValueError("a Multi-Scale model is sampled whole: no prefix, no condition")
        return sample_multiscale(model, n, shape, method, temperature, generator, progress)[1]
    _check(model, n, shape, method, temperature)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    known, mask = _prefix(prefix, n, shape, device)
    x = torch.where(mask, known, torch.zeros_like(known))
    C, H, W = shape
    condition = _labels(condition, n, device)
    bar = progress_bar(
        total=C * H * W, desc=f"sampling ({method})", disable=not progress, leave=False
    )
    # float32 throughout, even inside a caller's autocast region: both samplers then compute the
    # same numbers, and the cached LSTM states stay float32
    with torch.autocast(device.type, enabled=False):
        cached = method == "cached"
        cond_map = model.condition_map(condition, n, (H, W))  # checks the condition
        step = CACHED[model.config["arch"]](model, x) if cached else _NaiveStepper(model, x)
        step.condition = condition
        if cached and cond_map is not None:
            step.condition_on(cond_map)
        for i, j, c in _raster_order(shape, step):
            u = torch.rand(n, generator=generator).to(device)
            if mask[:, c, i, j].all():
                value = known[:, c, i, j]
                step(i, j, c, want_logits=False)  # caches still see the pixel
            else:
                value = draw(step(i, j, c, want_logits=True), u, temperature)
                value = torch.where(mask[:, c, i, j], known[:, c, i, j], value)
            x[:, c, i, j] = value
            bar.update(1)
    bar.close()
    model.train(was_training)
    return x


def _raster_order(shape: tuple[int, int, int], *steppers) -> Iterator[tuple[int, int, int]]:
    """The sub-pixels ``(i, j, c)`` in the order they are drawn (row by row, R -> G -> B inside
    a pixel); the ``steppers`` are told when a pixel is complete (``pixel_done``)."""
    C, H, W = shape
    for i in range(H):
        for j in range(W):
            for c in range(C):
                yield i, j, c
            for step in steppers:
                step.pixel_done(i, j)


@torch.no_grad()
@exact_float32()
def compare_samplers(
    model: PixelRNN,
    n: int,
    shape: tuple[int, int, int],
    generator: torch.Generator | None = None,
    condition: torch.Tensor | int | None = None,
) -> dict[str, float | int]:
    """Naive and cached sampling of ``n`` images side by side, draw by draw.

    The naive sampler draws the images; the cached one is stepped along the same images, so at
    every draw both see the same sub-pixels before it. On a CPU their logits agree to the bit
    and ``sample`` gives identical images with either method. On a GPU they compute the logits
    with different kernels (a convolution over the image, matrix products over one column), and
    agree to about 1e-4: once in a few thousand draws a uniform falls between the two CDFs, and
    from there on two sampled images part ways. This measures that: the largest difference of
    the two samplers' probabilities at a draw (``max_prob_diff``), how many draws the cached
    sampler's probabilities would have drawn differently from the same uniform
    (``draws_differ``) out of ``draws``.
    """
    _check(model, n, shape, "cached", 1.0)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.zeros(n, *shape, dtype=torch.long, device=device)
    condition = _labels(condition, n, device)
    worst, differ, draws = 0.0, 0, 0
    with torch.autocast(device.type, enabled=False):
        cond_map = model.condition_map(condition, n, tuple(shape[1:]))
        naive, cached = _NaiveStepper(model, x), CACHED[model.config["arch"]](model, x)
        naive.condition = cached.condition = condition
        if cond_map is not None:
            cached.condition_on(cond_map)
        for i, j, c in _raster_order(shape, naive, cached):
            u = torch.rand(n, generator=generator).to(device)
            logits = [step(i, j, c, want_logits=True) for step in (naive, cached)]
            values = [draw(z, u) for z in logits]
            probs = [F.softmax(z.double(), dim=-1) for z in logits]
            worst = max(worst, float((probs[0] - probs[1]).abs().max()))
            differ += int((values[0] != values[1]).sum())
            draws += n
            x[:, c, i, j] = values[0]
    model.train(was_training)
    return {"max_prob_diff": worst, "draws_differ": differ, "draws": draws}


def sample_multiscale(
    model: MultiScalePixelRNN,
    n: int,
    shape: tuple[int, int, int],
    method: str = "naive",
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` images in two stages; returns ``(small (n, C, s, s), big (n, C, n, n))``.

    The small image is drawn by the small PixelRNN (``model.small``), then the big image by the
    conditional one (``model.big``), with the small image's pixels kept where they belong (a
    ``prefix``): pixel (k, l) of the small image is pixel (k f, l f) of the big one, f =
    ``model.factor``. :func:`sample` returns only the big one.
    """
    C, H, W = shape
    f = model.factor
    if H % f or W % f:
        raise ValueError(f"shape {tuple(shape)} cannot be subsampled by {f}")
    small = sample(
        model.small, n, (C, H // f, W // f), method, temperature, generator, None, progress
    )
    known = torch.zeros(n, C, H, W, dtype=torch.long, device=small.device)
    known[..., ::f, ::f] = small
    mask = subsample_mask(known.shape, f, small.device)
    big = sample(
        model.big,
        n,
        shape,
        method,
        temperature,
        generator,
        (known, mask),
        progress,
        condition=small,
    )
    return small, big


class _NaiveStepper:
    """One full forward pass of the partly drawn image ``x`` per step."""

    condition: torch.Tensor | None = None  # passed to every forward pass

    def __init__(self, model: PixelRNN, x: torch.Tensor) -> None:
        self.model, self.x = model, x

    def __call__(self, i: int, j: int, c: int, want_logits: bool) -> torch.Tensor | None:
        if not want_logits:
            return None
        return self.model(self.x, self.condition)[:, :, c, i, j].float()

    def pixel_done(self, i: int, j: int) -> None:
        """Nothing is cached."""


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


CACHED = {
    "row_lstm": _CachedRowLSTM,
    "diagonal_bilstm": _CachedDiagonalBiLSTM,
    "pixelcnn": _CachedPixelCNN,
}
