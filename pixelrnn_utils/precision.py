"""Which precision a run trains in: ``fp32``, ``bf16`` or ``fp16``, and what ``auto`` picks here.

Mixed precision is ``torch.autocast`` around the forward pass: the convolutions and products run in
16 bits, while the LSTM state and update, the logits, the loss and every reported bits/dim stay
float32. ``auto`` means bfloat16 on CUDA GPUs of compute capability >= 8.0 and on CPUs with native
bfloat16 instructions (AVX512-BF16 or AMX), float16 with a GradScaler on older GPUs, float32
otherwise.
"""

from __future__ import annotations

import torch

__all__ = ["PRECISIONS", "DTYPES", "cpu_has_fast_bf16", "resolve_precision", "autocast_dtype"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: The autocast dtype of each precision (None: no autocast, float32).
DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def cpu_has_fast_bf16() -> bool:
    """True when this CPU has native bfloat16 instructions that PyTorch uses (AVX512-BF16, AMX).

    False as well when PyTorch's kernels are held below AVX-512 (``ATEN_CPU_CAPABILITY=avx2``, as
    when emulating an older CPU): bfloat16 is then emulated in software, many times slower.
    """
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    except RuntimeError:  # pragma: no cover - very old builds
        return False


def resolve_precision(precision: str, device: torch.device | str) -> tuple[str, str]:
    """``(precision, reason)``: what ``precision`` means on ``device``; ``auto`` picks one.

    ``auto``: bf16 on CUDA GPUs with compute capability >= 8.0 and on CPUs with native bfloat16
    (:func:`cpu_has_fast_bf16`); fp16 (with a GradScaler) on older GPUs; fp32 otherwise.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        bf16_ok = major >= 8
        if precision == "bf16" and not bf16_ok:
            raise ValueError(
                f"this GPU (compute capability {major}.{minor}) has no fast bfloat16; "
                "use --precision fp16 (or auto, which picks it)"
            )
        if precision == "auto":
            if bf16_ok:
                return "bf16", f"auto: bf16 on a GPU of compute capability {major}.{minor}"
            return "fp16", f"auto: fp16 + GradScaler, the GPU ({major}.{minor}) lacks fast bf16"
        return precision, "chosen"
    if precision != "auto":
        return precision, "chosen"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16", "auto: this CPU runs bfloat16 natively (AVX512-BF16/AMX)"
    return "fp32", f"auto: float32 ({device.type} has no fast bfloat16 path here)"


def autocast_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype ``precision`` means on ``device``: bfloat16, float16 or None (fp32)."""
    return DTYPES[resolve_precision(precision, device)[0]]
