"""An independent causality checker: perturb one input sub-pixel at a time and see which logits move.

This deliberately shares no code with ``pixelrnn_utils.causality`` (which uses one batched autograd
backward pass): here we simply change input values and compare outputs, which is slow but obviously
correct. Two different replacement values are tried for every sub-pixel and the union is taken, so
that a change that happens to leave an output unchanged (e.g. a ReLU that stays off) is unlikely
to hide a dependency.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

SHIFTS = (97, 181)  # replacement value = (v + shift) % 256, never equal to v
# Where there is no dependency the logits are bit-identical (change exactly 0.0); real but weak
# dependencies through several LSTM gates can move a logit by only ~1e-10, so the threshold sits
# well below that and well above float64 round-off.
TOL = 1e-12


def raster_position(C: int, H: int, W: int) -> torch.Tensor:
    """Autoregressive position ``[c, i, j]`` of every sub-pixel: raster over pixels, then R, G, B."""
    pos = torch.empty(C, H, W, dtype=torch.long)
    for c in range(C):
        for i in range(H):
            for j in range(W):
                pos[c, i, j] = (i * W + j) * C + c
    return pos


def earlier_than(C: int, H: int, W: int) -> torch.Tensor:
    """Bool ``(C, H, W, C, H, W)``: input sub-pixel (the last three indices) strictly precedes output."""
    pos = raster_position(C, H, W)
    return pos[None, None, None, :, :, :] < pos[:, :, :, None, None, None]


def with_leaky_relu(model: nn.Module, slope: float = 0.2) -> nn.Module:
    """A copy of ``model`` with every ``nn.ReLU`` replaced by ``nn.LeakyReLU(slope)``.

    A ReLU that is off for the probe image hides every dependency through it, so a dependency map
    of a ReLU network depends on the image. The leaky copy has exactly the same connectivity (a
    ReLU never *creates* a path) but no dead units, so its map shows the architecture itself.
    """
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, name, nn.LeakyReLU(slope))
    return model


@torch.no_grad()
def perturbation_map(
    model: nn.Module,
    shape: tuple[int, int, int],
    seed: int = 0,
    chunk: int = 256,
    condition: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bool ``dep[out_c, out_i, out_j, in_c, in_i, in_j]``: does that output move with that input?

    ``condition`` (a batch of one: a label ``(1,)`` or a small image) is given to every forward
    pass, unchanged: it is not part of the image, so it is not perturbed here.
    """
    C, H, W = shape
    n = C * H * W
    probe = copy.deepcopy(model).double().eval()
    gen = torch.Generator().manual_seed(seed)
    levels = getattr(model, "levels", 256)  # values per sub-pixel (2: binary images)
    base = torch.randint(0, levels, (1, C, H, W), generator=gen)

    def run(images: torch.Tensor) -> torch.Tensor:
        if condition is None:
            return probe(images)
        cond = torch.as_tensor(condition)
        return probe(images, condition=cond.expand(len(images), *cond.shape[1:]).clone())

    reference = run(base)[0]  # (L, C, H, W)
    moved = torch.zeros(n, C, H, W, dtype=torch.bool)  # [input k, out_c, out_i, out_j]
    for shift in SHIFTS:
        images = base.repeat(n, 1, 1, 1)
        flat = images.view(n, n)
        k = torch.arange(n)
        step = 1 + (shift - 1) % (levels - 1)  # = shift at 256 levels, never a multiple of L
        flat[k, k] = (flat[k, k] + step) % levels  # image k has input sub-pixel k changed
        for start in range(0, n, chunk):
            out = run(images[start : start + chunk])  # (b, L, C, H, W)
            change = (
                (out - reference).abs().amax(dim=1)
            )  # largest logit change per output sub-pixel
            moved[start : start + chunk] |= change > TOL
    # input index k enumerates (in_c, in_i, in_j); move the output indices to the front
    return moved.reshape(C, H, W, C, H, W).permute(3, 4, 5, 0, 1, 2).contiguous()


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Run a test module's tiny tensors on one thread, restoring the setting afterwards.

    The models in the tests are tiny; with several intra-op threads on a busy 2-core machine the
    thread synchronisation costs 10-50x more than the arithmetic. Import this fixture into a test
    module to use it there.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
