"""Sparse formats: exact round trips, equality with scipy.sparse and torch, interop, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import arraysparse as asp
from arraysparse.formats import base as fbase
from tests.backends import Backend, to_numpy

torch = pytest.importorskip("torch")

ALL_FORMATS = ["coo", "csr", "csc", "bsr", "ell", "dia", "bitmask", "n:m", "2:4"]
SCIPY_FORMATS = ["coo", "csr", "csc", "bsr", "dia"]
DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool", "complex64", "complex128"]


def sparse_matrix(shape, density=0.4, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < density
    if dt.kind == "c":
        x = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    elif dt.kind in "iu":
        x = rng.integers(1, 100, size=shape).astype(dt)
    else:
        x = rng.standard_normal(shape).astype(dt)
    x[rng.random(shape) >= density] = 0
    return x


def nm_matrix(shape, n, m, dtype="float32", seed=0, extra_zeros=0.2):
    """A matrix with at least n zeros in every group of m along the last axis."""
    x = sparse_matrix(shape, 1.0, dtype, seed)
    x = np.asarray(asp.nm_mask(np.abs(x).astype(np.float64), n, m).apply(x))
    x[np.random.default_rng(seed + 1).random(shape) < extra_zeros] = 0
    return x


def params_for(fmt, shape):
    if fmt == "bsr":
        return {"block": (2, 2) if shape[0] % 2 == 0 and shape[-1] % 2 == 0 else (1, 1)}
    if fmt == "n:m":
        return {"n": 2, "m": 4}
    return {}


def input_for(fmt, shape, dtype="float32", seed=0):
    if fmt in ("n:m", "2:4"):
        return nm_matrix(shape, 2, 4, dtype, seed)
    return sparse_matrix(shape, 0.4, dtype, seed)


def assert_same(a, b):
    a, b = to_numpy(a), to_numpy(b)
    assert a.shape == b.shape
    assert a.dtype == b.dtype
    if a.dtype.kind in "fc":
        np.testing.assert_array_equal(a, b)
    else:
        assert np.array_equal(a, b)


# -- round trips ---------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_numpy_every_dtype(fmt, dtype):
    x = input_for(fmt, (8, 12), dtype)
    r = asp.compress(x, fmt, **params_for(fmt, x.shape))
    back = r.to_dense()
    assert back.dtype == x.dtype
    assert back.shape == x.shape
    assert np.array_equal(back, x)
    assert r.nnz == np.count_nonzero(x)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_round_trip_and_same_arrays_on_every_backend(fmt, backend):
    x = input_for(fmt, (8, 12), "float32", seed=3)
    reference = asp.compress(x, fmt, **params_for(fmt, x.shape))
    r = asp.compress(backend.asarray(x), fmt, **params_for(fmt, x.shape))
    assert r.backend == reference.backend or backend is not Backend.NUMPY
    assert list(r.arrays) == list(reference.arrays)
    for name in r.arrays:
        assert_same(r.arrays[name], reference.arrays[name])
    back = r.to_dense()
    assert type(back) is type(backend.asarray(x))
    assert np.array_equal(to_numpy(back), x)
    assert r.nnz == reference.nnz
    assert r.nbytes == reference.nbytes


def garbage_like(backend, x):
    """A buffer of x's shape and dtype, full of non-zeros (NaN for floats), on ``backend``."""
    junk = np.full(x.shape, np.nan) if x.dtype.kind in "fc" else np.full(x.shape, 7)
    return backend.asarray(junk.astype(x.dtype) if x.dtype != bool else np.ones(x.shape, bool))


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_to_dense_into_out_overwrites_every_element(fmt, backend):
    """to_dense(out=buf) writes the whole matrix into a buffer holding garbage and returns it,
    on every mutable backend; the compressed arrays are left as they were."""
    if backend in (Backend.JAX, Backend.NUMPY_READONLY):
        pytest.skip("immutable out: see test_to_dense_out_errors")
    x = input_for(fmt, (8, 12), "float32", seed=5)
    r = asp.compress(backend.asarray(x), fmt, **params_for(fmt, x.shape))
    before = {name: to_numpy(a).copy() for name, a in r.arrays.items()}
    out = garbage_like(backend, x)
    assert r.to_dense(out=out) is out
    assert np.array_equal(to_numpy(out), x)
    for name, a in r.arrays.items():
        assert_same(a, before[name])


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "bsr", "ell", "dia", "bitmask", "2:4"])
@pytest.mark.parametrize("dtype", ["float16", "float64", "int8", "bool", "complex64", "complex128"])
def test_to_dense_out_dtypes_and_layouts(fmt, dtype):
    """Every dtype, into a C-contiguous buffer (the kernels write into it) and into a
    transposed view and a rank-3 buffer (decoded, then copied)."""
    x = input_for(fmt, (8, 12), dtype, seed=2)
    r = asp.compress(x, fmt, **params_for(fmt, x.shape))
    for out in (np.empty_like(x), np.empty(x.shape[::-1], x.dtype).T):
        out[...] = garbage_like(Backend.NUMPY, x)
        assert r.to_dense(out=out) is out
        assert np.array_equal(out, x)
    x3 = x.reshape(2, 4, 12)
    r3 = asp.compress(x3, fmt, **params_for(fmt, x.shape))
    out3 = garbage_like(Backend.NUMPY, x3)
    assert np.array_equal(r3.to_dense(out=out3), x3)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "int8"])
