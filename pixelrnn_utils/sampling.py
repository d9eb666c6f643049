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

from .cached_sampling import CACHED
from .conditioning import subsample_mask
from .model import MultiScalePixelRNN, PixelRNN
from .progress import progress_bar
from .settings import exact_float32

__all__ = [
    "CACHED",
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
    every draw both see the same sub-pixels before it. They compute the logits with different
    kernels (a convolution over the image, matrix products over one column), whose float32
    probabilities agree to about 1e-5 on a CPU and 1e-4 on a GPU: on a CPU a uniform almost never
    falls between the two CDFs and ``sample`` gives the same images with either method; on a GPU
    that happens about once in a few thousand draws, and from there on two sampled images part
    ways. This measures that: the largest difference of
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
