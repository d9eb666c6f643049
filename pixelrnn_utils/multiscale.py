"""The Multi-Scale PixelRNN (paper §3.6): a small image first, then the big one conditioned on it.

Two PixelRNNs of the same architecture and size:

1. ``small``: an **unconditional** PixelRNN of the s x s image ``subsample(x, f)`` (every f-th
   pixel of every f-th row; s = n / f);
2. ``big``: a **conditional** PixelRNN of the n x n image (``build_model(..., upsample=f)``): an
   upsampling network with transposed convolutions turns the small image into a c x n x n map,
   and every layer adds its own 1x1 unmasked convolution of that map to its input-to-state map.

**What the likelihood is a likelihood of.** The small image is a function of the big one: its
pixel (k, l) *is* pixel (k f, l f) of x. So the pixels the big stage would draw there are already
known; this course's big stage does not draw them again: sampling copies them from the small
image (``sample`` with those pixels as a prefix), and they cost the big stage nothing. That makes
the model a distribution over n x n images, whose log-likelihood is exactly the sum of the two
stages:

    -log p(x) = -log p_small(s) - sum over the n^2 - s^2 other sub-pixels of -log p_big(x_k | x_<k, s)

with s = subsample(x, f). ``model(x)`` returns logits ``(B, L, C, n, n)`` that say just this: at
the pixels of s the small stage's logits, elsewhere the big stage's, so ``F.cross_entropy(logits,
x)`` is the per-sub-pixel NLL of x and bits/dim compare with a single-scale model's on the same
images. (The paper's big stage generates all n x n pixels; then the sum of the two stages is the
NLL of the pair (s, x) and only bounds that of x from above, since the sampler could produce an x
whose subsample is not s. ``nll_parts`` reports both.) The order of the sub-pixels is not raster
order: first the pixels of s (in raster order), then the others; ``tests/test_multiscale.py``
checks that each logit depends only on sub-pixels before it in that order.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .conditioning import subsample, subsample_mask
from .model import PixelRNN

__all__ = ["MultiScalePixelRNN", "sample_multiscale", "multiscale_order"]


class MultiScalePixelRNN(nn.Module):
    """``small`` (unconditional, s x s) + ``big`` (conditioned on the small image, n x n).

    ``multiscale`` is f = n / s (a power of 2: 2 for 28 -> 14, 4 for 28 -> 7). Images
    ``(B, C, n, n)`` -> logits ``(B, L, C, n, n)`` of the exact likelihood (module docstring).
    """

    def __init__(
        self,
        arch: str,
        in_channels: int = 3,
        hidden: int = 64,
        layers: int = 4,
        multiscale: int = 2,
        levels: int = 256,
        **options: Any,
    ) -> None:
        super().__init__()
        for name in ("classes", "upsample"):
            if options.get(name) is not None:
                raise ValueError(f"multiscale builds its own conditioning; drop {name}=")
            options.pop(name, None)
        self.factor = multiscale
        self.small = PixelRNN(arch, in_channels, hidden, layers, levels=levels, **options)
        self.big = PixelRNN(
            arch, in_channels, hidden, layers, levels=levels, upsample=multiscale, **options
        )
        self.config: dict[str, Any] = {**self.small.config, "multiscale": multiscale}
        self.in_channels, self.levels, self.classes = in_channels, levels, None

    def check_input(self, x: torch.Tensor) -> None:
        self.big.check_input(x)
        if x.shape[2] % self.factor or x.shape[3] % self.factor:
            raise ValueError(
                f"images of {x.shape[2]} x {x.shape[3]} cannot be subsampled by {self.factor}"
            )

    def stage_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(small logits (B, L, C, s, s), big logits (B, L, C, n, n))`` of images ``x``."""
        self.check_input(x)
        small = subsample(x, self.factor)
        return self.small(small), self.big(x, condition=small)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, L, C, n, n)``: the small stage's at the pixels of s, the big one's elsewhere."""
        if condition is not None:
            raise ValueError("a Multi-Scale PixelRNN makes its own condition (the small image)")
        small_logits, logits = self.stage_logits(x)
        logits = logits.clone()
        logits[..., :: self.factor, :: self.factor] = small_logits
        return logits

    @torch.no_grad()
    def nll_parts(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image NLL in nats ``(B,)`` of each part of the likelihood.

        ``small``: -log p_small(s); ``big``: the big stage on the n^2 - s^2 pixels it draws;
        ``total`` = small + big = -log p(x), exact; ``big_on_known``: what the big stage would
        spend predicting the s^2 pixels it is given (the paper's variant adds this: the NLL of
        the pair (s, x)).
        """
        small_logits, big_logits = self.stage_logits(x)
        small = subsample(x, self.factor)
        per_small = F.cross_entropy(small_logits, small, reduction="none").flatten(1).sum(1)
        per_big = F.cross_entropy(big_logits, x, reduction="none")  # (B, C, n, n)
        known = subsample_mask(per_big.shape, self.factor, x.device)
        big = per_big.masked_fill(known, 0).flatten(1).sum(1)
        on_known = per_big.masked_fill(~known, 0).flatten(1).sum(1)
        return {"small": per_small, "big": big, "total": per_small + big, "big_on_known": on_known}


def multiscale_order(shape: tuple[int, int, int], factor: int) -> torch.Tensor:
    """Position ``[c, i, j]`` of every sub-pixel in the Multi-Scale order: first the pixels of the
    small image (raster order, then R, G, B), then all the others (raster order, then R, G, B)."""
    C, H, W = shape
    i = torch.arange(H)[None, :, None]
    j = torch.arange(W)[None, None, :]
    c = torch.arange(C)[:, None, None]
    raster = (i * W + j) * C + c
    small = ((i // factor) * (W // factor) + j // factor) * C + c
    known = subsample_mask((C, H, W), factor)
    return torch.where(known, small, C * H * W + raster)


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

    The small image is drawn by the small PixelRNN, then the big image by the conditional one,
    with the small image's pixels kept where they belong (a ``prefix``); ``sampling.sample``
    returns only the big one.
    """
    from .sampling import sample

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
