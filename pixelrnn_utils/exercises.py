"""Check cells for the exercises at the end of the notebooks.

Every ``check_*`` function takes the learner's answer (a number, a tensor or a function), prints one
line that says whether it is right, with a hint when it is not, and returns ``True`` or ``False``.
An answer left at ``None`` (or a function that still returns ``None``) counts as not attempted.
The references the answers are checked against are the package's own functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .causality import causal_violations, dependency_map, missing_dependencies, subpixel_name
from .conditioning import label_mixture_nll, subsample_mask
from .data import requantize
from .diagonal_bilstm import skew, unskew
from .masks import MaskedConv2d, make_mask
from .model import build_model, sequential_steps
from .row_lstm import RowLSTM, lstm_update
from .sampling import draw, sample
from .train import TrainConfig, learning_rate, train_step

__all__ = [
    "check_bits_per_dim_from_nats",
    "check_bits_per_dim_from_unit_scale",
    "check_requantize",
    "check_most_common_value",
    "check_mask_b",
    "check_mask_a_context",
    "check_make_mask",
    "check_lstm_update",
    "check_row_step",
    "check_row_lstm_steps",
    "check_triangle_width",
    "check_skew",
    "check_skewed_width",
    "check_unskew",
    "check_shift_down",
    "shift_down",
    "check_loss_per_pixel_to_bits_per_dim",
    "check_steps_per_epoch",
    "check_cosine_halfway",
    "check_train_step",
    "check_draw",
    "check_temperature_probability",
    "check_completion_steps",
    "check_naive_sampler",
    "check_sequential_steps",
    "check_skip_parameters",
    "check_images_in_equal_time",
    "check_nats_per_image",
    "check_uniform_nats",
    "check_independent_pixels",
    "independent_pixels_nll",
    "check_label_mixture",
    "check_multiscale_nll",
]


def _verdict(ok: bool, hint: str) -> bool:
    print("✓ correct" if ok else f"✗ not yet: {hint}")
    return ok


def _attempted(answer: Any) -> bool:
    if answer is None:
        print(
            "… not attempted yet: write your answer in the cell above, run it, then run this cell"
        )
        return False
    return True


def _number(answer: Any, expected: float, hint: str, tol: float = 1e-3) -> bool:
    if not _attempted(answer):
        return False
    return _verdict(abs(float(answer) - expected) <= tol * max(1.0, abs(expected)), hint)


# --- 01 data quantization ------------------------------------------------------------------------


def check_bits_per_dim_from_nats(answer: float | None) -> bool:
    """A model gives a 32x32 RGB image a total NLL of 6,000 nats: its bits/dim."""
    expected = 6000 / (3 * 32 * 32 * math.log(2))
    return _number(
        answer, expected, "divide by the number of sub-pixels (3 x 32 x 32), then by ln 2"
    )


def check_bits_per_dim_from_unit_scale(answer: float | None) -> bool:
    """-4.80 bits/dim of a continuous model on [0, 1]-scaled images, on the 0..256 scale."""
    return _number(
        answer,
        -4.80 + math.log2(256),
        "the density on [0, 1] is 256 times larger per dimension: add log2(256) = 8 bits",
    )


def check_requantize(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """``fn(images, levels)`` must equal ``data.requantize`` on every value 0..255."""
    values = torch.arange(256).view(1, 1, 16, 16)
    # 8 and 32 levels are the ones where rounding q * 255 / (L - 1) differs from truncating it
    for levels in (2, 4, 8, 16, 32, 256):
        mine = fn(values, levels)
        if not _attempted(mine):
            return False
        if not torch.equal(torch.as_tensor(mine).long(), requantize(values, levels)):
            return _verdict(
                False,
                f"with {levels} levels some values differ: bin q = v * levels // 256, "
                "shown as round(q * 255 / (levels - 1)), rounded to the nearest integer, "
                "not truncated",
            )
    return _verdict(True, "")


def check_most_common_value(answer: int | None, images: torch.Tensor) -> bool:
    """The most frequent sub-pixel value in ``images``."""
    expected = int(torch.bincount(images.flatten().long(), minlength=256).argmax())
    return _number(answer, expected, "count every value with torch.bincount, take the argmax")


# --- 02 masked convolutions ----------------------------------------------------------------------


def check_mask_b(mask: torch.Tensor | None) -> bool:
    """The 3x3 mask B of a grey (one colour group) convolution, as a (3, 3) tensor of 0/1."""
    if not _attempted(mask):
        return False
    expected = make_mask(1, 1, (3, 3), "B", 1)[0, 0]
    mask = torch.as_tensor(mask, dtype=torch.float32)
    if mask.shape != (3, 3):
        return _verdict(False, f"a 3 x 3 tensor, got shape {tuple(mask.shape)}")
    return _verdict(
        torch.equal(mask, expected),
        "the row above is visible, the left neighbour is visible, mask B lets the centre see "
        "itself (one group), nothing right of or below the centre",
    )


def check_mask_a_context(answer: int | None) -> bool:
    """Input sub-pixels one 5x5 mask-A convolution of an RGB image lets output (i, j, G) see,
    for a pixel away from the border."""
    expected = int(make_mask(3, 3, (5, 5), "A")[1].sum())  # output channel 1 = G
    return _number(
        answer,
        expected,
        "two full rows of 5 pixels above, 2 pixels to the left, 3 colours each; at the centre "
        "pixel itself G sees R only (mask A)",
        tol=0,
    )


class _MaskProbe(nn.Module):
    """Three masked convolutions (5x5 mask A, 3x3 mask B, 1x1 mask B head) on a small RGB image,
    two levels per sub-pixel: a model small enough to probe with ``dependency_map`` in a blink."""

    levels = 2

    def __init__(self, features: int = 7) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                MaskedConv2d(3, features, 5, "A"),
                MaskedConv2d(features, features, 3, "B"),
                MaskedConv2d(features, 3 * self.levels, 1, "B"),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x / 127.5 - 1
        for k, conv in enumerate(self.convs):
            h = conv(h) if k == len(self.convs) - 1 else torch.tanh(conv(h))
        B, _, H, W = h.shape
        return h.view(B, 3, self.levels, H, W).transpose(1, 2)


def check_make_mask(fn: Callable[[int, int, int, str], torch.Tensor] | None) -> bool:
    """``fn(in_channels, out_channels, k, mask_type)``: the ``(out, in, k, k)`` 0/1 mask of a masked
    convolution with R -> G -> B colour groups. The check puts the masks into a small model
    (5x5 mask A, 3x3 mask B, 1x1 mask B, 7 features, so the groups are uneven: 3 R, 2 G, 2 B)
    and runs the causality harness on it."""
    if not _attempted(fn):
        return False
    probe = _MaskProbe()
    layers = [(3, 7, 5, "A"), (7, 7, 3, "B"), (7, 6, 1, "B")]
    masks = []
    for (c_in, c_out, k, kind), conv in zip(layers, probe.convs, strict=True):
        mine = fn(c_in, c_out, k, kind)
        if not _attempted(mine):
            return False
        mine = torch.as_tensor(mine, dtype=torch.float32)
        if mine.shape != conv.mask.shape:
            return _verdict(
                False,
                f"fn({c_in}, {c_out}, {k}, {kind!r}) has shape {tuple(mine.shape)}, "
                f"expected (out, in, k, k) = {tuple(conv.mask.shape)}",
            )
        masks.append(mine)
    reference = _MaskProbe()
    reference.load_state_dict(probe.state_dict())  # same weights, the package's masks
    for conv, mine in zip(probe.convs, masks, strict=True):
        conv.mask.copy_(mine)
    shape = (3, 5, 5)
    dep = dependency_map(probe, shape)
    leaks = causal_violations(dep)
    if leaks:
        (oi, oj, oc), (ii, ij, ic) = leaks[0]
        return _verdict(
            False,
            f"not causal: output {subpixel_name(oi, oj, oc, 3)} sees input "
            f"{subpixel_name(ii, ij, ic, 3)} ({len(leaks)} leaking pairs in all). Rows below "
            "and pixels right of the centre are hidden; at the centre, mask A connects a group "
            "only to earlier groups, mask B also to its own",
        )
    expected = set(missing_dependencies(dependency_map(reference, shape)))
    missing = [pair for pair in missing_dependencies(dep) if pair not in expected]
    if missing:
        (oi, oj, oc), (ii, ij, ic) = missing[0]
        return _verdict(
            False,
            f"causal, but the mask hides too much: output {subpixel_name(oi, oj, oc, 3)} should "
            f"see input {subpixel_name(ii, ij, ic, 3)} and does not ({len(missing)} missing "
            "pairs in all). Every row above the centre and every pixel left of it is visible; "
            "at the centre, G sees R, B sees R and G (mask B: each group also sees itself)",
        )
    for (c_in, c_out, k, kind), mine in zip(layers, masks, strict=True):
        wrong = (mine != make_mask(c_in, c_out, (k, k), kind)).nonzero()
        if len(wrong):
            o, i, r, c = wrong[0].tolist()
            return _verdict(
                False,
                f"causal and complete on the test model, but fn({c_in}, {c_out}, {k}, {kind!r}) "
                f"differs at [out {o}, in {i}, row {r}, col {c}]: use 0 and 1 only, and the "
                "package's colour groups (channel n of N is in group n * 3 // N)",
            )
    return _verdict(True, "")


# --- 03 Row LSTM ---------------------------------------------------------------------------------


def check_lstm_update(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> bool:
    """``fn(gates, c_prev) -> (h, c)`` with gates [o, f, i, g] stacked on dim 1."""
    generator = torch.Generator().manual_seed(0)
    gates = torch.randn(2, 4 * 5, 7, generator=generator)
    c_prev = torch.randn(2, 5, 7, generator=generator)
    mine = fn(gates, c_prev)
    if not _attempted(mine) or not _attempted(mine[0]):
        return False
    h, c = lstm_update(gates, c_prev)
    ok = torch.allclose(mine[1], c, atol=1e-6) and torch.allclose(mine[0], h, atol=1e-6)
    return _verdict(
        ok,
        "sigmoid for o, f, i; tanh for g; c = f * c_prev + i * g; h = o * tanh(c); "
        "gates.chunk(4, dim=1) gives o, f, i, g in that order",
    )


def check_row_lstm_steps(answer: int | None) -> bool:
    """Sequential steps of one Row LSTM layer on a 32 x 48 (H x W) image."""
    return _number(answer, 32, "one step per row: the whole row is computed at once")


def check_row_step(fn: Callable[..., Any] | None) -> bool:
    """``fn(is_row, h_prev, c_prev, weight, bias) -> (h, c)``: one Row LSTM row step, with the
    state-to-state kernel ``weight`` ``(4h, h, k)`` and ``bias`` ``(4h,)``, against
    ``RowLSTM.row_step`` on random inputs."""
    if not _attempted(fn):
        return False
    generator = torch.Generator().manual_seed(0)
    layer = RowLSTM(12, 5)  # 2h = 12 input features, h = 5
    with torch.no_grad():  # reproducible weights, and a bias large enough that forgetting it shows
        for p in layer.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=generator))
    weight, bias = layer.state_to_state.weight.detach(), layer.state_to_state.bias.detach()
    is_row = torch.randn(2, 20, 7, generator=generator)
    h_prev = torch.randn(2, 5, 7, generator=generator)
    c_prev = torch.randn(2, 5, 7, generator=generator)
    with torch.no_grad():
        mine = fn(is_row, h_prev, c_prev, weight, bias)
        if not _attempted(mine):
            return False
        h, c = layer.row_step(is_row, h_prev, c_prev)
        if not isinstance(mine, tuple | list) or len(mine) != 2:
            return _verdict(False, "return the pair (h, c)")
        mine_h, mine_c = (torch.as_tensor(t) for t in mine)
        if mine_h.shape != h.shape or mine_c.shape != c.shape:
            return _verdict(
                False,
                f"h and c should be {tuple(h.shape)} like h_prev, got {tuple(mine_h.shape)} and "
                f"{tuple(mine_c.shape)}: pad the row with k // 2 zeros at each end "
                "(padding=1) so the width stays W",
            )
        if not torch.allclose(mine_c, c, atol=1e-5):
            if torch.allclose(mine_c, lstm_update(is_row, c_prev)[1], atol=1e-5):
                hint = "the row above is missing: add conv1d(h_prev, weight, bias, padding=1)"
            elif torch.allclose(
                mine_c, lstm_update(is_row + F.conv1d(h_prev, weight, padding=1), c_prev)[1]
            ):
                hint = "the state-to-state bias is missing"
            else:
                hint = (
                    "gates = is_row + conv1d(h_prev, weight, bias, padding=1), split in the order "
                    "o, f, i, g; c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g)"
                )
            return _verdict(False, f"c differs: {hint}")
        return _verdict(
            torch.allclose(mine_h, h, atol=1e-5),
            "c is right, h differs: h = sigmoid(o) * tanh(c), with the new c",
        )


def check_triangle_width(answer: int | None) -> bool:
    """Input pixels of row i - 2 that the state at (i, j) of one Row LSTM layer with k = 5 (no
    stem) depends on, far from the borders."""
    k = 5
    return _number(
        answer,
        (k // 2) * (2 * 2 + 1) + 1,
        "on its own row the state sees input pixels j - 2 .. j (input-to-state, a masked 1x5: "
        "nothing right of j); it also sees the states j - 2 .. j + 2 of row i - 1 "
        "(state-to-state, 1x5), each of which saw the pixels up to 2 left of its own column: "
        "row i - 1 gives j - 4 .. j + 2; each row further up adds 2 pixels on each side",
        tol=0,
    )


# --- 04 Diagonal BiLSTM --------------------------------------------------------------------------


def check_skew(fn: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """``fn(x)`` skews an (H, W) tensor to (H, W + H - 1): row r shifted right by r."""
    x = torch.arange(1, 13, dtype=torch.float32).view(3, 4)
    mine = fn(x)
    if not _attempted(mine):
        return False
    expected = skew(x[None, None])[0, 0]
    mine = torch.as_tensor(mine, dtype=torch.float32)
    if mine.shape != expected.shape:
        return _verdict(False, f"shape should be {tuple(expected.shape)}, got {tuple(mine.shape)}")
    return _verdict(torch.equal(mine, expected), "row r starts at column r; zeros elsewhere")


def check_skewed_width(answer: int | None) -> bool:
    """Columns of the skewed map of an image of 20 rows and 36 columns (= sequential steps of one
    direction of a Diagonal BiLSTM layer)."""
    return _number(
        answer,
        36 + 20 - 1,
        "row r is shifted right by r: the last row, r = H - 1, ends in column (W - 1) + (H - 1); "
        "W + H - 1 columns (2W - 1 only for a square image)",
        tol=0,
    )


def check_unskew(fn: Callable[[torch.Tensor], torch.Tensor] | None) -> bool:
    """``fn(y)`` unskews an (H, W + H - 1) tensor back to (H, W): row r read from column r on."""
    if not _attempted(fn):
        return False
    generator = torch.Generator().manual_seed(0)
    for H, W in ((3, 4), (5, 2), (4, 4)):
        y = skew(torch.randn(1, 1, H, W, generator=generator))[0, 0]
        y = y + (skew(torch.ones(1, 1, H, W))[0, 0] == 0) * 9.0  # outside the image: not zero
        mine = fn(y)
        if not _attempted(mine):
            return False
        mine = torch.as_tensor(mine, dtype=torch.float32)
        expected = unskew(y[None, None])[0, 0]
        if mine.shape != expected.shape:
            return _verdict(
                False,
                f"a {H} x {W + H - 1} map unskews to {tuple(expected.shape)}, got "
                f"{tuple(mine.shape)}: W = columns - H + 1",
            )
        if not torch.equal(mine, expected):
            return _verdict(
                False,
                f"on a {H} x {W + H - 1} map some values differ: row r of the image is columns "
                "r .. r + W - 1 of row r of the skewed map",
            )
    return _verdict(True, "")


def shift_down(right: torch.Tensor) -> torch.Tensor:
    """The right-to-left map ``(B, h, H, W)`` moved down one row: row r receives row r - 1 and
    row 0 the state above the image (zero), as ``DiagonalBiLSTM.right_map`` does."""
    return F.pad(right, (0, 0, 1, 0))[:, :, :-1]


def check_shift_down(fn: Callable[[torch.Tensor], torch.Tensor] | None) -> bool:
    """``fn(right)`` shifts a ``(B, h, H, W)`` map down by one row, zeros in row 0."""
    if not _attempted(fn):
        return False
    generator = torch.Generator().manual_seed(0)
    right = torch.randn(2, 3, 5, 4, generator=generator)
    mine = fn(right)
    if not _attempted(mine):
        return False
    mine = torch.as_tensor(mine, dtype=torch.float32)
    expected = shift_down(right)
    if mine.shape != expected.shape:
        return _verdict(
            False,
            f"the shape must not change: {tuple(expected.shape)}, got {tuple(mine.shape)} "
            "(add a row of zeros on top, then drop the last row)",
        )
    if torch.equal(mine, F.pad(right, (0, 0, 0, 1))[:, :, 1:]):
        return _verdict(False, "that moves the map up: row r must receive row r - 1")
    return _verdict(
        torch.equal(mine, expected),
        "row r of the result is row r - 1 of the map (dim 2 is the row); row 0 is zero",
    )


# --- 05 training ---------------------------------------------------------------------------------


def check_loss_per_pixel_to_bits_per_dim(answer: float | None) -> bool:
    """A loss of 7.58 nats per pixel, summed over R, G and B, in bits/dim."""
    return _number(
        answer,
        7.58 / 3 / math.log(2),
        "a pixel is 3 sub-pixels: divide by 3 for nats per sub-pixel, then by ln 2 for bits",
    )


def check_steps_per_epoch(answer: int | None) -> bool:
    """Optimizer steps in one epoch of 45,000 images in batches of 16 (the last batch is partial)."""
    return _number(
        answer,
        math.ceil(45000 / 16),
        "45,000 / 16 is not a whole number: the last, smaller batch is a step too (round up)",
        tol=0,
    )


def check_cosine_halfway(answer: float | None) -> bool:
    """The cosine schedule's learning rate halfway through a run that starts at 1e-3."""
    expected = learning_rate(TrainConfig(lr=1e-3, lr_schedule="cosine"), 500, 1000)
    return _number(
        answer,
        expected,
        "lr * (1 + cos(pi * step / total)) / 2 with step / total = 1/2",
        tol=1e-6,
    )


