"""Benchmark arraysparse against peer implementations in the same run.

Usage::

    python benchmarks/run.py [--quick] [--output PATH]
    python benchmarks/run.py --gpu [--quick] [--output PATH]   # the CUDA kernels (gpu.py)

Prints a Markdown table (machine and date in the header) of our time, each
peer's time and the ratio peer / ours (> 1 means arraysparse is faster),
checked against the targets from the issue. The script reports; it does not
gate: it exits 0 whether targets pass or fail. It does fail loudly if one of
our masks is wrong, so a broken function cannot post a fast time.

The arraysparse of this checkout is benchmarked rather than an installed
copy; a package on ``PYTHONPATH`` still takes precedence (e.g. a stub for
testing this script). The report names the file that was imported.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch

# The checkout goes right after the PYTHONPATH entries, before site-packages.
_PYTHONPATH = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
               if p]
sys.path.insert(1 + len(_PYTHONPATH), str(Path(__file__).parents[1]))
import arraysparse as asp

sys.path.insert(0, str(Path(__file__).parent))
from harness import (
    FULL_SHAPE,
    QUICK_SHAPE,
    REPEAT,
    Row,
    race,
    versus,
)

THREADS = 2


def check_mask(label, mask, scores, n, m=None):
    """Raise AssertionError unless ``mask`` prunes the n smallest scores.

    With ``m`` the check is per group of m consecutive elements along the
    last axis; without it, over the whole array. Exactly n elements must be
    pruned (False) per group, and no pruned score may exceed a kept one.
    """
    mask = np.asarray(mask)
    if mask.shape != scores.shape or mask.dtype != np.bool_:
        raise AssertionError(f"{label}: got {mask.dtype} {mask.shape}, "
                             f"want bool {scores.shape}")
    g_mask = mask.reshape(-1, m or mask.size)
    g_scores = scores.reshape(g_mask.shape)
    pruned = (~g_mask).sum(axis=1)
    if not np.all(pruned == n):
        bad = pruned[pruned != n][0]
        raise AssertionError(f"{label}: a group prunes {bad}, want {n}")
    kept_min = np.where(g_mask, g_scores, np.inf).min(axis=1)
    pruned_max = np.where(g_mask, -np.inf, g_scores).max(axis=1)
    if not np.all(pruned_max <= kept_min):
        raise AssertionError(f"{label}: a pruned score exceeds a kept one")


def torch_nm(t, n, m):
    """Peer n:m mask: torch.topk of the n smallest per group, then scatter."""
    g = t.view(-1, m)
    idx = torch.topk(g, n, dim=1, largest=False).indices
    mask = torch.ones(g.shape, dtype=torch.bool).scatter_(1, idx, False)
    return mask.view(t.shape)


def numpy_argsort_nm(s, n, m):
    """Peer n:m mask: argsort each group, then mask its n smallest."""
    g = s.reshape(-1, m)
    idx = np.argsort(g, axis=1)[:, :n]
    mask = np.ones(g.shape, dtype=bool)
    np.put_along_axis(mask, idx, False, axis=1)
    return mask.reshape(s.shape)


def numpy_threshold(a, k):
    """Peer unstructured mask: keep scores above the k-th smallest.

    Prunes k elements, more if scores tie with the k-th smallest.
    """
    thr = np.partition(a.ravel(), k - 1)[k - 1]
    return a > thr


def case_nm_2_4(x):
    """2:4 mask from scores vs torch, a memory copy and NumPy argsort."""
    t = torch.from_numpy(x)
    (ours, mask), (torch_ms, _), (copy_ms, _), (argsort_ms, _) = race(
        lambda: asp.nm_mask(x, 2, 4).mask, lambda: torch_nm(t, 2, 4),
        lambda: np.copy(x), lambda: numpy_argsort_nm(x, 2, 4))
    check_mask("ours 2:4", mask, x, 2, 4)
    job = "2:4 mask from scores"
    return [
        versus(job, ours, "torch topk+scatter", torch_ms, 10),
        versus(job, ours, "np.copy(scores) (memory floor)", copy_ms, 1 / 1.5,
               ">= 0.667x (ours <= 1.5x copy)"),
        versus(job, ours, "numpy argsort+put_along_axis", argsort_ms),
    ]


def case_nm_16_32(x):
    """16:32 mask from scores vs torch."""
    t = torch.from_numpy(x)
    (ours, mask), (torch_ms, _) = race(lambda: asp.nm_mask(x, 16, 32).mask, lambda: torch_nm(t, 16, 32))
    check_mask("ours 16:32", mask, x, 16, 32)
    return [versus("16:32 mask from scores", ours, "torch topk+scatter", torch_ms, 10)]


def case_magnitude_50(w):
    """Exact 50% unstructured mask, from weights (|w|) and from scores."""
    k = round(0.5 * w.size)
    a = np.abs(w)
    t = torch.from_numpy(w)

    def torch_kthvalue():
        at = t.abs()
        return at > torch.kthvalue(at.view(-1), k).values

    (ours, mask), (numpy_ms, _), (torch_ms, _) = race(
        lambda: asp.topk_mask(w, 0.5, magnitude=True).mask,
        lambda: numpy_threshold(np.abs(w), k), torch_kthvalue)
    check_mask("ours 50% magnitude", mask, a, k)
    (ours_scores, mask), (numpy_scores_ms, _) = race(
        lambda: asp.topk_mask(a, 0.5).mask, lambda: numpy_threshold(a, k))
    check_mask("ours 50% scores", mask, a, k)
    job = "50% magnitude mask of weights"
    return [
        versus(job, ours, "numpy abs+partition+compare", numpy_ms, 3),
        versus(job, ours, "torch abs+kthvalue+compare", torch_ms, 10),
        versus("50% mask of precomputed scores", ours_scores,
               "numpy partition+compare", numpy_scores_ms),
    ]


def case_import(_x):
    """Import time: fresh interpreters, minus a bare interpreter's start.

    Runs ``python -c "import arraysparse"`` and ``python -c pass``
    alternately REPEAT times each, with the benchmarked package first on
    the path, and reports best import run minus best bare run.
    """
    root = str(Path(asp.__file__).resolve().parent.parent)
    path = [root, os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}

    def run(code):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                       check=True)
        return (time.perf_counter() - t0) * 1e3

    bare, full = [], []
    for _ in range(REPEAT):
        bare.append(run("pass"))
        full.append(run("import arraysparse"))
    ours = min(full) - min(bare)
    return [Row("import arraysparse (fresh process, best of "
                f"{REPEAT}, minus bare start)", ours,
                "`python -c pass` (subtracted)", min(bare), None,
                "< 500 ms", ours < 500)]


CASES = [case_nm_2_4, case_nm_16_32, case_magnitude_50, case_import]


def all_cases():
    """The core cases above, then ``CASES`` of every ``cases_*.py`` beside this file."""
    cases = list(CASES)
    for path in sorted(Path(__file__).parent.glob("cases_*.py")):
        cases += importlib.import_module(path.stem).CASES
    return cases


def cpu_model():
    """CPU model name from /proc/cpuinfo, else from ``platform``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(shape):
    """Markdown lines describing the machine, the date and the method."""
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    version = getattr(asp, "__version__", "?")
    return [
        "# arraysparse benchmarks",
        "",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"numba {numba.__version__} ({numba.get_num_threads()} threads)",
        f"- Date: {now}",
        f"- arraysparse {version} from `{Path(asp.__file__).parent}`",
        f"- Data (unless a row says otherwise): float32 "
        f"{shape[0]}x{shape[1]}, "
        "`np.random.default_rng(0).standard_normal`",
        f"- Timing: 1 warm-up call, then best of {REPEAT} "
        "(`time.perf_counter`); ratio = peer / ours, > 1 means we are faster",
    ]


