"""Global magnitude pruning of a whole model against ``torch.nn.utils.prune.global_unstructured``.

The model: 100 float32 weight matrices of varied shapes, ~25M values in all
(``--quick``: ~1M), standard normal (tie-free in practice). Both sides do the
same job at 50%: one threshold over all |w|, the masks, and pruned weights.

* ours: ``prune_model(model, 0.5)`` (``global_mask(..., magnitude=True)``
  then ``ModelMask.apply``: new pruned arrays, the model untouched);
* torch: ``prune.global_unstructured(params, prune.L1Unstructured, amount=0.5)``
  on the same tensors as ``nn.Parameter`` of 100 small modules (which stores
  ``weight_orig``, ``weight_mask`` and the pruned ``weight``). Fresh modules
  wrap the same storage for every call (outside the timing), so no call
  prunes an already pruned model.

Before any timing counts, our masks must equal concatenate-then-top-k
(``topk_mask`` on the concatenated |w|, ties to the lower index) exactly,
and torch's masks everywhere except among values equal to the threshold
(at 25M float32 values some |w| repeat; torch's topk orders ties
arbitrarily), with the same pruned count.

Peak extra memory: each job runs once in a fresh interpreter (after a
warm-up on a tiny model), so no memory freed by earlier runs is reused; the
rise of the process's peak resident set (Linux ``VmHWM``, reset through
``/proc/self/clear_refs`` just before the call) above the resident set
before it. For ours also the peak of ``tracemalloc`` (NumPy allocations). Memory rows put MiB in the time
columns; ratio = torch / ours.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from harness import REPEAT, Row, bench, is_quick, versus
from torch.nn.utils import prune

from arraysparse.masks import topk_mask
from arraysparse.model import global_mask, prune_model

LAYERS = 100


def make_model(total: int, seed: int = 0) -> dict[str, np.ndarray]:
    """100 matrices with rows in [64, 1024) and about ``total`` values in all."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(64, 1024, size=LAYERS)
    share = rng.uniform(0.5, 1.5, size=LAYERS)
    sizes = share / share.sum() * total
    cols = np.maximum(1, np.round(sizes / rows)).astype(int)
    return {
        f"block{i // 4}.layer{i % 4}.weight": rng.standard_normal((int(r), int(c)), dtype=np.float32)
        for i, (r, c) in enumerate(zip(rows, cols))
    }


def torch_modules(model: dict[str, np.ndarray]) -> list[torch.nn.Module]:
    mods = []
    for w in model.values():
        m = torch.nn.Module()
        m.weight = torch.nn.Parameter(torch.from_numpy(w))  # shares the array's storage
        mods.append(m)
    return mods


def torch_global(mods: list[torch.nn.Module]) -> None:
    prune.global_unstructured([(m, "weight") for m in mods], pruning_method=prune.L1Unstructured, amount=0.5)


def bench_torch(model: dict[str, np.ndarray]) -> tuple[float, list[torch.nn.Module]]:
    """Best of REPEAT after a warm-up; every call gets fresh modules (built outside the timing)."""
    best = float("inf")
    mods = None
    for _ in range(REPEAT + 1):
        mods = None
        gc.collect()
        mods = torch_modules(model)
        t0 = time.perf_counter()
        torch_global(mods)
        best = min(best, time.perf_counter() - t0)
    return best * 1e3, mods


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(field)


