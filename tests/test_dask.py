"""The Dask backend: lazy results, the documented eager reductions, and NumPy's answers bit for bit.

Most tests run Dask's synchronous scheduler wrapped in :class:`CountingScheduler`
(the check of array-api-extra's ``lazy_xp_function``): building a lazy result
must compute nothing, and a job with a documented eager part (a threshold, a
count) computes exactly that many times, each compute handing back only small
results. The ``cluster`` tests run the same jobs on a ``distributed.LocalCluster``
of two worker processes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

import arraysparse as asp  # noqa: E402
from arraysparse._backends import dask as dask_backend  # noqa: E402
from arraysparse.model import global_mask, layer_masks, prune_model  # noqa: E402

ml_dtypes = pytest.importorskip("ml_dtypes")


def _nbytes(obj) -> int:
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 8


class CountingScheduler:
    """A scheduler that counts its computes (and persists) and the bytes each hands back, then
    runs them on ``get`` (default: Dask's synchronous scheduler)."""

    def __init__(self, get=None):
        self.calls = 0
        self.returned: list[int] = []
        self._get = get or dask.get

    def __call__(self, dsk, keys, **kwargs):
        self.calls += 1
        out = self._get(dsk, keys, **kwargs)
        self.returned.append(_nbytes(out))
        return out


@pytest.fixture
def counting():
    """Run the test under a counting synchronous scheduler; yields the counter."""
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        yield counter


def computes(counter: CountingScheduler, fn):
    """``(result, number of computes)`` of ``fn()``."""
    before = counter.calls
    out = fn()
    return out, counter.calls - before


def _np(a):
    return np.asarray(a.compute() if hasattr(a, "compute") else a)


def same_bits(a, b) -> bool:
    a, b = _np(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def rng_matrix(shape=(24, 32), seed=0, dtype=np.float32, zeros=0.0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(dtype)
    if zeros:
        w[rng.random(shape) < zeros] = 0
    return w


# -- hypothesis: arrays, chunkings, dtypes ----------------------------------------------------
DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "bfloat16"]


def _dtype(name: str) -> np.dtype:
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


@st.composite
def chunked(draw, *, min_dims=1, max_dims=3, max_side=9, dtypes=DTYPES, min_side=0):
    """``(numpy array, dask array)``: few distinct values (ties), -0.0 / +-inf in floats,
    irregular chunks of any size (1 included) along every axis."""
    shape = tuple(draw(st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims)))
    dtype = _dtype(draw(st.sampled_from(dtypes)))
    size = math.prod(shape)
    ints = draw(st.lists(st.integers(-4, 4), min_size=size, max_size=size))
    a = np.array(ints, dtype=np.float64).reshape(shape)
    if dtype.kind == "f" or dtype.name == "bfloat16":
        a = a / 2
        special = draw(st.lists(st.sampled_from([-0.0, np.inf, -np.inf, 1e-3]), max_size=3))
        flat = a.reshape(-1)
        for i, v in enumerate(special[: flat.size]):
            flat[(i * 7) % flat.size] = v
    a = a.astype(dtype)
    chunks = []
    for side in shape:
        cuts = sorted(set(draw(st.lists(st.integers(1, max(1, side - 1)), max_size=2)))) if side > 1 else []
        bounds = [0, *[c for c in cuts if 0 < c < side], side]
        chunks.append(tuple(b - a_ for a_, b in zip(bounds, bounds[1:])) or (side,))
    return a, da.from_array(a, chunks=tuple(chunks))


sparsities = st.one_of(st.floats(0, 1), st.integers(0, 3))


# -- laziness -------------------------------------------------------------------------------
def test_lazy_jobs_compute_nothing(counting):
    w = rng_matrix(zeros=0.3)
    x = da.from_array(w, chunks=(5, 7))
    g = da.from_array(rng_matrix(seed=1), chunks=(8, 8))
    w24 = asp.nm_mask(w, 2, 4).apply(w)
    x24 = da.from_array(w24, chunks=(7, 9))
    jobs = {
        "magnitude_scores": lambda: asp.magnitude_scores(x),
        "gradient_scores": lambda: asp.gradient_scores(x, g),
        "structure_scores": lambda: asp.structure_scores(x, 1, ord=3),
        "block_scores": lambda: asp.block_scores(x, (4, 8)),
        "random_scores": lambda: asp.random_scores(x, seed=3),
        "nm_mask": lambda: asp.nm_mask(x, 2, 4),
        "create_mask 2:4": lambda: asp.create_mask(x, pattern=asp.SparsityPattern.two_four()),
        "mask ops": lambda: (~(asp.nm_mask(x, 2, 4) & asp.nm_mask(x, 1, 4, magnitude=True))).mask,
        "apply": lambda: asp.nm_mask(x, 2, 4).apply(x),
        "apply in place": lambda: asp.apply_mask(x.copy(), asp.nm_mask(x, 2, 4), inplace=True),
        "nm num_pruned": lambda: asp.nm_mask(x, 2, 4).num_pruned,
        "layer_masks 2:4": lambda: layer_masks({"a": x, "b": g}, pattern=asp.SparsityPattern.two_four()),
        **{f"compress {f}": (lambda f=f: asp.compress(x, f)) for f in ("csr", "coo", "csc", "bitmask")},
        "compress bsr": lambda: asp.compress(x, "bsr", block=(4, 8)),
        "compress 2:4": lambda: asp.compress(x24, "2:4"),
        "compress n:m": lambda: asp.compress(x24, "n:m", n=2, m=4),
        "to_dense csr": lambda: asp.compress(x, "csr").to_dense(),
        "to_dense csc": lambda: asp.compress(x, "csc").to_dense(),
        "to_dense bitmask": lambda: asp.compress(x, "bitmask").to_dense(),
        "to_dense 2:4": lambda: asp.compress(x24, "2:4").to_dense(),
        "positions": lambda: asp.compress(x24, "2:4").positions(),
    }
    for name, job in jobs.items():
        out, n = computes(counting, job)
        assert n == 0, f"{name} computed {n} time(s)"
    assert counting.calls == 0


def test_documented_eager_counts(counting):
    """The eager parts are exactly the documented ones (dask backend and guide)."""
    w = rng_matrix()
    x = da.from_array(w, chunks=(5, 7))
    # topk: a persist (small input) + 2 histogram passes (32-bit keys)
    m, n = computes(counting, lambda: asp.topk_mask(x, 0.5))
    assert n == 1 + 2
    assert computes(counting, lambda: m.num_pruned)[1] == 0
    # float64: 4 passes; integer ties split inside a chunk: one tie pass more
    assert computes(counting, lambda: asp.topk_mask(x.astype(np.float64), 0.5))[1] == 1 + 4
    xi = da.from_array(np.zeros((6, 8), np.int32), chunks=(4, 3))
    assert computes(counting, lambda: asp.topk_mask(xi, 5))[1] == 1 + 2 + 1
    # global: the threshold, then the tie/count pass for the report's counts
    model = {"a": x, "b": da.from_array(rng_matrix((7,), seed=2), chunks=3)}
    assert computes(counting, lambda: global_mask(model, 0.5))[1] == 1 + 2 + 1
    # formats that must count first, and the counts of a lazy result
    assert computes(counting, lambda: asp.compress(x, "ell"))[1] == 1
    assert computes(counting, lambda: asp.compress(x, "dia"))[1] == 1
    r = asp.compress(x, "csr")
    assert computes(counting, lambda: r.nnz)[1] == 1
    assert computes(counting, lambda: r.nnz)[1] == 0  # cached
    # a combined mask has no known count: counting it computes it
    both = asp.topk_mask(x, 0.5) & asp.nm_mask(x, 2, 4)
    assert computes(counting, lambda: both.num_pruned)[1] == 1


def test_only_histograms_reach_the_client(counting, monkeypatch):
    """No compute of a selection hands back more than a histogram, however large the array."""
    monkeypatch.setattr(dask_backend, "PERSIST_BELOW", 0)
    w = rng_matrix((512, 1024), seed=4)  # 2 MiB
    x = da.from_array(w, chunks=(128, 256))
    model = {"a": x, "b": x[:100] * 2}
    counting.returned.clear()
    global_mask(model, 0.3, magnitude=True)
    asp.topk_mask(x, 0.7)
    assert counting.returned and max(counting.returned) <= (1 << 16) * 8 + 4096


def test_index_dtype_beyond_int32_counts_bands(counting, monkeypatch):
    from arraysparse.formats import base

    monkeypatch.setattr(base, "INDEX32_LIMIT", 100)
    w = rng_matrix((12, 10), zeros=0.5)
    x = da.from_array(w, chunks=(5, 10))
    r, n = computes(counting, lambda: asp.compress(x, "csr"))
    assert n == 1
    ref = asp.compress(w, "csr")
    assert r.indices.dtype == ref.indices.dtype == np.int32  # 120 elements, nnz < 100
    assert r.nnz == ref.nnz
    monkeypatch.setattr(base, "INDEX32_LIMIT", 20)
    r = asp.compress(x, "csr")
    assert r.indptr.dtype == asp.compress(w, "csr").indptr.dtype == np.int64
    for k in r.arrays:
        assert same_bits(r.arrays[k], asp.compress(w, "csr").arrays[k])


# -- exact masks: one array ---------------------------------------------------------------------
@given(chunked(), sparsities, st.booleans())
def test_topk_equals_numpy(pair, sparsity, magnitude):
    a, x = pair
    if isinstance(sparsity, int):
        sparsity = min(sparsity, a.size)
    with dask.config.set(scheduler="sync"):
        got = asp.topk_mask(x, sparsity, magnitude=magnitude)
        ref = asp.topk_mask(a, sparsity, magnitude=magnitude)
        assert same_bits(got.mask, ref.mask)
        assert got.num_pruned == ref.num_pruned


@given(chunked(min_dims=2, max_dims=2, min_side=1), st.sampled_from([(1, 2), (2, 4), (1, 3)]), st.booleans())
def test_nm_equals_numpy(pair, nm, magnitude):
    a, x = pair
    n, m = nm
    cols = a.shape[1] // m * m
    if not cols:
        return
    a, x = a[:, :cols], x[:, :cols]
    with dask.config.set(scheduler="sync"):
        assert same_bits(asp.nm_mask(x, n, m, magnitude=magnitude).mask, asp.nm_mask(a, n, m, magnitude=magnitude).mask)


@given(chunked(min_side=1, dtypes=["float32", "float64", "int16"]), sparsities, st.sampled_from([1, 2, 2.5, math.inf]))
def test_structured_equals_numpy(pair, sparsity, ord):
    a, x = pair
    axis = a.ndim - 1
    if isinstance(sparsity, int):
        sparsity = min(sparsity, a.shape[axis])
    with dask.config.set(scheduler="sync"):
        assert same_bits(asp.structure_scores(x, axis, ord=ord), asp.structure_scores(a, axis, ord=ord))
        got = asp.structured_mask(x, sparsity, axis=axis, ord=ord)
        assert same_bits(got.mask, asp.structured_mask(a, sparsity, axis=axis, ord=ord).mask)


@given(chunked(min_dims=2, min_side=1, dtypes=["float32", "float64"]), st.floats(0, 1))
def test_block_equals_numpy(pair, sparsity):
    a, x = pair
    block = (1, 2) if a.shape[-1] % 2 == 0 else (1, 1)
    with dask.config.set(scheduler="sync"):
        assert same_bits(asp.block_scores(x, block), asp.block_scores(a, block))
        assert same_bits(asp.block_mask(x, sparsity, block=block).mask, asp.block_mask(a, sparsity, block=block).mask)


def test_random_equals_numpy(counting):
    a = np.zeros((9, 7))
    x = da.from_array(a, chunks=(4, 3))
    assert same_bits(asp.random_scores(x, seed=5), asp.random_scores(a, seed=5))
    assert same_bits(asp.random_mask(x, 0.4, seed=5).mask, asp.random_mask(a, 0.4, seed=5).mask)
    pruned, mask = asp.RandomPruning(seed=2).prune(x, 0.5)
    assert same_bits(mask.mask, asp.RandomPruning(seed=2).prune(a, 0.5)[1].mask)
    gen = asp.random_scores(x, seed=np.random.default_rng(1))  # a Generator draws on the client
    assert same_bits(gen, asp.random_scores(a, seed=np.random.default_rng(1)))


def test_strategies_equal_numpy(counting):
    w = rng_matrix((16, 24), seed=6)
    g = rng_matrix((16, 24), seed=7)
    x, xg = da.from_array(w, chunks=(5, 8)), da.from_array(g, chunks=(16, 5))
    for strategy, target in [
        (asp.MagnitudePruning(), 0.5),
        (asp.GradientPruning(), 0.3),
        (asp.StructuredPruning(asp.SparsityPattern.columns(), ord=1), 0.25),
        (asp.MagnitudePruning(asp.SparsityPattern.blocks((4, 4))), 0.5),
        (asp.MagnitudePruning(asp.SparsityPattern.two_four()), None),
        (asp.TaylorPruning(), 0.4),
        (asp.SNIPPruning(), 0.4),
    ]:
        grads = xg if strategy.requires_gradients else None
        got_w, got_m = strategy.prune(x, target, grads)
        ref_w, ref_m = strategy.prune(w, target, g if grads is not None else None)
        assert same_bits(got_m.mask, ref_m.mask), strategy
        assert same_bits(got_w, ref_w), strategy
    wanda = asp.WandaPruning()
    wanda.calibrate(rng_matrix((3, 8, 24), seed=8))
    assert same_bits(wanda.prune(x, 0.5)[1].mask, wanda.prune(w, 0.5)[1].mask)


def test_nan_raises_with_count(counting):
    a = rng_matrix((6, 8))
    a[1, 2] = a[4, 7] = a[5, 0] = np.nan
    x = da.from_array(a, chunks=(4, 3))
    with pytest.raises(ValueError, match=r"scores contains 3 NaN value\(s\)"):
        asp.topk_mask(x, 0.5)
    with pytest.raises(ValueError, match=r"scores\['b'\] contains 3 NaN"):
        global_mask({"a": da.ones(4, chunks=2), "b": x}, 0.5)
    mask = asp.nm_mask(x, 2, 4)  # lazy: raises when the chunk holding NaN is computed
    with pytest.raises(ValueError, match=r"scores\[chunk \(\d, \d\)\] contains 1 NaN"):
        mask.mask.compute()


# -- exact masks: many arrays ---------------------------------------------------------------------
@given(
    st.lists(chunked(max_dims=2, max_side=6), min_size=1, max_size=3),
    st.floats(0, 1),
    st.booleans(),
    st.sampled_from([(0.0, 1.0), (0.2, 1.0), (0.0, 0.6), (0.1, 0.7)]),
)
def test_global_equals_numpy(pairs, sparsity, magnitude, bounds):
    model = {f"l{i}": a for i, (a, _) in enumerate(pairs)}
    lazy = {f"l{i}": x for i, (_, x) in enumerate(pairs)}
    lo, hi = bounds
    with dask.config.set(scheduler="sync"):
        try:
            ref = global_mask(model, sparsity, magnitude=magnitude, min_sparsity=lo, max_sparsity=hi)
        except ValueError as e:
            with pytest.raises(ValueError, match=str(e)[:30].replace("(", r"\(").replace("[", r"\[")):
                global_mask(lazy, sparsity, magnitude=magnitude, min_sparsity=lo, max_sparsity=hi)
            return
        got = global_mask(lazy, sparsity, magnitude=magnitude, min_sparsity=lo, max_sparsity=hi)
        for name in model:
            assert same_bits(got[name].mask, ref[name].mask), name
        assert [(r.pruned, r.rule) for r in got.report] == [(r.pruned, r.rule) for r in ref.report]


def test_prune_model_and_layer_masks_equal_numpy(counting):
    rng = np.random.default_rng(9)
    model = {
        "fc1": {"weight": rng.integers(-3, 4, (12, 8)).astype(np.float32), "bias": rng.standard_normal(12)},
        "fc2": {"weight": rng.integers(-3, 4, (4, 12)).astype(np.float16)},
    }
    lazy = {
        "fc1": {"weight": da.from_array(model["fc1"]["weight"], chunks=(5, 3)), "bias": da.from_array(model["fc1"]["bias"], chunks=4)},
        "fc2": {"weight": da.from_array(model["fc2"]["weight"], chunks=(2, 12))},
    }
    got_w, got_m = prune_model(lazy, 0.5, exclude="*.bias", overrides={"fc2.*": 0.25})
    ref_w, ref_m = prune_model(model, 0.5, exclude="*.bias", overrides={"fc2.*": 0.25})
    assert str(got_m.report) == str(ref_m.report)
    for name in ref_m:
        assert same_bits(got_m[name].mask, ref_m[name].mask)
    assert same_bits(got_w["fc1"]["weight"], ref_w["fc1"]["weight"])
    got = layer_masks(lazy, 0.3, strategy=asp.StructuredPruning(asp.SparsityPattern.rows()), exclude="*.bias")
    ref = layer_masks(model, 0.3, strategy=asp.StructuredPruning(asp.SparsityPattern.rows()), exclude="*.bias")
    assert str(got.report) == str(ref.report)
    assert all(same_bits(got[n].mask, ref[n].mask) for n in ref)


# -- formats ---------------------------------------------------------------------------------------
FORMATS = [("csr", {}), ("coo", {}), ("csc", {}), ("bsr", {"block": (2, 2)}), ("ell", {}), ("dia", {}), ("bitmask", {})]


@settings(max_examples=15)
@given(chunked(min_dims=1, max_dims=3, max_side=8, dtypes=["float32", "float64", "int8", "bfloat16"]), st.sampled_from(FORMATS))
def test_compress_equals_numpy(pair, fmt_params):
    a, x = pair
    fmt, params = fmt_params
    if fmt == "bsr":
        rows, cols = (1, a.shape[0]) if a.ndim == 1 else (a.shape[0], math.prod(a.shape[1:]))
        if rows % 2 or cols % 2:
            return
    with dask.config.set(scheduler="sync"):
        ref = asp.compress(a, fmt, **params)
        got = asp.compress(x, fmt, **params)
        assert set(got.arrays) == set(ref.arrays) and got.params == ref.params
        for k in ref.arrays:
            assert same_bits(got.arrays[k], ref.arrays[k]), k
        assert same_bits(got.to_dense(), ref.to_dense())
        assert got.nnz == ref.nnz and got.nbytes == ref.nbytes


@settings(max_examples=12)
@given(chunked(min_dims=2, max_dims=2, min_side=1, max_side=12, dtypes=["float16", "float32", "int8"]), st.sampled_from([(2, 4), (1, 2), (3, 8)]))
def test_compress_nm_equals_numpy(pair, nm):
    a, x = pair
    n, m = nm
    cols = a.shape[1] // m * m
    if not cols:
        return
    a = asp.nm_mask(a[:, :cols], n, m, magnitude=True).apply(a[:, :cols])
    x = da.from_array(a, chunks=(x.chunks[0], max(1, cols // 2)))
    fmt = "2:4" if (n, m) == (2, 4) else "n:m"
    params = {} if fmt == "2:4" else {"n": n, "m": m}
    with dask.config.set(scheduler="sync"):
        ref = asp.compress(a, fmt, **params)
        got = asp.compress(x, fmt, **params)
        for k in ref.arrays:
            assert same_bits(got.arrays[k], ref.arrays[k]), k
        assert same_bits(got.to_dense(), a)
        assert same_bits(got.positions(), ref.positions())


def test_compress_errors_are_the_formats(counting):
    x = da.from_array(rng_matrix((8, 8)), chunks=4)
    r = asp.compress(x, "2:4")  # lazy: the band holding the group raises when computed
    with pytest.raises(ValueError, match=r"violates the 2:4 pattern .* group 0 of row 0"):
        r.values.compute()
    with pytest.raises(ValueError, match="width=1 is too narrow"):
        asp.compress(x, "ell", width=1)


def test_results_in_other_chunks_decode(counting):
    """A result whose arrays are not in bands (a store's chunks) is put back in bands first."""
    w = rng_matrix((20, 12), zeros=0.6)
    for fmt in ("csr", "csc", "coo", "bitmask"):
        ref = asp.compress(w, fmt)
        arrays = {k: da.from_array(v, chunks=7 if v.ndim == 1 else (7, -1)) for k, v in ref.arrays.items()}
        lazy = asp.SparseCompressionResult(fmt, ref.shape, ref.dtype, arrays, ref.params)
        assert same_bits(lazy.to_dense(), w), fmt


def test_zarr_round_trip(counting, tmp_path):
    w = rng_matrix((20, 16), zeros=0.5)
    x = da.from_array(w, chunks=(6, 5))
    for fmt, params in [("csr", {}), ("bsr", {"block": (2, 4)}), ("2:4", {})]:
        src = asp.nm_mask(x, 2, 4).apply(x) if fmt == "2:4" else x
        ref = asp.compress(_np(src), fmt, **params)
        path = tmp_path / f"{fmt.replace(':', '')}.zarr"
        asp.to_zarr(asp.compress(src, fmt, **params), path)
        back = asp.from_zarr(path, lazy=False)
        for k in ref.arrays:
            assert same_bits(back.arrays[k], ref.arrays[k]), (fmt, k)
        assert back.params == ref.params
        assert same_bits(asp.from_zarr(path).to_dense(), ref.to_dense())
    with pytest.raises(ValueError, match="holds no arraysparse result"):
        asp.from_zarr(tmp_path / "csr.zarr" / "data")


# -- refusals ----------------------------------------------------------------------------------------
def test_refusals(counting):
    torch = pytest.importorskip("torch")
    unknown = da.from_array(np.arange(10.0), chunks=5)
    unknown = unknown[unknown > 3]
    with pytest.raises(ValueError, match="unknown shape"):
        asp.nm_mask(unknown, 1, 2)
    other = da.from_array(np.ones(4), chunks=2).map_blocks(torch.from_numpy, meta=torch.empty(0, dtype=torch.float64))
    with pytest.raises(TypeError, match="Dask array of torch.Tensor chunks"):
        asp.topk_mask(other, 0.5)


# -- CUTLASS 2:4 ------------------------------------------------------------------------------------
CUTLASS_DTYPES = {"float16": 32, "bfloat16": 32, "int8": 64, "float32": 16}  # column multiples


@st.composite
def cutlass_pair(draw):
    """``(numpy, dask)`` 2:4 (float32: 1:2) matrices of the CUTLASS shape rules, irregular chunks."""
    from arraysparse.formats.cutlass import _LAYOUTS

    name = draw(st.sampled_from(sorted(CUTLASS_DTYPES)))
    lay = _LAYOUTS[name]
    rows = lay.row_multiple * draw(st.integers(1, 4))
    cols = CUTLASS_DTYPES[name] * draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.integers(-60, 60, (rows, cols)).astype(_dtype(name))
    x = np.asarray(asp.nm_mask(x, lay.m // 2, lay.m).apply(x))
    cuts = [sorted(set(draw(st.lists(st.integers(1, s - 1), max_size=3)))) for s in (rows, cols)]
    chunks = tuple(tuple(np.diff([0, *c, s]).tolist()) for c, s in zip(cuts, (rows, cols)))
    return x, da.from_array(x, chunks=chunks), draw(st.integers(1, 40))


@settings(max_examples=25, deadline=None)
@given(cutlass_pair())
def test_cutlass_equals_numpy(pair):
    from arraysparse.formats.cutlass import cutlass_meta_from_positions, positions_from_cutlass_meta

    x, dx, cut = pair
    with dask.config.set(scheduler="sync"):
        values, meta = asp.to_cutlass(x)
        got_v, got_m = asp.to_cutlass(dx)
        assert same_bits(got_v, values) and same_bits(got_m, meta)
        # decoding from other chunks than the encoder's: meta rows cut anywhere
        dv = da.from_array(values, chunks=(cut, -1))
        dm = da.from_array(meta, chunks=(max(1, cut // 3), 1))
        assert same_bits(asp.from_cutlass(dv, dm), asp.from_cutlass(values, meta))
        positions = positions_from_cutlass_meta(meta, x.dtype)
        assert same_bits(positions_from_cutlass_meta(dm, x.dtype), positions)
        assert same_bits(cutlass_meta_from_positions(da.from_array(positions, chunks=(cut, 3)), x.dtype), meta)
        if x.dtype != np.float32:
            r = asp.compress(dx, "2:4")
            rv, rm = r.to_cutlass()
            assert same_bits(rv, values) and same_bits(rm, meta)


def test_cutlass_bands_are_not_row_slices_of_meta():
    """The interleave stays inside bands of 32 rows (int8: 16), the smallest band that encodes on
    its own; but the meta is stored column-major in pairs over the whole matrix, so a band's meta
    is a row slice of the whole's only with 2 meta columns: the bands' metas must be gathered."""
    from arraysparse.formats.cutlass import _LAYOUTS

    for name, lay in _LAYOUTS.items():
        for cols in (CUTLASS_DTYPES[name], 3 * CUTLASS_DTYPES[name]):
            x = rng_matrix((4 * lay.band, cols), seed=3).astype(_dtype(name)) if name != "int8" else (
                np.random.default_rng(3).integers(-9, 9, (4 * lay.band, cols)).astype(np.int8))
            x = np.asarray(asp.nm_mask(x, lay.m // 2, lay.m).apply(x))
            _, meta = asp.to_cutlass(x)
            h = lay.band
            bands = [asp.to_cutlass(x[i : i + h])[1] for i in range(0, x.shape[0], h)]
            ncols = meta.shape[1]
            gathered = np.concatenate([b.reshape(ncols // 2, h, 2) for b in bands], axis=1).reshape(meta.shape)
            assert np.array_equal(gathered, meta), name
            assert np.array_equal(np.concatenate(bands), meta) == (ncols == 2), name
            with pytest.raises(ValueError, match=f"multiple of {lay.row_multiple} rows"):
                asp.to_cutlass(x[: h // 2])


def test_cutlass_lazy_and_errors(counting):
    x = np.zeros((96, 64), np.float16)
    x[70, 4:7] = 1
    (values, meta), n = computes(counting, lambda: asp.to_cutlass(da.from_array(x, chunks=(40, 24))))
    assert n == 0 and isinstance(meta, da.Array)
    with pytest.raises(ValueError, match=r"row 70, group 1 \(columns 4..7\) has 3 non-zero"):
        values.compute()
    v, m = asp.to_cutlass(np.zeros((96, 64), np.float16))
    m[40, 0] = 0
    dense, n = computes(counting, lambda: asp.from_cutlass(da.from_array(v, chunks=32), da.from_array(m, chunks=16)))
    assert n == 0
    with pytest.raises(ValueError, match=r"invalid code 0b0000 for row 68, group 0"):
        dense.compute()


# -- SparseGPT ---------------------------------------------------------------------------------------
def test_sparsegpt_eager_equals_numpy(counting):
    """Eager per layer (one compute of the layer and its Hessian), NumPy's bits, the input's chunks."""
    from arraysparse.calibration import HessianAccumulator
    from arraysparse.strategies.sparsegpt import sparsegpt_prune

    w = rng_matrix((40, 64), seed=4)
    acc = HessianAccumulator()
    acc.update(rng_matrix((100, 64), seed=5))
    h = acc.hessian
    x = da.from_array(w, chunks=(7, 20))
    for pattern, sparsity in [(None, 0.5), (asp.SparsityPattern.two_four(), None)]:
        (q, mask), n = computes(
            counting,
            lambda p=pattern, s=sparsity: sparsegpt_prune(x, da.from_array(h, chunks=32), s, pattern=p, block_size=32),
        )
        ref_q, ref_mask = sparsegpt_prune(w, h, sparsity, pattern=pattern, block_size=32)
        assert n == 1 and q.chunks == x.chunks
        assert same_bits(q, ref_q) and same_bits(mask.mask, ref_mask.mask)
    s = asp.SparseGPTPruning()
    s.calibrate(da.from_array(rng_matrix((100, 64), seed=5), chunks=30))
    got = s.prune(x, 0.5)[1].mask
    assert got.shape == w.shape and isinstance(got, da.Array)


def test_wanda_calibration_equals_numpy(counting):
    """Sums of squares over Dask batches: the batch's rows summed whole, in NumPy's order."""
    batches = [rng_matrix((3, 50, 24), seed=8), rng_matrix((400, 24), seed=9)]
    ref, lazy = asp.WandaPruning(), asp.WandaPruning()
    for b in batches:
        ref.calibrate(b)
        lazy.calibrate(da.from_array(b, chunks=tuple(max(1, s // 3) for s in b.shape)))
    assert same_bits(lazy.accumulator.sum_squares, np.asarray(ref.accumulator.sum_squares))
    w = rng_matrix((16, 24), seed=6)
    assert same_bits(lazy.prune(da.from_array(w, chunks=(5, 8)), 0.5)[0], ref.prune(w, 0.5)[0])


# -- on a cluster of two worker processes ----------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as lc:
        with Client(lc, set_as_default=False) as client:
            yield client


def _generated(seed: int, shape: tuple[int, ...], chunks: tuple[int, ...]):
    """An array every worker draws its own chunks of (nothing sent from the client), and its NumPy twin."""

    def block(seed, block_info=None):
        loc = block_info[None]["chunk-location"]
        rng = np.random.default_rng([seed, *loc])
        return rng.integers(-50, 50, block_info[None]["chunk-shape"]).astype(np.float32) / 8

    x = da.map_blocks(block, seed, chunks=da.core.normalize_chunks(chunks, shape), dtype=np.float32, meta=np.empty((0, 0), np.float32))
    return x, x.compute(scheduler="sync")


def test_cluster_masks_equal_numpy(cluster):
    counter = CountingScheduler(cluster.get)
    with dask.config.set(scheduler=counter):
        x, a = _generated(1, (40, 36), (9, 12))
        y, b = _generated(2, (30,), (7,))
        assert same_bits(asp.topk_mask(x, 0.37, magnitude=True).mask, asp.topk_mask(a, 0.37, magnitude=True).mask)
        before = counter.calls
        counter.returned.clear()
        got = global_mask({"x": x, "y": y}, 0.5, magnitude=True, max_sparsity=0.8)
        assert counter.calls - before == 1 + 4 + 1  # persist, 4 per-array 8-bit passes, the tie pass
        assert max(counter.returned[1:]) < 1 << 14  # after the persist (the first): counts only
        ref = global_mask({"x": a, "y": b}, 0.5, magnitude=True, max_sparsity=0.8)
        assert all(same_bits(got[n].mask, ref[n].mask) for n in ref)
        assert str(got.report) == str(ref.report)
        pruned, mm = prune_model({"x": x, "y": y}, 0.5)
        assert same_bits(pruned["x"], prune_model({"x": a, "y": b}, 0.5)[0]["x"])
        assert same_bits(asp.nm_mask(x, 2, 4).mask, asp.nm_mask(a, 2, 4).mask)


def test_cluster_compress_and_store(cluster, tmp_path):
    with dask.config.set(scheduler=cluster.get):
        x, a = _generated(3, (24, 32), (5, 32))
        x = asp.topk_mask(x, 0.6, magnitude=True).apply(x)
        a = asp.topk_mask(a, 0.6, magnitude=True).apply(a)
        x24 = asp.nm_mask(x, 2, 4, magnitude=True).apply(x)
        a24 = asp.nm_mask(a, 2, 4, magnitude=True).apply(a)
        for src, dense, fmt, params in [
            (x, a, "csr", {}), (x, a, "bsr", {"block": (4, 8)}), (x24, a24, "2:4", {}), (x24, a24, "n:m", {"n": 2, "m": 4}),
        ]:
            got, ref = asp.compress(src, fmt, **params), asp.compress(dense, fmt, **params)
            for k in ref.arrays:
                assert same_bits(got.arrays[k], ref.arrays[k]), (fmt, k)
            assert same_bits(got.to_dense(), dense)
            path = tmp_path / f"{fmt.replace(':', '')}.zarr"
            asp.to_zarr(got, path)  # the workers write their bands
            back = asp.from_zarr(path, lazy=False)
            assert all(same_bits(back.arrays[k], ref.arrays[k]) for k in ref.arrays)
