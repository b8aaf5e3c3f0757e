"""CUTLASS 2:4 layout: byte-exact parity with torch's CPU encoder/decoder, round trips, errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.sparse import _semi_structured_conversions as torch_conv

from arraysparse._backends import reference_formats
from arraysparse._kernels.cpu import cutlass as kernels
from arraysparse.formats import cutlass as cl
from arraysparse.formats.cutlass import (
    cutlass_meta_from_positions,
    from_cutlass,
    positions_from_cutlass_meta,
    to_cutlass,
)
from tests.backends import Backend, to_numpy

SEED = 2024
TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16, "int8": torch.int8, "float32": torch.float32}
BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32}
# dtype -> (group size, row multiple, column multiple)
RULES = {"float16": (4, 32, 32), "bfloat16": (4, 32, 32), "int8": (4, 16, 64), "float32": (2, 32, 16)}
SHAPES = {
    "float16": [(32, 32), (64, 96), (96, 256)],
    "bfloat16": [(32, 32), (64, 96), (96, 256)],
    "int8": [(16, 64), (48, 128), (64, 320)],
    "float32": [(32, 16), (64, 48), (96, 256)],
}
CASES = [(d, s) for d, shapes in SHAPES.items() for s in shapes]


def sparse_matrix(dtype: str, shape: tuple[int, int], rng: np.random.Generator, *, special: bool = False) -> torch.Tensor:
    """Random matrix obeying 2:4 (float32: 1:2) with groups of 0, 1 and 2 (max) non-zeros.

    ``special`` mixes in -0.0 (at kept and dropped slots), NaN and +/-inf.
    """
    m = RULES[dtype][0]
    keep = m // 2
    rows, cols = shape
    groups = rows * cols // m
    count = rng.integers(0, keep + 1, size=(groups, 1))
    order = np.argsort(rng.random((groups, m)), axis=1)
    mask = np.zeros((groups, m), bool)
    np.put_along_axis(mask, order, np.arange(m) < count, axis=1)
    if dtype == "int8":
        vals = rng.integers(-128, 128, size=(groups, m))
        vals[vals == 0] = 7
        return torch.from_numpy(np.where(mask, vals, 0).astype(np.int8).reshape(shape))
    vals = rng.standard_normal((groups, m)).astype(np.float32) * 100
    zeros = np.zeros((groups, m), np.float32)
    if special:
        pick = rng.random((groups, m))
        vals = np.where(pick < 0.1, np.nan, np.where(pick < 0.15, np.inf, np.where(pick < 0.2, -np.inf, vals)))
        vals = np.where((pick > 0.9), -0.0, vals).astype(np.float32)
        zeros = np.where(rng.random((groups, m)) < 0.5, np.float32(-0.0), zeros)
    dense = np.where(mask, vals, zeros).reshape(shape)
    return torch.from_numpy(dense).to(TORCH[dtype])


def tbits(t: torch.Tensor) -> np.ndarray:
    """The bytes of a tensor as a NumPy integer array (bfloat16 included)."""
    return t.contiguous().view(BITS[t.element_size()]).numpy()


def nbits(a) -> np.ndarray:
    """The bytes of any backend's array as a NumPy integer array."""
    if isinstance(a, torch.Tensor):
        return tbits(a.cpu())
    a = to_numpy(a)
    return a.view({1: np.uint8, 2: np.int16, 4: np.int32}[a.dtype.itemsize])


def torch_decoded(values: torch.Tensor, meta: torch.Tensor, dense: torch.Tensor) -> np.ndarray:
    """Bits of torch's decoder output, with its one inexactness undone.

    For float32 torch scatters the values as float16 halves, and CPU torch
    quiets a half that looks like a signaling NaN (sets bit 9 of the half): an
    ordinary float32 whose low or high 16 bits have that pattern comes back
    changed. Those elements (checked to be exactly that) take the input bits.
    """
    out = tbits(torch_conv.sparse_semi_structured_to_dense_cutlass(values, meta))
    if dense.dtype == torch.float32:
        x = tbits(dense)
        diff = out ^ x
        quieted = (diff == 0x200) | (diff == 0x2000000)
        halves = x.view(np.uint16)
        snan = ((halves & 0x7C00) == 0x7C00) & ((halves & 0x3FF) != 0) & ((halves & 0x200) == 0)
        assert np.array_equal(quieted, snan.reshape(*x.shape, 2).any(axis=-1) & (diff != 0))
        dropped_negzero = (x == np.int32(-(2**31))) & (out == 0)
        assert np.all((diff == 0) | quieted | dropped_negzero)
        out = np.where(quieted, x, out)
    return out


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.numpy().copy()


