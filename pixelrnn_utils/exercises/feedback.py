"""How every check cell reports its verdict, in one line.

The line is "✓ correct", "✗ not yet: <hint>" or "… not attempted yet: ...". ``_verdict`` prints
it for a right or wrong answer, ``_attempted`` for an answer still at ``None``, and ``_number``
compares a numeric answer with the expected value (relative tolerance). The check modules of the
notebooks (``nb01_data_quantization`` … ``nb10_gated_pixelcnn``) all report through these
three.
"""

from __future__ import annotations

from typing import Any


def _verdict(ok: bool, hint: str) -> bool:
    print("✓ correct" if ok else f"✗ not yet: {hint}")
    return ok


def _attempted(answer: Any) -> bool:
    if answer is None:
        print(
            "… not attempted yet: write your answer in the cell above, run it, then run this cell"
        )
        return False
    return True


def _number(answer: Any, expected: float, hint: str, tol: float = 1e-3) -> bool:
    if not _attempted(answer):
        return False
    return _verdict(abs(float(answer) - expected) <= tol * max(1.0, abs(expected)), hint)