def test_to_dense_out_torch_dtypes(dtype):
    """CPU torch buffers, bfloat16 included, decode in place bit for bit."""
    tdt = getattr(torch, dtype)
    t = torch.from_numpy(sparse_matrix((16, 8), 0.5, "float32", seed=4)).to(tdt)
    for fmt in ("csr", "coo", "bsr"):
        r = asp.compress(t, fmt, **params_for(fmt, tuple(t.shape)))
        out = torch.full(t.shape, 3, dtype=tdt)
        assert r.to_dense(out=out) is out
        assert torch.equal(out, t)


def test_to_dense_out_large_csr_reused():
    """The CSR kernel clears each row of a reused buffer before its scatter; a second decode
    of another matrix into the same buffer leaves nothing of the first."""
    a = sparse_matrix((300, 700), 0.9, "float32", seed=1)
    b = sparse_matrix((300, 700), 0.1, "float32", seed=2)
    out = np.empty_like(a)
    asp.compress(a, "csr").to_dense(out=out)
    np.testing.assert_array_equal(out, a)
    asp.compress(b, "csr").to_dense(out=out)
    np.testing.assert_array_equal(out, b)


def test_to_dense_out_errors():
    """A wrong buffer is refused before anything is written, each error naming out."""
    x = input_for("csr", (8, 12), "float32")
    r = asp.compress(x, "csr")
    ro = np.zeros_like(x)
    ro.flags.writeable = False
    cases = [
        (np.zeros((8, 11), np.float32), ValueError, r"out has shape \(8, 11\); .* \(8, 12\)"),
        (np.zeros((8, 12), np.float64), TypeError, "out has dtype float64; the result's dtype is float32"),
        (torch.zeros(8, 12), TypeError, "different array libraries"),
        (2.0, TypeError, "out must be an array, got float"),
        (ro, ValueError, "out is read-only"),
    ]
    for out, error, match in cases:
        with pytest.raises(error, match=match):
            r.to_dense(out=out)
    assert not ro.any()
    grad = torch.zeros(8, 12, requires_grad=True)
    with pytest.raises(ValueError, match="out requires grad"):
        asp.compress(torch.from_numpy(x), "csr").to_dense(out=grad)
    assert not grad.detach().any()
    with pytest.raises(TypeError, match="out must be a dense .strided. torch tensor, got layout torch.sparse_coo"):
        asp.compress(torch.from_numpy(x), "csr").to_dense(out=torch.zeros(8, 12).to_sparse())
    if Backend.JAX.available() is None:
        import jax.numpy as jnp

        rj = asp.compress(jnp.asarray(x), "csr")
        with pytest.raises(TypeError, match="JAX arrays are immutable"):
            rj.to_dense(out=jnp.zeros((8, 12), jnp.float32))


def test_to_dense_out_sharing_the_results_memory_is_refused():
    """A buffer over the result's own data would be overwritten while it is read: refused,
    and the result still decodes."""
    x = np.arange(1, 13, dtype=np.float32).reshape(3, 4)  # no zeros: data has x's size
    r = asp.compress(x, "csr")
    alias = r.arrays["data"].reshape(3, 4)
    with pytest.raises(ValueError, match="out shares memory with the result's 'data' array"):
        r.to_dense(out=alias)
    np.testing.assert_array_equal(r.to_dense(), x)


