"""Where and how a training run runs: its device, its processes (DDP), its memory and Ctrl-C.

The plumbing around the training loop (``train.py``), kept apart so that the loop reads as the
course teaches it: :func:`pick_device` (``--device``, ``LOCAL_RANK`` under torchrun),
:func:`start_distributed` (the process group), :func:`keep_freed_memory` (the C allocator keeps
freed blocks: no page faults every step on the CPU) and :func:`stop_on_ctrl_c` (a first Ctrl-C
ends the run at the next step boundary, with ``last.pt`` written there).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

__all__ = [
    "pick_device",
    "start_distributed",
    "stop_distributed",
    "keep_freed_memory",
    "stop_on_ctrl_c",
]


def keep_freed_memory() -> bool:
    """Ask the C allocator to keep freed memory for reuse instead of handing it back to the OS.

    A training step on the CPU allocates and frees a few hundred MB in large tensors (the float32
    logits of a batch of 16 alone are 50 MB). By default glibc's ``malloc`` returns every large
    block to the operating system, and the next step pays again to fault the same pages in: on the
    course's 2-core CPU that was about a sixth of a bf16 training step. With ``M_MMAP_MAX = 0`` and
    a high trim threshold, freed blocks stay in the process and are reused; the process's memory
    then stays at its peak until it exits. Linux with glibc only (``train`` calls it for CPU runs);
    elsewhere it does nothing and returns False.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's <malloc.h>
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device a run uses: ``device`` if given, else this process's GPU, else the CPU.

    A CUDA device always gets an index (``"cuda"`` means this process's GPU: ``LOCAL_RANK`` under
    torchrun, else the current one), as ``torch.cuda.set_device`` and DDP need.
    """
    if device is None or str(device) == "":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        local = os.environ.get("LOCAL_RANK")
        device = torch.device("cuda", int(local) if local else torch.cuda.current_device())
    return device


def start_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun.

    The backend follows the run's device, not the machine: NCCL for GPUs, Gloo for
    ``--device cpu`` (also on a GPU host).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def stop_distributed(world: int) -> None:
    """End the process group a run of ``world`` > 1 processes started, once every rank is done:
    a process that exits with Gloo's threads still running is aborted ("terminate called without
    an active exception"), and torchrun reports the run as failed."""
    if world > 1 and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def stop_on_ctrl_c(run: Any) -> Iterator[None]:
    """A first Ctrl-C (SIGINT; Jupyter's "interrupt") ends the run at the next step boundary.

    The step in flight finishes, ``last.pt`` is written with the exact position (as the periodic
    saves are) and ``KeyboardInterrupt`` is raised, so that ``--resume`` loses nothing. A second
    Ctrl-C interrupts at once. Single-process runs in the main thread only (under torchrun the
    processes must stop together, and signal handlers belong to the main thread).
    """
    if run.world > 1 or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:  # installed outside Python: fall back to Python's own
        previous = signal.default_int_handler

    def ask_to_stop(signum, frame) -> None:
        run.stop_requested = True
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C stops at once
        if run.show:
            tqdm.write("Ctrl-C: stopping after this step and saving last.pt (again: stop at once)")

    signal.signal(signal.SIGINT, ask_to_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
