"""The exercise checks of notebook 06, sampling.

Its exercises are at the end of ``notebooks/06_sampling.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..model import build_model
from ..sampling import draw, sample
from .feedback import _attempted, _number, _verdict


def check_draw(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """``fn(logits, u)``: inverse-CDF draw, the first value whose cumulative probability exceeds u."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 256, generator=generator) * 3
    u = torch.rand(64, generator=generator)
    mine = fn(logits, u)
    if not _attempted(mine):
        return False
    mine = torch.as_tensor(mine).long()
    return _verdict(
        torch.equal(mine, draw(logits, u)),
        "softmax, then cumsum over the 256 values, then the first index whose cumulative "
        "probability is above u (torch.searchsorted does it)",
    )


def check_temperature_probability(answer: float | None) -> bool:
    """The most likely value's probability for p = (0.5, 0.3, 0.2) at temperature 0.5."""
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    expected = float(torch.softmax(p.log() / 0.5, dim=0)[0])
    return _number(
        answer,
        expected,
        "p_T(v) is proportional to p(v) ** (1 / T): square the probabilities, then normalise",
    )


def check_completion_steps(answer: int | None) -> bool:
    """Sub-pixels drawn when the top half of a 32 x 32 RGB image is given."""
    return _number(
        answer, 3 * 16 * 32, "16 rows of 32 pixels are missing, 3 sub-pixels each", tol=0
    )


def _naive_variant(
    model: nn.Module,
    n: int,
    shape: tuple[int, int, int],
    generator: torch.Generator,
    temperature: float = 1.0,
    order: str = "raster",
    sees_own_pixel: bool = True,
) -> torch.Tensor:
    """A naive sampler, right (the defaults) or with one of the mistakes ``check_naive_sampler``
    names: ``order`` "raster" (rows, pixels, then R -> G -> B), "colour planes" (all R first),
    "columns" (down each column first) or "B -> G -> R"; ``sees_own_pixel=False`` draws a pixel's
    colours from the image of finished pixels only (this pixel's earlier colours still 0)."""
    C, H, W = shape
    x = torch.zeros(n, C, H, W, dtype=torch.long)
    if order == "colour planes":
        steps = [(i, j, c) for c in range(C) for i in range(H) for j in range(W)]
    elif order == "columns":
        steps = [(i, j, c) for j in range(W) for i in range(H) for c in range(C)]
    elif order == "B -> G -> R":
        steps = [(i, j, c) for i in range(H) for j in range(W) for c in reversed(range(C))]
    else:
        steps = [(i, j, c) for i in range(H) for j in range(W) for c in range(C)]
    finished = x.clone()  # the image as it was when the current pixel started
    with torch.no_grad():
        for i, j, c in steps:
            logits = model(x if sees_own_pixel else finished)[:, :, c, i, j].float()
            x[:, c, i, j] = draw(logits, torch.rand(n, generator=generator), temperature)
            if order == "raster" and c == C - 1:
                finished = x.clone()
    return x


def _sampler_probe() -> nn.Module:
    """A tiny Row LSTM (hidden 4, one layer) with weights large enough that every sub-pixel's
    distribution depends clearly on what was drawn before it: sampling a 3 x 3 x 4 image naively
    takes 36 forward passes, a blink."""
    model = build_model("row_lstm", 3, hidden=4, layers=1)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return model.eval()


_SAMPLER_MISTAKES = {
    ("colour planes", True): "it draws all the red values of the image first, then all the green, "
    "then all the blue; the order is raster order over pixels and R -> G -> B inside each pixel: "
    "loop over rows, then pixels, then colours (the colour loop innermost)",
    ("columns", True): "it goes down each column first; raster order goes along each row first: "
    "the row loop (i, over H) outside, the column loop (j, over W) inside it",
    ("B -> G -> R", True): "the colours inside a pixel go R -> G -> B: c = 0, 1, 2 in that order",
    ("raster", False): "the order is right, but a pixel's green and blue are drawn without seeing "
    "its own red (and green): write each sub-pixel into the image as soon as it is drawn, and run "
    "a fresh forward pass for the next one (one pass per sub-pixel, not per pixel)",
}


def check_naive_sampler(fn: Callable[..., torch.Tensor] | None) -> bool:
    """``fn(model, n, shape, generator, temperature)``: the naive sampler (one full forward pass per
    sub-pixel, raster order, R -> G -> B, one ``torch.rand(n, generator=generator)`` per step and
    ``draw(logits, u, temperature)``). It must give exactly the images of the package's
    ``sample(..., method="naive")`` for the same generator seed; checked on a tiny model and a
    3 x 3 x 4 image (rows and columns differ), at temperatures 1 and 0.7."""
    if not _attempted(fn):
        return False
    model, n, shape = _sampler_probe(), 2, (3, 3, 4)

    def seeded(seed: int = 1) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    for temperature in (1.0, 0.7):
        mine = fn(model, n, shape, seeded(), temperature)
        if not _attempted(mine):
            return False
        mine = torch.as_tensor(mine).detach().cpu()
        if mine.shape != (n, *shape):
            return _verdict(
                False,
                f"sampling {n} images of shape (C, H, W) = {shape} gave shape {tuple(mine.shape)}, "
                f"expected (n, C, H, W) = {(n, *shape)}",
            )
        if mine.is_floating_point() or mine.is_complex():
            return _verdict(False, "return integer values (torch.long), as draw() gives them")
        expected = sample(
            model, n, shape, method="naive", temperature=temperature, generator=seeded()
        )
        if torch.equal(mine.long(), expected):
            continue
        if not torch.equal(
            mine.long(), torch.as_tensor(fn(model, n, shape, seeded(), temperature)).cpu().long()
        ):
            return _verdict(
                False,
                "two runs with the same generator seed gave different images: take every uniform "
                "from the generator you are given, torch.rand(n, generator=generator)",
            )
        if temperature != 1.0 and torch.equal(
            mine.long(), sample(model, n, shape, method="naive", generator=seeded())
        ):
            return _verdict(
                False,
                "right at temperature 1, but the temperature is ignored: pass it to "
                "draw(logits, u, temperature)",
            )
        for (order, sees_own_pixel), hint in _SAMPLER_MISTAKES.items():
            wrong = _naive_variant(model, n, shape, seeded(), temperature, order, sees_own_pixel)
            if torch.equal(mine.long(), wrong):
                return _verdict(False, hint)
        return _verdict(
            False,
            f"at temperature {temperature} the images differ from sample(..., method='naive') "
            "with the same generator seed. Start from zeros (n, C, H, W); for each row i, pixel j, "
            "colour c: logits = model(x)[:, :, c, i, j], then one u = torch.rand(n, "
            "generator=generator), then x[:, c, i, j] = draw(logits, u, temperature)",
        )
    return _verdict(True, "")
