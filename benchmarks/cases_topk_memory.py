"""Peak extra memory of the exact 50% top-k mask, per element, against NumPy's partition.

Each job runs once in a fresh interpreter (after a warm-up on a tiny array,
so compiling is outside the measurement): the rise of the process's peak
resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` just
before the call) above the resident set before it, divided by the element
count. The mask itself is 1 byte per element; the input is not counted (it
exists before). Inputs: int8 (tie-free is impossible at 134M elements, so
int8 rows are "half zeros" and "random bytes") and float32 (tie-free, and
half zeros). NumPy's peer: ``np.partition`` of ``|x|`` plus the compare
(what a user writes), which needs the absolute values and a partitioned copy.
Memory rows put bytes per element in the time columns; ratio = NumPy / ours.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from harness import is_quick, versus

sys.path.insert(0, str(Path(__file__).parent))
from cases_model import peak_rss_mib  # noqa: E402


def _data(kind: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    if kind == "int8 half zeros":
        a = rng.integers(-128, 128, n, dtype=np.int8)
        a[: n // 2] = 0
        return rng.permutation(a)
    if kind == "int8 random":
        return rng.integers(-128, 128, n, dtype=np.int8)
    if kind == "float32 half zeros":
        a = rng.standard_normal(n, dtype=np.float32)
        a[: n // 2] = 0
        return rng.permutation(a)
    return rng.standard_normal(n, dtype=np.float32)


def _ours(a: np.ndarray) -> np.ndarray:
    import arraysparse as asp

    return asp.topk_mask(a, 0.5, magnitude=True).mask


def _numpy(a: np.ndarray) -> np.ndarray:
    s = np.abs(a)
    k = a.size // 2
    t = np.partition(s, k)[k]
    return s >= t  # not count-exact under ties; the memory a user pays for the idiom


def _memory_main(who: str, kind: str, n: int) -> None:
    fn = _ours if who == "ours" else _numpy
    fn(_data(kind, 2048))  # warm-up: compile (or load) outside the measurement
    a = _data(kind, n)
    print(peak_rss_mib(lambda: fn(a)) * 2**20 / n)


def _measure(who: str, kind: str, n: int) -> float:
    out = subprocess.run(
        [sys.executable, str(Path(__file__)), who, kind, str(n)], check=True, capture_output=True, text=True
    )
    return float(out.stdout.split()[-1])


def case_topk_memory(x):
    n = 1 << 22 if is_quick(x) else 1 << 27
    rows = []
    for kind in ("float32 tie-free", "float32 half zeros", "int8 random", "int8 half zeros"):
        ours = _measure("ours", kind, n)
        peer = _measure("numpy", kind, n)
        rows.append(
            versus(
                f"peak extra bytes per element, exact 50% |x| mask, {kind}, {n / 1e6:.0f}M elements "
                "(the mask itself: 1)",
                ours, "numpy abs+partition+compare", peer,
            )
        )
    return rows


CASES = [case_topk_memory]

if __name__ == "__main__":
    _memory_main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