def reference_namespace():
    import array_api_compat.numpy as xp

    return xp


# ---------------------------------------------------------------- parity with torch


@pytest.mark.parametrize(("dtype", "shape"), CASES)
@pytest.mark.parametrize("special", [False, True])
def test_to_cutlass_equals_torch_encoder(dtype, shape, special):
    if special and dtype == "int8":
        pytest.skip("no special values in int8")
    rng = np.random.default_rng([SEED, *shape])
    dense = sparse_matrix(dtype, shape, rng, special=special)
    want_v, want_m = torch_conv.sparse_semi_structured_from_dense_cutlass(dense)
    inputs = [dense] if dtype == "bfloat16" else [dense, as_numpy(dense)]
    for x in inputs:
        values, meta = to_cutlass(x)
        assert type(values) is type(x) and type(meta) is type(x)
        assert values.dtype == x.dtype
        assert str(meta.dtype).endswith(str(want_m.dtype).removeprefix("torch."))
        assert tuple(values.shape) == tuple(want_v.shape) and tuple(meta.shape) == tuple(want_m.shape)
        np.testing.assert_array_equal(nbits(values), tbits(want_v))
        np.testing.assert_array_equal(nbits(meta), tbits(want_m))


@pytest.mark.parametrize(("dtype", "shape"), CASES)
def test_from_cutlass_equals_torch_decoder_and_round_trips(dtype, shape):
    rng = np.random.default_rng([SEED + 1, *shape])
    dense = sparse_matrix(dtype, shape, rng, special=dtype != "int8")
    tv, tm = torch_conv.sparse_semi_structured_from_dense_cutlass(dense)
    want = torch_decoded(tv, tm, dense)
    got = from_cutlass(*to_cutlass(dense))
    assert got.dtype == dense.dtype and tuple(got.shape) == shape
    np.testing.assert_array_equal(tbits(got), want)
    # values equal to the input (NaN at the same places); bits equal except dropped -0.0
    x, y = tbits(dense), tbits(got)
    dropped_negzero = (x != y) & (y == 0)
    assert np.array_equal(x[~dropped_negzero], y[~dropped_negzero])
    if dtype != "int8":
        assert np.all(tbits(dense.abs())[dropped_negzero] == 0)
    if dtype != "bfloat16":
        np.testing.assert_array_equal(nbits(from_cutlass(*to_cutlass(as_numpy(dense)))), want)


def test_all_zero_and_full_groups_equal_torch():
    for dtype, (m, rows, cols) in RULES.items():
        zero = torch.zeros((rows, cols), dtype=TORCH[dtype])
        neg_zero = torch.full((rows, cols), -0.0).to(TORCH[dtype]) if dtype != "int8" else zero
        # every group full: non-zeros at two positions that vary along the row
        full = torch.zeros((rows * cols // m, m), dtype=torch.float32)
        pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)] if m == 4 else [(0,), (1,)]
        for g in range(full.shape[0]):
            full[g, list(pairs[g % len(pairs)])] = 1.0 + g % 5
        full = full.view(rows, cols).to(TORCH[dtype])
        for dense in (zero, neg_zero, full):
            tv, tm = torch_conv.sparse_semi_structured_from_dense_cutlass(dense)
            values, meta = to_cutlass(dense)
            np.testing.assert_array_equal(tbits(values), tbits(tv))
            np.testing.assert_array_equal(tbits(meta), tbits(tm))