def peak_rss_mib(fn) -> float:
    """Rise of the peak resident set during ``fn()`` above the resident set before it (MiB)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    before = _status_kib("VmRSS:")
    out = fn()
    peak = _status_kib("VmHWM:")
    del out
    return (peak - before) / 1024


def peak_tracemalloc_mib(fn) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del out
    return peak / 2**20


def measure_in_fresh_process(who: str, total: int) -> float:
    """Peak extra resident memory of one job in a new interpreter (no memory left by other runs)."""
    out = subprocess.run(
        [sys.executable, str(Path(__file__)), "--memory", who, str(total)],
        check=True, capture_output=True, text=True,
    )
    return float(out.stdout.split()[-1])


def _memory_main(who: str, total: int) -> None:
    torch.set_num_threads(2)
    model = make_model(total)
    small = {"a": np.ones(10, np.float32), "b": np.ones(5, np.float32)}
    if who == "torch":
        torch_global(torch_modules(small))  # warm-up
        mods = torch_modules(model)
        print(peak_rss_mib(lambda: torch_global(mods)))
    elif who == "masks":
        global_mask(small, 0.5, magnitude=True)  # compile outside the measurement
        print(peak_rss_mib(lambda: global_mask(model, 0.5, magnitude=True)))
    else:
        prune_model(small, 0.5)
        print(peak_rss_mib(lambda: prune_model(model, 0.5)))


def case_model_global_magnitude(x):
    total = 1_000_000 if is_quick(x) else 25_000_000
    model = make_model(total)
    n = sum(w.size for w in model.values())
    label = f"{len(model)} tensors, {n / 1e6:.1f}M float32"

    mods = torch_modules(model)
    torch_global(mods)
    ours = global_mask(model, 0.5, magnitude=True)
    cat = np.concatenate([np.abs(w).ravel() for w in model.values()])
    reference = np.asarray(topk_mask(cat, 0.5).mask)  # concatenate-then-top-k, ties to the lower index
    got = np.concatenate([np.asarray(m.mask).ravel() for m in ours.values()])
    if not np.array_equal(got, reference):
        raise AssertionError("global mask differs from concatenate-then-top-k")
    threshold = cat[~reference].max()
    theirs = np.concatenate([m.weight_mask.numpy().astype(bool).ravel() for m in mods])
    differ = got != theirs  # torch's topk orders ties arbitrarily: only ties at the threshold may differ
    if theirs.sum() != got.sum() or np.any(cat[differ] != threshold):
        raise AssertionError("global mask differs from torch's beyond ties at the threshold")
    for m, w in zip(mods, model.values()):
        if not np.array_equal(np.where(m.weight_mask.numpy() > 0, w, 0), m.weight.detach().numpy()):
            raise AssertionError("torch's pruned weights are not w * mask")
    del mods, ours, cat, reference, got, theirs, differ

    ours_ms, (pruned, mm) = bench(lambda: prune_model(model, 0.5))
    if mm.num_pruned != round(0.5 * n):
        raise AssertionError("wrong pruned count")
    del pruned, mm
    mask_ms, _ = bench(lambda: global_mask(model, 0.5, magnitude=True))
    torch_ms, _ = bench_torch(model)

    ours_rss = measure_in_fresh_process("ours", total)
    mask_rss = measure_in_fresh_process("masks", total)
    torch_rss = measure_in_fresh_process("torch", total)
    ours_traced = peak_tracemalloc_mib(lambda: prune_model(model, 0.5))
    model_mib = n * 4 / 2**20
    return [
        versus(f"global magnitude 50%, masks + pruned weights: {label} (prune_model)",
               ours_ms, "torch prune.global_unstructured L1", torch_ms, 5),
        versus(f"global magnitude 50%, masks only: {label} (global_mask)",
               mask_ms, "torch prune.global_unstructured L1", torch_ms),
        Row(f"peak extra memory, MiB (VmHWM rise; model {model_mib:.0f} MiB; "
            f"ours under tracemalloc {ours_traced:.0f} MiB; masks only {mask_rss:.0f} MiB)",
            ours_rss, "torch prune.global_unstructured L1", torch_rss,
            torch_rss / ours_rss if ours_rss > 0 else None, "less than torch", ours_rss < torch_rss),
    ]


CASES = [case_model_global_magnitude]

if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--memory":
    _memory_main(sys.argv[2], int(sys.argv[3]))