@pytest.mark.parametrize("fmt", ["coo", "csr", "csc", "ell", "dia", "bitmask", "bsr"])
def test_jax_keeps_subnormals(fmt):
    """XLA on the CPU compares with denormals-are-zero; subnormal values (float32,
    bfloat16, float16, either part of a complex64) are still non-zeros and come back;
    -0.0 is still a zero."""
    jnp = pytest.importorskip("jax.numpy")
    params = {"block": (1, 2)} if fmt == "bsr" else {}
    for dtype in (jnp.float32, jnp.bfloat16, jnp.float16, jnp.complex64):
        tiny = jnp.finfo(jnp.float32 if dtype == jnp.complex64 else dtype).smallest_subnormal
        x = jnp.zeros((2, 4), dtype).at[0, 0].set(tiny).at[0, 1].set(-0.0).at[1, 3].set(2)
        if dtype == jnp.complex64:
            x = x.at[1, 0].set(1j * tiny)
        r = asp.compress(x, fmt, **params)
        assert r.nnz == np.count_nonzero(np.asarray(x)) == (3 if dtype == jnp.complex64 else 2)
        np.testing.assert_array_equal(np.asarray(r.to_dense()), np.asarray(x))


@given(
    x=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=7),
        elements=st.sampled_from([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 3e-39]),
    ),
    fmt=st.sampled_from(["coo", "csr", "csc", "ell", "dia", "bitmask", "bsr"]),
    backend=st.sampled_from([Backend.NUMPY, Backend.NUMPY_READONLY, Backend.ARRAY_API_STRICT, Backend.TORCH, Backend.JAX]),
)
def test_round_trip_law_any_rank(x, fmt, backend):
    if backend.available():
        return
    params = {"block": (1, 1)} if fmt == "bsr" else {}
    r = asp.compress(backend.asarray(x), fmt, **params)
    back = to_numpy(r.to_dense())
    assert back.shape == x.shape
    np.testing.assert_array_equal(back, x)
    stored = ~((x == 0) & ~np.isnan(x))
    assert r.nnz == np.count_nonzero(stored)
    if backend is not Backend.JAX:  # XLA may canonicalise NaN payloads
        # every stored value comes back bit for bit (NaN payloads, denormals)
        assert np.array_equal(back.view(np.uint32)[stored], x.view(np.uint32)[stored])


@given(
    rows=st.integers(0, 6),
    groups=st.integers(0, 5),
    nm=st.sampled_from([(2, 4), (1, 2), (4, 8), (0, 3), (3, 3), (5, 16), (200, 256)]),
    seed=st.integers(0, 2**16),
    backend=st.sampled_from([Backend.NUMPY, Backend.ARRAY_API_STRICT, Backend.TORCH]),
)
def test_nm_round_trip_law(rows, groups, nm, seed, backend):
    n, m = nm
    x = nm_matrix((rows, groups * m), n, m, seed=seed) if rows * groups else np.zeros((rows, groups * m), np.float32)
    r = asp.compress(backend.asarray(x), "n:m", n=n, m=m)
    assert tuple(r.values.shape) == (rows, groups * (m - n))
    pos = to_numpy(r.positions())
    assert pos.dtype == np.uint8 and pos.shape == (rows, groups * (m - n))
    if pos.size:  # ascending within every group
        g = pos.reshape(rows, groups, m - n)
        assert np.all(np.diff(g.astype(int), axis=2) > 0)
    assert np.array_equal(to_numpy(r.to_dense()), x)


# -- empty matrices -------------------------------------------------------------------------
EMPTY_SHAPES = [(0, 16), (16, 0), (0, 0), (0,), (0, 4, 16), (4, 0, 16), (4, 16, 0)]


def empty_params(fmt, shape):
    if fmt == "bsr":
        return {"block": (2, 4)}  # divides every empty matrix view above
    if fmt == "n:m":
        return {"n": 2, "m": 4}
    return {}


