"""What one training step asks of a GPU: kernel launches, host syncs and graph breaks, counted on the CPU.

    python benchmarks/step_ops.py                       # the seed and the paper's MNIST model
    python benchmarks/step_ops.py --arch diagonal_bilstm --hidden 16 --layers 7 --channels 1 \\
        --image-size 28 --levels 2 --skip --no-full-context --precision bf16 [--json]

A GPU runs a step as fast as the CPU can launch its kernels when the kernels are small (the
recurrences' per-row work at batch 16): 3-5 us a launch, so the number of launches bounds the
step. This script runs one forward + loss + backward of a model on random images on the CPU, as
``train`` runs it (under ``settings.values_checked``, autocast at ``--precision``), and counts:

* **ops**: every aten operation that would launch a kernel on a GPU (a ``TorchDispatchMode``
  sees each one); views, allocations without a fill, ``detach`` and value reads are not counted;
* **syncs**: ``aten._local_scalar_dense``, a read of a tensor's value by the host
  (``.item()``, ``int(t)``, ``if t:``), which on a GPU waits for every kernel queued before it;
* **graph breaks**: where ``torch.compile`` (Dynamo) must leave its graph in the forward and
  loss (``torch._dynamo.explain``); with ``--no-explain``, not counted (it takes seconds).

No GPU is needed: which kernels an op launches does not depend on the device. The course's
targets (issue "The GPU run at GPU speed"): the seed Row LSTM <= 2,500 ops, the paper's MNIST
Diagonal BiLSTM <= 6,000, every model 0 syncs and 0 graph breaks; ``tests/test_step_ops.py``
holds the course to them.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pixelrnn_utils.metrics import nll  # noqa: E402
from pixelrnn_utils.model import build_model  # noqa: E402
from pixelrnn_utils.settings import values_checked  # noqa: E402

# operations that launch no kernel of their own: allocations without a fill, autograd's detach,
# the host's read of a value (counted as a sync instead)
NO_KERNEL = {
    "empty",
    "empty_strided",
    "new_empty",
    "new_empty_strided",
    "empty_like",
    "detach",
    "lift_fresh",
    "_local_scalar_dense",
}


class StepCounter(TorchDispatchMode):
    """Counts the aten operations run inside it (``ops``: by name, views excluded) and the host's
    reads of tensor values (``syncs``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()
        self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        name = func._schema.name.split("::")[1]
        if name == "_local_scalar_dense":
            self.syncs += 1
        returns = func._schema.returns
        is_view = bool(returns) and returns[0].alias_info is not None
        is_view = is_view and not returns[0].alias_info.is_write
        if not is_view and name not in NO_KERNEL:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def step_inputs(model: torch.nn.Module, batch: int, size: int, seed: int = 0):
    """Random images ``(batch, C, size, size)`` of the model's levels and its condition (or None)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, model.levels, (batch, model.in_channels, size, size), generator=g)
    classes = getattr(model, "classes", None)  # a Multi-Scale model conditions itself
    condition = None if classes is None else torch.randint(0, classes, (batch,), generator=g)
    return x, condition


def step_loss(model: torch.nn.Module, x: torch.Tensor, condition, dtype) -> torch.Tensor:
    """Forward and loss as ``train_step`` runs them: autocast at ``dtype`` (None: float32)."""
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        logits = model(x) if condition is None else model(x, condition)
    return nll(logits, x)


def count_step(model: torch.nn.Module, x: torch.Tensor, condition=None, dtype=None) -> StepCounter:
    """The ops and syncs of one forward + loss + backward, the batch's values checked before."""
    model.zero_grad(set_to_none=True)
    with values_checked(), StepCounter() as counter:
        step_loss(model, x, condition, dtype).backward()
    return counter


def graph_breaks(model: torch.nn.Module, x: torch.Tensor, condition=None, dtype=None) -> list[str]:
    """Why Dynamo breaks its graph in the forward and loss (empty: one graph)."""
    torch._dynamo.reset()
    explained = torch._dynamo.explain(step_loss)(model, x, condition, dtype)
    reasons = [str(b.reason).splitlines()[0] for b in explained.break_reasons]
    return reasons + ["(graph break)"] * (explained.graph_break_count - len(reasons))


CONFIGURATIONS = {  # the ones the course's targets name
    "seed Row LSTM": dict(arch="row_lstm", hidden=64, layers=4, channels=3, image_size=32),
    "paper's MNIST Diagonal BiLSTM": dict(
        arch="diagonal_bilstm",
        hidden=16,
        layers=7,
        channels=1,
        image_size=28,
        levels=2,
        skip=True,
        full_context=False,
    ),
}


def build(arch, hidden, layers, channels, image_size, levels=256, **options) -> torch.nn.Module:
    """A model of a configuration (options as ``build_model`` takes them), seeded."""
    torch.manual_seed(0)
    return build_model(arch, channels, hidden, layers, levels=levels, **options)


def report(name: str, config: dict, batch: int, dtype, explain: bool) -> dict:
    model = build(**config)
    x, condition = step_inputs(model, batch, config["image_size"])
    counter = count_step(model, x, condition, dtype)
    row = {
        "configuration": name,
        "precision": "fp32" if dtype is None else "bf16",
        "batch": batch,
        "ops": sum(counter.ops.values()),
        "syncs": counter.syncs,
        "busiest": dict(counter.ops.most_common(6)),
    }
    if explain:
        row["graph_breaks"] = len(graph_breaks(model, x, condition, dtype))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default=None, help="one configuration (default: the two named)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--levels", type=int, default=256)
    parser.add_argument("--classes", type=int, default=None)
    parser.add_argument("--multiscale", type=int, default=None)
    parser.add_argument("--skip", action="store_true")
    parser.add_argument("--no-full-context", dest="full_context", action="store_false")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--precision", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"]
    )
    parser.add_argument("--no-explain", dest="explain", action="store_false")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    configurations = dict(CONFIGURATIONS)
    if args.arch:
        options = {"skip": args.skip}
        if not args.full_context:
            options["full_context"] = False
        for name in ("classes", "multiscale"):
            if getattr(args, name) is not None:
                options[name] = getattr(args, name)
        configurations = {
            args.arch: dict(
                arch=args.arch,
                hidden=args.hidden,
                layers=args.layers,
                channels=args.channels,
                image_size=args.image_size,
                levels=args.levels,
                **options,
            )
        }
    rows = []
    for name, config in configurations.items():
        for precision in args.precision:
            dtype = torch.bfloat16 if precision == "bf16" else None
            rows.append(report(name, config, args.batch_size, dtype, args.explain))
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"one forward + loss + backward, batch {args.batch_size}, torch {torch.__version__}")
    print("| configuration | precision | ops (GPU kernels) | host syncs | graph breaks |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        breaks = r.get("graph_breaks", "not counted")
        print(
            f"| {r['configuration']} | {r['precision']} | {r['ops']:,} | {r['syncs']} | {breaks} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
