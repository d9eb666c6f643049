"""Resuming a run from ``out/last.pt``: read and checked before any data is decoded, then loaded.

:func:`read_last` refuses a checkpoint of another model or, in the middle of an epoch, of other
batches (the rest of the epoch must be the same batches); :func:`resume_run` loads the weights, the
optimizer (or a fresh one, with a warning, for a checkpoint made for sharing), Polyak averaging's
average, the GradScaler and the RNG states, and warns when another ``--epochs`` or ``--lr-schedule`` bends a cosine schedule.
The ``run`` these take is ``train``'s record of a run (its model, optimizer, scaler, settings).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointError, read_checkpoint, set_rng_state
from .config import TrainConfig, learning_rate

__all__ = ["read_last", "resume_run"]


def read_last(cfg: TrainConfig, out: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """``out/last.pt`` of a run to resume (None: there is none), checked against this run's
    model and settings before any data is decoded."""
    if not (cfg.resume and (out / "last.pt").exists()):
        return None
    # read on the CPU: the RNG states must stay CPU tensors; load_state_dict (model and
    # Adam) copies the rest to the model's device
    state = read_checkpoint(out / "last.pt", map_location="cpu")
    if state["config"] != config:
        raise CheckpointError(
            f"cannot resume {out / 'last.pt'}: it was trained with {state['config']}, "
            f"this run asks for {config}. Use the same options or another --out folder."
        )
    if state.get("ema") is not None and cfg.ema is None:  # the next save would drop the average
        raise CheckpointError(
            f"cannot resume {out / 'last.pt'} without Polyak averaging: it keeps an average of "
            f"its weights (decay {state['ema']['decay']}) that this run would not keep. Resume "
            f"with ema={state['ema']['decay']} (--ema {state['ema']['decay']}), or another --out."
        )
    position = state.get("position")  # set when the run stopped in the middle of an epoch
    if position:  # the rest of that epoch must be the same batches
        before = state.get("train", {})
        for key in ("batch_size", "seed", "split_seed", "limit", "val_fraction"):
            if key in before and before[key] != getattr(cfg, key):
                raise CheckpointError(
                    f"cannot resume {out / 'last.pt'} in the middle of epoch {position['epoch']}: "
                    f"it was trained with {key}={before[key]!r}, this run asks for "
                    f"{getattr(cfg, key)!r}. Use the same {key} (or another --out folder)."
                )
    return state


def resume_run(
    run: Any, state: dict[str, Any]
) -> tuple[int, list[dict[str, Any]], dict[str, Any] | None]:
    """Load ``state`` (``out/last.pt``, see :func:`read_last`) into the run: (epochs done,
    metrics so far, position inside an epoch)."""
    run.model.load_state_dict(state["model"])
    if state.get("optimizer") is not None:
        run.optimizer.load_state_dict(state["optimizer"])
    elif run.rank == 0:  # a checkpoint exported for sharing (export_weights): weights only
        warnings.warn(
            f"{run.out / 'last.pt'} holds no optimizer state (a checkpoint made for sharing): the "
            "run continues from its weights with a fresh Adam optimizer, so its next steps are "
            "not the ones the original run would have taken",
            stacklevel=3,
        )
    _resume_average(run, state)
    if state.get("scaler") and run.scaler.is_enabled():
        run.scaler.load_state_dict(state["scaler"])
    position = state.get("position")
    note = _schedule_change(run, state.get("train", {}), state["epoch"], position)
    if note and run.rank == 0:
        warnings.warn(note, stacklevel=3)
    set_rng_state(state["rng"])
    return state["epoch"], list(state["metrics"]), position


def _resume_average(run: Any, state: dict[str, Any]) -> None:
    """Polyak averaging on resume: the checkpoint's average continued; started at its weights
    (with a note) when the run adds ``--ema``."""
    if run.average is None:
        return
    if state.get("ema") is not None:
        run.average.load_state_dict(state["ema"])
        return
    run.average.restart()
    if run.rank == 0:
        warnings.warn(
            f"{run.out / 'last.pt'} was trained without --ema: the average starts now, at its "
            "weights",
            stacklevel=4,
        )


def _schedule_change(
    run: Any, before: dict[str, Any], epoch: int, position: dict | None
) -> str | None:
    """What resuming with another ``--epochs`` or ``--lr-schedule`` does to the learning rate.

    A cosine schedule is laid out over the run's epochs, so resuming a cosine run with more epochs
    than it started with moves the rest of the curve: the rate jumps back up. None when nothing
    changes (or the checkpoint does not say how it was started).
    """
    cfg = run.cfg
    old = replace(
        cfg,
        epochs=before.get("epochs", cfg.epochs),
        lr_schedule=before.get("lr_schedule", cfg.lr_schedule),
        lr=before.get("lr", cfg.lr),
    )
    if "cosine" not in (old.lr_schedule, cfg.lr_schedule):
        return None
    if (old.epochs, old.lr_schedule, old.lr) == (cfg.epochs, cfg.lr_schedule, cfg.lr):
        return None
    step = epoch * run.steps_per_epoch + (position["step"] if position else 0)
    was = learning_rate(old, step, old.epochs * run.steps_per_epoch)
    now = learning_rate(cfg, step, cfg.epochs * run.steps_per_epoch)
    return (
        f"--resume with another learning-rate schedule: {run.out / 'last.pt'} was started with "
        f"--lr-schedule {old.lr_schedule} --lr {old.lr:g} over {old.epochs} epochs, this run asks "
        f"for --lr-schedule {cfg.lr_schedule} --lr {cfg.lr:g} over {cfg.epochs}. Its next step "
        f"runs at learning rate {now:.3g} where the old schedule had {was:.3g}. To keep the old "
        f"schedule, resume with --epochs {old.epochs} --lr-schedule {old.lr_schedule} --lr {old.lr:g}."
    )
