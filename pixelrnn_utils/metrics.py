"""Negative log-likelihood and bits per dimension.

A model's logits ``(B, L, C, H, W)`` define an L-way categorical distribution for every
sub-pixel (L = ``levels``: 256 for 8-bit images, 2 for binarized MNIST). The loss is the mean
negative log-likelihood in **nats** over all B * C * H * W sub-pixels; **bits/dim** is that mean
divided by ln 2. A uniform model assigns 1/L to every value, so its NLL is ln L nats = log2 L bits
per sub-pixel: exactly 8 at L = 256, 1 at L = 2. An image of D = C * H * W sub-pixels costs
``bits_per_dim * D * ln 2`` nats in all (the unit of the paper's MNIST table). Numbers compare
only at equal L: fewer levels are fewer bits to predict.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .settings import reads_values

__all__ = [
    "check_values",
    "nll_per_subpixel",
    "nll",
    "bits_per_dim",
    "bits_per_dim_by_row",
    "nats_to_bits_per_dim",
    "bits_per_dim_to_nats_per_image",
    "nats_per_image_to_bits_per_dim",
]

LN2 = math.log(2.0)


def _check(logits: torch.Tensor, x: torch.Tensor) -> None:
    if logits.dim() != 5 or logits.shape[0:1] + logits.shape[2:] != x.shape:
        raise ValueError(
            f"logits must be (B, L, C, H, W) matching images (B, C, H, W); "
            f"got logits {tuple(logits.shape)} and images {tuple(x.shape)}"
        )
    if reads_values():  # not in a training step, which checked its batch on the CPU
        check_values(x, logits.shape[1])


def check_values(x: torch.Tensor, levels: int) -> None:
    """Refuse images whose values are not sub-pixel levels ``0 .. levels - 1``.

    Reads two values of ``x``: on a GPU, a host sync. The training loop calls it on the CPU
    batch, before the batch moves to the GPU (``settings.values_checked``).
    """
    if not x.numel():
        return
    low, high = int(x.min()), int(x.max())
    if low < 0 or high >= levels:
        raise ValueError(
            f"images hold values {low}..{high} but the logits predict {levels} levels "
            f"(0..{levels - 1}): quantise the images to the model's levels "
            "(data.quantize) or use a model built for this data"
        )


def nll_per_subpixel(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """NLL in nats of every sub-pixel, shape ``(B, C, H, W)`` (computed in float32)."""
    _check(logits, x)
    B, _, C, H, W = logits.shape
    # One row of L logits per sub-pixel, in (B, H, W, C) order: the models' logits are a view
    # of exactly that layout (see PixelRNN.to_logits), so this reshape copies nothing for them
    # and the log-softmax reads contiguous rows.
    rows = logits.permute(0, 3, 4, 2, 1).reshape(-1, logits.shape[1]).float()
    nats = F.cross_entropy(rows, x.permute(0, 2, 3, 1).reshape(-1), reduction="none")
    return nats.view(B, H, W, C).permute(0, 3, 1, 2)


def nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean NLL in nats per sub-pixel: the training loss (averaged in float64, returned as float32)."""
    return nll_per_subpixel(logits, x).mean(dtype=torch.float64).float()


def nats_to_bits_per_dim(nats_per_subpixel: float | torch.Tensor) -> float | torch.Tensor:
    """Mean NLL in nats per sub-pixel -> bits/dim (divide by ln 2)."""
    return nats_per_subpixel / LN2


def bits_per_dim(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """bits/dim of a batch: mean NLL in nats / ln 2. Uniform logits give exactly 8.0."""
    return nats_to_bits_per_dim(nll(logits, x))


def bits_per_dim_by_row(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """bits/dim of every image row, averaged over the batch and colours: shape ``(H,)``.

    Judges a sampler: on the model's own samples a healthy model scores about what it scores on
    real images; a row-by-row fall means the samples drift into regions the model finds too easy
    (flat, saturated colour), a rise means they drift away from anything it knows.
    """
    return nats_to_bits_per_dim(nll_per_subpixel(logits, x).mean(dim=(0, 1, 3)))


def bits_per_dim_to_nats_per_image(bpd: float, dims: int) -> float:
    """Total NLL of one image of ``dims`` = C * H * W sub-pixels, in nats."""
    return bpd * dims * LN2


def nats_per_image_to_bits_per_dim(nats: float, dims: int) -> float:
    """Inverse of :func:`bits_per_dim_to_nats_per_image`."""
    return nats / (dims * LN2)