def test_empty_matrix():
    for dtype in ("float16", "int8", "float32"):
        dense = torch.zeros((0, RULES[dtype][2]), dtype=TORCH[dtype])
        tv, tm = torch_conv.sparse_semi_structured_from_dense_cutlass(dense)
        for x in (dense, dense.numpy()):
            values, meta = to_cutlass(x)
            assert tuple(values.shape) == tuple(tv.shape) and tuple(meta.shape) == tuple(tm.shape)
            back = from_cutlass(values, meta)
            assert tuple(back.shape) == tuple(dense.shape) and back.dtype == x.dtype
    # no columns: torch cannot reshape, we return empty arrays
    values, meta = to_cutlass(np.zeros((32, 0), np.float16))
    assert values.shape == (32, 0) and meta.shape == (32, 0)
    assert from_cutlass(values, meta).shape == (32, 0)
    assert positions_from_cutlass_meta(meta, "float16").shape == (32, 0)
    assert cutlass_meta_from_positions(np.zeros((32, 0), np.uint8), "float16").shape == (32, 0)


def test_meta_offsets_equal_torch():
    for dtype in ("float16", "int8", "float32"):
        lay = cl._LAYOUTS[dtype]
        meta_dtype = getattr(torch, lay.meta)
        for rows, ncols in [(lay.band, 2), (3 * lay.band, 6)]:
            want = torch_conv._calculate_meta_reordering_scatter_offsets(rows, ncols, meta_dtype, "cpu").numpy()
            xp = reference_namespace()
            targets = np.asarray(reference_formats.meta_targets(xp, lay, rows, ncols, np.zeros(1)))
            np.testing.assert_array_equal(targets, want)
            sources = np.asarray(reference_formats.meta_sources(xp, lay, rows, ncols, np.zeros(1)))
            np.testing.assert_array_equal(sources[targets], np.arange(rows * ncols))
            # the kernels' per-band table says the same
            src_row, src_col = kernels.band_sources(lay.band, lay.interweave)
            t = np.arange(rows * ncols)
            jp, within = t // (2 * rows), t % (2 * rows)
            b, k = within // (2 * lay.band), within % (2 * lay.band)
            kernel_sources = (b * lay.band + src_row[k]) * ncols + 2 * jp + src_col[k]
            np.testing.assert_array_equal(kernel_sources, sources)


def test_standard_path_on_numpy_equals_kernels():
    """The array-API implementation, run on NumPy, is the kernels' oracle (bfloat16 via torch)."""
    rng = np.random.default_rng(SEED + 2)
    for dtype, shape in CASES:
        dense = sparse_matrix(dtype, shape, rng, special=dtype != "int8")
        lay = cl._LAYOUTS[dtype]
        values, meta = to_cutlass(dense)
        import array_api_compat.torch as txp

        rv, rm = reference_formats.cutlass_encode(txp, dense, lay)
        np.testing.assert_array_equal(tbits(rv), tbits(values))
        np.testing.assert_array_equal(tbits(rm), tbits(meta))
        np.testing.assert_array_equal(tbits(reference_formats.cutlass_decode(txp, values, meta, lay)), tbits(from_cutlass(values, meta)))


