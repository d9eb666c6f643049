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

    -log p(x) = -log p_small(s) + sum over the C (n^2 - s^2) other sub-pixels of -log p_big(x_k | x_<k, s)

with s = subsample(x, f). ``model(x)`` returns logits ``(B, L, C, n, n)`` that say just this: at
the pixels of s the small stage's logits, elsewhere the big stage's, so ``F.cross_entropy(logits,
x)`` is the per-sub-pixel NLL of x and bits/dim compare with a single-scale model's on the same
images. (The paper's big stage generates all n x n pixels; then the sum of the two stages is the
NLL of the pair (s, x) and only bounds that of x from above, since the sampler could produce an x
whose subsample is not s. ``nll_parts`` reports both.) The order of the sub-pixels is not raster
order: first the pixels of s (in raster order), then the others; ``tests/test_multiscale.py``
checks that each logit depends only on sub-pixels before it in that order.

Where the code is: the model, :class:`MultiScalePixelRNN`, is in ``model.py`` (so that
``build_model(..., multiscale=f)`` builds it) and its two-stage sampler, :func:`sample_multiscale`,
in ``sampling.py`` (so that ``sample`` draws from it); both are re-exported here, with
:func:`multiscale_order`, the order the likelihood follows.
"""

from __future__ import annotations

import torch

from .conditioning import subsample_mask
from .model import MultiScalePixelRNN
from .sampling import sample_multiscale

__all__ = ["MultiScalePixelRNN", "sample_multiscale", "multiscale_order"]


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
