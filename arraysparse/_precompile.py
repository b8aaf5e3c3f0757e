"""Compile the common kernels into the on-disk cache ahead of time."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import numpy as np

from ._compat import optional_import

_DTYPES = ("float32", "float16", "float64", "bfloat16")
_BFLOAT16 = "precompile(['bfloat16']), which prepares bfloat16 through torch tensors,"


def _calibrated(strategy: Any, x: Any) -> Any:
    strategy.calibrate(x)
    return strategy


def _jobs(dtype: str) -> list[tuple[str, Callable[[], Any]]]:
    """``(label, call)`` pairs that together reach every common kernel signature of ``dtype``.

    Each call runs a public function on a small array whose layout matches real
    use (C-contiguous, rank 2); top-k also runs on 2**20 elements, the size
    from which it takes the sampled one-pass path.
    """
    from . import (
        MagnitudePruning,
        SparseGPTPruning,
        SparsityPattern,
        StructuredPruning,
        WandaPruning,
        block_mask,
        compress,
        from_cutlass,
        global_mask,
        nm_mask,
        structured_mask,
        to_cutlass,
        topk_mask,
    )

    rng = np.random.default_rng(0)
    small = rng.standard_normal((64, 128), dtype=np.float32)
    large = rng.standard_normal((1024, 1024), dtype=np.float32)
    x = rng.standard_normal((256, 128), dtype=np.float32)
    if dtype == "bfloat16":
        torch = optional_import("torch", purpose=_BFLOAT16)

        def cast(a: np.ndarray) -> Any:
            return torch.from_numpy(a).to(torch.bfloat16)
    else:

        def cast(a: np.ndarray) -> Any:
            return a.astype(dtype)

    w, big = cast(small), cast(large)
    w24 = nm_mask(w, 2, 4, magnitude=True).apply(w)
    jobs: list[tuple[str, Callable[[], Any]]] = [
        ("topk_mask", lambda: topk_mask(w, 0.5, magnitude=True)),
        ("topk_mask (signed)", lambda: topk_mask(w, 0.5)),
        ("topk_mask (2**20 elements)", lambda: topk_mask(big, 0.5, magnitude=True)),
        ("topk_mask (2**20, signed)", lambda: topk_mask(big, 0.5)),
        ("nm_mask 2:4", lambda: nm_mask(w, 2, 4, magnitude=True)),
        ("nm_mask 4:8", lambda: nm_mask(w, 4, 8, magnitude=True)),
        ("nm_mask 8:16", lambda: nm_mask(w, 8, 16, magnitude=True)),
        ("nm_mask 16:32", lambda: nm_mask(w, 16, 32, magnitude=True)),
        ("nm_mask 2:4 along axis 0", lambda: nm_mask(w, 2, 4, axis=0, magnitude=True)),
        ("structured_mask rows", lambda: structured_mask(w, 0.25, axis=0)),
        ("structured_mask columns", lambda: structured_mask(w, 0.25, axis=1)),
        ("block_mask 4x4", lambda: block_mask(w, 0.5, block=(4, 4))),
        ("global_mask", lambda: global_mask({"a": w, "b": w}, 0.5, magnitude=True)),
        ("StructuredPruning", lambda: StructuredPruning(SparsityPattern.rows()).prune(w, 0.25)),
    ]
    for fmt, opts in (
        ("csr", {}),
        ("coo", {}),
        ("csc", {}),
        ("bsr", {"block": (4, 4)}),
        ("bitmask", {}),
        ("2:4", {}),
        ("n:m", {"n": 2, "m": 4}),
    ):
        jobs.append((f"compress {fmt} + to_dense", lambda fmt=fmt, opts=opts: compress(w24, fmt, **opts).to_dense()))
    jobs.append(("2:4 positions()", lambda: compress(w24, "2:4").positions()))
    # CUTLASS keeps 2 of 4 16-bit values, 1 of 2 float32 values
    w_cutlass = w24 if dtype != "float32" else nm_mask(w, 1, 2, magnitude=True).apply(w)
    if dtype in ("float16", "bfloat16", "float32"):
        jobs.append(("to_cutlass + from_cutlass", lambda: from_cutlass(*to_cutlass(w_cutlass))))
    calib = cast(x)
    if dtype in ("float32", "float64"):
        calib_w = cast(rng.standard_normal((64, 128), dtype=np.float32))
        jobs += [
            ("WandaPruning", lambda: _calibrated(WandaPruning(), calib).prune(calib_w, 0.5)),
            ("SparseGPTPruning", lambda: _calibrated(SparseGPTPruning(), calib).prune(calib_w, 0.5)),
            (
                "SparseGPTPruning 2:4",
                lambda: _calibrated(SparseGPTPruning(SparsityPattern.two_four()), calib).prune(calib_w),
            ),
        ]
    jobs.append(("MagnitudePruning", lambda: MagnitudePruning().prune(w, 0.5)))
    return jobs


def precompile(
    dtypes: Iterable[str] = ("float32", "float16"), *, cuda: int | None = None, progress: bool | TextIO = True
) -> float:
    """Compile the kernels that common calls need into the on-disk cache, ahead of first use.

    Every process after this one loads them from the cache instead of compiling
    (see ``docs/guide.md``, "Kernels"). Already cached kernels cost almost
    nothing, so calling it again is cheap.

    Parameters
    ----------
    dtypes
        Value dtypes to prepare, among ``"float32"``, ``"float16"``, ``"float64"``
        and ``"bfloat16"`` (the last through PyTorch, which must be installed).
        An empty list prepares no CPU kernel (with ``cuda``, only the GPU's).
    cuda
        A GPU number: also compile every CUDA kernel for that GPU (NVRTC, in parallel
        threads) into CuPy's disk cache (``~/.cupy/kernel_cache``), so no later process
        compiles on its first call there. Needs CuPy and the GPU. ``None`` (the default)
        leaves the GPU alone.
    progress
        ``True`` prints one progress line per job to ``sys.stderr``; a file object
        prints there instead; ``False`` prints nothing.

    Returns
    -------
    float
        Seconds spent.

    Examples
    --------
    >>> import arraysparse as asp
    >>> seconds = asp.precompile(["float32"], progress=False)
    """
    from ._backends import kernel_cache

    if isinstance(dtypes, str):
        dtypes = [dtypes]
    dtypes = list(dtypes)
    for d in dtypes:
        if d not in _DTYPES:
            msg = f"dtypes holds {d!r}; choose among {', '.join(_DTYPES)}"
            raise ValueError(msg)
    if isinstance(progress, bool):
        out: TextIO | None = sys.stderr if progress else None
    elif callable(getattr(progress, "write", None)):
        out = progress
    else:
        msg = f"progress must be True, False or a writable text file, got {progress!r}"
        raise TypeError(msg)
    if cuda is not None and (isinstance(cuda, bool) or not isinstance(cuda, int) or cuda < 0):
        msg = f"cuda must be a GPU number (an int >= 0) or None, got {cuda!r}"
        raise ValueError(msg)
    if "bfloat16" in dtypes:  # before any job: no torch, no half-done precompile
        optional_import("torch", purpose=_BFLOAT16)
    if cuda is not None:
        optional_import("cupy", purpose=f"precompile(cuda={cuda}), which compiles the CUDA kernels,")
    jobs = [(d, label, call) for d in dtypes for label, call in _jobs(d)]
    start = time.perf_counter()
    cache, compiled_log = kernel_cache()
    compiled_before = len(compiled_log)
    # on a terminal one line rewritten in place, elsewhere (a log file) a line per job
    tty = out is not None and getattr(out, "isatty", lambda: False)()
    begin, end = ("\r", "\x1b[K") if tty else ("", "\n")
    for i, (d, label, call) in enumerate(jobs, 1):
        t = time.perf_counter()
        call()
        if out is not None:
            line = f"precompile [{i}/{len(jobs)}] {d} {label}: {time.perf_counter() - t:.1f} s"
            print(begin + line, end=end, file=out, flush=True)
    if cuda is not None:
        from ._kernels.cuda import loader

        t = time.perf_counter()
        n = loader.warm(cuda, threads=min(8, os.cpu_count() or 1))
        if out is not None:
            line = f"precompile: {n} CUDA kernels for GPU {cuda}: {time.perf_counter() - t:.1f} s"
            print(begin + line, end=end, file=out, flush=True)
    seconds = time.perf_counter() - start
    if out is not None:
        compiled = len(compiled_log) - compiled_before
        line = f"precompile: {len(jobs)} jobs, {compiled} kernels compiled in {seconds:.1f} s; cache {cache}"
        print(begin + line + ("\x1b[K" if tty else ""), file=out)
    return seconds