@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=str)
@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_empty_round_trip_every_backend_and_dtype(fmt, shape, backend):
    """Every format takes every empty shape (no rows, no columns, neither, rank 1 and 3)
    on every backend and dtype: same arrays as NumPy's, no non-zeros, and back exactly."""
    for dtype in DTYPES:
        if backend is Backend.ARRAY_API_STRICT and dtype == "float16":
            continue  # the standard has no float16
        x = np.zeros(shape, dtype)
        if shape == (0,) and fmt == "bsr":
            params = {"block": (1, 4)}  # rank 1 is one row
        else:
            params = empty_params(fmt, shape)
        reference = asp.compress(x, fmt, **params)
        r = asp.compress(backend.asarray(x), fmt, **params)
        assert r.nnz == 0 and r.sparsity == 0.0, dtype
        assert list(r.arrays) == list(reference.arrays), dtype
        for name in r.arrays:
            assert_same(r.arrays[name], reference.arrays[name])
        back = r.to_dense()
        assert type(back) is type(backend.asarray(x)), dtype
        assert_same(back, x)
    if backend in (Backend.TORCH, Backend.JAX):  # bfloat16, which NumPy lacks
        x = backend.asarray(np.zeros(shape, np.float32))
        x = x.to(torch.bfloat16) if backend is Backend.TORCH else x.astype("bfloat16")
        back = asp.compress(x, fmt, **params).to_dense()
        assert back.dtype == x.dtype and tuple(back.shape) == shape


# -- equality with scipy.sparse ----------------------------------------------------------
SHAPES = [(8, 12), (0, 4), (4, 0), (1, 16), (16, 1), (6, 6)]


def scipy_equivalent(fmt, x, block):
    if fmt == "bsr":
        return sp.bsr_array(x, blocksize=block)
    return getattr(sp, f"{fmt}_array")(x)


@pytest.mark.parametrize("fmt", ["csr", "coo"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "int8", "complex64", "bool"])
def test_row_density_paths_equal_scipy(fmt, dtype):
    """Rows under a quarter non-zero are filled through a bit mask of 64 columns at a time,
    denser rows branch-free: densities on both sides of the switch, widths around 64 (a
    partial last block), each row's density its own, all equal to scipy's arrays."""
    for cols in (1, 63, 64, 65, 200):
        rows = 48
        rng = np.random.default_rng(cols)
        density = rng.choice([0.0, 0.02, 0.1, 0.24, 0.26, 0.6, 1.0], size=(rows, 1))
        x = sparse_matrix((rows, cols), 1.0, dtype, seed=cols)
        x[rng.random((rows, cols)) >= density] = 0
        r = asp.compress(x, fmt)
        ref = scipy_equivalent(fmt, x, None)
        if fmt == "coo":
            ref.sum_duplicates()
            assert np.array_equal(r.row, ref.coords[0]) and np.array_equal(r.col, ref.coords[1])
        else:
            assert np.array_equal(r.indptr, ref.indptr) and np.array_equal(r.indices, ref.indices)
        assert np.array_equal(r.data, ref.data)
        assert np.array_equal(r.to_dense(), x)


@pytest.mark.parametrize("fmt", SCIPY_FORMATS)
@pytest.mark.parametrize("dtype", [d for d in DTYPES if d != "float16"])
@pytest.mark.parametrize("shape", SHAPES)
def test_equal_to_scipy(fmt, dtype, shape):
    x = sparse_matrix(shape, 0.4, dtype, seed=sum(shape))
    if shape == (6, 6):
        x[2] = 0  # an all-zero row
        x[4] = sparse_matrix((6,), 1.0, dtype, seed=1)  # an all-dense row
    block = (2, 2) if all(s % 2 == 0 for s in shape) else (1, 1)
    r = asp.compress(x, fmt, **({"block": block} if fmt == "bsr" else {}))
    ref = scipy_equivalent(fmt, x, block)
    if fmt == "coo":
        ref.sum_duplicates()
        row, col = ref.coords
        assert np.array_equal(r.row, row) and np.array_equal(r.col, col)
    elif fmt == "dia":
        order = np.argsort(ref.offsets)
        keep = np.any(ref.data[order] != 0, axis=1)
        assert np.array_equal(r.offsets, ref.offsets[order][keep])
        # scipy trims the data's width to the columns it needs; ours is always cols wide
        width = ref.data.shape[1]
        assert np.array_equal(r.data[:, :width], ref.data[order][keep][:, : shape[1]])
        assert not np.any(r.data[:, width:])
    else:
        ref.sort_indices()
        assert np.array_equal(r.indptr, ref.indptr)
        assert np.array_equal(r.indices, ref.indices)
    if fmt != "dia":
        assert np.array_equal(r.data, ref.data)
        assert r.data.dtype == ref.data.dtype
    assert r.nnz == np.count_nonzero(x)
    # and scipy reads ours back as the same matrix
    assert np.array_equal(r.to_scipy().toarray(), x)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "bsr", "2:4"])
