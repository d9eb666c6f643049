"""The exercise checks of notebook 08, binarized MNIST.

Its exercises are at the end of ``notebooks/08_binarized_mnist.ipynb``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .feedback import _attempted, _number


def check_nats_per_image(answer: float | None) -> bool:
    """A model scores 0.14 bits/dim on binarized MNIST (28 x 28, 2 levels): nats per image."""
    expected = 0.14 * 28 * 28 * math.log(2)
    return _number(
        answer,
        expected,
        "bits/dim is a mean per sub-pixel: multiply by the 784 sub-pixels of an image, then by ln 2",
    )


def check_uniform_nats(answer: float | None) -> bool:
    """Nats per image of a uniform model of 28 x 28 grey images quantised to 4 levels."""
    expected = 28 * 28 * math.log(4)
    return _number(
        answer,
        expected,
        "a uniform model gives each of the L values probability 1/L: ln L nats per sub-pixel, "
        "784 sub-pixels per image",
    )


def independent_pixels_nll(train: torch.Tensor, test: torch.Tensor) -> float:
    """Mean nats per test image of the model that draws every pixel on its own: pixel k is 1 with
    probability ``(ones_k + 1) / (N + 2)`` (its frequency in the N training images, smoothed)."""
    train, test = train.flatten(1).double(), test.flatten(1).double()
    p = (train.sum(0) + 1) / (train.shape[0] + 2)
    nats = -(test * p.log() + (1 - test) * (1 - p).log()).sum(1)
    return float(nats.mean())


def check_independent_pixels(fn: Callable[[torch.Tensor, torch.Tensor], float] | None) -> bool:
    """``fn(train, test)`` must give the independent-pixel baseline's nats per test image."""
    if not _attempted(fn):
        return False
    generator = torch.Generator().manual_seed(0)
    train = (torch.rand(50, 1, 4, 4, generator=generator) < 0.3).long()
    train[:, :, 0, 0] = 0  # a pixel never on in training: smoothing keeps its test cost finite
    test = (torch.rand(20, 1, 4, 4, generator=generator) < 0.3).long()
    expected = independent_pixels_nll(train, test)
    answer = fn(train, test)
    if not _attempted(answer):
        return False
    return _number(
        answer,
        expected,
        "per pixel p = (ones + 1) / (N + 2) from the training images; a test image costs "
        "-sum(x log p + (1 - x) log(1 - p)) nats; average over the test images",
    )
