"""The CUDA backend behind the seam.

Without a GPU the backend runs end to end on the host emulation of its
kernels: the seam is told to send host arrays to the ``cuda`` slot and the
backend's session is given the emulated device with the host's views, so the
public functions go through ``_backends/cuda.py``, the launch plans and the
kernel sources, and must answer exactly as the CPU kernels do. On a GPU
(``pytest -m cuda``) the same comparisons run on CuPy and CUDA torch arrays.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest

import arraysparse as asp
from arraysparse import _backends
from arraysparse._backends import bridge, cuda
from tests.cuda_emulation import emulator, gpu_reason


@pytest.fixture
def on_emulated_cuda(monkeypatch):
    """Call it to route host arrays through the CUDA backend on the emulated device."""

    def enable():
        dev = emulator()

        @contextmanager
        def session(x):
            yield cuda.Session(dev, bridge.host_view, bridge.wrap)

        monkeypatch.setitem(_backends._SLOTS, "host", None)
        monkeypatch.setitem(_backends._SLOTS, "cuda", bridge.is_host)
        monkeypatch.setattr(cuda, "session", session)
        return dev

    return enable


def test_import_and_cpu_use_never_load_cupy_or_the_cuda_kernels():
    code = (
        "import sys, numpy as np, arraysparse as asp\n"
        "x = np.arange(64, dtype=np.float32).reshape(8, 8)\n"
        "asp.nm_mask(x, 2, 4); asp.topk_mask(x, 0.5); asp.compress(x, 'csr')\n"
        "bad = [m for m in sys.modules if m == 'cupy' or m.startswith(('cupy.', 'arraysparse._kernels.cuda'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_host_arrays_are_not_device_arrays():
    torch = pytest.importorskip("torch")
    assert not bridge.is_device(np.zeros(3))
    assert not bridge.is_device(torch.zeros(3))
    assert bridge.device_view(np.zeros(3)) is None
    assert _backends._choose(np.zeros(3)) == "host"


def test_masks_through_the_cuda_backend(on_emulated_cuda):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w = rng.standard_normal((48, 64)).astype(np.float32)
    wt = torch.from_numpy(rng.standard_normal((16, 48))).to(torch.bfloat16)
    def masks():
        return [
            asp.nm_mask(w, 2, 4, magnitude=True).mask,
            asp.nm_mask(w, 20, 48, axis=0).mask,
            asp.topk_mask(w, 0.5, magnitude=True).mask,
            asp.nm_mask(wt, 4, 8).mask,
            asp.topk_mask(wt, 0.3).mask,
        ]

    expect = masks()  # the host kernels
    dev = on_emulated_cuda()
    got = masks()  # the same calls through the CUDA backend
    assert dev.launches  # the kernels ran
    for e, g in zip(expect, got):
        assert type(e) is type(g)
        np.testing.assert_array_equal(np.asarray(g), np.asarray(e))


def test_nan_scores_raise_with_their_count_on_the_cuda_backend(on_emulated_cuda):
    on_emulated_cuda()
    s = np.ones((8, 16), np.float32)
    s[2, 3] = s[5, 9] = np.nan
    with pytest.raises(ValueError, match="2 NaN"):
        asp.topk_mask(s, 0.5)
    with pytest.raises(ValueError, match="2 NaN"):
        asp.nm_mask(s, 2, 4)


def _format_inputs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 48)).astype(np.float32)
    x[rng.random(x.shape) < 0.6] = 0
    x[0, 0] = -0.0
    return {
        "float32": x,
        "int8": (x * 10).astype(np.int8),
        "bool": x != 0,
        "bfloat16": torch.from_numpy(x).to(torch.bfloat16),
        "complex128": x.astype(np.complex128),  # 16-byte items: the reference, on the same path
    }


def _same(a, b):
    assert type(a) is type(b)
    assert a.dtype == b.dtype
    if type(a).__module__.startswith("torch"):
        import torch

        assert torch.equal(a, b)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("csr", {}), ("coo", {}), ("csc", {}), ("bsr", {"block": (4, 8)}), ("bitmask", {}), ("ell", {}), ("dia", {})],
)
def test_formats_through_the_cuda_backend(on_emulated_cuda, fmt, params):
    inputs = _format_inputs()
    want = {k: asp.compress(x, fmt, **params) for k, x in inputs.items()}
    dense = {k: r.to_dense() for k, r in want.items()}
    dev = on_emulated_cuda()
    for k, x in inputs.items():
        got = asp.compress(x, fmt, **params)
        assert got.nnz == want[k].nnz
        for name in want[k].arrays:
            _same(got.arrays[name], want[k].arrays[name])
        _same(got.to_dense(), dense[k])
        _same(want[k].to_dense(), dense[k])  # the host result decodes on the CUDA path too
    if fmt in ("ell", "dia"):  # no kernel: the standard-only code, on the device
        assert not dev.launches
    else:
        assert dev.launches


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (6, 8), (3, 5)])
def test_nm_format_through_the_cuda_backend(on_emulated_cuda, n, m):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(n + m)
    w = rng.standard_normal((16, 10 * m)).astype(np.float32)
    x = asp.nm_mask(w, n, m, magnitude=True).apply(w)
    inputs = {"float32": x, "bfloat16": torch.from_numpy(x).to(torch.bfloat16), "int8": (x * 9).astype(np.int8)}
    fmt = "2:4" if (n, m) == (2, 4) else "n:m"
    params = {} if fmt == "2:4" else {"n": n, "m": m}
    want = {k: asp.compress(v, fmt, **params) for k, v in inputs.items()}
    on_emulated_cuda()
    for k, v in inputs.items():
        got = asp.compress(v, fmt, **params)
        for name in want[k].arrays:
            _same(got.arrays[name], want[k].arrays[name])
        _same(got.to_dense(), want[k].to_dense())
        _same(got.positions(), want[k].positions())
    bad = np.ones_like(x)
    with pytest.raises(ValueError, match="group 0 of row 0"):
        asp.compress(bad, fmt, **params)
    r = asp.compress(x, fmt, **params)
    packed = np.array(r.packed_positions)
    packed[3, 0] = 0xFF
    corrupt = type(r)(r.format, r.shape, r.dtype, {**r.arrays, "packed_positions": packed}, r.params)
    with pytest.raises(ValueError, match="packed_positions is corrupt: group 0 of row 3"):
        corrupt.to_dense()


gpu = pytest.mark.skipif(gpu_reason() is not None, reason=str(gpu_reason()))


def _on_gpu(lib, a):
    """A host array (NumPy or CPU torch) on the GPU in ``lib``."""
    if lib == "torch":
        import torch

        return (a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))).cuda()
    import cupy

    return cupy.asarray(a)


def _from_gpu(a):
    if type(a).__module__.startswith("torch"):
        return a.cpu()
    import cupy

    return cupy.asnumpy(a)


def _gpu_jobs():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((256, 512)).astype(np.float32)
    sparse = np.where(rng.random(w.shape) < 0.5, 0, w).astype(np.float32)
    w24 = asp.nm_mask(w, 2, 4, magnitude=True).apply(w)
    return {
        "nm 2:4": (w, lambda a: asp.nm_mask(a, 2, 4, magnitude=True).mask),
        "nm 100:256": (w, lambda a: asp.nm_mask(a, 100, 256).mask),
        "nm 3:8 axis 0": (w, lambda a: asp.nm_mask(a, 3, 8, axis=0).mask),
        "topk 50%": (w, lambda a: asp.topk_mask(a, 0.5, magnitude=True).mask),
        "topk float16": (w.astype(np.float16), lambda a: asp.topk_mask(a, 0.3).mask),
        "structure norms": (w, lambda a: asp.structure_scores(a, 0, ord=2)),
        "block norms": (w, lambda a: asp.block_scores(a, (4, 4), ord=float("inf"))),
        "csr": (sparse, lambda a: asp.compress(a, "csr").arrays),
        "coo": (sparse, lambda a: asp.compress(a, "coo").arrays),
        "csc": (sparse, lambda a: asp.compress(a, "csc").arrays),
        "bsr": (sparse, lambda a: asp.compress(a, "bsr", block=(4, 4)).arrays),
        "bitmask": (sparse, lambda a: asp.compress(a, "bitmask").arrays),
        "2:4": (w24, lambda a: asp.compress(a, "2:4").arrays),
        "csr round trip": (sparse, lambda a: asp.compress(a, "csr").to_dense()),
        "2:4 round trip": (w24, lambda a: asp.compress(a, "2:4").to_dense()),
        "cutlass": (w24.astype(np.float16), lambda a: asp.to_cutlass(a)),
        "cutlass round trip": (w24.astype(np.float16), lambda a: asp.from_cutlass(*asp.to_cutlass(a))),
        "global": (w, lambda a: [r[0] for r in _backends.global_keep(
            None, [a, a[:100]], ["a", "b"], 60000, [0, 0], [a.shape[0] * a.shape[1], 100 * a.shape[1]],
            magnitude=True)]),
    }


GPU_JOBS = (
    "nm 2:4", "nm 100:256", "nm 3:8 axis 0", "topk 50%", "topk float16", "structure norms", "block norms", "csr",
    "coo", "csc", "bsr", "bitmask", "2:4", "csr round trip", "2:4 round trip", "cutlass", "cutlass round trip",
    "global",
)


def _flat(out):
    if isinstance(out, dict):
        return [out[k] for k in sorted(out)]
    if isinstance(out, (tuple, list)):
        return list(out)
    return [out]


@pytest.mark.cuda
@gpu
@pytest.mark.parametrize("job", GPU_JOBS)
@pytest.mark.parametrize("lib", ["cupy", "torch"])
def test_gpu_equals_the_cpu_kernels(lib, job):
    from arraysparse._kernels.cuda import loader

    x, fn = _gpu_jobs()[job]
    want = _flat(fn(x))
    got = _flat(fn(_on_gpu(lib, x)))
    assert loader.compiled()  # the CUDA kernels ran, not the standard-only code
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g = _from_gpu(g)
        if job.endswith("norms"):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6)
        else:
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


@pytest.mark.cuda
@gpu
def test_gpu_bfloat16_round_trips_as_bits():
    import torch

    w = torch.randn(64, 128, dtype=torch.bfloat16)
    w[0, :4] = torch.tensor([float("nan"), -0.0, 1e-40, 3.0])
    for fmt in ("csr", "bitmask", "2:4"):
        x = asp.nm_mask(torch.nan_to_num(w.float()), 2, 4).apply(w) if fmt == "2:4" else w
        r = asp.compress(x.cuda(), fmt)
        back = r.to_dense().cpu()
        assert back.dtype == torch.bfloat16
        assert torch.equal(back.view(torch.int16), asp.compress(x, fmt).to_dense().view(torch.int16))

def test_cutlass_through_the_cuda_backend(on_emulated_cuda):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    inputs = {
        "float16": asp.nm_mask(w, 2, 4).apply(w).astype(np.float16),
        "bfloat16": torch.from_numpy(asp.nm_mask(w, 2, 4).apply(w)).to(torch.bfloat16),
        "int8": (asp.nm_mask(w, 2, 4).apply(w) * 9).astype(np.int8),
        "float32": asp.nm_mask(w, 1, 2).apply(w),
    }
    want = {}
    for k, x in inputs.items():
        values, meta = asp.to_cutlass(x)
        positions = asp.positions_from_cutlass_meta(meta, x.dtype)
        from_nm = asp.compress(x, "2:4").to_cutlass() if k != "float32" else None
        want[k] = (values, meta, asp.from_cutlass(values, meta), positions,
                   asp.cutlass_meta_from_positions(positions, x.dtype), from_nm)
    dev = on_emulated_cuda()
    for k, x in inputs.items():
        values, meta = asp.to_cutlass(x)
        positions = asp.positions_from_cutlass_meta(meta, x.dtype)
        got = (values, meta, asp.from_cutlass(values, meta), positions,
               asp.cutlass_meta_from_positions(positions, x.dtype))
        for g, e in zip(got, want[k]):
            _same(g, e)
        if k != "float32":
            for g, e in zip(asp.compress(x, "2:4").to_cutlass(), want[k][5]):
                _same(g, e)
    assert any(inst.startswith("asp::cutlass") for inst, _, _ in dev.launches)
    bad = np.ones((32, 32), np.float16)
    with pytest.raises(ValueError, match="row 0, group 0 .* has 4 non-zero"):
        asp.to_cutlass(bad)
    values, meta = asp.to_cutlass(inputs["float16"])
    meta = np.array(meta)
    meta[0, 0] = 0x5555  # idx0 == idx1
    with pytest.raises(ValueError, match="invalid code 0b0101 for row 0, group 0"):
        asp.from_cutlass(values, meta)


def test_norms_and_structured_masks_through_the_cuda_backend(on_emulated_cuda):
    rng = np.random.default_rng(12)
    w = rng.standard_normal((8, 6, 3, 3)).astype(np.float32)
    calls = [
        lambda: asp.structure_scores(w, 0, ord=2),
        lambda: asp.structure_scores(w, 1, ord=1),
        lambda: asp.block_scores(w, (3, 3), ord=float("inf")),
        lambda: asp.structure_scores(w.astype(np.int16), 2, ord=0.5),
        lambda: asp.StructuredPruning(asp.SparsityPattern.filters(), ord=1).prune(w, 0.25)[1].mask,
        lambda: asp.block_mask(w.reshape(48, 9), 0.5, block=(4, 3)).mask,
    ]
    want = [np.asarray(c()) for c in calls]
    dev = on_emulated_cuda()
    for c, e in zip(calls, want):
        np.testing.assert_allclose(np.asarray(c()), e, rtol=1e-6)
    assert any(inst.startswith("asp::slice_norms") for inst, _, _ in dev.launches)
    assert any(inst.startswith("asp::block_norms") for inst, _, _ in dev.launches)


def _global_inputs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    a = rng.standard_normal((30, 40)).astype(np.float32)
    a[:, ::7] = 0.25  # ties across arrays
    b = (rng.standard_normal(700) * 2).astype(np.float16)
    b[::5] = 0.25
    return {
        "same space": [a, b, torch.from_numpy(rng.standard_normal((9, 50))).to(torch.bfloat16)],
        "mixed": [a, rng.standard_normal((20, 20)), (rng.standard_normal(300) * 100).astype(np.int64)],
        "integers": [(rng.standard_normal(500) * 50).astype(np.int8), (rng.standard_normal(400) * 5e4).astype(np.int32)],
    }


@pytest.mark.parametrize("case", ["same space", "mixed", "integers"])
@pytest.mark.parametrize("bounds", ["none", "clamped", "at bounds"])
def test_global_threshold_through_the_cuda_backend(on_emulated_cuda, case, bounds):
    arrays = _global_inputs()[case]
    sizes = [int(np.prod(tuple(a.shape))) for a in arrays]
    total = sum(sizes)
    k = total // 2
    if bounds == "none":
        lo, hi = [0] * len(sizes), sizes
    elif bounds == "clamped":  # the first array may prune at most 10%, the last at least 80%
        lo = [0] * (len(sizes) - 1) + [int(0.8 * sizes[-1])]
        hi = [int(0.1 * sizes[0])] + sizes[1:]
    else:
        lo, hi = [s // 4 for s in sizes], [s // 3 for s in sizes]
        k = sum(lo) - 1
    names = [f"a{i}" for i in range(len(arrays))]
    want = _backends.global_keep(None, arrays, names, k, lo, hi, magnitude=True)
    dev = on_emulated_cuda()
    got = _backends.global_keep(None, arrays, names, k, lo, hi, magnitude=True)
    assert dev.launches
    for (gk, gp, gu), (wk, wp, wu) in zip(got, want):
        assert (gp, gu) == (wp, wu)
        _same(gk, wk)


def test_global_threshold_nan_names_the_array(on_emulated_cuda):
    arrays = [np.ones(50, np.float32), np.ones(40, np.float32)]
    arrays[1][3] = np.nan
    on_emulated_cuda()
    with pytest.raises(ValueError, match="a1 contains 1 NaN"):
        _backends.global_keep(None, arrays, ["a0", "a1"], 30, [0, 0], [50, 40], magnitude=False)
