"""The exercise checks of notebook 02, masked convolutions.

Its exercises are at the end of ``notebooks/02_masked_convolutions.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..causality import causal_violations, dependency_map, missing_dependencies, subpixel_name
from ..masks import MaskedConv2d, make_mask
from .feedback import _attempted, _number, _verdict


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
