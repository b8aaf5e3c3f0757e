"""The CUDA kernels, without a GPU: every instance compiles with NVRTC, and every plan run on
the host emulation equals the CPU kernels bit for bit.

The emulation runs each plan exactly as a GPU would (grids, blocks, scratch,
scans); the inputs are small but sized to take every launch path: several
blocks with a partial last one, the register and the block N:M kernels,
ties across chunks, NaN, empty and degenerate counts.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from arraysparse._backends import Counted, host, host_formats
from arraysparse._backends.bridge import Host
from arraysparse._backends.shared import Violation
from arraysparse._kernels.cpu import cutlass as cpu_cutlass
from arraysparse._kernels.cpu import norms as cpu_norms
from arraysparse._kernels.cpu.sparse import value_bits
from arraysparse._kernels.cuda import instances, nvrtc, plans
from arraysparse._kernels.cuda.emulate import EmulationUnavailable, compiler
from arraysparse.formats.nm import packed_layout
from tests.cuda_emulation import bits_of, emulator, gpu_shaped_emulator, keys_of, launched, run

ARCHS = ("sm_80", "sm_90")


# -- NVRTC: every source and instance compiles for sm_80 and sm_90 --------------------------
def compiled(source: str, arch: str) -> nvrtc.Compiled:
    """``source`` compiled for ``arch`` as CuPy compiles it (cached), or a skip naming why NVRTC is missing."""
    try:
        nvrtc.version()
    except nvrtc.NvrtcUnavailable as e:
        pytest.skip(str(e))
    return nvrtc.compile_cached(source, arch)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("source", sorted(instances.INSTANCES))
def test_nvrtc_compiles_every_instance(source, arch):
    done = compiled(source, arch)
    assert done.cubin_bytes > 0
    assert set(done.lowered) == set(instances.INSTANCES[source])
    assert all(low.startswith("_Z") for low in done.lowered.values())


def _flushing_instructions(ptx: str) -> list[str]:
    """The float32 instructions of ``ptx`` whose result a flush to zero could change.

    CuPy compiles with ``-ftz=true``: a float32 instruction then reads and writes subnormals as
    zero. Harmless are a compare against a nonzero literal (a subnormal and zero fall on the same
    side of any normal constant) and an abs read only by such compares: libdevice's exp (in pow)
    range-checks a double's high word that way. Everything else (cvt, add, mul, a store...) is
    reported.
    """
    lines = [ln.strip().rstrip(";") for ln in ptx.splitlines()]
    instr = [ln.split(None, 1) for ln in lines if ln and not ln.startswith(("//", ".", "{", "}", "$", "@"))]

    def harmless_compare(op: str, args: str) -> bool:
        return op.startswith("setp.") and bool(re.search(r"\b0f(?!00000000|80000000)[0-9A-F]{8}\b", args))

    found = []
    for op, *rest in instr:
        args = rest[0] if rest else ""
        if ".ftz" not in op or not op.endswith(".f32"):
            continue
        if harmless_compare(op, args):
            continue
        if op == "abs.ftz.f32":
            dest = args.split(",")[0].strip()
            readers = [(o, r[0]) for o, *r in instr if r and re.search(rf"{re.escape(dest)}\b", r[0].split(",", 1)[-1])]
            if readers and all(harmless_compare(o, a) for o, a in readers):
                continue
        found.append(f"{op} {args}")
    return found


@pytest.mark.parametrize("source", sorted(instances.INSTANCES))
def test_no_value_is_flushed_to_zero_under_cupy_s_ftz(source):
    assert "-ftz=true" in nvrtc.CUPY_ADDS  # compiled as CuPy compiles
    done = compiled(source, "sm_90")
    assert _flushing_instructions(done.ptx) == []


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("source", sorted(instances.INSTANCES))
def test_every_kernel_fits_its_launch_on_the_gpu(source, arch):
    # what only a GPU would refuse: a block of the plans' widest launch must find its registers
    # in one SM's file (64K 32-bit registers on sm_80 / sm_90; else "too many resources
    # requested for launch"), and nothing spills to local memory (a slow path in a hot loop)
    widest = max(plans.BLOCK, plans.PICK_BLOCK)
    done = compiled(source, arch)
    res = done.resources()
    assert set(res) == set(done.lowered.values())  # every kernel reported
    for kernel, r in res.items():
        assert r["registers"] * widest <= 65536, (kernel, r)
        assert r["spill_stores"] == 0 and r["spill_loads"] == 0, (kernel, r)
        assert r["smem"] <= 48 * 1024, (kernel, r)  # static shared memory without opting in


def test_the_ftz_reader_finds_a_flushing_conversion():
    ptx = "mov.b32 %f1, %r1;\ncvt.ftz.f64.f32 %fd1, %f1;\nsetp.lt.ftz.f32 %p1, %f1, 0f4086232B;\n"
    assert _flushing_instructions(ptx) == ["cvt.ftz.f64.f32 %fd1, %f1"]
    assert _flushing_instructions("abs.ftz.f32 %f2, %f1;\nsetp.lt.ftz.f32 %p1, %f2, 0f4086232B;") == []
    assert _flushing_instructions("abs.ftz.f32 %f2, %f1;\nst.global.f32 [%rd1], %f2;") == ["abs.ftz.f32 %f2, %f1"]
    assert _flushing_instructions("setp.lt.ftz.f32 %p1, %f1, 0f00000000;") == ["setp.lt.ftz.f32 %p1, %f1, 0f00000000"]


def test_every_source_is_registered_and_shipped():
    sources = {p.name for p in instances.DIRECTORY.glob("*.cu")}
    assert sources == set(instances.INSTANCES)
    for source in sources:
        assert "#include" not in instances.source_text(source)  # NVRTC has no headers to find
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    for pattern in ("_kernels/cuda/*.cu", "_kernels/cuda/*.cuh", "_kernels/cuda/emulate/*.h"):
        assert f'"{pattern}"' in pyproject  # package data


def test_an_unlisted_instance_is_refused():
    dev = emulator()
    with pytest.raises(KeyError, match="not listed"):
        dev.launch("nm.cu", "asp::nm_keep_small<unsigned int, 64>", 1, 32, ())


def test_a_wrong_argument_type_is_caught_before_the_launch():
    dev = emulator()
    x = np.zeros(4, np.uint32)
    count = np.zeros(1, np.uint64)
    with pytest.raises(TypeError, match="argument 1 is a 8-byte value"):
        dev.launch("select.cu", "asp::nan_count<unsigned int>", 1, 32, (x, np.int32(4), np.uint32(0), count))
    with pytest.raises(TypeError, match="points to 4-byte items"):
        dev.launch("select.cu", "asp::nan_count<unsigned int>", 1, 32, (x.view(np.uint16), np.int64(4), np.uint32(0), count))


# -- N:M keep mask ------------------------------------------------------------------------
def _nm_case(dev, x, n, m, axis, magnitude):
    ax = axis % x.ndim
    shape = tuple(x.shape)
    bits, keys = keys_of(x, magnitude)
    s3 = (int(np.prod(shape[:ax])), shape[ax], int(np.prod(shape[ax + 1 :])))
    keep, nans = run(plans.nm_keep, dev, bits.reshape(shape), s3, n, m, keys)
    ref, ref_nans = host.nm_keep(x, n, m, ax, magnitude)
    np.testing.assert_array_equal(keep, np.asarray(ref))
    assert nans == ref_nans


@pytest.mark.parametrize(
    ("shape", "axis", "n", "m", "dtype"),
    [
        ((40, 64), -1, 2, 4, np.float32),  # the register kernel over several blocks (2560 / 4 groups)
        ((5, 30, 7), 1, 3, 5, np.float64),  # m not a power of two, groups along an inner axis
        ((9, 96), -1, 16, 32, np.int16),  # MAXM = 32
        ((6, 48), 0, 1, 3, np.uint8),  # axis 0
        ((3, 200, 2), 1, 70, 100, np.float32),  # the block kernel, inner axis, partial warp of a group
        ((4, 600), -1, 299, 300, np.int64),  # the block kernel, 64-bit keys, block wider than a pass
        ((2, 4, 8), -1, 0, 8, np.float32),  # nothing pruned
        ((2, 4, 8), -1, 8, 8, np.float32),  # everything pruned
        ((0, 8), -1, 2, 4, np.float32),  # empty
    ],
)
def test_nm_keep_equals_cpu(plan_device, shape, axis, n, m, dtype):
    rng = np.random.default_rng(sum(shape) + n + m)
    x = (rng.standard_normal(shape) * 40).astype(dtype)
    if x.size:
        x.reshape(-1)[::3] = x.reshape(-1)[0]  # ties inside groups
    _nm_case(plan_device, x, n, m, axis, True)
    _nm_case(plan_device, x, n, m, axis, False)


def test_nm_keep_ties_and_signed_zeros(plan_device):
    x = np.array([[0.0, -0.0, 1.0, -1.0, 2.0, 2.0, -2.0, 2.0] * 4], np.float32)
    _nm_case(plan_device, x, 2, 4, -1, True)
    _nm_case(plan_device, x, 2, 4, -1, False)
    _nm_case(plan_device, np.tile(x, (1, 5)), 20, 40, -1, True)  # the block kernel


def test_nm_keep_half_precision(plan_device):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    v = rng.standard_normal((16, 64)).astype(np.float32)
    _nm_case(plan_device, v.astype(np.float16), 2, 4, -1, True)
    _nm_case(plan_device, torch.from_numpy(v).to(torch.bfloat16), 3, 8, -1, False)
    _nm_case(plan_device, torch.from_numpy(np.repeat(v, 2, axis=1)).to(torch.bfloat16), 40, 64, -1, True)


@pytest.mark.parametrize("m", [4, 64])
def test_nm_keep_counts_nan(plan_device, m):
    x = np.random.default_rng(0).standard_normal((8, 128)).astype(np.float32)
    x[1, 5] = x[7, 100] = np.nan
    _nm_case(plan_device, x, m // 2, m, -1, True)
    assert "asp::nan_count" in launched(plan_device)


# -- NaN count ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_nan_count(plan_device, dtype):
    x = np.random.default_rng(1).standard_normal(9000).astype(dtype)
    x[[0, 17, 4096, 8999]] = np.nan
    x[5] = -np.nan
    x[6] = np.inf
    x[7] = -np.inf
    bits, keys = keys_of(x, False)
    assert run(plans.nan_count, plan_device, bits, keys) == 5


# -- exact top-k --------------------------------------------------------------------------
def _topk_case(dev, x, k, magnitude):
    bits, keys = keys_of(x, magnitude)
    keep, nans = run(plans.topk_keep, dev, bits, k, keys)
    ref, ref_nans = host.topk_keep(x, k, magnitude)
    assert nans == ref_nans
    if not nans:
        np.testing.assert_array_equal(keep.reshape(np.shape(ref)), np.asarray(ref))


@pytest.mark.parametrize(
    ("n", "dtype", "k"),
    [
        (5000, np.float32, 2500),  # several chunks, the last partial; three levels of 11, 11, 10 bits
        (3001, np.float16, 1500),  # 16-bit keys: two levels
        (4321, np.int8, 2000),  # one level, heavy ties across every chunk
        (2000, np.float64, 1),  # six levels
        (3000, np.uint16, 2999),
        (1025, np.int32, 512),
        (64, np.float32, 0),
        (64, np.float32, 64),
    ],
)
def test_topk_keep_equals_cpu(plan_device, n, dtype, k):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 50).astype(dtype)
    x[::5] = x[0]
    _topk_case(plan_device, x, k, True)
    _topk_case(plan_device, x, k, False)


def test_topk_ties_span_chunks(plan_device):
    # one value everywhere but a few: the cut falls inside the run of equal keys, whose
    # quota is split across chunks (one chunk prunes some, later ones none)
    x = np.full(3 * plans.CHUNK + 77, 1.5, np.float32)
    x[[3, 2000, 3000]] = [0.5, 2.5, -0.0]
    for k in (1, 2, plans.CHUNK + 5, 2 * plans.CHUNK, x.size - 1):
        _topk_case(plan_device, x, k, False)


def test_topk_counts_nan_and_bfloat16(plan_device):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal(5000).astype(np.float32)
    x[[1, 2, 4999]] = np.nan
    _topk_case(plan_device, x, 2500, True)
    _topk_case(plan_device, torch.from_numpy(np.random.default_rng(4).standard_normal(6000)).to(torch.bfloat16), 3000, True)


# -- CSR, COO, CSC, BSR, bitmask ----------------------------------------------------------


def _sparse_matrix(shape, dtype, density, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 30).astype(dtype)
    x[rng.random(shape) >= density] = 0
    if np.dtype(dtype).kind == "f" and x.size > 8:
        x.reshape(-1)[1] = -0.0  # a zero
        x.reshape(-1)[2] = np.nan  # a non-zero
    return x


def _bits_and_mask(x):
    u, mask = value_bits(np.ascontiguousarray(x))
    return u, int(mask)


def _stored(u, nz):
    """What a decoder gives back: the stored bits, zeros (-0.0 included) as +0."""
    return np.where((u & u.dtype.type(nz)) != 0, u, u.dtype.type(0))


SPARSE_CASES = [
    ((23, 130), np.float32, 0.3),  # several chunks, the last partial, rows across chunks
    ((3, 1100), np.float16, 0.05),  # a row longer than a chunk
    ((40, 40), np.int8, 0.9),
    ((33, 17), np.float64, 0.5),
    ((3, 5), np.uint16, 0.0),  # nothing stored
    ((0, 7), np.float32, 0.5),
    ((6, 0), np.float32, 0.5),
]


@pytest.mark.parametrize(("shape", "dtype", "density"), SPARSE_CASES)
@pytest.mark.parametrize("index", ["int32", "int64"])
def test_csr_coo_equal_cpu(plan_device, shape, dtype, density, index):
    dev = plan_device
    x = _sparse_matrix(shape, dtype, density)
    u, nz = _bits_and_mask(x)
    chunks = run(plans.chunk_count, dev, u, nz)
    nnz, state = host_formats.count_rows(x)
    assert chunks.nnz == nnz
    for coo in (False, True):
        got = run(plans.encode_csr, dev, u, nz, chunks, index, coo)
        want = host_formats.encode_csr(Counted("host", nnz, state), index, coo=coo)
        for g, w in zip(got, want):
            assert g.dtype == np.asarray(w).view(g.dtype).dtype
            np.testing.assert_array_equal(g, np.asarray(w).view(g.dtype))
        fmt = "coo" if coo else "csr"
        arrays = dict(zip(("row", "col", "data") if coo else ("indptr", "indices", "data"), got))
        np.testing.assert_array_equal(run(plans.decode_compressed, dev, fmt, arrays, shape, u.dtype), _stored(u, nz))


@pytest.mark.parametrize(("shape", "dtype", "density"), [*SPARSE_CASES, ((600, 3), np.float32, 0.4)])
def test_csc_equals_cpu(plan_device, shape, dtype, density):
    dev = plan_device
    x = _sparse_matrix(shape, dtype, density, seed=1)
    u, nz = _bits_and_mask(x)
    chunks = run(plans.csc_count, dev, u, nz)
    nnz, state = host_formats.count_cols(x)
    assert chunks.nnz == nnz
    got = run(plans.encode_csc, dev, u, nz, chunks, "int32")
    want = host_formats.encode_csc(Counted("host", nnz, state), "int32")
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, np.asarray(w).view(g.dtype))
    arrays = dict(zip(("indptr", "indices", "data"), got))
    np.testing.assert_array_equal(run(plans.decode_compressed, dev, "csc", arrays, shape, u.dtype), _stored(u, nz))


@pytest.mark.parametrize(
    ("shape", "block", "dtype", "density"),
    [
        ((64, 96), (4, 4), np.float32, 0.02),  # most blocks empty
        ((8, 1200), (2, 1), np.float16, 0.3),  # 4800 flags: several chunks of the compaction
        ((30, 20), (5, 10), np.int64, 0.05),
        ((16, 16), (16, 16), np.float32, 0.0),
        ((0, 8), (2, 2), np.float32, 0.5),
    ],
)
def test_bsr_equals_cpu(plan_device, shape, block, dtype, density):
    dev = plan_device
    x = _sparse_matrix(shape, dtype, density, seed=2)
    u, nz = _bits_and_mask(x)
    blocks = run(plans.count_blocks, dev, u, nz, block)
    nnz, state = host_formats.count_blocks(x, *block)
    assert blocks.chunks.nnz == nnz
    got = run(plans.encode_bsr, dev, u, blocks, "int64")
    want = host_formats.encode_bsr(Counted("host", nnz, state), "int64")
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, np.asarray(w).view(g.dtype))
    arrays = dict(zip(("indptr", "indices", "data"), got))
    br, bc = block
    kept = (_stored(u, nz) != 0).reshape(shape[0] // br, br, shape[1] // bc, bc).any(axis=(1, 3))
    whole = np.repeat(np.repeat(kept, br, axis=0), bc, axis=1)  # blocks are kept whole
    np.testing.assert_array_equal(run(plans.decode_bsr, dev, arrays, shape, u.dtype), np.where(whole, u, 0))


@pytest.mark.parametrize(("shape", "dtype", "density"), [*SPARSE_CASES, ((9, 13), np.uint8, 0.5)])
def test_bitmask_equals_cpu(plan_device, shape, dtype, density):
    dev = plan_device
    x = _sparse_matrix(shape, dtype, density, seed=3)
    u, nz = _bits_and_mask(x)
    values, mask, nnz = run(plans.encode_bitmask, dev, u, nz)
    want_values, want_mask, want_nnz = host_formats.encode_bitmask(x)
    assert nnz == want_nnz
    np.testing.assert_array_equal(values, np.asarray(want_values).view(values.dtype))
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_array_equal(run(plans.decode_bitmask, dev, values, mask, shape), _stored(u, nz))


# -- N:M compression with packed positions -------------------------------------------------

NM_PACK_CASES = [  # (n, m): every kind of unit
    (2, 4),  # 4-bit fields, two groups a byte (2:4)
    (1, 2),  # 1 bit, eight groups a byte
    (4, 8),  # an 8-bit mask
    (6, 8),  # 6 bits: four groups in three bytes
    (12, 16),  # 16 bits
    (3, 5),  # 3 bits x 2 = 6
    (8, 16),  # a 16-bit mask
    (250, 256),  # 48 bits
    (100, 200),  # a 200-bit mask
    (0, 1),  # no position bits at all
    (3, 3),  # nothing kept
    (0, 3),  # everything kept
]


def _nm_input(rows, n, m, dtype, seed):
    rng = np.random.default_rng(seed)
    cols = m * max(2, 37 // m)  # an odd number of groups where it can be
    x = (rng.standard_normal((rows, cols)) * 20).astype(dtype)
    keep = m - n
    for r in range(rows):  # at most keep non-zeros a group, often fewer (padding)
        for g in range(cols // m):
            grp = x[r, g * m : (g + 1) * m]
            kill = rng.permutation(m)[: max(n, m - rng.integers(0, keep + 1))]
            grp[kill] = 0
    if x.size and np.dtype(dtype).kind == "f":
        x[0, 0] = -0.0
    return x


@pytest.mark.parametrize(("n", "m"), NM_PACK_CASES)
def test_nm_pack_equals_cpu(plan_device, n, m):
    dev = plan_device
    lay = packed_layout(n, m)
    x = _nm_input(19, n, m, np.float32, n + m)
    u, nz = _bits_and_mask(x)
    values, packed, bad = run(plans.encode_nm, dev, u, nz, lay)
    want_values, want_packed = host_formats.encode_nm(x, lay)
    assert bad is None
    np.testing.assert_array_equal(values, np.asarray(want_values).view(values.dtype))
    np.testing.assert_array_equal(packed, want_packed)
    dense, bad = run(plans.decode_nm, dev, values, packed, x.shape, lay)
    assert bad is None
    h = Host.of(x)
    want_dense = host_formats.decode_nm(h, {"values": want_values, "packed_positions": want_packed}, x.shape, lay)
    np.testing.assert_array_equal(dense, np.asarray(want_dense).view(dense.dtype))
    positions, bad = run(plans.nm_positions, dev, packed, x.shape, lay)
    assert bad is None
    np.testing.assert_array_equal(positions, host_formats.unpack_nm_positions(want_packed, x.shape, lay))


@pytest.mark.parametrize(("n", "m"), [(2, 4), (6, 8), (4, 8), (100, 200)])
def test_nm_pack_finds_the_first_violation_and_corrupt_group(plan_device, n, m):
    dev = plan_device
    lay = packed_layout(n, m)
    x = _nm_input(6, n, m, np.int16, 1)
    x[4, m : 2 * m] = 7  # group 1 of row 4: m non-zeros
    x[5, 0:m] = 3
    u, nz = _bits_and_mask(x)
    _, _, bad = run(plans.encode_nm, dev, u, nz, lay)
    with pytest.raises(Violation) as v:
        host_formats.encode_nm(x, lay)
    assert bad == (v.value.row, v.value.group, v.value.found) == (4, 1, m)
    x[4:] = 0
    values, packed = host_formats.encode_nm(x, lay)
    packed = np.array(packed)
    packed[3, -1] = 0xFF  # the row's last groups: positions out of order or a mask of too many bits
    packed[5, 0] ^= 0x3 if not lay.bitmask else 0x1
    _, bad = run(plans.decode_nm, dev, np.ascontiguousarray(values).view(np.uint16), packed, x.shape, lay)
    _, bad_positions = run(plans.nm_positions, dev, packed, x.shape, lay)
    with pytest.raises(Violation) as v:
        host_formats.unpack_nm_positions(packed, x.shape, lay)
    assert bad == bad_positions == (v.value.row, v.value.group)


# -- CUTLASS 2:4 --------------------------------------------------------------------------

CUTLASS_CASES = [("half", np.float16, (64, 64)), ("byte", np.int8, (32, 128)), ("pair", np.float32, (64, 32))]


def _cutlass_input(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 20).astype(dtype)
    lanes = 2 if dtype == np.float32 else 4
    g = x.reshape(-1, lanes)
    for row in g:  # at most lanes / 2 non-zeros, often fewer (the padding codes)
        row[rng.permutation(lanes)[: lanes - rng.integers(0, lanes // 2 + 1)]] = 0
    if dtype != np.int8:
        x.reshape(-1)[5] = -0.0
    return x


@pytest.mark.parametrize(("kind", "dtype", "shape"), CUTLASS_CASES)
def test_cutlass_equals_cpu(plan_device, kind, dtype, shape):
    dev = plan_device
    x = _cutlass_input(dtype, shape, 7)
    bits = x.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[x.dtype.itemsize])
    values, meta, bad = run(plans.cutlass_encode, dev, bits, kind)
    want_values, want_meta, want_bad = cpu_cutlass.encode(bits, kind)
    assert bad is None and not want_bad.any()
    np.testing.assert_array_equal(values, want_values)
    np.testing.assert_array_equal(meta, want_meta)
    dense, bad = run(plans.cutlass_decode, dev, values, meta, kind)
    want_dense, _ = cpu_cutlass.decode(want_values, want_meta, kind)
    assert bad is None
    np.testing.assert_array_equal(dense, want_dense)
    codes = run(plans.cutlass_unpack_codes, dev, meta, kind)
    np.testing.assert_array_equal(codes, cpu_cutlass.unpack_codes(want_meta, kind))
    np.testing.assert_array_equal(run(plans.cutlass_pack_codes, dev, codes, kind), want_meta)


@pytest.mark.parametrize(("kind", "dtype", "shape"), CUTLASS_CASES)
def test_cutlass_finds_the_first_bad_group_and_code(plan_device, kind, dtype, shape):
    dev = plan_device
    x = _cutlass_input(dtype, shape, 8)
    lanes = 2 if kind == "pair" else 4
    x[9, 2 * lanes : 3 * lanes] = 1  # group 2 of row 9: every lane non-zero
    x[20, 0:lanes] = 1
    bits = x.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[x.dtype.itemsize])
    _, _, bad = run(plans.cutlass_encode, dev, bits, kind)
    assert bad == (9, 2, lanes)
    x[9] = x[20] = 0
    values, meta, _ = cpu_cutlass.encode(bits, kind)
    codes = cpu_cutlass.unpack_codes(meta, kind)
    codes[3, 5] = 0b0101  # idx0 == idx1 (pairs: neither 4 nor 14)
    codes[30, 0] = 0b1111
    meta = cpu_cutlass.pack_codes(codes, kind)
    _, bad = run(plans.cutlass_decode, dev, values, meta, kind)
    assert bad == (3, 5, 0b0101)


# -- norms (float64 sums in another order: equal to rounding; the maximum exactly) -----------


@pytest.mark.parametrize(
    ("dtype", "ord"),
    [("float16", 1.0), ("bfloat16", 2.0), ("float32", float("inf")), ("float64", 0.5), ("float32", 3.0),
     ("int8", 2.0), ("int64", float("inf")), ("uint16", 1.0)],
)
def test_slice_and_block_norms_match_cpu(plan_device, dtype, ord):
    torch = pytest.importorskip("torch")
    dev = plan_device
    rng = np.random.default_rng(11)
    v = rng.standard_normal((6, 20, 12)) * 30
    v[0, 0, 0] = 1e-6  # a float16 subnormal
    if dtype == "bfloat16":
        x = torch.from_numpy(v.astype(np.float32)).to(torch.bfloat16)
        wide = x.float().numpy()
    else:
        x = v.astype(dtype)
        wide = x.astype(np.float32) if dtype == "float16" else x
    bits, name = bits_of(x)
    got = run(plans.slice_norms, dev, bits, name, (6, 20, 12), ord)
    want = cpu_norms.slice_norms(np.ascontiguousarray(wide), ord)
    exact = ord == float("inf")
    np.testing.assert_allclose(got, want, rtol=0 if exact else 1e-12)
    got = run(plans.block_norms, dev, bits, name, (6, 4, 5, 3, 4), ord)
    want = cpu_norms.block_norms(np.ascontiguousarray(wide).reshape(6, 4, 5, 3, 4), ord)
    np.testing.assert_allclose(got, want, rtol=0 if exact else 1e-12)


@pytest.mark.parametrize("ord", [1.0, 2.0, float("inf")])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_norms_of_subnormals_inf_and_signed_zeros_match_cpu(plan_device, dtype, ord):
    # float32 and bfloat16 bits widen to float64 by integer operations (no float32 instruction
    # for CuPy's -ftz=true to flush): a slice of subnormals keeps its nonzero norm
    dev = plan_device
    tiny = np.uint32(0x10000).view(np.float32)  # 2**-133: a float32 subnormal, exact in bfloat16
    v = np.zeros((2, 5, 8), np.float32)
    v[:, 0] = tiny * np.arange(1, 9, dtype=np.float32)  # subnormals only
    v[:, 1] = -tiny * 3
    v[:, 2] = np.float32(-0.0)
    v[:, 3] = np.float32(1.5)
    v[0, 4, 0], v[1, 4, 1] = np.inf, -np.inf
    if dtype == "bfloat16":
        bits = (v.view(np.uint32) >> 16).astype(np.uint16)  # each value is exact in bfloat16
        assert np.array_equal(bits.astype(np.uint32) << 16, v.view(np.uint32))
    else:
        bits = v.view(np.uint32)
    got = run(plans.slice_norms, dev, bits, dtype, (2, 5, 8), ord)
    want = cpu_norms.slice_norms(v, ord)
    assert (got[:2] > 0).all() and got[2] == 0
    np.testing.assert_allclose(got, want, rtol=1e-12)
    got = run(plans.block_norms, dev, bits, dtype, (1, 2, 5, 2, 4), ord)
    np.testing.assert_allclose(got, cpu_norms.block_norms(v.reshape(1, 2, 5, 2, 4), ord), rtol=1e-12)


# -- the emulation itself -----------------------------------------------------------------

_PROBES = r"""
namespace probe {
// warp collectives and block barriers: every lane's answer depends on its neighbours
__global__ void collectives(const int* x, int* out) {
  __shared__ int tile[64];
  const unsigned t = threadIdx.x;
  const int v = x[blockIdx.x * blockDim.x + t];
  tile[t] = v;
  __syncthreads();
  const int left = tile[(t + blockDim.x - 1) % blockDim.x];
  const unsigned ballot = __ballot_sync(0xffffffffu, v > 0);
  const int down = __shfl_down_sync(0xffffffffu, v, 1);
  const int sum = __shfl_xor_sync(0xffffffffu, v, 16) + v;
  atomicAdd(&out[4 * blockDim.x * gridDim.x], v);
  const int i = blockIdx.x * blockDim.x + t;
  out[4 * i + 0] = left;
  out[4 * i + 1] = int(ballot);
  out[4 * i + 2] = down;
  out[4 * i + 3] = sum;
}
// a barrier that half of the block never reaches
__global__ void diverge(int* out) {
  if (threadIdx.x < 32) __syncthreads();
  out[threadIdx.x] = 1;
}
}
"""


def test_the_emulation_runs_blocks_warps_and_atomics_as_cuda_does():
    dev = emulator()
    dev.add_source("probe.cu", _PROBES, ["probe::collectives", "probe::diverge"])
    x = np.random.default_rng(0).integers(-5, 5, 3 * 64).astype(np.int32)
    out = np.zeros(4 * x.size + 1, np.int32)
    dev.launch("probe.cu", "probe::collectives", 3, 64, (x, out))
    got = out[:-1].reshape(3, 64, 4)
    xb = x.reshape(3, 64)
    np.testing.assert_array_equal(got[:, :, 0], np.roll(xb, 1, axis=1))  # shared memory per block
    for b in range(3):
        for w in range(2):
            lanes = xb[b, 32 * w : 32 * w + 32]
            ballot = sum(1 << i for i in range(32) if lanes[i] > 0)
            np.testing.assert_array_equal(got[b, 32 * w : 32 * w + 32, 1].view(np.uint32), ballot)
            np.testing.assert_array_equal(got[b, 32 * w : 32 * w + 32, 2], np.r_[lanes[1:], lanes[31]])
            np.testing.assert_array_equal(got[b, 32 * w : 32 * w + 32, 3], lanes + np.roll(lanes, 16))
    assert out[-1] == x.sum()


def test_the_emulation_reports_a_barrier_not_every_thread_reaches(monkeypatch):
    dev = emulator()
    dev.add_source("probe.cu", _PROBES, ["probe::collectives", "probe::diverge"])
    monkeypatch.setenv("ASP_EMU_TIMEOUT_S", "1")
    with pytest.raises(RuntimeError, match="not every thread arrived"):
        dev.launch("probe.cu", "probe::diverge", 1, 64, (np.zeros(64, np.int32),))


def test_the_emulation_skips_with_a_reason_without_a_compiler(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.raises(EmulationUnavailable, match="no C\\+\\+20 compiler found"):
        compiler.__wrapped__()


def test_the_gpu_shaped_emulation_refuses_what_cupy_refuses(monkeypatch):
    # the emulated plan_device: a plan leaning on the emulation's memory being NumPy's
    # fails here as it would on a GPU, where device memory is CuPy's
    dev = gpu_shaped_emulator(monkeypatch)
    xp = dev.xp
    host_x = np.arange(64, dtype=np.uint32)
    x = dev.upload(host_x)
    count = xp.zeros(1, dtype=np.uint64)
    args = (np.int64(64), np.uint32(0x7F800000), count)
    with pytest.raises(TypeError, match="argument 0 is a host array"):  # CuPy: TypeError, or by value if 1 item
        dev.launch("select.cu", "asp::nan_count<unsigned int>", 1, 32, (host_x, *args))
    dev.launch("select.cu", "asp::nan_count<unsigned int>", 1, 32, (x, *args))
    assert type(dev.host(count)) is np.ndarray and dev.host(count)[0] == 0
    with pytest.raises(TypeError, match="not device memory"):
        dev.host(host_x)
    with pytest.raises(TypeError, match="xp.cumsum given a host array"):  # cupy.cumsum(numpy array)
        xp.cumsum(host_x)
    with pytest.raises(TypeError, match="mixes a host array"):  # cupy + numpy
        x + host_x  # noqa: B018
    with pytest.raises(TypeError, match="assigned into device memory"):  # cupy[...] = numpy
        x[...] = host_x
    with pytest.raises(TypeError, match="numpy.sum called on a device array"):  # plans call dev.xp
        np.sum(x)
    for coerce in (plans.np.asarray, plans.np.array, plans.np.ascontiguousarray):  # CuPy's __array__ raises
        with pytest.raises(TypeError, match="CuPy refuses implicit conversion"):
            coerce(x)
    assert plans.np.asarray([1, 2]).tolist() == [1, 2]
    x[...] = 7  # scalars, reductions, views and slices work as on CuPy, and stay device memory
    assert int((x[1:] & 3).sum()) == 63 * 3 and type(xp.cumsum(x.reshape(8, 8)[2].view(np.uint64))) is xp.ndarray
    with pytest.raises(AssertionError, match="returned a host array"):
        run(lambda dev, a: (dev.xp.zeros(1), np.zeros(1)), dev, host_x)
    got = run(lambda dev, a, d: (a, [d["k"], 3]), dev, host_x, {"k": host_x})
    assert all(type(a) is np.ndarray for a in (got[0], got[1][0])) and got[1][1] == 3
    np.testing.assert_array_equal(got[0], host_x)


# -- grid-stride loops: several passes of a small grid over the items ----------------------
def test_grid_stride_loops_with_tiny_grids_equal_cpu(plan_device, monkeypatch):
    # the GPU grids cover the test inputs in one pass; two blocks of one warp make every
    # grid-stride kernel loop over its items (and the histogram blocks add several partial
    # histograms); the ordered passes keep their chunks, now of 32 tiles of a block
    monkeypatch.setattr(plans, "MAX_GRID", 2)
    monkeypatch.setattr(plans, "HIST_GRID", 2)
    monkeypatch.setattr(plans, "BLOCK", 32)
    dev = plan_device
    rng = np.random.default_rng(21)
    x = (rng.standard_normal((12, 96)) * 10).astype(np.float32)
    x[:, ::5] = 1.0
    x[3, 7] = np.nan
    _nm_case(dev, x, 2, 4, -1, True)  # nm_keep_small and nan_count
    _nm_case(dev, np.nan_to_num(x), 20, 48, -1, False)  # nm_keep_large: several groups a block
    _topk_case(dev, np.nan_to_num(x).reshape(-1), 500, True)  # radix_histogram over two blocks
    test_csr_coo_equal_cpu(dev, (23, 130), np.float32, 0.3, "int32")  # scatters, one warp several rows
    test_csc_equals_cpu(dev, (33, 17), np.float64, 0.5)
    test_bsr_equals_cpu(dev, (8, 1200), (2, 1), np.float16, 0.3)  # block_flags, bsr_gather, bsr_scatter
    test_bitmask_equals_cpu(dev, (9, 13), np.uint8, 0.5)  # bitmask_pack
    test_nm_pack_equals_cpu(dev, 2, 4)
    test_nm_pack_equals_cpu(dev, 6, 8)
    test_cutlass_equals_cpu(dev, "half", np.float16, (64, 64))
    test_slice_and_block_norms_match_cpu(dev, "float32", 2.0)
    grid_stride = {"nm_keep_small", "nm_keep_large", "nan_count", "radix_histogram", "csr_scatter", "coo_scatter",
                   "block_flags", "bsr_gather", "bsr_scatter", "bitmask_pack", "nm_pack", "nm_unpack",
                   "cutlass_encode", "cutlass_decode", "slice_norms", "block_norms"}
    ran = {inst.split("<")[0].removeprefix("asp::") for inst, _, _ in dev.launches}
    assert grid_stride <= ran
    assert all(math.prod(g) <= 2 for inst, g, _ in dev.launches
               if inst.split("<")[0].removeprefix("asp::") in grid_stride)