def test_signaling_nans_keep_their_bits_where_torch_quiets_them():
    """The one documented difference: torch's CPU conversions quiet 16-bit signaling NaNs.

    Its encoder gathers float16/bfloat16 through float32 and its float32
    decoder scatters float16 halves: a signaling NaN comes back as another
    NaN. We move bits, so the values round-trip exactly; everything else is
    equal to torch.
    """
    d = np.zeros((32, 32), np.uint16)
    d[0, 0], d[0, 5], d[3, 9] = 0x7D01, 0xFC26, 0x3C00  # float16 sNaNs and 1.0
    d[1, 0] = 0x7F81  # a bfloat16 sNaN
    for dtype in (torch.float16, torch.bfloat16):
        dense = torch.from_numpy(d.view(np.int16)).view(dtype)
        tv, tm = torch_conv.sparse_semi_structured_from_dense_cutlass(dense)
        values, meta = to_cutlass(dense)
        assert torch.equal(meta, tm)
        ours, theirs = tbits(values).view(np.uint16), tbits(tv).view(np.uint16)
        differ = ours != theirs
        assert differ.any()
        assert bool(tv.isnan()[torch.from_numpy(differ)].all())  # torch still has a NaN there
        assert not np.any(differ[3])  # 1.0 is the same
        np.testing.assert_array_equal(tbits(from_cutlass(values, meta)), tbits(dense))
    # float32 whose low half looks like a float16 sNaN: torch's decoder alters it, ours does not
    f = np.zeros((32, 16), np.uint32)
    f[0, 0] = 0xBF48FC26  # -0.7850975...
    dense = torch.from_numpy(f.view(np.int32)).view(torch.float32)
    tv, tm = torch_conv.sparse_semi_structured_from_dense_cutlass(dense)
    assert torch.equal(to_cutlass(dense)[0], tv)
    theirs = torch_conv.sparse_semi_structured_to_dense_cutlass(tv, tm)
    assert tbits(theirs)[0, 0] != tbits(dense)[0, 0]
    np.testing.assert_array_equal(tbits(from_cutlass(tv, tm)), tbits(dense))


# ---------------------------------------------------------------- inputs and backends


def test_non_contiguous_read_only_and_byte_swapped_inputs():
    rng = np.random.default_rng(SEED + 3)
    dense = as_numpy(sparse_matrix("float16", (64, 64), rng))
    want_v, want_m = to_cutlass(dense)
    wide = np.zeros((64, 128), np.float16)
    wide[:, ::2] = dense  # a strided view with the same values
    strided = wide[:, ::2]
    assert not strided.flags.c_contiguous
    v, m = to_cutlass(strided)
    np.testing.assert_array_equal(v, want_v)
    np.testing.assert_array_equal(m, want_m)
    ro = dense.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(to_cutlass(ro)[1], want_m)
    swapped = dense.astype(dense.dtype.newbyteorder(">"))
    np.testing.assert_array_equal(to_cutlass(swapped)[1], want_m)
    t = torch.from_numpy(wide)[:, ::2]
    np.testing.assert_array_equal(to_cutlass(t)[1].numpy(), want_m)
    # bfloat16 transposed view
    tb = sparse_matrix("bfloat16", (64, 64), rng)
    tt = tb.t().contiguous().t()
    assert not tt.is_contiguous()
    np.testing.assert_array_equal(tbits(to_cutlass(tt)[0]), tbits(torch_conv.sparse_semi_structured_from_dense_cutlass(tb)[0]))
    # values and meta as non-contiguous views decode too
    v2 = np.zeros((64, 64), np.float16)
    v2[:, ::2] = want_v
    np.testing.assert_array_equal(from_cutlass(v2[:, ::2], want_m), dense)


def test_grad_tensor_and_inputs_untouched():
    rng = np.random.default_rng(SEED + 4)
    dense = sparse_matrix("float32", (32, 32), rng).requires_grad_()
    before = dense.detach().clone()
    values, meta = to_cutlass(dense)
    assert not values.requires_grad
    assert torch.equal(dense.detach(), before)
    back = from_cutlass(values, meta)
    assert torch.equal(back, before)


DTYPES_ALL_BACKENDS = ["float16", "float32", "int8"]


