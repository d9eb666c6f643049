"""Copy a small ImageFolder subset for the GPU check (the full CIFAR-10 copy is over the 64 MiB
that travels to a lent GPU machine): the first ``--per-class`` files of every class, unchanged.

    python benchmarks/gpu_subset.py --source ../shared/data/cifar10-train --out data/gpu_subset
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def copy_subset(source: Path, out: Path, per_class: int) -> int:
    """Copy; returns the number of files. ``out`` is replaced."""
    shutil.rmtree(out, ignore_errors=True)
    count = 0
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        for path in sorted(p for p in folder.iterdir() if p.is_file())[:per_class]:
            (out / folder.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out / folder.name / path.name)
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("../shared/data/cifar10-train"))
    parser.add_argument("--out", type=Path, default=Path("data/gpu_subset"))
    parser.add_argument("--per-class", type=int, default=500)
    args = parser.parse_args()
    n = copy_subset(args.source, args.out, args.per_class)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file()) / 2**20
    print(f"{n} images, {size:.1f} MiB in {args.out}")


if __name__ == "__main__":
    main()
