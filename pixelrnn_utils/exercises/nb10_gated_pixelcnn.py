"""The exercise checks of notebook 10, where the ideas went: the Gated PixelCNN and after.

Its exercises are at the end of ``notebooks/10_gated_pixelcnn.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..causality import blind_pixels, causal_violations, dependency_map
from ..gated_pixelcnn import gated
from .feedback import _attempted, _verdict


class _TwoStacks(nn.Module):
    """A grey two-stack network whose k x k kernels are masked by the learner's masks.

    Vertical stack: a first convolution that reads the rows strictly above (the vertical mask with
    its centre row removed), then ``layers`` convolutions masked by the vertical mask. Horizontal
    stack: a first convolution masked by the horizontal mask without its centre (mask A), then per
    layer its own masked convolution plus a 1x1 of the vertical stack, added to its input. Linear:
    which inputs reach which outputs depends on the masks alone. Logits ``(B, 2, 1, H, W)``.
    """

    def __init__(self, vertical: torch.Tensor, horizontal: torch.Tensor, layers: int = 3) -> None:
        super().__init__()
        k = vertical.shape[0]
        self.levels, self.pad = 2, k // 2
        first_v, first_h = vertical.clone(), horizontal.clone()
        first_v[k // 2] = 0  # the first layer reads no pixel of its own row
        first_h[k // 2, k // 2] = 0  # nor the pixel itself
        generator = torch.Generator().manual_seed(0)
        self.register_buffer("masks", torch.stack([first_v, first_h, vertical, horizontal]))
        self.weights = nn.Parameter(torch.randn(2 + 2 * layers, k, k, generator=generator))
        self.mix = nn.Parameter(torch.randn(layers, generator=generator))
        self.layers = layers

    def _conv(self, x: torch.Tensor, index: int, mask: torch.Tensor) -> torch.Tensor:
        kernel = (self.weights[index] * mask)[None, None]
        return F.conv2d(x, kernel, padding=self.pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.weights.dtype)
        v, h = self._conv(x, 0, self.masks[0]), self._conv(x, 1, self.masks[1])
        for n in range(self.layers):
            v = self._conv(v, 2 + 2 * n, self.masks[2])
            h = h + self._conv(h, 3 + 2 * n, self.masks[3]) + self.mix[n] * v
        return torch.stack([h, -h], dim=1)


def check_stack_masks(fn: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None) -> bool:
    """``fn(k)`` -> ``(vertical, horizontal)``, the 0/1 masks ``(k, k)`` of the two stacks' k x k
    kernels; checked by behaviour: a two-stack network built with them must be causal and see
    every earlier pixel inside its reach (no blind spot)."""
    if not _attempted(fn):
        return False
    for k in (3, 5):
        answer = fn(k)
        if not _attempted(answer):
            return False
        try:
            vertical, horizontal = (torch.as_tensor(m, dtype=torch.float64) for m in answer)
        except (TypeError, ValueError):
            return _verdict(False, "return two masks, (vertical, horizontal)")
        if vertical.shape != (k, k) or horizontal.shape != (k, k):
            return _verdict(False, f"each mask is k x k: ({k}, {k}) for k = {k}")
        model = _TwoStacks(vertical, horizontal)
        dep = dependency_map(model, (1, 9, 9))
        if causal_violations(dep):
            return _verdict(
                False,
                "an output sees itself or the future: the vertical mask may not reach below the "
                "centre row, the horizontal one not right of the centre (nor below or above it)",
            )
        blind = sum(int(blind_pixels(dep, i, j).sum()) for i in range(9) for j in range(9))
        if not dep[0, 8, 4, 0, 7, 4 + k // 2]:  # the row above, k // 2 columns to the right
            return _verdict(
                False,
                "causal, but an output never sees the row above to its right: the rows above the "
                "centre are all in the past, in every column of the kernel",
            )
        if blind or not dep[0, 8, 4, 0, 7].all():
            return _verdict(
                False,
                "causal, but outputs miss earlier pixels inside their reach: the vertical stack "
                "already sees only the rows above (its first layer is shifted down), so its mask "
                "may take the whole centre row and every column of the rows above; the "
                "horizontal one takes the centre row up to and including the centre",
            )
    return _verdict(True, "")


def check_gate(fn: Callable[[torch.Tensor], torch.Tensor] | None) -> bool:
    """``fn(x)``: ``(B, 2n, H, W)`` -> ``(B, n, H, W)``, tanh of the first n maps times the
    sigmoid of the last n (``gated_pixelcnn.gated``)."""
    if not _attempted(fn):
        return False
    x = torch.randn(2, 6, 3, 4, generator=torch.Generator().manual_seed(0))
    answer = fn(x)
    if not _attempted(answer):
        return False
    answer = torch.as_tensor(answer)
    ok = answer.shape == (2, 3, 3, 4) and torch.allclose(answer.float(), gated(x), atol=1e-6)
    return _verdict(
        ok,
        "split the channels in two halves (x.chunk(2, dim=1)): tanh(first) * sigmoid(second); "
        "the output has half the channels",
    )


def polyak_reference(weights: torch.Tensor, decay: float) -> torch.Tensor:
    """The average after the last row of ``weights`` ``(T, P)``, started at its first row."""
    average = weights[0].clone()
    for w in weights[1:]:
        average = decay * average + (1 - decay) * w
    return average


def check_polyak(fn: Callable[[torch.Tensor, float], torch.Tensor] | None) -> bool:
    """``fn(weights, decay)``: the weights ``(T, P)`` after each of T steps -> ``(P,)`` their
    exponential moving average, started at the first row (``averaging.PolyakAverage``)."""
    if not _attempted(fn):
        return False
    weights = torch.randn(50, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for decay in (0.9, 0.5):
        answer = fn(weights, decay)
        if not _attempted(answer):
            return False
        answer = torch.as_tensor(answer, dtype=torch.float64)
        expected = polyak_reference(weights, decay)
        if answer.shape != expected.shape or not torch.allclose(answer, expected):
            return _verdict(
                False,
                "start at weights[0]; then for every later row w: average = decay * average + "
                "(1 - decay) * w",
            )
    return _verdict(True, "")


def discretized_logistic(
    mean: torch.Tensor, log_scale: torch.Tensor, levels: int = 256
) -> torch.Tensor:
    """The ``(levels,)`` probabilities of one discretized logistic (PixelCNN++) with ``mean`` and
    ``log_scale`` in intensity units: bin x covers [x - 0.5, x + 0.5], the first bin takes the tail
    below, the last the tail above, so the bins sum to 1."""
    scale = log_scale.double().exp()
    x = torch.arange(levels, dtype=torch.float64)
    upper = torch.sigmoid((x + 0.5 - mean) / scale)
    lower = torch.sigmoid((x - 0.5 - mean) / scale)
    upper[-1], lower[0] = 1.0, 0.0
    return upper - lower


def check_discretized_logistic(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
) -> bool:
    """``fn(mean, log_scale)``: the 256 probabilities of a discretized logistic over the
    intensities 0..255, checked against :func:`discretized_logistic` for means inside, at and
    beyond the edges."""
    if not _attempted(fn):
        return False
    for mean, log_scale in ((100.3, 1.0), (0.0, 0.0), (255.0, 2.0), (300.0, 0.5), (-20.0, 3.0)):
        answer = fn(
            torch.tensor(mean, dtype=torch.float64), torch.tensor(log_scale, dtype=torch.float64)
        )
        if not _attempted(answer):
            return False
        answer = torch.as_tensor(answer, dtype=torch.float64)
        expected = discretized_logistic(torch.tensor(mean), torch.tensor(log_scale))
        if answer.shape != (256,):
            return _verdict(False, "return one probability per intensity: shape (256,)")
        if not torch.isclose(answer.sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-6):
            return _verdict(
                False,
                f"the probabilities sum to {answer.sum().item():.4f}, not 1 (mean {mean:g}): the "
                "edge bins take the tails, bin 0 everything below 0.5 and bin 255 everything "
                "above 254.5",
            )
        if not torch.allclose(answer, expected, atol=1e-6):
            return _verdict(
                False,
                "bin x is the logistic's mass between x - 0.5 and x + 0.5: "
                "sigmoid((x + 0.5 - mean) / s) - sigmoid((x - 0.5 - mean) / s), with "
                "s = exp(log_scale)",
            )
    return _verdict(True, "")
