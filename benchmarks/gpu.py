"""GPU benchmarks: arraysparse's CUDA kernels against torch CUDA, cupyx and a device copy.

Run through ``python benchmarks/run.py --gpu [--quick] [--output PATH]``. Inputs
are CUDA torch tensors (float32 ``standard_normal``, float16 for CUTLASS), so
arraysparse runs its CUDA kernels on torch's current stream; cupyx gets a CuPy
array of the same data. Each job is timed by wall clock around the call and a
``torch.cuda.synchronize()`` (every contender pays its launches and its own
read-backs), one warm-up call each (kernel compiles), then the best of
``REPEAT`` alternating rounds. Shapes: 4096x4096 and 16384x16384 (``--quick``:
1024x1024). Every result of ours is checked before its time is reported.

Targets (issue 11, on an H100/H200-class GPU): 2:4 mask <= 2x the copy of the
scores; exact 50% mask >= 5x ``torch.kthvalue``; dense -> CSR at 50% >= 3x cupyx
and torch and <= 3x the copy; dense -> BSR >= 3x torch; CUTLASS 2:4 compress at
least as fast as torch's ``to_sparse_semi_structured``.

Without a GPU (no CuPy, no CUDA torch, no device) :func:`main` prints why and
returns 2: nothing is timed. A case that fails is reported (traceback on stderr,
a line under the table) and the others still run; the report is rewritten to
``--output`` after every case, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import datetime
import platform
import sys
import traceback

import numpy as np
from harness import REPEAT, Row, race, versus

GPU_SHAPES = [(4096, 4096), (16384, 16384)]
GPU_QUICK_SHAPES = [(1024, 1024)]


def unavailable() -> str | None:
    """Why the GPU benchmarks cannot run here, or None."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device"
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - no cupy, no driver, no device
        return f"CuPy cannot reach a CUDA device ({type(e).__name__}: {e})"
    return None


def gpu_race(*fns):
    """:func:`harness.race` synchronising the GPU around each call; ``[(ms, out), ...]``."""
    import torch

    return race(*fns, sync=torch.cuda.synchronize)


def _check(label, ok):
    if not bool(ok):
        raise AssertionError(f"{label}: our result is wrong; no time is reported for it")


def case_nm_2_4(asp, t, tag):
    import torch

    def torch_nm():
        g = t.view(-1, 4)
        idx = torch.topk(g, 2, dim=1, largest=False).indices
        return torch.ones_like(g, dtype=torch.bool).scatter_(1, idx, False).view(t.shape)

    (ours, mask), (copy_ms, _), (topk_ms, ref) = gpu_race(
        lambda: asp.nm_mask(t, 2, 4).mask, lambda: t.clone(), torch_nm)
    g = mask.view(-1, 4)
    _check("2:4 mask", ((~g).sum(dim=1) == 2).all())
    s = t.view(-1, 4)
    _check("2:4 mask order", (torch.where(g, -torch.inf, s).amax(1) <= torch.where(g, s, torch.inf).amin(1)).all())
    job = f"2:4 mask from scores {tag}"
    return [
        versus(job, ours, "device copy of the scores (memory floor)", copy_ms, 0.5, ">= 0.5x (ours <= 2x copy)"),
        versus(job, ours, "torch topk+scatter", topk_ms),
    ]


def case_topk_50(asp, t, tag):
    import torch

    k = round(0.5 * t.numel())

    def kth():
        a = t.abs()
        return a > torch.kthvalue(a.view(-1), k).values

    def topk():
        a = t.abs().view(-1)
        idx = torch.topk(a, k, largest=False).indices
        return torch.ones_like(a, dtype=torch.bool).scatter_(0, idx, False)

    (ours, mask), (kth_ms, _), (topk_ms, _) = gpu_race(
        lambda: asp.topk_mask(t, 0.5, magnitude=True).mask, kth, topk)
    a = t.abs()
    _check("50% mask count", int((~mask).sum()) == k)
    pruned_max = float(torch.where(mask, -torch.inf, a).max())
    _check("50% mask order", pruned_max <= float(torch.where(mask, a, torch.inf).min()))
    job = f"exact 50% magnitude mask {tag}"
    return [
        versus(job, ours, "torch abs+kthvalue+compare", kth_ms, 5),
        versus(job, ours, "torch abs+topk+scatter", topk_ms),
    ]


def _half_zero(t):
    import torch

    g = torch.Generator(device=t.device).manual_seed(1)
    return torch.where(torch.rand(t.shape, generator=g, device=t.device) < 0.5, 0.0, t)