def test_non_contiguous_and_read_only_inputs(fmt):
    base = input_for(fmt, (8, 24), "float64")
    for x in (base[:, ::2], base.T.copy().T, base[::-1]):
        if fmt in ("2:4",) and x.shape[1] % 4:
            continue
        if fmt == "2:4" and not asp.PruningMask.from_zeros(x).satisfies(asp.SparsityPattern.two_four()):
            continue
        ro = x.copy() if x.flags.c_contiguous else x
        snapshot = np.array(ro, copy=True)
        ro.flags.writeable = False if ro.base is None else ro.flags.writeable
        r = asp.compress(ro, fmt, **params_for(fmt, ro.shape))
        assert np.array_equal(r.to_dense(), snapshot)
        assert np.array_equal(ro, snapshot)
        if fmt != "2:4":
            assert np.array_equal(r.to_scipy().toarray(), snapshot)


def test_byte_swapped_input():
    x = sparse_matrix((5, 7), 0.5, "float64")
    r = asp.compress(x.astype(">f8"), "csr")
    assert np.array_equal(r.to_dense(), x)


# -- equality with torch ---------------------------------------------------------------------
TORCH_DTYPES = ["float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "bool", "complex64"]


def torch_matrix(shape, dtype, seed=0):
    x = sparse_matrix(shape, 0.4, "float32" if dtype == "bfloat16" else dtype, seed)
    t = torch.from_numpy(x)
    return t.to(torch.bfloat16) if dtype == "bfloat16" else t


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.parametrize("fmt", ["coo", "csr", "csc", "bsr"])
def test_equal_to_torch(fmt, dtype):
    t = torch_matrix((8, 12), dtype, seed=5)
    r = asp.compress(t, fmt, **({"block": (2, 4)} if fmt == "bsr" else {}))
    if fmt == "coo":
        ref = t.to_sparse_coo().coalesce()
        assert torch.equal(torch.stack([r.row.long(), r.col.long()]), ref.indices())
        assert torch.equal(r.data, ref.values())
    elif fmt == "csr":
        ref = t.to_sparse_csr()
        assert torch.equal(r.indptr.long(), ref.crow_indices().long())
        assert torch.equal(r.indices.long(), ref.col_indices().long())
        assert torch.equal(r.data, ref.values())
    elif fmt == "csc":
        ref = t.to_sparse_csc()
        assert torch.equal(r.indptr.long(), ref.ccol_indices().long())
        assert torch.equal(r.indices.long(), ref.row_indices().long())
        assert torch.equal(r.data, ref.values())
    else:
        ref = t.to_sparse_bsr((2, 4))
        # torch keeps every block; we keep blocks holding a non-zero
        keep = (ref.values() != 0).flatten(1).any(1)
        assert torch.equal(r.data, ref.values()[keep])
    back = r.to_dense()
    assert back.dtype == t.dtype
    assert torch.equal(back, t)
    assert torch.equal(r.to_torch().to_dense(), t)


# -- index dtype -----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["coo", "csr", "csc", "bsr", "ell", "dia"])
@pytest.mark.parametrize("backend_", [Backend.NUMPY, Backend.TORCH, Backend.ARRAY_API_STRICT])
def test_int64_indices_beyond_the_limit(monkeypatch, fmt, backend_):
    x = sparse_matrix((6, 8), 0.5, "float32")
    small = asp.compress(backend_.asarray(x), fmt, **params_for(fmt, x.shape))
    for name in ("indptr", "indices", "row", "col", "offsets"):
        if name in small.arrays:
            assert "int32" in str(small.arrays[name].dtype)
    monkeypatch.setattr(fbase, "INDEX32_LIMIT", 5)
    big = asp.compress(backend_.asarray(x), fmt, **params_for(fmt, x.shape))
    for name in ("indptr", "indices", "row", "col", "offsets"):
        if name in big.arrays:
            assert "int64" in str(big.arrays[name].dtype)
    assert np.array_equal(to_numpy(big.to_dense()), x)
    if fmt in SCIPY_FORMATS and backend_ is Backend.NUMPY:
        assert np.array_equal(big.to_scipy().toarray(), x)


# -- N:M specifics ------------------------------------------------------------------------
def test_nm_values_and_positions_by_hand():
    x = np.array([[0.0, 5.0, 0.0, 7.0, 1.0, 0.0, 0.0, 0.0]])
    r = asp.compress(x, "2:4")
    assert r.values.tolist() == [[5.0, 7.0, 1.0, 0.0]]
    assert r.positions().tolist() == [[1, 3, 0, 2]]  # padding takes position 2 first, as CUTLASS
    # two bits a position, little-endian: group 0 is 1 | 3 << 2, group 1 (0 | 2 << 2) << 4
    assert r.packed_positions.tolist() == [[0b1000_1101]]
    r = asp.compress(np.zeros((1, 4)), "2:4")
    assert r.positions().tolist() == [[2, 3]]
    assert r.packed_positions.tolist() == [[2 | 3 << 2]]


@pytest.mark.parametrize("backend_", [Backend.NUMPY, Backend.ARRAY_API_STRICT, Backend.TORCH])
def test_nm_violation_names_the_first_group(backend_):
    x = nm_matrix((4, 16), 2, 4)
    x[2, 9] = x[2, 10] = x[2, 11] = 1.0  # group 2 of row 2 gets 3 non-zeros
    x[3, 0:3] = 1.0
    with pytest.raises(ValueError, match=r"group 2 of row 2 \(columns 8..11\) has 3 non-zeros, at most 2"):
        asp.compress(backend_.asarray(x), "2:4")


def test_nm_largest_m_and_positions_dtype():
    x = nm_matrix((3, 512), 250, 256)
    r = asp.compress(x, "n:m", n=250, m=256)
    assert r.positions().dtype == np.uint8 and r.positions().max() <= 255
    assert r.packed_positions.shape == (3, 2 * 6)  # 6 positions of 8 bits a group
    assert np.array_equal(r.to_dense(), x)
    with pytest.raises(ValueError, match="m=512 is too large"):
        asp.compress(np.zeros((2, 512)), "n:m", n=1, m=512)


def test_nbytes_and_ratio_are_real():
    x = nm_matrix((64, 64), 2, 4, "float16", extra_zeros=0)
    r = asp.compress(x, "2:4")
    assert r.nbytes == 64 * 32 * 2 + 64 * 32 // 4  # values, then 2 bits a position
    assert r.dense_nbytes == x.nbytes
    assert r.compression_ratio == pytest.approx(x.nbytes / r.nbytes)
    assert r.sparsity == pytest.approx(0.5)
    c = asp.compress(x, "csr")
    assert c.nbytes == c.indptr.nbytes + c.indices.nbytes + c.data.nbytes
    text = repr(c)
    assert "format=csr" in text and "shape=(64, 64)" in text and "nnz=2048" in text


def test_rank_3_uses_the_first_axis_as_rows():
    x = sparse_matrix((4, 3, 8), 0.5, "float32")
    r = asp.compress(x, "csr")
    assert r.matrix_shape == (4, 24)
    assert np.array_equal(r.to_scipy().toarray(), x.reshape(4, 24))
    assert r.to_dense().shape == (4, 3, 8)
    y = nm_matrix((4, 3, 8), 2, 4)
    assert np.array_equal(asp.compress(y, "2:4").to_dense(), y)


def test_ell_layout_and_width():
    x = np.array([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0]])
    r = asp.compress(x, "ell")
    assert r.indices.tolist() == [[1, 3], [-1, -1], [0, -1]]
    assert r.data.tolist() == [[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]]
    wide = asp.compress(x, "ell", width=6)
    assert wide.indices.shape == (3, 6)
    assert np.array_equal(wide.to_dense(), x)
    assert np.array_equal(asp.compress(Backend.ARRAY_API_STRICT.asarray(x), "ell", width=6).indices, wide.indices)
    with pytest.raises(ValueError, match="width=1 is too narrow: row 0 has 2 non-zeros"):
        asp.compress(x, "ell", width=1)