def check_train_step(
    fn: Callable[[nn.Module, torch.optim.Optimizer, torch.Tensor], Any] | None,
) -> bool:
    """``fn(model, optimizer, x) -> loss``: one training step, against ``train.train_step``.

    Two identical small Row LSTMs each take three steps on the same batches, one with ``fn`` and
    one with the package's step (float32, clipping at 1.0); the losses returned and the weights
    after every step must agree.
    """
    if not _attempted(fn):
        return False
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 256, (4, 3, 6, 6), generator=generator) for _ in range(3)]

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = build_model("row_lstm", 3, hidden=8, layers=1)
        with torch.no_grad():  # large weights: gradient norms well above 1, so clipping shows
            for p in model.parameters():
                p.mul_(5.0)
        return model, torch.optim.Adam(model.parameters(), lr=1e-2)

    def weights(model: nn.Module) -> list[torch.Tensor]:
        return [p.detach().clone() for p in model.parameters()]

    mine_model, mine_opt = fresh()
    ref_model, ref_opt = fresh()
    start = weights(ref_model)
    for k, x in enumerate(batches, start=1):
        loss = fn(mine_model, mine_opt, x)
        if not _attempted(loss):  # the stub as given returns None
            return False
        expected = train_step(ref_model, ref_opt, x, clip=1.0)
        loss = float(torch.as_tensor(loss).detach())
        if abs(loss - float(expected)) > 1e-4 * max(1.0, abs(float(expected))):
            if abs(loss * math.log(2) - float(expected)) < 1e-3:
                hint = "the loss is in bits/dim: return the cross-entropy in nats (train on nats)"
            elif any(abs(loss / n - float(expected)) < 1e-3 for n in (x.numel(), x[0].numel())):
                hint = "the loss is summed: F.cross_entropy's default mean (per sub-pixel) is it"
            else:
                hint = f"the loss should be F.cross_entropy(model(x), x) = {float(expected):.4f}"
            return _verdict(False, f"step {k}: {hint}, got {loss:.4f}")
        mine_w, ref_w = weights(mine_model), weights(ref_model)
        if all(torch.equal(a, b) for a, b in zip(mine_w, start, strict=True)):
            return _verdict(False, "the weights did not change: call optimizer.step()")
        if not all(torch.allclose(a, b, atol=1e-5) for a, b in zip(mine_w, ref_w, strict=True)):
            if k > 1:
                hint = (
                    "the first step is right, a later one is not: zero the gradients "
                    "(optimizer.zero_grad()) before backward, or they add up across steps"
                )
            else:
                hint = (
                    "the loss is right, the weights are not: backward, then "
                    "nn.utils.clip_grad_norm_(model.parameters(), 1.0), then optimizer.step()"
                )
            return _verdict(False, f"step {k}: {hint}")
    return _verdict(True, "")


