"""Run a layer's fast and readable paths on the same inputs and compare outputs and gradients.

The Row LSTM and the Diagonal BiLSTM each compute their recurrence two ways (``layer.fast``): a
readable loop through autograd, and a fast recurrence with a hand-written backward. Their tests
check, with :func:`fast_and_readable` and :func:`assert_same`, that both give the same outputs and
the same gradients for every parameter and every input, in float64.
"""

from __future__ import annotations

import torch
from torch import nn

Result = tuple[torch.Tensor, list[torch.Tensor | None], dict[str, torch.Tensor]]


def fast_and_readable(
    layer: nn.Module, inputs: tuple[torch.Tensor | None, ...], probe: torch.Tensor
) -> tuple[Result, Result]:
    """``layer(*inputs)`` with ``layer.fast`` True, then False, each followed by a backward of
    ``(output * probe).sum()``. Each result: the output, the gradient of every input that requires
    one (zeros when none reached it; None for the others) and every parameter's gradient."""
    results = []
    for fast in (True, False):
        layer.fast = fast
        layer.zero_grad()
        wanted = [t is not None and t.requires_grad for t in inputs]
        for t, want in zip(inputs, wanted, strict=True):
            if want:
                t.grad = None
        y = layer(*inputs)
        (y * probe).sum().backward()
        input_grads = [
            (torch.zeros_like(t) if t.grad is None else t.grad.clone()) if want else None
            for t, want in zip(inputs, wanted, strict=True)
        ]
        grads = {n: p.grad.clone() for n, p in layer.named_parameters()}
        results.append((y.detach(), input_grads, grads))
    return results[0], results[1]


def assert_same(fast: Result, readable: Result) -> None:
    """Equal outputs and gradients, to float64 round-off."""
    close = dict(atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(fast[0], readable[0], **close)
    for a, b in zip(fast[1], readable[1], strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, **close)
    assert fast[2].keys() == readable[2].keys()
    for name in fast[2]:
        torch.testing.assert_close(fast[2][name], readable[2][name], msg=name, **close)