def test_bitmask_layout():
    x = np.zeros((2, 10), np.float32)
    x[0, [0, 3, 9]] = [1, 2, 3]
    r = asp.compress(x, "bitmask")
    assert r.bitmask.tolist() == [[0b1001, 0b10], [0, 0]]
    assert r.values.tolist() == [1, 2, 3]
    assert np.array_equal(r.bitmask, np.packbits(x != 0, axis=1, bitorder="little"))


# -- interop -------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", SCIPY_FORMATS + ["lil", "dok"])
def test_from_scipy_canonicalises_without_touching_the_input(fmt):
    x = sparse_matrix((6, 8), 0.5, "float64")
    if fmt == "coo":  # duplicates, unsorted, an explicit zero
        m = sp.coo_array((np.array([1.0, 2.0, 0.0, 5.0]), (np.array([3, 0, 1, 3]), np.array([2, 1, 1, 2]))), shape=(6, 8))
        x = m.toarray()
    elif fmt == "bsr":
        m = sp.bsr_array(x, blocksize=(2, 2))
    else:
        m = getattr(sp, f"{fmt}_array")(x)
    before = m.copy()
    r = asp.from_scipy(m)
    assert np.array_equal(r.to_dense(), x)
    expected_fmt = fmt if fmt in SCIPY_FORMATS else "csr"
    assert r.format == expected_fmt
    ours = asp.compress(x, expected_fmt, **({"block": (2, 2)} if fmt == "bsr" else {}))
    for name in ours.arrays:
        assert np.array_equal(r.arrays[name], ours.arrays[name]), name
    assert (m != before).nnz == 0 and m.format == before.format
    assert asp.from_sparse(m).format == expected_fmt