@pytest.mark.parametrize("dtype", DTYPES_ALL_BACKENDS)
def test_every_backend_equals_torch(backend, dtype):
    if backend is Backend.ARRAY_API_STRICT and dtype == "float16":
        pytest.skip("array-api-strict has no float16")
    rng = np.random.default_rng([SEED + 5, len(dtype)])
    shape = SHAPES[dtype][1]
    dense_t = sparse_matrix(dtype, shape, rng, special=dtype != "int8")
    want_v, want_m = torch_conv.sparse_semi_structured_from_dense_cutlass(dense_t)
    x = backend.asarray(as_numpy(dense_t))
    before = nbits(x).copy()
    values, meta = to_cutlass(x)
    assert type(values) is type(x) and type(meta) is type(x)
    np.testing.assert_array_equal(nbits(values), tbits(want_v))
    np.testing.assert_array_equal(nbits(meta), tbits(want_m))
    np.testing.assert_array_equal(nbits(x), before)  # input untouched
    back = from_cutlass(values, meta, shape=shape)
    assert type(back) is type(x)
    np.testing.assert_array_equal(nbits(back), torch_decoded(want_v, want_m, dense_t))
    positions = positions_from_cutlass_meta(meta, x.dtype, shape=shape)
    assert type(positions) is type(x) and str(positions.dtype).endswith("uint8")
    assert positions.shape == (shape[0], shape[1] // 2)
    np.testing.assert_array_equal(to_numpy(positions), to_numpy(positions_from_cutlass_meta(want_m.numpy(), dtype)))
    np.testing.assert_array_equal(nbits(cutlass_meta_from_positions(positions, x.dtype)), tbits(want_m))


def test_jax_bfloat16_equals_torch():
    jnp = pytest.importorskip("jax.numpy")
    rng = np.random.default_rng(SEED + 6)
    dense = sparse_matrix("bfloat16", (64, 64), rng, special=True)
    want_v, want_m = torch_conv.sparse_semi_structured_from_dense_cutlass(dense)
    x = jnp.asarray(tbits(dense)).view(jnp.bfloat16)
    values, meta = to_cutlass(x)
    assert values.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(values.view(jnp.int16)), tbits(want_v))
    np.testing.assert_array_equal(np.asarray(meta), tbits(want_m))
    back = from_cutlass(values, meta)
    np.testing.assert_array_equal(np.asarray(back.view(jnp.int16)), torch_decoded(want_v, want_m, dense))


# ---------------------------------------------------------------- positions (simple layout)


