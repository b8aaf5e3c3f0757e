"""NumPy arrays of ml_dtypes' types (bfloat16, float8, ...): the host's bit-level paths.

bfloat16 NumPy arrays (what JAX hands back on the host) must give, bit for bit,
what the same bits give as a CPU torch bfloat16 tensor: masks, scores, every
format, CUTLASS, strategies and whole models. The float8 types (and the float6 /
float4 types, which follow the same rules) rank as their exact float32 widening
and move through the formats as their bits, with each type's own zero test.
"""

from __future__ import annotations

import numpy as np
import pytest

import arraysparse as asp
from arraysparse import _compat

ml_dtypes = pytest.importorskip("ml_dtypes")

BF16 = np.dtype(ml_dtypes.bfloat16)
SHAPE = (32, 64)  # one shape throughout: CUTLASS's bfloat16 rule, few kernel signatures
NARROW = [
    name
    for name in (
        "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e4m3b11fnuz",
        "float8_e3m4", "float8_e4m3", "float6_e2m3fn", "float6_e3m2fn", "float4_e2m1fn",
    )
    if hasattr(ml_dtypes, name)
]
FORMATS = [("coo", {}), ("csr", {}), ("csc", {}), ("bsr", {"block": (2, 2)}), ("ell", {}), ("dia", {}),
           ("bitmask", {}), ("2:4", {}), ("n:m", {"n": 4, "m": 8})]


# -- inputs ---------------------------------------------------------------------------------
def bf16_bits(seed: int = 0) -> np.ndarray:
    """uint16 bits of a bfloat16 matrix with -0.0 next to 0.0, ties, +/-inf and a subnormal."""
    rng = np.random.default_rng(seed)
    bits = rng.standard_normal(SHAPE).astype(np.float32).astype(BF16).view(np.uint16)
    bits[0, :8] = [0x8000, 0x0000, 0x8000, 0x3F80, 0xBF80, 0x3F80, 0x0001, 0x8001]  # -0, 0, +/-1, subnormals
    bits[1, :16] = 0x3F80  # a run of ties
    bits[2, :4] = [0x7F80, 0xFF80, 0x4000, 0x0000]  # +/-inf
    return bits


def pair(bits: np.ndarray):
    """The same bits as a NumPy bfloat16 array and as a CPU torch bfloat16 tensor."""
    torch = pytest.importorskip("torch")
    return bits.view(BF16), torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16)


def narrow(name: str, seed: int = 0) -> np.ndarray:
    """A matrix of the ml_dtypes float type ``name`` holding -0.0 (where the type has one) and ties."""
    dt = np.dtype(getattr(ml_dtypes, name))
    x = (np.random.default_rng(seed).standard_normal(SHAPE) * 2).astype(dt)
    x[0, :4] = np.array([-0.0, 0.0, -0.0, 1.0]).astype(dt)
    x[1, :8] = np.ones(8, dt)
    return x


def wide(x: np.ndarray) -> np.ndarray:
    """The exact float32 values of a narrow float array."""
    return x.astype(np.float32)


# -- comparing NumPy bfloat16 results with torch's --------------------------------------------
def arrays_of(r) -> list:
    """The arrays a result holds, in a fixed order."""
    if isinstance(r, asp.PruningMask):
        return [r.mask]
    if isinstance(r, asp.SparseCompressionResult):
        return [*dict(r.arrays).values(), r.to_dense()]
    if isinstance(r, asp.ModelMask):
        return [m.mask for _, m in sorted(r.items())]
    if isinstance(r, dict):
        return [a for k in sorted(r) for a in arrays_of(r[k])]
    if isinstance(r, (tuple, list)):
        return [a for item in r for a in arrays_of(item)]
    return [r]


def same_bits(numpy_result, torch_result) -> None:
    """Every NumPy array equals the torch tensor at its place, dtype and bytes (bfloat16 stays
    bfloat16 on both sides)."""
    import torch

    got, want = arrays_of(numpy_result), arrays_of(torch_result)
    assert len(got) == len(want)
    for a, t in zip(got, want):
        assert isinstance(a, np.ndarray) and isinstance(t, torch.Tensor)
        assert tuple(a.shape) == tuple(t.shape)
        if t.dtype == torch.bfloat16:
            assert a.dtype == BF16
            t = t.contiguous().view(torch.int16)
        else:
            assert a.dtype == t.numpy().dtype
        assert a.tobytes() == t.contiguous().numpy().tobytes()