def test_from_scipy_csr_with_explicit_zeros_and_unsorted_indices():
    m = sp.csr_array((np.array([0.0, 4.0, 3.0]), np.array([2, 3, 0]), np.array([0, 3, 3])), shape=(2, 4))
    r = asp.from_scipy(m)
    assert r.indices.tolist() == [0, 3] and r.data.tolist() == [3.0, 4.0] and r.indptr.tolist() == [0, 2, 2]
    assert m.indices.tolist() == [2, 3, 0]  # untouched


@pytest.mark.parametrize("fmt", ["coo", "csr", "csc", "bsr"])
def test_torch_round_trip(fmt):
    t = torch_matrix((8, 12), "float32", seed=2)
    r = asp.compress(t, fmt, **({"block": (4, 4)} if fmt == "bsr" else {}))
    st_ = r.to_torch()
    assert torch.equal(st_.to_dense(), t)
    back = asp.from_torch(st_)
    for name in r.arrays:
        assert torch.equal(back.arrays[name], r.arrays[name]), name
    assert asp.from_sparse(st_).format == fmt


def test_from_torch_drops_explicit_zeros():
    t = torch.sparse_coo_tensor(torch.tensor([[0, 1, 1], [2, 0, 0]]), torch.tensor([0.0, 1.0, 2.0]), (2, 3))
    r = asp.from_torch(t)
    assert r.row.tolist() == [1] and r.col.tolist() == [0] and r.data.tolist() == [3.0]
    csr = torch.sparse_csr_tensor(torch.tensor([0, 2, 3]), torch.tensor([0, 1, 1]), torch.tensor([0.0, 5.0, 6.0]), (2, 2))
    r = asp.from_torch(csr)
    assert r.indptr.tolist() == [0, 1, 2] and r.indices.tolist() == [1, 1] and r.data.tolist() == [5.0, 6.0]


def test_numpy_result_to_torch_and_torch_result_to_scipy():
    x = sparse_matrix((5, 6), 0.5, "float32")
    assert torch.equal(asp.compress(x, "csr").to_torch().to_dense(), torch.from_numpy(x))
    assert np.array_equal(asp.compress(torch.from_numpy(x), "csc").to_scipy().toarray(), x)


def test_strategy_to_sparse_format():
    w = sparse_matrix((8, 8), 1.0, "float32")
    strategy = asp.MagnitudePruning(asp.SparsityPattern.n_m(2, 4))
    pruned, _ = strategy.prune(w)
    r = strategy.to_sparse_format(pruned, "n:m")
    assert r.params["n"] == 2 and r.params["m"] == 4
    assert np.array_equal(r.to_dense(), pruned)
    assert strategy.to_sparse_format(pruned).format == "csr"