# --- 06 sampling ---------------------------------------------------------------------------------


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


# --- 07 comparing architectures ------------------------------------------------------------------


def check_sequential_steps(answer: dict[str, int] | None) -> bool:
    """Sequential steps of one layer on a 64 x 64 image, per architecture (as this package runs it)."""
    if not _attempted(answer):
        return False
    expected = {
        arch: sequential_steps(arch, 64, 64) for arch in ("pixelcnn", "row_lstm", "diagonal_bilstm")
    }
    wrong = [arch for arch in expected if answer.get(arch) != expected[arch]]
    together = expected["diagonal_bilstm"] == 64 + 64 - 1
    return _verdict(
        not wrong,
        f"check {', '.join(wrong)}: PixelCNN computes every position at once, the Row LSTM one row "
        "per step, the Diagonal BiLSTM one column of the skewed map per step in each of its two "
        "directions, which this package runs "
        + ("together, in one recurrence" if together else "one after the other"),
    )


def check_skip_parameters(answer: int | None) -> bool:
    """Parameters that ``skip=True`` adds to the seed configuration (Row LSTM, hidden 64, 4 layers)."""

    def count(model: torch.nn.Module) -> int:
        return sum(p.numel() for p in model.parameters())

    expected = count(build_model("row_lstm", 3, 64, 4, skip=True)) - count(
        build_model("row_lstm", 3, 64, 4)
    )
    return _number(
        answer,
        expected,
        "one 1x1 convolution per layer, 2h -> 2h features: a weight per (input, output) pair "
        "plus one bias per output (masked weights still count as parameters)",
        tol=0,
    )


def check_images_in_equal_time(
    answer: float | None, fast_rate: float, slow_rate: float, slow_images: int
) -> bool:
    """Images the faster model sees in the time the slower one takes for ``slow_images``."""
    expected = slow_images / slow_rate * fast_rate
    return _number(
        answer,
        expected,
        "time = images / (images per second) for the slow model; multiply by the fast rate",
        tol=0.01,
    )


# --- 08 binarized MNIST ---------------------------------------------------------------------------


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


# --- 09 Multi-Scale and conditional -----------------------------------------------------------


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
