"""Global magnitude pruning of a model that no worker holds: Dask against NumPy in one process.

Usage::

    python benchmarks/dask_global.py [--tensors 64] [--side 4096] [--memory-limit 1GiB] [--output PATH]

The model: ``--tensors`` float32 tensors of ``side x side`` (default 64 of 16 Mi
elements, 4 GiB), each drawn from its own seed in row bands of 1024 rows. On
Dask the workers draw their bands themselves (nothing is sent from the client)
on a ``LocalCluster`` of 2 worker processes of 1 thread, each limited to
``--memory-limit``; every pass over the model draws it again, so no worker
ever holds more than a few bands. NumPy draws the same tensors in one process
and runs ``global_mask`` on them.

Both prune 50% globally by magnitude. Identity: for every tensor, the pruned
count and a SHA-256 per band of the packed mask bits, computed where the
mask is (on the workers for Dask). Reported: wall times, the peak resident
memory of each Dask worker and of the NumPy process (``VmHWM``), and whether
the masks are identical. Prints a Markdown section for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_PYTHONPATH = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
sys.path.insert(1 + len(_PYTHONPATH), str(ROOT))

import numpy as np

BAND = 1024
SPARSITY = 0.5


def band_values(seed: int, tensor: int, band: int, rows: int, cols: int) -> np.ndarray:
    """One band of one tensor, the same wherever it is drawn."""
    rng = np.random.default_rng([seed, tensor, band])
    return rng.standard_normal((rows, cols), dtype=np.float32)


def digests(mask: np.ndarray) -> list[str]:
    """SHA-256 of the packed bits of every band of a (NumPy) mask."""
    bands = range(0, len(mask), BAND)
    return [hashlib.sha256(np.packbits(mask[r : r + BAND]).tobytes()).hexdigest()[:16] for r in bands]


def peak_rss() -> int:
    """This process's peak resident set (VmHWM), bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# -- NumPy, one process --------------------------------------------------------------------
def run_numpy(args: argparse.Namespace) -> dict:
    from arraysparse.model import global_mask

    t0 = time.perf_counter()
    model = {}
    for t in range(args.tensors):
        a = np.empty((args.side, args.side), np.float32)
        for b, r in enumerate(range(0, args.side, BAND)):
            a[r : r + BAND] = band_values(args.seed, t, b, min(BAND, args.side - r), args.side)
        model[f"t{t:02d}"] = a
    t1 = time.perf_counter()
    mm = global_mask(model, SPARSITY, magnitude=True)
    t2 = time.perf_counter()
    check = {n: [int(r.pruned), digests(np.asarray(mm[n].mask))] for n, r in zip(mm, mm.report)}
    return {"generate_s": t1 - t0, "global_mask_s": t2 - t1, "peak_rss": peak_rss(), "check": check}


# -- Dask, a LocalCluster ------------------------------------------------------------------
def _band_block(seed: int, tensor: int, block_info=None) -> np.ndarray:
    info = block_info[None]
    rows, cols = info["chunk-shape"]
    return band_values(seed, tensor, info["chunk-location"][0], rows, cols)


def _band_digest(mask: np.ndarray) -> np.ndarray:
    digest = hashlib.sha256(np.packbits(mask).tobytes()).hexdigest()[:16]
    return np.array([[int(np.count_nonzero(~mask)), int(digest, 16)]], dtype=object)


def _worker_peak() -> int:
    return peak_rss()


