"""from_scipy / from_torch on non-canonical input: duplicates summed as the peers do, never a
value lost, a canonical result, the input untouched, malformed indices refused by name."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

import arraysparse as asp

torch = pytest.importorskip("torch")

# torch warns that sparse invariant checks are off; the tests build invalid tensors on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Sparse (CSR|invariant):UserWarning")

# values whose sums exercise order (1e16 + 1 rounds), cancellation, -0.0 and integer wrap-around
FLOATS = [0.0, -0.0, 1.0, -1.0, 2.5, 0.1, 0.2, 1e16, -1e16, 3e-39]
INTS = [0, 1, -1, 7, 100, -100, 127]
SCIPY_DTYPES = ["float64", "float32", "complex128", "complex64", "int8", "int64", "uint8", "bool"]
TORCH_DTYPES = ["float64", "float32", "float16", "bfloat16", "complex64", "complex128", "int8", "int32", "bool"]


@st.composite
def entries(draw, *, block=None):
    """A shape and stored entries (row, col, value) with duplicates, in any order.

    With ``block``, coordinates are block coordinates and each value a whole block."""
    rows, cols = draw(st.integers(0, 5)), draw(st.integers(0, 5))
    if block is not None:
        rows, cols = rows * block[0], cols * block[1]
        n_outer, n_inner = rows // block[0], cols // block[1]
    else:
        n_outer, n_inner = rows, cols
    count = draw(st.integers(0, 14)) if n_outer * n_inner else 0
    coords = st.tuples(st.integers(0, max(n_outer - 1, 0)), st.integers(0, max(n_inner - 1, 0)))
    # few distinct positions, so that duplicates are common
    pool = draw(st.lists(coords, min_size=1, max_size=4)) if count else [(0, 0)]
    pos = draw(st.lists(st.sampled_from(pool), min_size=count, max_size=count))
    size = 1 if block is None else block[0] * block[1]
    picks = draw(st.lists(st.integers(0, 99), min_size=count * size, max_size=count * size))
    return (rows, cols), pos, picks


def values_of(picks, dtype, count, block=None):
    dt = np.dtype(dtype)
    if dt.kind == "b":
        v = np.array([p % 3 == 0 for p in picks], bool)
    elif dt.kind in "iu":
        v = np.array([INTS[p % len(INTS)] for p in picks], np.int64).astype(dt)
    elif dt.kind == "c":
        v = np.array([complex(FLOATS[p % len(FLOATS)], FLOATS[(p // 7) % len(FLOATS)]) for p in picks]).astype(dt)
    else:
        with np.errstate(over="ignore"):  # 1e16 is inf in float16: inf - inf sums to NaN
            v = np.array([FLOATS[p % len(FLOATS)] for p in picks], np.float64).astype(dt)
    return v.reshape((count, *block)) if block else v


def compressed_arrays(pos, outer_n, *, by):
    """indptr, inner indices and the entry order of a compressed layout: entries grouped by their
    ``by`` coordinate (0: rows, 1: columns), kept in their drawn (unsorted) order inside a group."""
    order = sorted(range(len(pos)), key=lambda k: pos[k][by])  # stable: keeps duplicates and disorder
    outer = np.array([pos[k][by] for k in order], np.int64)
    inner = np.array([pos[k][1 - by] for k in order], np.int64)
    indptr = np.searchsorted(outer, np.arange(outer_n + 1)).astype(np.int64)
    return indptr, inner, np.array(order, np.int64)


def same(a, b):
    """Equal dtype, shape and values; NaN equals NaN (inf - inf sums to NaN on both sides)."""
    assert a.dtype == b.dtype and tuple(a.shape) == tuple(b.shape)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if a.dtype.is_floating_point or a.dtype.is_complex:
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
        return True
    return torch.equal(a, b)


def assert_canonical(r, dense, fmt, block=None):
    """r equals dense, and its arrays are exactly those compress(dense, fmt) gives."""
    params = {"block": block} if fmt == "bsr" else {}
    ref = asp.compress(dense, fmt, **params)
    assert r.format == ref.format and r.shape == ref.shape and r.dtype == ref.dtype
    assert list(r.arrays) == list(ref.arrays)
    for name in ref.arrays:
        assert same(r.arrays[name], ref.arrays[name]), name
    assert r.nnz == ref.nnz


# -- scipy ---------------------------------------------------------------------------------
def scipy_matrix(fmt, shape, pos, values, block=None):
    rows, cols = shape
    if fmt == "coo":
        row = np.array([p[0] for p in pos], np.int64)
        col = np.array([p[1] for p in pos], np.int64)
        return sp.coo_array((values, (row, col)), shape=shape)
    if fmt == "bsr":
        indptr, inner, order = compressed_arrays(pos, rows // block[0], by=0)
        return sp.bsr_array((values[order], inner, indptr), shape=shape, blocksize=block)
    by = 0 if fmt == "csr" else 1
    indptr, inner, order = compressed_arrays(pos, shape[by], by=by)
    cls = sp.csr_array if fmt == "csr" else sp.csc_array
    return cls((values[order], inner, indptr), shape=shape)


def scipy_snapshot(m):
    names = ("data", "indices", "indptr", "row", "col", "offsets")
    return {n: np.array(getattr(m, n), copy=True) for n in names if hasattr(m, n)}


@given(case=entries(), fmt=st.sampled_from(["coo", "csr", "csc"]), dtype=st.sampled_from(SCIPY_DTYPES))
def test_from_scipy_sums_duplicates_like_toarray(case, fmt, dtype):
    shape, pos, picks = case
    m = scipy_matrix(fmt, shape, pos, values_of(picks, dtype, len(pos)))
    before = scipy_snapshot(m)
    r = asp.from_scipy(m)
    dense = m.toarray()
    assert same(r.to_dense(), dense)
    assert_canonical(r, dense, fmt)
    for name, a in scipy_snapshot(m).items():
        assert same(a, before[name]), name


@given(case=entries(block=(2, 3)), dtype=st.sampled_from(SCIPY_DTYPES))
def test_from_scipy_bsr_sums_duplicate_blocks(case, dtype):
    shape, pos, picks = case
    m = scipy_matrix("bsr", shape, pos, values_of(picks, dtype, len(pos), (2, 3)), block=(2, 3))
    before = scipy_snapshot(m)
    r = asp.from_scipy(m)
    dense = m.toarray()
    assert same(r.to_dense(), dense)
    assert_canonical(r, dense, "bsr", (2, 3))
    for name, a in scipy_snapshot(m).items():
        assert same(a, before[name]), name


def test_from_scipy_sums_long_runs_in_stored_order():
    """40 duplicates of one entry: scipy's COO sum_duplicates adds them pairwise, its toarray()
    in stored order; the two can differ in the last bit, and from_scipy follows toarray()."""
    v = np.random.default_rng(0).standard_normal(40)
    m = sp.coo_array((v, (np.zeros(40, int), np.ones(40, int))), shape=(1, 3))
    dense = m.toarray()  # (with scipy 1.17, m.sum_duplicates() gives another last bit)
    assert asp.from_scipy(m).to_dense()[0, 1] == dense[0, 1]
    csr = sp.csr_array((v, np.ones(40, int), np.array([0, 40])), shape=(1, 3))
    assert asp.from_scipy(csr).to_dense()[0, 1] == csr.toarray()[0, 1] == dense[0, 1]


@pytest.mark.parametrize("fmt", ["coo", "csr", "csc", "bsr", "dia", "lil", "dok"])
def test_from_scipy_empty_and_all_zero(fmt):
    for shape in ((0, 4), (4, 0), (0, 0), (4, 4)):
        x = np.zeros(shape)
        m = sp.bsr_array(x, blocksize=(2, 2)) if fmt == "bsr" else getattr(sp, f"{fmt}_array")(x)
        r = asp.from_scipy(m)
        assert r.nnz == 0 and r.to_dense().shape == shape
    cancel = sp.csr_array((np.array([1.5, -1.5]), np.array([2, 2]), np.array([0, 2, 2])), shape=(2, 3))
    r = asp.from_scipy(cancel)
    assert r.indptr.tolist() == [0, 0, 0] and r.data.shape == (0,)  # a sum that cancels is a zero, dropped


def test_from_scipy_dia_repeated_and_outside_offsets():
    """Repeated offsets add up (scipy 1.17 refuses them at construction, not afterwards),
    diagonals outside the matrix and data past its columns hold nothing, a diagonal that
    cancels is dropped."""
    m = sp.dia_array((np.array([[1.0, 2.0, 3.0, 9.0], [4.0, 5.0, 6.0, 9.0], [7.0, 7.0, 7.0, 7.0],
                                [-1.0, -2.0, -3.0, 0.0]]), np.array([0, 1, 5, 2])), shape=(3, 3))
    m.offsets = np.array([0, 0, 5, 0])  # the last row cancels the first
    dense = m.toarray()
    r = asp.from_scipy(m)
    assert same(r.to_dense(), dense)
    assert_canonical(r, dense, "dia")
    with pytest.raises(ValueError, match=r"matrix has 2 offsets but data of shape \(4, 4\)"):
        asp.from_scipy(_set(m, offsets=np.array([0, 1])))


def _set(m, **arrays):
    """``m`` with arrays replaced after construction (scipy checks only at construction)."""
    for name, a in arrays.items():
        setattr(m, name, np.asarray(a))
    return m


def _csr():
    return sp.csr_array((np.array([1.0, 2.0, 3.0]), np.array([1, 2, 0]), np.array([0, 2, 3])), shape=(2, 3))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: _set(_csr(), indices=[1, 7, 0]), r"matrix.indices holds 7 at stored entry 1, out of range \[0, 3\)"),
        (lambda: _set(_csr(), indices=[1, -1, 0]), r"matrix.indices holds -1 at stored entry 1"),
        (lambda: _set(_csr(), indptr=[1, 2, 3]), "matrix.indptr must start at 0, got 1"),
        (lambda: _set(_csr(), indptr=[0, 3, 2]), r"matrix.indptr decreases at position 2 \(3 then 2\)"),
        (lambda: _set(_csr(), indptr=[0, 2, 4]), "matrix.indptr ends at 4 but 3 entries are stored"),
        (lambda: _set(_csr(), indptr=[0, 3]), r"matrix.indptr has shape \(2,\); this matrix needs 3 entries"),
        (lambda: _set(_csr(), data=np.array([1.0, 2.0])), r"matrix.indices has shape \(3,\) but the values have shape"),
        (lambda: _set(sp.csc_array(np.eye(3)), indices=[0, 1, 3]), r"matrix.indices holds 3 at stored entry 2"),
        (lambda: _set(sp.coo_array(np.eye(3)), coords=(np.array([0, 1, 2]), np.array([0, 9, 2]))),
         r"matrix.col holds 9 at stored entry 1, out of range \[0, 3\) for shape \(3, 3\)"),
        (lambda: _set(sp.bsr_array(np.ones((4, 4)), blocksize=(2, 2)), indices=[0, 2, 0, 1]),
         r"matrix.indices holds 2 at stored entry 1, out of range \[0, 2\)"),
    ],
)
def test_from_scipy_malformed_input_is_refused_by_name(make, match):
    m = make()
    before = scipy_snapshot(m)
    with pytest.raises(ValueError, match=match):
        asp.from_scipy(m)
    for name, a in scipy_snapshot(m).items():
        assert np.array_equal(a, before[name]), name


# -- torch ---------------------------------------------------------------------------------
def torch_tensor(fmt, shape, pos, v, block=None):
    rows, cols = shape
    if fmt == "coo":
        idx = torch.tensor(pos, dtype=torch.int64).reshape(-1, 2).T
        return torch.sparse_coo_tensor(idx, v, shape, check_invariants=False)
    by = 1 if fmt == "csc" else 0
    outer_n = rows // block[0] if fmt == "bsr" else shape[by]
    indptr, inner, order = compressed_arrays(pos, outer_n, by=by)
    args = (torch.from_numpy(indptr), torch.from_numpy(inner), v[torch.from_numpy(order)], shape)
    make = {"csr": torch.sparse_csr_tensor, "csc": torch.sparse_csc_tensor, "bsr": torch.sparse_bsr_tensor}[fmt]
    return make(*args, check_invariants=False)


def torch_parts(t):
    if t.layout == torch.sparse_coo:
        return [t._indices().clone(), t._values().clone()]
    if t.layout == torch.sparse_csc:
        return [t.ccol_indices().clone(), t.row_indices().clone(), t.values().clone()]
    return [t.crow_indices().clone(), t.col_indices().clone(), t.values().clone()]


def as_torch_dtype(values, dtype):
    """NumPy values for a torch dtype (bfloat16 through float32, exactly: the values round alike)."""
    if dtype == "bfloat16":
        return torch.from_numpy(values.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(values)


@given(case=entries(), fmt=st.sampled_from(["coo", "csr", "csc"]), dtype=st.sampled_from(TORCH_DTYPES))
def test_from_torch_sums_duplicates_like_to_dense(case, fmt, dtype):
    shape, pos, picks = case
    values = values_of(picks, "float32" if dtype == "bfloat16" else dtype, len(pos))
    t = torch_tensor(fmt, shape, pos, as_torch_dtype(values, dtype))
    before = torch_parts(t)
    r = asp.from_torch(t)
    dense = t.to_dense()
    assert same(r.to_dense(), dense)
    assert_canonical(r, dense, fmt)
    for a, b in zip(torch_parts(t), before, strict=True):
        assert same(a, b)


@given(case=entries(block=(2, 2)), dtype=st.sampled_from(["float32", "float64", "int8", "bool", "complex64"]))
def test_from_torch_bsr_sums_duplicate_blocks(case, dtype):
    shape, pos, picks = case
    t = torch_tensor("bsr", shape, pos, torch.from_numpy(values_of(picks, dtype, len(pos), (2, 2))), block=(2, 2))
    before = torch_parts(t)
    r = asp.from_torch(t)
    dense = t.to_dense()
    assert same(r.to_dense(), dense)
    assert_canonical(r, dense, "bsr", (2, 2))
    for a, b in zip(torch_parts(t), before, strict=True):
        assert same(a, b)


def test_from_torch_csr_repeated_column_is_summed():
    """The report: crow=[0, 2], col=[1, 1], values=[1, 2] is [0, 3, 0] to torch; it was [0, 2, 0]."""
    t = torch.sparse_csr_tensor(torch.tensor([0, 2]), torch.tensor([1, 1]), torch.tensor([1.0, 2.0]), (1, 3))
    assert t.to_dense().tolist() == [[0.0, 3.0, 0.0]]
    r = asp.from_torch(t)
    assert r.to_dense().tolist() == [[0.0, 3.0, 0.0]]
    assert r.indptr.tolist() == [0, 1] and r.indices.tolist() == [1] and r.data.tolist() == [3.0]
    assert t.col_indices().tolist() == [1, 1] and t.values().tolist() == [1.0, 2.0]  # untouched


def test_from_torch_half_precision_sums_step_by_step():
    """float16 duplicates add in float16, one rounding per step, as torch's to_dense():
    2048 + 1 + 1 is 2048 (not 2050, the sum in float32 rounded once)."""
    for dtype, big in ((torch.float16, 2048.0), (torch.bfloat16, 256.0)):
        v = torch.tensor([big, 1.0, 1.0], dtype=dtype)
        t = torch.sparse_csr_tensor(torch.tensor([0, 3]), torch.tensor([1, 1, 1]), v, (1, 3))
        assert asp.from_torch(t).to_dense()[0, 1].item() == t.to_dense()[0, 1].item() == big


def test_from_torch_flagged_coalesced_but_not_is_still_summed():
    """A COO tensor claiming to be coalesced while holding duplicates (is_coalesced=True, as
    CSR.to_sparse_coo() marks its result) is summed all the same."""
    csr = torch.sparse_csr_tensor(torch.tensor([0, 2]), torch.tensor([1, 1]), torch.tensor([1.0, 2.0]), (1, 3))
    coo = csr.to_sparse_coo()
    assert coo.is_coalesced()  # torch's own flag is wrong here
    r = asp.from_torch(coo)
    assert r.row.tolist() == [0] and r.col.tolist() == [1] and r.data.tolist() == [3.0]


def _torch_csr(crow, col, values=(1.0, 2.0, 3.0), shape=(2, 3)):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(torch.tensor(crow), torch.tensor(col), torch.tensor(values), shape,
                                       check_invariants=False)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: _torch_csr([0, 2, 3], [1, 3, 0]), r"tensor.col_indices\(\) holds 3 at stored entry 1, out of range"),
        (lambda: _torch_csr([0, 2, 3], [1, -2, 0]), r"tensor.col_indices\(\) holds -2 at stored entry 1"),
        (lambda: _torch_csr([0, 3, 2], [1, 2, 0]), r"tensor.crow_indices\(\) decreases at position 2 \(3 then 2\)"),
        (lambda: _torch_csr([1, 2, 3], [1, 2, 0]), r"tensor.crow_indices\(\) must start at 0, got 1"),
        (lambda: torch.sparse_coo_tensor(torch.tensor([[0, 5], [1, 1]]), torch.tensor([1.0, 2.0]), (2, 3),
                                         check_invariants=False),
         r"tensor.indices\(\)\[0\] holds 5 at stored entry 1, out of range \[0, 2\) for shape \(2, 3\)"),
        (lambda: torch.sparse_csc_tensor(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 4]), torch.tensor([1.0, 2.0]),
                                         (2, 3), check_invariants=False),
         r"tensor.row_indices\(\) holds 4 at stored entry 1, out of range \[0, 2\)"),
        (lambda: torch.sparse_bsr_tensor(torch.tensor([0, 2]), torch.tensor([0, 2]), torch.ones(2, 2, 2), (2, 4),
                                         check_invariants=False),
         r"tensor.col_indices\(\) holds 2 at stored entry 1, out of range \[0, 2\)"),
    ],
)
def test_from_torch_malformed_input_is_refused_by_name(make, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = make()
    with pytest.raises(ValueError, match=match):
        asp.from_torch(t)


# -- the standard-only summation (CuPy's path), run here on array-api-strict ---------------------
@given(case=entries(), fmt=st.sampled_from(["coo", "csr", "csc"]), dtype=st.sampled_from(SCIPY_DTYPES))
def test_standard_only_canonicalisation_equals_the_host_one(case, fmt, dtype):
    """from_cupyx runs the canonicalisation without NumPy's add.at or torch's index_add_ (a
    gather per position in the runs of duplicates); on array-api-strict arrays it gives the
    arrays from_scipy gives, bit for bit."""
    xps = pytest.importorskip("array_api_strict")
    from arraysparse.formats import interop

    shape, pos, picks = case
    values = values_of(picks, dtype, len(pos))
    m = scipy_matrix("coo", shape, pos, values)
    expected = asp.from_scipy(m) if fmt == "coo" else asp.from_scipy(m.asformat(fmt))
    row = np.array([p[0] for p in pos], np.int64)
    col = np.array([p[1] for p in pos], np.int64)
    outer, inner = (col, row) if fmt == "csc" else (row, col)
    r = interop._canonical(xps, fmt, shape, xps.asarray(outer), xps.asarray(inner), xps.asarray(values),
                           "matrix", ("outer", "inner"))
    assert r.format == fmt and list(r.arrays) == list(expected.arrays)
    for name, a in r.arrays.items():
        assert same(np.from_dlpack(a), expected.arrays[name]), name
    assert same(np.from_dlpack(r.to_dense()), m.toarray())


@given(case=entries(block=(2, 2)), dtype=st.sampled_from(["float64", "int8", "bool", "complex64"]))
def test_standard_only_canonicalisation_of_blocks(case, dtype):
    xps = pytest.importorskip("array_api_strict")
    from arraysparse.formats import interop

    shape, pos, picks = case
    values = values_of(picks, dtype, len(pos), (2, 2))
    m = scipy_matrix("bsr", shape, pos, values, block=(2, 2))
    expected = asp.from_scipy(m)
    row = np.array([p[0] for p in pos], np.int64)
    col = np.array([p[1] for p in pos], np.int64)
    r = interop._canonical(xps, "bsr", shape, xps.asarray(row), xps.asarray(col), xps.asarray(values),
                           "matrix", ("outer", "inner"), block=(2, 2))
    for name, a in r.arrays.items():
        assert same(np.from_dlpack(a), expected.arrays[name]), name


# -- the other importers -----------------------------------------------------------------------
def test_from_cutlass_refuses_two_values_at_one_position():
    """CUTLASS meta whose two indices of a group are equal would put two values in one place
    (one lost): refused, naming meta and the group."""
    from arraysparse._kernels.cpu import cutlass as kernels
    from arraysparse.formats import cutlass as cl

    dense = torch.zeros((32, 32), dtype=torch.float16)
    dense[:, 1::4] = 1.0
    dense[:, 2::4] = 2.0
    values, meta = asp.to_cutlass(dense)
    codes = kernels.unpack_codes(meta.numpy().view(np.uint16), cl._LAYOUTS["float16"].kind)
    codes[3, 5] = 0b0101  # idx0 = idx1 = 1
    bad = kernels.pack_codes(codes, cl._LAYOUTS["float16"].kind).view(np.int16)
    with pytest.raises(ValueError, match=r"meta holds the invalid code 0b0101 for row 3, group 5"):
        asp.from_cutlass(values, torch.from_numpy(bad))


def test_from_sparse_routes_to_the_same_canonicalisation():
    m = sp.coo_array((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([1, 1]))), shape=(1, 3))
    assert asp.from_sparse(m).data.tolist() == [3.0]
    t = torch.sparse_coo_tensor(torch.tensor([[0, 0], [1, 1]]), torch.tensor([1.0, 2.0]), (1, 3))
    assert asp.from_sparse(t).data.tolist() == [3.0]