def flipped(x):
    """``x`` upside down, as a second array (gradients) of the same library."""
    return np.flip(x, 0) if isinstance(x, np.ndarray) else x.flip(0)


def ranked(scores):
    """Scores and the masks they give."""
    return scores, asp.topk_mask(scores, 0.3), asp.nm_mask(scores, 2, 4)


def two_four(x):
    return asp.nm_mask(x, 2, 4, magnitude=True).apply(x)


def applied_in_place(x):
    y = x.copy() if isinstance(x, np.ndarray) else x.clone()
    out = asp.topk_mask(x, 0.5, magnitude=True).apply_(y)
    assert out is y
    return y


def wanda(x):
    x = x[3:]  # finite rows: inf * 0 would make NaN scores
    s = asp.WandaPruning(pattern=asp.SparsityPattern.two_four())
    s.calibrate(x[:16])
    return s.prune(x)


def sparsegpt(x):
    x = x[3:]
    s = asp.SparseGPTPruning(block_size=16)
    s.calibrate(x[:, 32:])
    return s.prune(x[:, :32], 0.5)


BF16_CASES = {
    "magnitude_scores": lambda x: ranked(asp.magnitude_scores(x)),
    "gradient_scores": lambda x: ranked(asp.gradient_scores(x, flipped(x))),
    "structure_scores": lambda x: asp.structure_scores(x, 0),
    "structure_scores_l1": lambda x: asp.structure_scores(x, 1, ord=1),
    "block_scores": lambda x: asp.block_scores(x, (4, 4)),
    "topk_mask": lambda x: asp.topk_mask(x, 0.5),
    "topk_mask_magnitude": lambda x: asp.topk_mask(x, 0.3, magnitude=True),
    "topk_mask_transposed": lambda x: asp.topk_mask(x.T, 0.5, magnitude=True),
    "nm_mask_2_4": lambda x: asp.nm_mask(x, 2, 4),
    "nm_mask_4_8_axis0": lambda x: asp.nm_mask(x, 4, 8, axis=0, magnitude=True),
    "structured_mask": lambda x: asp.structured_mask(x, 0.25, axis=1),
    "block_mask": lambda x: asp.block_mask(x, 0.5, block=(4, 4)),
    "from_zeros": lambda x: asp.PruningMask.from_zeros(two_four(x), asp.SparsityPattern.two_four()),
    "apply": two_four,
    "apply_": applied_in_place,
    "MagnitudePruning": lambda x: asp.MagnitudePruning().prune(x, 0.5),
    "MagnitudePruning_2_4": lambda x: asp.MagnitudePruning(asp.SparsityPattern.two_four()).prune(x),
    "StructuredPruning": lambda x: asp.StructuredPruning(asp.SparsityPattern.rows(), ord=1).prune(x, 0.25),
    "GradientPruning": lambda x: asp.GradientPruning().prune(x, 0.5, gradients=flipped(x)),
    "WandaPruning": wanda,
    "SparseGPTPruning": sparsegpt,
    "global_mask": lambda x: asp.global_mask({"a": x, "b": x[:8] * 2}, 0.5, magnitude=True),
    "prune_model": lambda x: asp.prune_model({"a": x, "b": x[:8]}, 0.5),
    "prune_model_layer_2_4": lambda x: asp.prune_model(
        {"a": x, "b": x[:8]}, scope="layer", pattern=asp.SparsityPattern.two_four()
    ),
    **{
        f"compress_{fmt}": (lambda x, fmt=fmt, kw=kw: asp.compress(two_four(x), fmt, **kw))
        for fmt, kw in FORMATS
    },
    "to_cutlass": lambda x: asp.to_cutlass(two_four(x)),
    "from_cutlass": lambda x: asp.from_cutlass(*asp.to_cutlass(two_four(x))),
    "result_to_cutlass": lambda x: asp.compress(two_four(x), "2:4").to_cutlass(),
}


