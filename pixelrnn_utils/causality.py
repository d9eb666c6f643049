"""Proving a model autoregressive: which input sub-pixels does each output sub-pixel depend on?

The order is raster scan over pixels and R -> G -> B inside a pixel: sub-pixel (i, j, c) of an
image with C channels and width W has position ``(i * W + j) * C + c``. A model is **causal** when
the logits of every sub-pixel depend only on sub-pixels at strictly smaller positions.

``dependency_map`` answers the question exactly with one backward pass: the image is repeated
once per output sub-pixel, and batch element k back-propagates only the logits of sub-pixel k.
Because batch elements never interact, the gradient of element k's input is non-zero exactly where
output k depends on the input. A random projection of the L logits avoids accidental
cancellation. The probe is a float64 copy of the model whose ReLUs are replaced by leaky ReLUs:
the connectivity is the same, but a unit that happens to be off for the random image can no longer
hide a dependency (or a leak). The map is the union over a few random images.

A **conditioned** model (a class, or the small image of a Multi-Scale PixelRNN) is probed with a
fixed ``condition``: the conditioning is given before any pixel, so it may reach every output; the
map says which *image* sub-pixels each output depends on, and the rule for those is unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "dependency_map",
    "repeat_condition",
    "assert_causal",
    "causal_violations",
    "missing_dependencies",
    "receptive_field",
    "blind_pixels",
    "colour_dependency",
    "subpixel_name",
]

CHANNEL_NAMES = {1: "L", 3: "RGB"}


def subpixel_name(i: int, j: int, c: int, channels: int) -> str:
    """``(row, col, colour)`` label used in error messages, e.g. ``(2,3,G)``."""
    names = CHANNEL_NAMES.get(channels)
    colour = names[c] if names else str(c)
    return f"({i},{j},{colour})"


@torch.no_grad()
def _random_images(
    shape: tuple[int, int, int], n: int, generator: torch.Generator, levels: int = 256
) -> torch.Tensor:
    return torch.randint(0, levels, (n, *shape), generator=generator).double()


def repeat_condition(condition: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """``condition`` for a batch of ``n``: a batch of one (or a bare label) repeated ``n`` times."""
    if condition is None:
        return None
    condition = torch.as_tensor(condition)
    if condition.dim() == 0:  # one class label
        condition = condition[None]
    return condition.expand(n, *condition.shape[1:]).clone()


def dependency_map(
    model: nn.Module,
    shape: tuple[int, int, int],
    trials: int = 2,
    seed: int = 0,
    condition: torch.Tensor | None = None,
) -> torch.Tensor:
    """Boolean tensor ``dep`` of shape ``(C, H, W, C, H, W)``.

    ``dep[c, i, j, c2, i2, j2]`` is True when the logits of output sub-pixel (i, j, c) change with
    input sub-pixel (i2, j2, c2). Computed in float64 on a copy of the model, in eval mode.
    ``condition`` (a label, or a small image, batch of one) is passed to every forward pass.
    """
    C, H, W = shape
    n = C * H * W
    probe = _double_copy(model)
    levels = getattr(model, "levels", 256)  # values per sub-pixel (2 for binarized models)
    gen = torch.Generator().manual_seed(seed)
    dep = torch.zeros(n, n, dtype=torch.bool)
    idx = torch.arange(n)
    c_idx, i_idx, j_idx = idx // (H * W), (idx // W) % H, idx % W
    for _ in range(trials):
        x = _random_images(shape, 1, gen, levels).repeat(n, 1, 1, 1).requires_grad_(True)
        cond = repeat_condition(condition, n)
        logits = probe(x) if cond is None else probe(x, condition=cond)  # (n, L, C, H, W)
        if logits.shape != (n, levels, C, H, W):
            raise ValueError(
                f"model returned logits {tuple(logits.shape)}, expected (B, {levels}, {C}, {H}, {W})"
            )
        picked = logits[idx, :, c_idx, i_idx, j_idx]  # (n, L): output k of batch element k
        weights = torch.randn(n, levels, generator=gen, dtype=picked.dtype)
        (grad,) = torch.autograd.grad((picked * weights).sum(), x)
        dep |= grad.reshape(n, n) != 0
    return dep.reshape(C, H, W, C, H, W)


def _double_copy(model: nn.Module) -> nn.Module:
    import copy

    probe = copy.deepcopy(model).double().eval()
    for module in list(probe.modules()):
        for child_name, child in module.named_children():
            if isinstance(child, nn.ReLU):  # same connectivity, never exactly zero slope
                setattr(module, child_name, nn.LeakyReLU(0.1))
    for p in probe.parameters():
        p.requires_grad_(False)
    return probe


def _order(C: int, H: int, W: int) -> torch.Tensor:
    """Autoregressive position of every sub-pixel, indexed ``[c, i, j]``."""
    c = torch.arange(C)[:, None, None]
    i = torch.arange(H)[None, :, None]
    j = torch.arange(W)[None, None, :]
    return (i * W + j) * C + c


def _pairs(mask: torch.Tensor, shape: tuple[int, int, int]) -> list[tuple[tuple, tuple]]:
    C, H, W = shape
    order = _order(C, H, W).flatten()
    flat = mask.reshape(C * H * W, C * H * W)
    out_k, in_k = flat.nonzero(as_tuple=True)
    # sort by (output position, input position) so the first pair is the earliest offence
    key = order[out_k] * (C * H * W) + order[in_k]
    pairs = []
    for k in key.argsort().tolist():
        o, m = out_k[k].item(), in_k[k].item()
        pairs.append(((o // W % H, o % W, o // (H * W)), (m // W % H, m % W, m // (H * W))))
    return pairs


def causal_violations(dep: torch.Tensor) -> list[tuple[tuple, tuple]]:
    """Pairs ``((i, j, c) output, (i2, j2, c2) input)`` where an output sees itself or the future."""
    C, H, W = dep.shape[:3]
    order = _order(C, H, W).flatten()
    allowed = order[None, :] < order[:, None]  # input strictly before output
    bad = dep.reshape(C * H * W, -1) & ~allowed
    return _pairs(bad, (C, H, W))


def missing_dependencies(dep: torch.Tensor) -> list[tuple[tuple, tuple]]:
    """Pairs ``(output, input)`` where the input is strictly earlier but has no influence.

    Empty means *full context*: every output sees every earlier sub-pixel (Diagonal BiLSTM).
    """
    C, H, W = dep.shape[:3]
    order = _order(C, H, W).flatten()
    earlier = order[None, :] < order[:, None]
    missing = earlier & ~dep.reshape(C * H * W, -1)
    return _pairs(missing, (C, H, W))


def assert_causal(
    model: nn.Module,
    shape: tuple[int, int, int],
    dep: torch.Tensor | None = None,
    condition: torch.Tensor | None = None,
) -> None:
    """Raise ``AssertionError`` naming the first output that sees itself or the future.

    Example message: ``output (2,3,G) sees input (2,4,R)``.
    """
    dep = dependency_map(model, shape, condition=condition) if dep is None else dep
    bad = causal_violations(dep)
    if bad:
        (oi, oj, oc), (ii, ij, ic) = bad[0]
        C = shape[0]
        raise AssertionError(
            f"output {subpixel_name(oi, oj, oc, C)} sees input {subpixel_name(ii, ij, ic, C)}"
            f" ({len(bad)} leaking pairs in all)"
        )


def receptive_field(dep: torch.Tensor, i: int, j: int, c: int = 0) -> torch.Tensor:
    """``(H, W)`` map: how many input channels of each pixel output (i, j, c) depends on."""
    return dep[c, i, j].sum(dim=0)


def blind_pixels(dep: torch.Tensor, i: int, j: int, c: int = 0) -> torch.Tensor:
    """``(H, W)`` bool: the earlier pixels *inside* output (i, j, c)'s reach that it does not see.

    The reach is the rectangle spanned by the pixels it sees in the rows above (from the highest
    such row down to row i - 1, from the leftmost column seen to the rightmost), and on row i the
    columns from the leftmost seen one to j - 1. PixelCNN's blind spot is the triangle of it to the
    upper right (notebook 02); a model without one has none (the Gated PixelCNN, notebook 10).
    """
    seen = dep[c, i, j].any(dim=0)  # (H, W): pixels with any channel seen
    blind = torch.zeros_like(seen)
    above = seen[:i].nonzero()
    if len(above):
        top, left, right = above[:, 0].min(), above[:, 1].min(), above[:, 1].max()
        blind[top:i, left : right + 1] = ~seen[top:i, left : right + 1]
    row = seen[i, :j].nonzero()
    if len(row):
        blind[i, row[:, 0].min() : j] = ~seen[i, row[:, 0].min() : j]
    return blind


def colour_dependency(dep: torch.Tensor, i: int, j: int) -> torch.Tensor:
    """``(C, C)`` matrix: does output colour (row) at pixel (i, j) see input colour (col) there?"""
    return dep[:, i, j, :, i, j]