@pytest.mark.parametrize(("dtype", "shape"), CASES)
def test_positions_describe_the_kept_values(dtype, shape):
    rng = np.random.default_rng([SEED + 7, *shape])
    dense = sparse_matrix(dtype, shape, rng)
    values, meta = to_cutlass(dense)
    positions = positions_from_cutlass_meta(meta, dense.dtype, shape=shape)
    assert positions.dtype == torch.uint8 and tuple(positions.shape) == (shape[0], shape[1] // 2)
    m = RULES[dtype][0]
    keep = m // 2
    rows, cols = shape
    p = positions.numpy().astype(np.int64).reshape(rows, cols // m, keep)
    if m == 4:
        assert np.all(p[:, :, 0] < p[:, :, 1])
    # gathering the dense matrix at the positions gives the values
    g = tbits(dense).reshape(rows, cols // m, m)
    np.testing.assert_array_equal(np.take_along_axis(g, p, axis=2).reshape(rows, -1), tbits(values))
    # every non-zero is among the kept positions
    nz = (g != 0) if dtype == "int8" else (tbits(dense.abs()).reshape(g.shape) != 0)
    kept = np.zeros_like(nz)
    np.put_along_axis(kept, p, True, axis=2)
    assert not np.any(nz & ~kept)
    # and back: meta from positions equals the encoder's meta
    np.testing.assert_array_equal(tbits(cutlass_meta_from_positions(positions, dense.dtype)), tbits(meta))
    np.testing.assert_array_equal(cutlass_meta_from_positions(positions.numpy(), dtype), tbits(meta))


@st.composite
def cutlass_case(draw):
    dtype = draw(st.sampled_from(sorted(RULES)))
    _, rmul, cmul = RULES[dtype]
    shape = (rmul * draw(st.integers(1, 3)), cmul * draw(st.integers(1, 4)))
    seed = draw(st.integers(0, 2**32 - 1))
    return dtype, shape, seed


@given(cutlass_case())
def test_law_equals_torch_and_round_trips(case):
    dtype, shape, seed = case
    dense = sparse_matrix(dtype, shape, np.random.default_rng(seed), special=dtype != "int8")
    tv, tm = torch_conv.sparse_semi_structured_from_dense_cutlass(dense)
    values, meta = to_cutlass(dense)
    assert np.array_equal(tbits(values), tbits(tv)) and np.array_equal(tbits(meta), tbits(tm))
    back = from_cutlass(values, meta)
    assert np.array_equal(tbits(back), torch_decoded(tv, tm, dense))
    same = back == dense
    if dtype != "int8":
        assert torch.equal(back.isnan(), dense.isnan())
        same |= back.isnan()
    assert bool(same.all())
    positions = positions_from_cutlass_meta(meta, dtype)
    assert np.array_equal(tbits(cutlass_meta_from_positions(positions, dtype)), tbits(meta))


@given(cutlass_case())
def test_law_positions_meta_round_trip(case):
    dtype, shape, seed = case
    rng = np.random.default_rng(seed)
    m = RULES[dtype][0]
    rows, cols = shape
    if m == 4:
        choices = np.array([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)], np.uint8)
        positions = choices[rng.integers(0, 6, size=rows * cols // 4)].reshape(rows, cols // 2)
    else:
        positions = rng.integers(0, 2, size=(rows, cols // 2)).astype(np.uint8)
    meta = cutlass_meta_from_positions(positions, dtype)
    np.testing.assert_array_equal(positions_from_cutlass_meta(meta, dtype, shape=shape), positions)
    # the meta says the same as torch's encoder on a matrix with non-zeros at those positions
    dense = np.zeros((rows, cols // m, m), np.float32)
    np.put_along_axis(dense, positions.reshape(rows, cols // m, m // 2).astype(np.int64), 1.0, axis=2)
    want = torch_conv.sparse_semi_structured_from_dense_cutlass(torch.from_numpy(dense.reshape(shape)).to(TORCH[dtype]))[1]
    np.testing.assert_array_equal(meta, want.numpy())


# ---------------------------------------------------------------- errors


def test_error_not_2d_and_not_an_array():
    with pytest.raises(ValueError, match=r"dense must be 2-D, got 3-D with shape \(2, 32, 32\)"):
        to_cutlass(np.zeros((2, 32, 32), np.float16))
    with pytest.raises(ValueError, match="dense must be 2-D, got 1-D"):
        to_cutlass(np.zeros(64, np.float16))
    with pytest.raises(TypeError, match="dense must be an array"):
        to_cutlass([[0.0] * 32] * 32)
    with pytest.raises(ValueError, match="values must be 2-D"):
        from_cutlass(np.zeros(16, np.float16), np.zeros((32, 2), np.int16))
    with pytest.raises(ValueError, match="meta must be 2-D"):
        from_cutlass(np.zeros((32, 16), np.float16), np.zeros(64, np.int16))
    with pytest.raises(ValueError, match="positions must be 2-D"):
        cutlass_meta_from_positions(np.zeros(16, np.uint8), "float16")
    with pytest.raises(ValueError, match="meta must be 2-D"):
        positions_from_cutlass_meta(np.zeros(16, np.int16), "float16")


@pytest.mark.parametrize("dtype", [np.float64, np.int16, np.int32, np.uint8, np.bool_, np.complex64])
def test_error_unsupported_dtype(dtype):
    with pytest.raises(TypeError, match=r"the dtype of dense is \w+; the CUTLASS 2:4 layout holds float16, bfloat16, int8"):
        to_cutlass(np.zeros((32, 64), dtype))
    with pytest.raises(TypeError, match="the dtype of values is"):
        from_cutlass(np.zeros((32, 32), dtype), np.zeros((32, 4), np.int16))
    with pytest.raises(TypeError, match=r"dtype is \w+; the CUTLASS"):
        positions_from_cutlass_meta(np.zeros((32, 4), np.int16), dtype)
    with pytest.raises(TypeError, match="dtype is float64"):
        cutlass_meta_from_positions(np.zeros((32, 32), np.uint8), "float64")


@pytest.mark.parametrize(
    ("dtype", "shape", "message"),
    [
        ("float16", (48, 32), r"dense has 48 rows \(dimension 0\); .* float16 needs a multiple of 32 rows"),
        ("float16", (32, 16), r"dense has 16 columns \(dimension 1\); .* float16 needs a multiple of 32 columns"),
        ("float16", (32, 48), r"48 columns .* multiple of 32 columns"),
        ("int8", (24, 64), r"24 rows .* int8 needs a multiple of 16 rows"),
        ("int8", (16, 32), r"32 columns .* int8 needs a multiple of 64 columns"),
        ("float32", (16, 16), r"16 rows .* float32 needs a multiple of 32 rows"),
        ("float32", (32, 8), r"8 columns .* float32 needs a multiple of 16 columns"),
    ],
)
def test_error_shape_rules(dtype, shape, message):
    for x in (np.zeros(shape, dtype), torch.zeros(shape, dtype=TORCH[dtype])):
        with pytest.raises(ValueError, match=message):
            to_cutlass(x)
    # torch's encoder refuses them too (in its own words or with an index error)
    with pytest.raises(RuntimeError):
        torch_conv.sparse_semi_structured_from_dense_cutlass(torch.zeros(shape, dtype=TORCH[dtype]))
    with pytest.raises(ValueError, match="multiple of"):
        from_cutlass(np.zeros((shape[0], shape[1] // 2), dtype), np.zeros((shape[0], 1), np.int16))
    with pytest.raises(ValueError, match="multiple of"):
        cutlass_meta_from_positions(np.zeros((shape[0], shape[1] // 2), np.uint8), dtype)


def test_error_bfloat16_shape_rule_torch():
    with pytest.raises(ValueError, match="bfloat16 needs a multiple of 32 rows"):
        to_cutlass(torch.zeros((16, 32), dtype=torch.bfloat16))


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict", "torch"])
@pytest.mark.parametrize("dtype", ["float16", "int8", "float32", "bfloat16"])
def test_error_names_the_first_violating_group(backend_name, dtype):
    if dtype in ("float16", "bfloat16") and backend_name == "array_api_strict":
        pytest.skip("array-api-strict has no float16/bfloat16")
    numpy_bf16 = dtype == "bfloat16" and backend_name == "numpy"
    ml_dtypes = pytest.importorskip("ml_dtypes") if numpy_bf16 else None  # NumPy's bfloat16

    def as_numpy(t):
        return tbits(t).view(ml_dtypes.bfloat16) if t.dtype == torch.bfloat16 else t.numpy()

    m, rows, cols = RULES[dtype]
    dense = np.zeros((rows, cols), np.float32)
    dense[5, 3 * m : 4 * m] = 1.0  # a full group in row 5, group 3
    dense[9, 0:m] = 1.0
    dense[2, m + 1] = -0.0  # negative zeros do not count
    dense[2, m + 2] = 3.0
    t = torch.from_numpy(dense).to(TORCH[dtype])
    x = {"torch": lambda: t, "numpy": lambda: as_numpy(t), "array_api_strict": lambda: Backend.ARRAY_API_STRICT.asarray(t.numpy())}[backend_name]()
    pattern = f"{m // 2}:{m}"
    msg = rf"dense violates the {pattern} pattern .* row 5, group 3 \(columns {3 * m}..{4 * m - 1}\) has {m} non-zero values"
    with pytest.raises(ValueError, match=msg):
        to_cutlass(x)
    # NaN counts as non-zero
    if dtype != "int8":
        dense2 = np.zeros((rows, cols), np.float32)
        dense2[0, m : m + m // 2] = 1.0
        dense2[0, m + m // 2] = np.nan
        x2 = torch.from_numpy(dense2).to(TORCH[dtype])
        with pytest.raises(ValueError, match=rf"row 0, group 1 .* has {m // 2 + 1} non-zero"):
            to_cutlass(x2 if backend_name == "torch" else Backend(backend_name).asarray(as_numpy(x2)))


def test_error_meta_mismatch():
    values = np.zeros((32, 16), np.float16)
    with pytest.raises(TypeError, match="meta has dtype int32; float16 values need int16 meta"):
        from_cutlass(values, np.zeros((32, 2), np.int32))
    with pytest.raises(ValueError, match=r"meta has shape \(32, 4\); .* need meta of shape \(32, 2\)"):
        from_cutlass(values, np.zeros((32, 4), np.int16))
    with pytest.raises(ValueError, match=r"shape=\(32, 64\) does not fit values of shape \(32, 16\): expected \(32, 32\)"):
        from_cutlass(values, np.zeros((32, 2), np.int16), shape=(32, 64))
    with pytest.raises(TypeError, match="int8 values need int32 meta"):
        from_cutlass(np.zeros((16, 32), np.int8), np.zeros((16, 2), np.int16))
    with pytest.raises(TypeError, match="different array libraries"):
        from_cutlass(torch.zeros((32, 16), dtype=torch.float16), np.zeros((32, 2), np.int16))
    with pytest.raises(TypeError, match="meta has dtype int16; int8 values need int32"):
        positions_from_cutlass_meta(np.zeros((16, 2), np.int16), "int8")
    with pytest.raises(ValueError, match=r"shape=\(32, 64\) does not fit meta of shape \(32, 2\)"):
        positions_from_cutlass_meta(np.zeros((32, 2), np.int16), "float16", shape=(32, 64))


@pytest.mark.parametrize("backend_name", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize("dtype", ["float16", "int8", "float32"])
def test_error_invalid_meta_code(backend_name, dtype):
    if dtype == "float16" and backend_name == "array_api_strict":
        pytest.skip("array-api-strict has no float16")
    m, rows, cols = RULES[dtype]
    dense = torch.zeros((rows, cols), dtype=TORCH[dtype])
    values, meta = to_cutlass(dense)
    lay = cl._LAYOUTS[dtype]
    # corrupt group 5 of row 3: put its code in a plain-layout meta, then reorder
    codes = kernels.unpack_codes(tbits(meta).view(np.uint16 if lay.meta == "int16" else np.uint32), lay.kind)
    bad_code = 0b0011 if m == 4 else 0b0101  # idx0=3 >= idx1=0 / not a pair code
    codes[3, 5] = bad_code
    bad_meta = kernels.pack_codes(codes, lay.kind).view(getattr(np, lay.meta))
    b = Backend(backend_name)
    msg = rf"meta holds the invalid code {bad_code:#06b} for row 3, group 5"
    with pytest.raises(ValueError, match=msg):
        from_cutlass(b.asarray(values.numpy()), b.asarray(bad_meta))
    with pytest.raises(ValueError, match=msg):
        positions_from_cutlass_meta(b.asarray(bad_meta), dtype)


def test_error_bad_positions():
    p = np.tile(np.array([0, 1], np.uint8), (32, 16))
    for bad in ([1, 1], [2, 1], [0, 4]):
        q = p.copy()
        q[7, 10:12] = bad
        with pytest.raises(ValueError, match=re.escape(f"positions hold {bad} for row 7, group 5")):
            cutlass_meta_from_positions(q, "float16")
        with pytest.raises(ValueError, match="row 7, group 5"):
            cutlass_meta_from_positions(Backend.ARRAY_API_STRICT.asarray(q), "float16")
    q = np.zeros((32, 8), np.uint8)
    q[1, 2] = 2
    with pytest.raises(ValueError, match=r"positions hold \[2\] for row 1, group 2; each group needs a position 0 or 1"):
        cutlass_meta_from_positions(q, torch.float32)
    with pytest.raises(TypeError, match="positions must hold integers, got dtype float32"):
        cutlass_meta_from_positions(np.zeros((32, 16), np.float32), "float16")


def test_dtype_argument_forms():
    rng = np.random.default_rng(SEED + 8)
    dense = sparse_matrix("float16", (32, 64), rng)
    _, meta = to_cutlass(dense)
    forms = ["float16", np.float16, np.dtype(np.float16), torch.float16]
    got = [positions_from_cutlass_meta(meta, f).numpy() for f in forms]
    for g in got[1:]:
        np.testing.assert_array_equal(g, got[0])
