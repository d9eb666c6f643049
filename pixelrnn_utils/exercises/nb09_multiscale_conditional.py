"""The exercise checks of notebook 09, Multi-Scale and conditional models.

Its exercises are at the end of ``notebooks/09_multiscale_conditional.ipynb``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..conditioning import label_mixture_nll, subsample_mask
from .feedback import _attempted, _verdict


def check_label_mixture(fn: Callable[[torch.Tensor], torch.Tensor] | None) -> bool:
    """``fn(log_likelihoods)``: ``(N, K)`` log p(x | y) in nats -> ``(N,)`` NLL of the uniform
    mixture over the K classes (``conditioning.label_mixture_nll``)."""
    if not _attempted(fn):
        return False
    generator = torch.Generator().manual_seed(0)
    # realistic sizes: log-likelihoods of whole images are -1000 nats or so; exp() underflows
    logs = -1000 + 30 * torch.randn(6, 10, generator=generator, dtype=torch.float64)
    answer = fn(logs)
    if not _attempted(answer):
        return False
    answer = torch.as_tensor(answer, dtype=torch.float64).flatten()
    expected = label_mixture_nll(logs)
    ok = answer.shape == expected.shape and torch.allclose(answer, expected, atol=1e-6)
    return _verdict(
        ok,
        "-log( sum_y exp(log p(x|y)) / K ) per image; exp(-1000) is 0 in floating point, so "
        "use torch.logsumexp over the classes, then add ln K",
    )


def check_multiscale_nll(
    fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] | None,
) -> bool:
    """``fn(small_nats, big_nats, f)``: per-sub-pixel NLL of the small stage ``(B, C, s, s)`` and of
    the big stage ``(B, C, n, n)`` -> ``(B,)`` exact -log p(x) of the Multi-Scale model (the big
    stage does not pay for the pixels the small image gives it)."""
    if not _attempted(fn):
        return False
    generator = torch.Generator().manual_seed(1)
    small = torch.rand(3, 1, 2, 3, generator=generator, dtype=torch.float64)
    big = torch.rand(3, 1, 8, 12, generator=generator, dtype=torch.float64)
    answer = fn(small, big, 4)
    if not _attempted(answer):
        return False
    known = subsample_mask(big.shape, 4)
    expected = small.flatten(1).sum(1) + big.masked_fill(known, 0).flatten(1).sum(1)
    answer = torch.as_tensor(answer, dtype=torch.float64).flatten()
    ok = answer.shape == expected.shape and torch.allclose(answer, expected)
    return _verdict(
        ok,
        "sum the small stage over its s x s pixels, and the big stage over every pixel except "
        "(k f, l f), which the small image gives (x[..., ::f, ::f]); one number per image",
    )


def class_log_likelihoods(
    model: torch.nn.Module, x: torch.Tensor, classes: int = 10
) -> torch.Tensor:
    """``(N, K)``: log p(x | y = k) in nats of every image ``x`` ``(N, C, H, W)`` under every class."""
    with torch.no_grad():
        return torch.stack(
            [
                -F.cross_entropy(
                    model(x, condition=torch.full((len(x),), k)).float(), x, reduction="none"
                )
                .flatten(1)
                .sum(1)
                for k in range(classes)
            ],
            dim=1,
        )


@functools.cache
def _shipped_conditional() -> tuple[torch.nn.Module, torch.Tensor]:
    """The shipped class-conditional Row LSTM and 12 test garments spread over the split."""
    from ..checkpoint import load_checkpoint
    from ..data import load_dataset
    from ..settings import project_root

    path = project_root() / "checkpoints" / "row_lstm_fashion_mnist_4_classes.pt"
    model, _ = load_checkpoint(path)
    test = load_dataset("fashion_mnist_4", train=False, channels=1, image_size=28)
    return model.eval(), test.images[torch.arange(12) * 833].long()


def check_classify(fn: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] | None) -> bool:
    """``fn(model, x)``: images ``(N, 1, 28, 28)`` -> ``(N,)`` classes argmax_k log p(x | k) of a
    class-conditional model; checked on 12 test garments under the shipped conditional Row LSTM."""
    if not _attempted(fn):
        return False
    model, x = _shipped_conditional()
    answer = fn(model, x.clone())
    if not _attempted(answer):
        return False
    answer = torch.as_tensor(answer).detach().cpu().long().flatten()
    logs = class_log_likelihoods(model, x)
    if answer.shape != (len(x),):
        return _verdict(False, f"one class per image: shape ({len(x)},), not {tuple(answer.shape)}")
    if ((answer < 0) | (answer >= logs.shape[1])).any():
        return _verdict(False, f"classes are 0..{logs.shape[1] - 1}")
    # right when the chosen class is (within rounding) the likeliest one for every image
    chosen = logs.gather(1, answer[:, None])[:, 0]
    ok = bool((chosen >= logs.max(1).values - 1e-3).all())
    return _verdict(
        ok,
        "for every class k, log p(x | k) = -(sum over the pixels of F.cross_entropy(model(x, "
        'condition=k), x, reduction="none")); the class is the k with the largest '
        "log-likelihood (the smallest NLL), per image",
    )
