"""The exercise checks of notebook 08, binarized MNIST.

Its exercises are at the end of ``notebooks/08_binarized_mnist.ipynb``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .feedback import _attempted, _number, _verdict


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


def per_pixel_nll(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(H, W)`` NLL in nats of every pixel of one binary image ``x`` ``(1, H, W)`` under
    ``model``: ``-log p(x_ij | x_<ij)``, the cross-entropy of its logits with the pixel's own value."""
    with torch.no_grad():
        logits = model(x[None].long()).float()  # (1, L, 1, H, W)
    return F.cross_entropy(logits, x[None].long(), reduction="none")[0, 0]


@functools.cache
def _shipped_diagonal_bilstm() -> tuple[torch.nn.Module, torch.Tensor]:
    """The shipped Diagonal BiLSTM and three test digits spread over the split, loaded once."""
    from ..checkpoint import load_checkpoint
    from ..data import load_dataset
    from ..settings import project_root

    model, _ = load_checkpoint(
        project_root() / "checkpoints" / "diagonal_bilstm_binarized_mnist.pt"
    )
    test = load_dataset("binarized_mnist", split="test", channels=1, image_size=28)
    return model.eval(), test.images[torch.tensor([0, 4000, 9999])].long()


def check_pixel_nll(fn: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] | None) -> bool:
    """``fn(model, x)``: one binary image ``(1, 28, 28)`` -> ``(28, 28)`` per-pixel NLL in nats,
    checked on three test digits under the shipped Diagonal BiLSTM (``per_pixel_nll``)."""
    if not _attempted(fn):
        return False
    model, digits = _shipped_diagonal_bilstm()
    for x in digits:
        answer = fn(model, x.clone())
        if not _attempted(answer):
            return False
        answer = torch.as_tensor(answer).detach().float().cpu().squeeze()
        expected = per_pixel_nll(model, x)
        if answer.shape != expected.shape:
            return _verdict(
                False,
                f"one number per pixel: shape {tuple(expected.shape)}, not {tuple(answer.shape)}",
            )
        if torch.allclose(answer, expected, atol=1e-3, rtol=1e-3):
            continue
        if torch.allclose(answer * math.log(2), expected, atol=1e-3, rtol=1e-3):
            hint = "these are bits: nats are -ln p (F.cross_entropy uses the natural log)"
        elif torch.allclose(answer.sum(), expected.sum(), atol=1e-2, rtol=1e-3):
            hint = "the total is right but not where it goes: keep one number per pixel"
        else:
            hint = (
                "-log p(x_ij | x_<ij) at the pixel's own value: "
                'F.cross_entropy(model(x[None]), x[None], reduction="none") gives (1, 1, 28, 28)'
            )
        return _verdict(False, hint)
    return _verdict(True, "")
