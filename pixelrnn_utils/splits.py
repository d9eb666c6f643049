"""The data of a training run: its training and validation images, and its labels checked.

:func:`load_splits` cuts a source into the run's two parts (binarized MNIST: its published splits),
decoding only the images the run uses; :func:`check_labels` refuses labels a class-conditional
model cannot take and warns about classes the training images never show.
"""

from __future__ import annotations

import warnings

from torch.utils.data import Dataset, Subset

from .config import TrainConfig
from .data import (
    count_images,
    is_binarized_mnist,
    load_dataset,
    source_levels,
    split_indices,
    with_levels,
)

__all__ = ["load_splits", "check_labels"]


def load_splits(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """The training and validation sets, with sub-pixels in ``cfg.levels`` bins.

    Binarized MNIST has published splits, used as they are: ``train`` and ``valid`` (``limit`` and
    ``val_limit`` keep evenly spread images of each). Every other source has one training split,
    cut deterministically into two parts (by ``split_seed``, else ``seed``); only the images used
    are decoded: ``limit`` and ``val_limit`` keep the first images of each part (in sorted order), so a small run starts
    fast; large decodes are cached (see ``data``).
    """
    levels = cfg.levels or source_levels(cfg.data)
    if is_binarized_mnist(cfg.data):
        train_set, val_set = (
            load_dataset(
                cfg.data,
                split=split,
                image_size=cfg.image_size,
                channels=cfg.channels,
                limit=limit,
            )
            for split, limit in (("train", cfg.limit), ("valid", cfg.val_limit))
        )
        return with_levels(train_set, levels), with_levels(val_set, levels)
    n = count_images(cfg.data, root=cfg.data_root, train=True)
    if n < 2:
        raise ValueError(f"{cfg.data} has {n} image: a run needs one to train on, one to validate")
    split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
    train_part, val_part = split_indices(n, cfg.val_fraction, seed=split_seed)
    train_part, val_part = train_part[: cfg.limit], val_part[: cfg.val_limit]
    data = load_dataset(
        cfg.data,
        root=cfg.data_root,
        train=True,
        image_size=cfg.image_size,
        channels=cfg.channels,
        indices=train_part + val_part,
    )
    data = with_levels(data, levels)
    position = {source: k for k, source in enumerate(data.indices)}  # unreadable files are gone
    train_set = Subset(data, [position[i] for i in train_part if i in position])
    val_set = Subset(data, [position[i] for i in val_part if i in position])
    for name, asked, part in (
        ("training", train_part, train_set),
        ("validation", val_part, val_set),
    ):
        if asked and not len(part):  # an epoch would report 0 bits/dim, a validation NaN
            raise ValueError(
                f"none of the {len(asked)} {name} images of {cfg.data} could be read (see the "
                "warnings above): replace or remove those files, or use more images"
            )
    return train_set, val_set


def check_labels(dataset: Dataset, classes: int) -> None:
    """Refuse data whose labels are not class numbers ``0..classes-1`` (binarized MNIST has none);
    warn about classes the training images never show: their vectors stay as initialised, and
    images sampled for them are not images of anything."""
    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    labels = getattr(base, "labels", None)
    if labels is None or not len(labels):
        return
    if isinstance(dataset, Subset):
        labels = labels[list(dataset.indices)]
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise ValueError(
            f"--classes {classes} needs labels 0..{classes - 1}; this data's labels run from "
            f"{low} to {high}" + (" (it has no class labels)" if high < 0 else "")
        )
    unseen = sorted(set(range(classes)) - set(labels.tolist()))
    if unseen:
        fewer = (
            f"pass --classes {high + 1} if the data has {high + 1}, or "
            if high + 1 < classes
            else ""
        )
        warnings.warn(
            f"--classes {classes}, but the training images have no label {_ranges(unseen)}: the "
            f"model learns nothing for those classes ({fewer}train on more images)",
            stacklevel=2,
        )


def _ranges(numbers: list[int]) -> str:
    """Sorted integers as a short list: ``[3, 4, 5, 9]`` -> ``"3..5, 9"``."""
    runs: list[list[int]] = []
    for k in numbers:
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs)
