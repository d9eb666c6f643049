"""A pretend CUDA device on a CPU-only machine, strict about devices the way a GPU is.

Device bugs (a CPU tensor meeting a CUDA one, a CUDA tensor where the CPU is required) only show
on a GPU, which CI does not have. ``fake_cuda(monkeypatch)`` makes code believe a GPU is there:

* ``torch.cuda.is_available()`` is True, with one device ``cuda:0`` of a chosen compute
  capability; ``torch.cuda.set_device`` refuses a device without an index, as the real one does;
* ``.to("cuda")``, ``.cuda()``, and factories called with ``device="cuda"`` give tensors whose
  ``.device`` is ``cuda:0``. Their data stays on the CPU (so ``.item()``, backward and Adam run,
  unlike under ``FakeTensorMode``), and they are *tagged* as CUDA by their storage;
* every operation that mixes a CUDA tensor with a CPU tensor raises, as on a GPU ("Expected all
  tensors to be on the same device"), except the ones a GPU also allows: copies, moves, CPU
  0-dim scalars and CPU index tensors; ``.numpy()`` of a CUDA tensor raises; so do
  ``torch.set_rng_state`` with a CUDA tensor and a CPU generator for a CUDA factory;
* ``torch.load(map_location="cuda")`` gives CUDA tensors.

Not simulated: autocast (it does not cast on the pretend device), TF32, CUDA graphs (a module
given to ``torch.cuda.make_graphed_callables`` comes back as it was: the step runs eagerly),
kernels.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

CUDA = torch.device("cuda", 0)
MISMATCH = (
    "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!"
)


def _is_cuda(device) -> bool:
    return device is not None and torch.device(device).type == "cuda"


class _Tags:
    """The storages that are 'on the GPU' (kept alive, so a freed address is never reused)."""

    def __init__(self) -> None:
        self.storages: dict[int, torch.UntypedStorage] = {}

    def tag(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr():
            self.storages[storage.data_ptr()] = storage
        return t

    def untag(self, t: torch.Tensor) -> torch.Tensor:
        self.storages.pop(t.untyped_storage().data_ptr(), None)
        return t

    def on_cuda(self, t) -> bool:
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return False
        try:
            return t.untyped_storage().data_ptr() in self.storages
        except (RuntimeError, NotImplementedError):  # sparse, nested, ...
            return False


_CROSS_DEVICE = {"copy_", "_to_copy", "to", "set_", "lift_fresh", "_copy_from", "detach"}
_INDEXING = {"index", "index_put", "index_put_", "_index_put_impl_"}


class _Dispatch(TorchDispatchMode):
    """Below autograd: checks devices, runs on the CPU, tags what a GPU op would put on the GPU."""

    def __init__(self, tags: _Tags) -> None:
        super().__init__()
        self.tags = tags

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name.split("::")[-1]
        leaves = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        cuda = [t for t in leaves if self.tags.on_cuda(t)]
        if cuda and name not in _CROSS_DEVICE:
            checked = leaves
            if name in _INDEXING:  # a GPU tensor may be indexed with CPU indices
                checked = [args[0]] + [t for t in leaves[1:] if t is not args[0] and t.dim() == 0]
                checked = leaves if not self.tags.on_cuda(args[0]) else checked
            if any(not self.tags.on_cuda(t) and t.dim() > 0 for t in checked):
                raise RuntimeError(f"{MISMATCH} (fake CUDA, in aten.{name})")
        out = func(*args, **kwargs)
        if cuda:  # (a move to the CPU is untagged again by _Function._move)
            tree_map(lambda o: self.tags.tag(o) if isinstance(o, torch.Tensor) else o, out)
        return out


class _Function(TorchFunctionMode):
    """Above the C++ bindings: device moves, factories with ``device=``, ``.device``, ``.numpy()``."""

    def __init__(self, tags: _Tags) -> None:
        super().__init__()
        self.tags = tags

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        owner = getattr(func, "__self__", None)
        self_ = args[0] if args else None
        if owner is torch.Tensor.device:
            return CUDA if self.tags.on_cuda(self_) else func(*args, **kwargs)
        if owner is torch.Tensor.is_cuda:
            return self.tags.on_cuda(self_)
        if name == "get_device" and isinstance(self_, torch.Tensor):
            return 0 if self.tags.on_cuda(self_) else -1
        if name in ("numpy", "__array__") and self.tags.on_cuda(self_):
            raise TypeError(
                "can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the "
                "tensor to host memory first. (fake CUDA)"
            )
        if name == "cuda" and isinstance(self_, torch.Tensor):
            return self._move(self_, True, None, kwargs.get("non_blocking", False))
        if name == "cpu" and isinstance(self_, torch.Tensor):
            return self._move(self_, False, None, False)
        if name == "to" and isinstance(self_, torch.Tensor):
            device, dtype, non_blocking, _ = torch._C._nn._parse_to(*args[1:], **kwargs)
            if isinstance(args[1] if len(args) > 1 else None, torch.Tensor):
                device = CUDA if self.tags.on_cuda(args[1]) else torch.device("cpu")
            if device is None:
                return func(*args, **kwargs)
            return self._move(self_, _is_cuda(device), dtype, non_blocking)
        if "device" in kwargs and _is_cuda(kwargs["device"]):
            generator = kwargs.get("generator")
            if generator is not None and generator.device.type != "cuda":
                raise RuntimeError(
                    "Expected a 'cuda' device type for generator but found 'cpu' (fake CUDA)"
                )
            out = func(*args, **{**kwargs, "device": "cpu"})
            return tree_map(lambda o: self.tags.tag(o) if isinstance(o, torch.Tensor) else o, out)
        return func(*args, **kwargs)

    def _move(self, t: torch.Tensor, to_cuda: bool, dtype, non_blocking: bool) -> torch.Tensor:
        if self.tags.on_cuda(t) == to_cuda and (dtype is None or dtype == t.dtype):
            return t
        moved = t.to("cpu", dtype=dtype or t.dtype, copy=True, non_blocking=non_blocking)
        moved = moved.requires_grad_(t.requires_grad) if moved.is_leaf else moved
        return self.tags.tag(moved) if to_cuda else self.tags.untag(moved)


def _set_device(device) -> None:
    torch.cuda._utils._get_device_index(device)  # ValueError for torch.device("cuda"), as real


def _no_op(*args, **kwargs) -> None:
    return None


@contextlib.contextmanager
def fake_cuda(monkeypatch, capability: tuple[int, int] = (9, 0)) -> Iterator[_Tags]:
    """Within the block, ``cuda:0`` exists (see the module docstring); yields the tag registry."""
    tags = _Tags()

    def set_rng_state(state: torch.Tensor) -> None:
        if tags.on_cuda(state):
            raise TypeError("RNG state must be a torch.ByteTensor (fake CUDA: got a CUDA tensor)")
        real_set_rng_state(state)

    def set_cuda_rng_state_all(states) -> None:
        for state in states:
            if tags.on_cuda(state) or state.dtype != torch.uint8:
                raise TypeError("RNG state must be a torch.ByteTensor (fake CUDA)")

    real_load = torch.load
    real_set_rng_state = torch.set_rng_state

    @functools.wraps(real_load)
    def load(*args, map_location=None, **kwargs):
        state = real_load(*args, map_location="cpu", **kwargs)
        if map_location is not None and _is_cuda(map_location):
            state = tree_map(lambda t: t.to(CUDA) if isinstance(t, torch.Tensor) else t, state)
        return state

    cuda = torch.cuda
    for name, value in {
        "is_available": lambda: True,
        "device_count": lambda: 1,
        "current_device": lambda: 0,
        "set_device": _set_device,
        "get_device_capability": lambda device=None: capability,
        "get_device_name": lambda device=None: "Fake GPU (CPU)",
        "is_bf16_supported": lambda *a, **k: capability >= (8, 0),
        "synchronize": lambda device=None: None,
        "get_rng_state_all": lambda: [torch.zeros(16, dtype=torch.uint8)],
        "set_rng_state_all": set_cuda_rng_state_all,
        "manual_seed_all": lambda seed: None,
        "manual_seed": lambda seed: None,
        # CUDA graphs are not simulated: a module "recorded" runs its own forward, eagerly
        "make_graphed_callables": lambda callables, sample_args, **kwargs: callables,
    }.items():
        monkeypatch.setattr(cuda, name, value)
    # Adam asks the accelerator whether a CUDA graph is being captured: none is (the method's
    # name before torch 2.5: _cuda_graph_capture_health_check)
    for check in ("_accelerator_graph_capture_health_check", "_cuda_graph_capture_health_check"):
        if hasattr(torch.optim.Optimizer, check):
            monkeypatch.setattr(torch.optim.Optimizer, check, _no_op)
    monkeypatch.setattr(torch, "set_rng_state", set_rng_state)
    monkeypatch.setattr(torch, "load", load)
    monkeypatch.setattr(torch.utils.data._utils.pin_memory, "pin_memory", lambda data, *a: data)
    with _Function(tags), _Dispatch(tags):
        yield tags
