"""torch.compile against eager on one batch: the same loss and gradients, and how long compiling took.

    python benchmarks/compile_check.py [--device cuda] [--backend inductor] [--small] [--json]

The seed model (Row LSTM, hidden 64, 4 layers, 32x32 RGB; ``--small``: hidden 8, 1 layer, 8x8)
on one random batch of 16, float32 with TF32 off: the loss and every parameter's gradient, eager
and through ``torch.compile(..., fullgraph=True)`` (one graph, or an error), forward, loss and
the recurrences' hand-written backward included. Prints the seconds the compiled step's first
call took (tracing and compiling), the loss difference and the largest gradient difference
relative to that gradient's largest value; exits 1 if they differ by more than ``--rtol``.
``--backend aot_eager`` traces without generating kernels (what the CPU tests use).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from step_ops import build, step_inputs, step_loss  # noqa: E402

from pixelrnn_utils.settings import exact_float32, values_checked  # noqa: E402


def loss_and_grads(model, x, condition, step) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    with values_checked():
        loss = step(model, x, condition, None)
    loss.backward()
    return float(loss.detach()), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    size = 8 if args.small else 32
    hidden, layers = (8, 1) if args.small else (64, 4)
    config = dict(arch="row_lstm", hidden=hidden, layers=layers, channels=3, image_size=size)
    model = build(**config).to(args.device)
    x, condition = step_inputs(model, 16, size)
    x = x.to(args.device)
    with exact_float32():
        eager_loss, eager = loss_and_grads(model, x, condition, step_loss)
        compiled_step = torch.compile(step_loss, backend=args.backend, fullgraph=True)
        start = time.perf_counter()
        compiled_loss, compiled = loss_and_grads(model, x, condition, compiled_step)
        first_call = time.perf_counter() - start
    worst = max(
        float((compiled[n] - eager[n]).abs().max() / eager[n].abs().max().clamp_min(1e-30))
        for n in eager
    )
    row = {
        "device": str(args.device),
        "backend": args.backend,
        "compile_seconds": first_call,
        "loss_difference": abs(compiled_loss - eager_loss),
        "max_relative_gradient_difference": worst,
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(row))
    else:
        print(
            f"compiled ({args.backend}, {args.device}) vs eager, one batch: first call "
            f"{first_call:.0f} s, loss difference {row['loss_difference']:.2e}, largest gradient "
            f"difference {worst:.2e} of the gradient's scale"
        )
    return 0 if row["loss_difference"] <= args.rtol * abs(eager_loss) and worst <= args.rtol else 1


if __name__ == "__main__":
    sys.exit(main())