def case_csr_50(asp, t, tag):
    import cupy
    import cupyx.scipy.sparse as csp

    x = _half_zero(t)
    c = cupy.from_dlpack(x)
    (ours, r), (torch_ms, ref), (cupyx_ms, _), (copy_ms, _) = gpu_race(
        lambda: asp.compress(x, "csr"), lambda: x.to_sparse_csr(), lambda: csp.csr_matrix(c), lambda: x.clone())
    _check("CSR indptr", (r.indptr.long() == ref.crow_indices()).all())
    _check("CSR indices", (r.indices.long() == ref.col_indices()).all())
    _check("CSR data", (r.data == ref.values()).all())
    job = f"dense -> CSR, 50% zeros {tag}"
    return [
        versus(job, ours, "torch to_sparse_csr", torch_ms, 3),
        versus(job, ours, "cupyx csr_matrix(dense)", cupyx_ms, 3),
        versus(job, ours, "device copy (memory floor)", copy_ms, 1 / 3, ">= 0.333x (ours <= 3x copy)"),
    ]


def case_bsr(asp, t, tag):
    import torch

    rows, cols = t.shape
    g = torch.Generator(device=t.device).manual_seed(2)
    keep = torch.rand((rows // 4, 1, cols // 4, 1), generator=g, device=t.device) < 0.5
    x = torch.where(keep.expand(-1, 4, -1, 4).reshape(rows, cols), t, 0.0)
    (ours, r), (torch_ms, ref) = gpu_race(lambda: asp.compress(x, "bsr", block=(4, 4)),
                                          lambda: x.to_sparse_bsr((4, 4)))
    _check("BSR indptr", (r.indptr.long() == ref.crow_indices()).all())
    _check("BSR indices", (r.indices.long() == ref.col_indices()).all())
    _check("BSR data", (r.data == ref.values()).all())
    return [versus(f"dense -> BSR 4x4, 50% of blocks {tag}", ours, "torch to_sparse_bsr", torch_ms, 3)]


def case_cutlass(asp, t, tag):
    import torch
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured
    from torch.sparse._semi_structured_conversions import sparse_semi_structured_from_dense_cutlass

    w = asp.nm_mask(t, 2, 4).apply(t).half()
    SparseSemiStructuredTensor._FORCE_CUTLASS = True  # CUTLASS's layout, not cuSPARSELt's
    (ours, (values, meta)), (torch_ms, _) = gpu_race(lambda: asp.to_cutlass(w), lambda: to_sparse_semi_structured(w))
    ref_values, ref_meta = sparse_semi_structured_from_dense_cutlass(w)
    _check("CUTLASS values", torch.equal(values, ref_values))
    _check("CUTLASS meta", torch.equal(meta, ref_meta))
    return [versus(f"CUTLASS 2:4 compress, float16 {tag}", ours, "torch to_sparse_semi_structured (CUTLASS)",
                   torch_ms, 1, ">= 1x")]


CASES = [case_nm_2_4, case_topk_50, case_csr_50, case_bsr, case_cutlass]


def header(shapes):
    import cupy
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return [
        "# arraysparse GPU benchmarks",
        "",
        f"- GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB; torch {torch.__version__} "
        f"(CUDA {torch.version.cuda}), CuPy {cupy.__version__}; Python {platform.python_version()}",
        f"- Date: {now}",
        f"- Data: float32 {', '.join(f'{r}x{c}' for r, c in shapes)} `torch.randn` on the GPU (CUTLASS: float16)",
        f"- Timing: wall clock with torch.cuda.synchronize(), 1 warm-up call, best of {REPEAT} alternating "
        "rounds; ratio = peer / ours, > 1 means we are faster",
    ]


def main(args, asp, table) -> int:
    """Run the GPU cases (``args.quick``, ``args.only``, ``args.output``) on ``asp`` (the
    arraysparse run.py imported); 2, with the reason on stderr, without a GPU."""
    reason = unavailable()
    if reason:
        print(f"run.py --gpu needs a CUDA GPU with torch and CuPy: {reason}", file=sys.stderr)
        return 2
    import torch

    shapes = GPU_QUICK_SHAPES if args.quick else GPU_SHAPES
    rows, failed = [], []

    def report():
        lines = header(shapes) + [""] + table(rows)
        if failed:
            lines += ["", "Failed (no time reported):", *(f"- {f}" for f in failed)]
        return "\n".join(lines) + "\n"

    for shape in shapes:
        t = torch.from_numpy(np.random.default_rng(0).standard_normal(shape, dtype=np.float32)).cuda()
        tag = f"({shape[0]}x{shape[1]})"
        for case in CASES:
            if args.only and args.only not in case.__name__:
                continue
            print(f"running {case.__name__} {tag} ...", file=sys.stderr, flush=True)
            try:
                rows += case(asp, t, tag)
            except Exception as e:  # noqa: BLE001 - one case's failure must not cost the others' rows
                traceback.print_exc()
                failed.append(f"{case.__name__} {tag}: {type(e).__name__}: {e}")
            if args.output:  # what is done so far survives a time limit
                args.output.write_text(report())
        del t
        torch.cuda.empty_cache()
    print(report(), end="")
    if args.output:
        args.output.write_text(report())
    return 1 if failed else 0


__all__ = ["CASES", "Row", "main", "unavailable"]