@pytest.mark.parametrize("case", list(BF16_CASES))
def test_bfloat16_numpy_equals_torch_bfloat16(case):
    """The issue's failure (nm_mask on a bfloat16 NumPy array raised NumPy's TypeError) and
    every other host job: results are NumPy arrays, bfloat16 where torch's are, equal bit for bit."""
    x, t = pair(bf16_bits())
    same_bits(BF16_CASES[case](x), BF16_CASES[case](t))


def test_bfloat16_cutlass_bytes_equal_torch_encoder():
    """to_cutlass on NumPy bfloat16 writes the bytes of torch's own CUTLASS encoder on the same
    bits (-0.0, NaN, inf included), straight or through a 2:4 result; from_cutlass decodes
    as torch's decoder does."""
    pytest.importorskip("torch")
    from torch.sparse._semi_structured_conversions import sparse_semi_structured_from_dense_cutlass

    from tests.test_cutlass import sparse_matrix, tbits, torch_decoded

    dense = sparse_matrix("bfloat16", SHAPE, np.random.default_rng(5), special=True)
    want_values, want_meta = sparse_semi_structured_from_dense_cutlass(dense)
    x = tbits(dense).view(BF16)
    values, meta = asp.to_cutlass(x)
    assert values.dtype == BF16 and meta.dtype == np.int16
    assert values.view(np.int16).tobytes() == tbits(want_values).tobytes()
    assert meta.tobytes() == want_meta.numpy().tobytes()
    back = asp.from_cutlass(values, meta)
    assert back.dtype == BF16
    np.testing.assert_array_equal(back.view(np.int16), torch_decoded(want_values, want_meta, dense))
    # through a 2:4 result: -0.0 at a dropped slot is a zero, as torch's encoder reads it
    values, meta = asp.compress(x, "2:4").to_cutlass()
    assert values.dtype == BF16
    assert values.view(np.int16).tobytes() == tbits(want_values).tobytes()
    assert meta.tobytes() == want_meta.numpy().tobytes()


def test_bfloat16_read_only_input_is_read_in_place():
    """A read-only bfloat16 array is compressed and ranked without being written or refused."""
    bits = bf16_bits()
    x = bits.view(BF16)
    x.flags.writeable = False
    r = asp.compress(two_four(x), "csr")
    assert r.data.dtype == BF16
    assert asp.topk_mask(x, 0.5).num_pruned == x.size // 2
    with pytest.raises(ValueError, match="read-only"):
        asp.topk_mask(x, 0.5).apply_(x)
    np.testing.assert_array_equal(x.view(np.uint16), bf16_bits())


def test_bridge_views_bfloat16_bits_without_a_copy():
    """The formats read a NumPy bfloat16 array's own memory as uint16 and hand bfloat16 back;
    ranking reads its exact float32 widening."""
    from arraysparse._backends import bridge

    x = bf16_bits().view(BF16)[:, ::2]  # strided: a view still
    bits = bridge.host_view(x)
    assert bits.dtype == np.uint16 and np.shares_memory(bits, x)
    np.testing.assert_array_equal(bridge.host_view(x, widen=True), x.astype(np.float32))
    h = bridge.Host.of(x)
    assert h.is_float and h.nonzero_bits == 0x7FFF
    back = h.wrap_values(np.ascontiguousarray(h.values))
    assert back.dtype == BF16 and back.tobytes() == np.ascontiguousarray(x).tobytes()


# -- float8 (and float6 / float4) ------------------------------------------------------------
@pytest.mark.parametrize("name", NARROW)
def test_narrow_float_masks_rank_the_exact_values(name):
    """Masks of a float8 array are those of its exact float32 values; scores keep its dtype."""
    x = narrow(name)
    f = wide(x)
    np.testing.assert_array_equal(asp.topk_mask(x, 0.5).mask, asp.topk_mask(f, 0.5).mask)
    np.testing.assert_array_equal(asp.topk_mask(x, 0.3, magnitude=True).mask, asp.topk_mask(f, 0.3, magnitude=True).mask)
    np.testing.assert_array_equal(asp.nm_mask(x, 2, 4).mask, asp.nm_mask(f, 2, 4).mask)
    np.testing.assert_array_equal(asp.nm_mask(x, 4, 8, magnitude=True).mask, asp.nm_mask(f, 4, 8, magnitude=True).mask)
    mm = asp.global_mask({"a": x, "b": x[:8]}, 0.5, magnitude=True)
    mf = asp.global_mask({"a": f, "b": f[:8]}, 0.5, magnitude=True)
    for (_, a), (_, b) in zip(sorted(mm.items()), sorted(mf.items())):
        np.testing.assert_array_equal(a.mask, b.mask)
    scores = asp.structure_scores(x, 0)
    assert scores.dtype == x.dtype  # float64 norms of the exact values, rounded once to the dtype
    assert scores.tobytes() == asp.structure_scores(f, 0).astype(x.dtype).tobytes()
    pruned = asp.MagnitudePruning().prune(x, 0.5)[0]
    assert pruned.dtype == x.dtype
    np.testing.assert_array_equal(wide(pruned), asp.MagnitudePruning().prune(f, 0.5)[0])