def table(rows):
    """Markdown table of the result rows."""
    lines = [
        "| job | ours (ms) | peer | peer (ms) | ratio | target | result |",
        "|---|---:|---|---:|---:|---|---|",
    ]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.3g}x"
        result = {None: "info", True: "PASS", False: "FAIL"}[r.passed]
        lines.append(f"| {r.job} | {r.ours_ms:.3f} | {r.peer} | "
                     f"{r.peer_ms:.3f} | {ratio} | {r.target} | {result} |")
    return lines


def main(argv=None):
    """Run every case, print the report and optionally write it to a file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"use {QUICK_SHAPE[0]}x{QUICK_SHAPE[1]} "
                             "instead of the full size (smoke test)")
    parser.add_argument("--only", metavar="TEXT",
                        help="run only the cases whose name contains TEXT")
    parser.add_argument("--output", metavar="PATH", type=Path,
                        help="also write the Markdown report to PATH")
    parser.add_argument("--gpu", action="store_true",
                        help="benchmark the CUDA kernels against torch CUDA and cupyx "
                             "instead (needs a GPU; exits 2 without one)")
    args = parser.parse_args(argv)
    if args.gpu:
        import gpu

        return gpu.main(args, asp, table)

    torch.set_num_threads(THREADS)
    shape = QUICK_SHAPE if args.quick else FULL_SHAPE
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    rows = []
    for case in all_cases():
        if args.only and args.only not in case.__name__:
            continue
        print(f"running {case.__name__} ...", file=sys.stderr, flush=True)
        rows += case(x)

    report = "\n".join(header(shape) + [""] + table(rows)) + "\n"
    print(report, end="")
    if args.output:
        args.output.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
