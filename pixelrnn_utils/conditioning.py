"""Conditioning: what a model is told besides the image, entering every layer as a bias.

Paper §3.6 (Multi-Scale PixelRNN) conditions a PixelRNN on a c x n x n **conditioning map**: every
layer has its own **1x1 unmasked convolution** from that map to 4h x n x n, added to the layer's
input-to-state map (so to all four LSTM gates). The map is a given, not a part of the image being
modelled, so it may reach every output; the image still reaches an output only from its past
(``causality.dependency_map(..., condition=...)`` checks both). Each layer's share of this is
``layer.condition_bias``; the layers add it (``row_lstm``, ``diagonal_bilstm``, ``pixelcnn``).

This module makes the map from what the model is given:

* :class:`ClassEmbedding`, for a **class label** (``build_model(..., classes=K)``): a learned
  c-vector per class, the same at every position (broadcast to c x n x n).

  *Conditional PixelCNN* (van den Oord et al. 2016, arXiv 1606.05328; not the PixelRNN paper) does
  the same thing inside a gated activation: ``tanh(W_f * x + V_f^T h) * sigmoid(W_g * x + V_g^T h)``
  with ``h`` the one-hot class, i.e. each layer has its own learned vector per class, added at
  every position. Here there is no gate: the vector goes into the LSTM's input-to-state (all four
  gates o, f, i, g; in the PixelCNN block, into its masked convolution's output). And the vectors
  are factored: one shared embedding E (a c-vector per class), then each layer's own 1x1
  convolution W, so layer l's bias for class y is ``W_l E[y] + b_l``. A 1x1 convolution of a map
  that is the same everywhere is one vector, so this is their ``V^T h`` with ``V_l = W_l E``, of
  rank at most c (with c >= K classes, any per-layer vectors).
* :class:`Upsampler`, for a **small image** (Multi-Scale, ``build_model(..., upsample=f)``): the
  paper's "convolutional network with deconvolutional layers" from the s x s image to c x n x n,
  n = f s.

The map has c = ``hidden`` features (``condition_features``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .settings import reads_values

__all__ = [
    "ClassEmbedding",
    "Upsampler",
    "condition_bias_conv",
    "label_mixture_nll",
    "subsample",
    "subsample_mask",
    "upsample_nearest",
]


def condition_bias_conv(condition_channels: int | None, out_channels: int) -> nn.Conv2d | None:
    """A layer's own 1x1 unmasked convolution of the conditioning map (paper §3.6); ``None``
    (no parameters at all) for an unconditioned layer."""
    if condition_channels is None:
        return None
    return nn.Conv2d(condition_channels, out_channels, 1)


class ClassEmbedding(nn.Module):
    """Labels ``(B,)`` (long, ``0..K-1``) -> conditioning map ``(B, c, H, W)``, one learned
    c-vector per class broadcast over the image."""

    def __init__(self, classes: int, features: int) -> None:
        super().__init__()
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
            raise ValueError(f"classes must be an integer >= 2, got {classes!r}")
        self.classes = classes
        self.embedding = nn.Embedding(classes, features)

    def check(self, labels: torch.Tensor, batch: int) -> None:
        """Refuse labels that are not ``batch`` class numbers ``0..K-1``, saying what was given."""
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point():
            raise ValueError(
                f"condition must be a long tensor of {batch} class labels, got {labels!r}"
            )
        if labels.shape != (batch,):
            raise ValueError(
                f"condition must be {batch} class labels of shape ({batch},), "
                f"got shape {tuple(labels.shape)}"
            )
        # the values only where reading them costs no host sync (settings.values_checked)
        if labels.numel() and reads_values() and (labels.min() < 0 or labels.max() >= self.classes):
            raise ValueError(
                f"class labels must be in 0..{self.classes - 1} for this model "
                f"({self.classes} classes), got {sorted(set(labels.tolist()))}"
            )

    def forward(self, labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        vectors = self.embedding(labels.long())  # (B, c)
        return vectors[:, :, None, None].expand(-1, -1, *size)


class Upsampler(nn.Module):
    """Small image ``(B, C, s, s)`` (long, ``0..L-1``) -> conditioning map ``(B, c, f s, f s)``.

    A 3x3 convolution (C -> c) of the scaled small image, then log2(f) transposed convolutions
    (4x4, stride 2: each doubles the size), with ReLUs between. Nothing here is masked: the small
    image is given in full before the big one is drawn.
    """

    def __init__(self, in_channels: int, features: int, factor: int, levels: int = 256) -> None:
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
            raise ValueError(f"upsample must be a power of 2 from 2 up, got {factor!r}")
        steps = round(math.log2(factor))
        if 2**steps != factor:
            raise ValueError(f"upsample must be a power of 2 (2, 4, 8, ...), got {factor}")
        self.factor, self.levels, self.in_channels = factor, levels, in_channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, features, 3, padding=1)]
        for _ in range(steps):
            layers += [nn.ReLU(), nn.ConvTranspose2d(features, features, 4, stride=2, padding=1)]
        self.net = nn.Sequential(*layers)

    def check(self, small: torch.Tensor, batch: int, size: tuple[int, int]) -> None:
        """Refuse a small image of the wrong shape or values, saying what is expected."""
        expected = (batch, self.in_channels, size[0] // self.factor, size[1] // self.factor)
        if size[0] % self.factor or size[1] % self.factor:
            raise ValueError(
                f"images of {size[0]} x {size[1]} cannot be subsampled by {self.factor}"
            )
        if not isinstance(small, torch.Tensor) or tuple(small.shape) != expected:
            shape = tuple(small.shape) if isinstance(small, torch.Tensor) else small
            raise ValueError(
                f"condition must be the small image {expected} (subsample(x, {self.factor})), "
                f"got {shape}"
            )

    def forward(self, small: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        scaled = small.to(self.net[0].weight.dtype) / ((self.levels - 1) / 2) - 1.0
        return self.net(scaled)


def subsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """The s x s image of the Multi-Scale PixelRNN: every ``factor``-th pixel of every
    ``factor``-th row, starting at (0, 0). A strided subsample keeps the values as they are
    (a binary image stays binary), so the small image is a function of the big one: pixel (k, l)
    of it *is* pixel (k f, l f) of the big one."""
    return x[..., ::factor, ::factor]


def subsample_mask(shape: tuple[int, ...], factor: int, device=None) -> torch.Tensor:
    """Bool ``shape`` (``(..., H, W)``): True at the pixels :func:`subsample` keeps."""
    mask = torch.zeros(shape, dtype=torch.bool, device=device)
    mask[..., ::factor, ::factor] = True
    return mask


def upsample_nearest(small: torch.Tensor, factor: int) -> torch.Tensor:
    """Each small pixel repeated ``factor`` x ``factor`` times: how the small image is shown
    under the big one."""
    return F.interpolate(small.float(), scale_factor=factor, mode="nearest").to(small.dtype)


def label_mixture_nll(log_likelihoods: torch.Tensor) -> torch.Tensor:
    """A class-conditional model used without its label: ``(N, K)`` log p(x | y) in nats (every
    image under every class) -> ``(N,)`` -log p(x), nats, of the mixture p(x) = sum_y p(x | y) / K.

    Since p(x) >= p(x | y) / K for the true y, this NLL is at most the conditional one + ln K: a
    label of K equally likely classes is worth at most log2 K bits per image.
    """
    K = log_likelihoods.shape[1]
    return -(torch.logsumexp(log_likelihoods.double(), dim=1) - math.log(K))