@pytest.mark.parametrize("name", NARROW)
@pytest.mark.parametrize(("fmt", "kw"), FORMATS)
def test_narrow_float_formats_move_bits(name, fmt, kw):
    """Every format stores a float8 array's own bits and decodes them back in its dtype; the
    non-zeros are those of the float32 values (-0.0 is zero)."""
    x = narrow(name)
    y = two_four(x)
    f = wide(y)
    r = asp.compress(y, fmt, **kw)
    rf = asp.compress(f, fmt, **kw)
    assert r.nnz == rf.nnz
    for (key, a), (_, b) in zip(sorted(dict(r.arrays).items()), sorted(dict(rf.arrays).items())):
        if b.dtype == np.float32:  # values: the float32 result's, in the narrow type's bits
            assert a.dtype == x.dtype, key
            assert a.tobytes() == b.astype(x.dtype).tobytes(), key
        else:
            np.testing.assert_array_equal(a, b, err_msg=key)
    dense = r.to_dense()
    assert dense.dtype == x.dtype
    assert dense.tobytes() == rf.to_dense().astype(x.dtype).tobytes()
    out = np.empty_like(y)
    assert r.to_dense(out=out) is out and out.tobytes() == dense.tobytes()


@pytest.mark.parametrize("name", NARROW)
def test_narrow_float_zero_test_follows_the_type(name):
    """-0.0 is a zero where the type has one; in the fnuz types 0x80 is NaN, so it is kept."""
    dt = np.dtype(getattr(ml_dtypes, name))
    info = _compat.ml_dtype(dt)
    minus_zero = int(np.array(-0.0).astype(dt).view(np.uint8))
    sign = int(np.array(-1.0).astype(dt).view(np.uint8)) ^ int(np.array(1.0).astype(dt).view(np.uint8))
    bits = np.zeros((1, 8), np.uint8)
    bits[0, :2] = [sign, int(np.array(2.0).astype(dt).view(np.uint8))]
    x = bits.view(dt)
    r = asp.compress(x, "csr")
    has_negative_zero = minus_zero == sign
    assert info.nonzero_bits & sign == (0 if has_negative_zero else sign)
    assert r.nnz == (1 if has_negative_zero else 2)  # the sign bit alone: -0.0, or fnuz's NaN
    assert r.to_dense().view(np.uint8)[0, 1] == bits[0, 1]
    if not has_negative_zero:
        assert np.isnan(wide(x)[0, 0])
        assert r.to_dense().view(np.uint8)[0, 0] == sign
    np.testing.assert_array_equal(asp.PruningMask.from_zeros(x).mask, wide(x) != 0)


@pytest.mark.parametrize("name", ["bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2"])
def test_nan_scores_raise_with_their_count(name):
    """The documented rule: NaN scores raise ValueError with their count."""
    dt = np.dtype(getattr(ml_dtypes, name))
    x = np.ones(SHAPE, np.float32)
    x[3, 5] = x[7, 0] = x[9, 9] = np.nan
    x = x.astype(dt)
    for call in (
        lambda: asp.topk_mask(x, 0.5),
        lambda: asp.nm_mask(x, 2, 4),
        lambda: asp.global_mask({"w": x}, 0.5),
    ):
        with pytest.raises(ValueError, match="3 NaN"):
            call()