def run_dask(args: argparse.Namespace) -> dict:
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    from arraysparse.model import global_mask

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit=args.memory_limit, dashboard_address=None
    ) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("arraysparse")._backends.host.kernel_cache())  # import on the workers
        chunks = ((BAND,) * (args.side // BAND) + ((args.side % BAND,) if args.side % BAND else ()), (args.side,))
        model = {
            f"t{t:02d}": da.map_blocks(
                _band_block, args.seed, t, chunks=chunks, dtype=np.float32, meta=np.empty((0, 0), np.float32)
            )
            for t in range(args.tensors)
        }
        t0 = time.perf_counter()
        mm = global_mask(model, SPARSITY, magnitude=True)  # eager: threshold passes and the count pass
        t1 = time.perf_counter()
        parts = {
            n: mm[n].mask.map_blocks(_band_digest, chunks=((1,) * len(chunks[0]), (2,)), dtype=object) for n in mm
        }
        done = dask.compute(parts)[0]  # the lazy masks, reduced to digests on the workers
        t2 = time.perf_counter()
        peaks = client.run(_worker_peak)
    check = {}
    for n, r in zip(mm, mm.report):
        bands = done[n]
        assert int(sum(bands[:, 0])) == r.pruned
        check[n] = [int(r.pruned), [f"{int(d):016x}" for d in bands[:, 1]]]
    return {
        "global_mask_s": t1 - t0, "masks_s": t2 - t1, "worker_peaks": sorted(peaks.values()), "check": check,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=64)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--numpy-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.numpy_only:
        print(json.dumps(run_numpy(args)))
        return
    import numba

    gib = args.tensors * args.side**2 * 4 / 2**30
    print(f"model: {args.tensors} x ({args.side}, {args.side}) float32 = {gib:.2f} GiB", flush=True)
    os.environ["NUMBA_NUM_THREADS"] = "1"  # the workers: 2 processes x 1 thread on the 2 cores
    lazy = run_dask(args)
    print(f"dask: {lazy['global_mask_s']:.1f} s + {lazy['masks_s']:.1f} s", flush=True)
    env = {**os.environ, "NUMBA_NUM_THREADS": str(os.cpu_count())}
    cmd = [sys.executable, __file__, "--numpy-only", "--tensors", str(args.tensors), "--side", str(args.side),
           "--seed", str(args.seed)]
    eager = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
    identical = lazy["check"] == eager["check"]
    mib = 2**20
    pruned = sum(c[0] for c in eager["check"].values())
    import dask

    import arraysparse

    lines = [
        "### Global pruning on Dask (issue 12, point 6)",
        "",
        f"`benchmarks/dask_global.py`: {args.tensors} float32 tensors of {args.side} x {args.side} "
        f"({gib:.2f} GiB), each drawn from its own seed in bands of {BAND} rows, pruned globally at "
        f"{SPARSITY:.0%} by magnitude. Dask: `LocalCluster(n_workers=2, threads_per_worker=1, "
        f"memory_limit=\"{args.memory_limit}\")`, the workers draw their bands themselves on every pass; "
        "NumPy: the same tensors drawn and pruned in one process (`global_mask`). Identity: per tensor "
        "the pruned count and a SHA-256 of every band's packed mask bits (on the workers for Dask). "
        f"Measured {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')} on "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, dask "
        f"{dask.__version__}, arraysparse from `{Path(arraysparse.__file__).parent}`.",
        "",
        "| | Dask, 2 workers | NumPy, one process |",
        "| --- | ---: | ---: |",
        f"| draw the model | (inside every pass) | {eager['generate_s']:.1f} s |",
        f"| `global_mask` (Dask: the eager threshold and count passes) | {lazy['global_mask_s']:.1f} s "
        f"| {eager['global_mask_s']:.1f} s |",
        f"| compute the lazy masks (Dask: one more pass, to digests on the workers) | {lazy['masks_s']:.1f} s | - |",
        f"| total | {lazy['global_mask_s'] + lazy['masks_s']:.1f} s "
        f"| {eager['generate_s'] + eager['global_mask_s']:.1f} s |",
        f"| peak resident memory | {', '.join(f'{p / mib:.0f}' for p in lazy['worker_peaks'])} MiB per worker "
        f"| {eager['peak_rss'] / mib:.0f} MiB |",
        f"| pruned (all tensors) | {sum(c[0] for c in lazy['check'].values())} | {pruned} |",
        f"| masks identical ({args.tensors} counts, {sum(len(c[1]) for c in eager['check'].values())} band digests) "
        f"| {'yes' if identical else 'NO'} | |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    if not identical:
        sys.exit("the Dask masks differ from NumPy's")


if __name__ == "__main__":
    main()