# -- errors ----------------------------------------------------------------------------------
def test_errors_name_the_argument():
    x = sparse_matrix((6, 8), 0.5, "float32")
    with pytest.raises(ValueError, match="format='csx' is not a sparse format"):
        asp.compress(x, "csx")
    with pytest.raises(ValueError, match=r"block=\(4, 3\) does not divide the matrix shape \(6, 8\)"):
        asp.compress(x, "bsr", block=(4, 3))
    with pytest.raises(ValueError, match="BSR needs block"):
        asp.compress(x, "bsr")
    with pytest.raises(ValueError, match="block=.* must be a pair of positive ints"):
        asp.compress(x, "bsr", block=(0, 2))
    with pytest.raises(ValueError, match="block=.* does not apply to format csr"):
        asp.compress(x, "csr", block=(2, 2))
    with pytest.raises(ValueError, match="m=3 must divide the length 8"):
        asp.compress(x, "n:m", n=1, m=3)
    with pytest.raises(ValueError, match="needs n"):
        asp.compress(x, "n:m")
    with pytest.raises(ValueError, match="0-d"):
        asp.compress(np.float32(1.0).reshape(()), "csr")
    with pytest.raises(ValueError, match="scipy.sparse has no ell format"):
        asp.compress(x, "ell").to_scipy()
    with pytest.raises(ValueError, match="torch.sparse has no dia format"):
        asp.compress(x, "dia").to_torch()
    with pytest.raises(AttributeError, match="has no attribute or array 'indptr'"):
        _ = asp.compress(x, "coo").indptr
    with pytest.raises(TypeError):
        asp.compress([[1.0, 0.0]], "csr")
    with pytest.raises(TypeError, match="matrix must be a scipy.sparse"):
        asp.from_scipy(x)
    with pytest.raises(ValueError, match="CUDA"):
        asp.compress(torch.from_numpy(nm_matrix((4, 8), 2, 4)), "2:4").to_torch()


def test_format_parsing():
    assert asp.SparseFormat.parse("CSR") is asp.SparseFormat.CSR
    assert asp.SparseFormat.parse("structured2to4") is asp.SparseFormat.STRUCTURED_2_TO_4
    assert asp.SparseFormat.CSR == "csr"
    assert str(asp.SparseFormat.STRUCTURED_N_TO_M) == "n:m"


# -- CUTLASS export of a 2:4 result ----------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int8", "float32"])
def test_two_four_result_exports_exactly_what_torch_encodes(dtype):
    from torch.sparse._semi_structured_conversions import sparse_semi_structured_from_dense_cutlass

    rows, cols = (32, 128) if dtype != "int8" else (16, 128)
    n, m = (1, 2) if dtype == "float32" else (2, 4)
    x = nm_matrix((rows, cols), n, m, "float32", seed=7, extra_zeros=0.3)
    t = torch.from_numpy(x).to(getattr(torch, dtype))
    values, meta = asp.compress(t, "2:4").to_cutlass()
    ref_values, ref_meta = sparse_semi_structured_from_dense_cutlass(t)
    bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[values.element_size()]
    assert values.dtype == ref_values.dtype
    assert torch.equal(values.view(bits), ref_values.view(bits))
    assert torch.equal(meta, ref_meta)
    assert torch.equal(asp.from_cutlass(values, meta), t)
    with pytest.raises(ValueError, match="needs a 2:4 result"):
        asp.compress(t, "csr").to_cutlass()


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("coo", {}), ("csr", {}), ("csc", {}), ("bsr", {"block": (2, 2)}), ("ell", {}), ("dia", {}),
     ("n:m", {"n": 2, "m": 4}), ("2:4", {}), ("bitmask", {})],
)
def test_round_trip_stays_on_a_non_default_device(fmt, params):
    """The standard-only codecs make every array on the input's device (array-api-strict's
    device1 refuses to mix with its CPU device, as a GPU would)."""
    xps = pytest.importorskip("array_api_strict")
    dev = xps.Device("device1")
    w = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    x = asp.nm_mask(xps.asarray(w, device=dev), 2, 4, magnitude=True).apply(xps.asarray(w, device=dev))
    r = asp.compress(x, fmt, **params)
    assert all(a.device == dev for a in r.arrays.values())
    dense = r.to_dense()
    assert dense.device == dev and bool(xps.all(dense == x))
    if fmt in ("n:m", "2:4"):
        assert r.positions().device == dev