def test_a_type_without_zero_ranks_but_refuses_to_write_zeros():
    """float8_e8m0fnu (powers of two, no zero: 0.0 becomes NaN) ranks exactly; zeroing it,
    storing it sparsely or SparseGPT on it raises TypeError naming the dtype."""
    if not hasattr(ml_dtypes, "float8_e8m0fnu"):
        pytest.skip("ml_dtypes has no float8_e8m0fnu")
    dt = np.dtype(ml_dtypes.float8_e8m0fnu)
    x = np.abs(np.random.default_rng(3).standard_normal(SHAPE)).astype(dt)
    np.testing.assert_array_equal(asp.nm_mask(x, 2, 4).mask, asp.nm_mask(wide(x), 2, 4).mask)
    mask = asp.topk_mask(x, 0.5)
    np.testing.assert_array_equal(mask.mask, asp.topk_mask(wide(x), 0.5).mask)
    for call in (
        lambda: mask.apply(x),
        lambda: mask.apply_(x.copy()),
        lambda: asp.compress(x, "csr"),
        lambda: asp.sparsegpt_prune(x[:, :32], np.eye(32, dtype=np.float32), 0.5),
    ):
        with pytest.raises(TypeError, match="float8_e8m0fnu, which has no zero"):
            call()


@pytest.mark.parametrize("name", ["int4", "uint4", "int2"])
def test_narrow_integers_rank_as_8_bit_integers(name):
    """int4 and its kin widen exactly to int8 / uint8 to rank, and move as their bytes."""
    if not hasattr(ml_dtypes, name):
        pytest.skip(f"ml_dtypes has no {name}")
    dt = np.dtype(getattr(ml_dtypes, name))
    info = ml_dtypes.iinfo(dt)
    x = np.random.default_rng(4).integers(int(info.min), int(info.max) + 1, SHAPE).astype(dt)
    w = x.astype(np.int8 if int(info.min) < 0 else np.uint8)
    np.testing.assert_array_equal(asp.topk_mask(x, 0.5, magnitude=True).mask, asp.topk_mask(w, 0.5, magnitude=True).mask)
    np.testing.assert_array_equal(asp.nm_mask(x, 2, 4).mask, asp.nm_mask(w, 2, 4).mask)
    y = asp.nm_mask(x, 2, 4, magnitude=True).apply(x)
    r = asp.compress(y, "csr")
    assert r.data.dtype == dt and r.nnz == np.count_nonzero(y.astype(np.int8))
    assert r.to_dense().tobytes() == y.tobytes()


# -- dtypes and interop ----------------------------------------------------------------------
def test_isdtype_answers_for_ml_dtypes():
    """NumPy's isdtype raises for these dtypes; arraysparse's answers as JAX does."""
    import array_api_compat.numpy as xp

    assert _compat.isdtype(xp, BF16, "real floating")
    assert _compat.isdtype(xp, BF16, ("integral", "real floating"))
    assert not _compat.isdtype(xp, BF16, "complex floating")
    assert not _compat.isdtype(xp, BF16, "integral")
    int4 = np.dtype(ml_dtypes.int4)
    assert _compat.isdtype(xp, int4, "signed integer") and not _compat.isdtype(xp, int4, "real floating")
    assert _compat.ml_dtype(np.dtype(np.float32)) is None


def test_interop_with_torch_and_scipy():
    """to_torch carries bfloat16 (and float8) results as torch's own dtype, same bits; scipy has
    neither, which to_scipy says instead of failing inside scipy."""
    torch = pytest.importorskip("torch")
    x, t = pair(bf16_bits())
    r = asp.compress(two_four(x), "csr")
    ts = asp.to_torch(r)
    assert ts.dtype == torch.bfloat16
    same_bits(r.to_dense(), ts.to_dense())
    with pytest.raises(TypeError, match="scipy.sparse has no bfloat16"):
        asp.to_scipy(r)
    y = narrow("float8_e4m3fn")
    t8 = asp.to_torch(asp.compress(y, "coo"))
    assert t8.dtype == torch.float8_e4m3fn
    assert t8._values().view(torch.uint8).numpy().tobytes() == asp.compress(y, "coo").data.tobytes()
    if "float6_e2m3fn" in NARROW:
        with pytest.raises(TypeError, match="torch has no float6_e2m3fn"):
            asp.to_torch(asp.compress(narrow("float6_e2m3fn"), "csr"))
