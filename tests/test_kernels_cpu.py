"""The Numba CPU kernels agree with the standard-only reference.

Every job runs through the dispatch in :mod:`arraysparse._backends` on NumPy
inputs (so the Numba kernels run) and is compared with
:mod:`arraysparse._backends.reference` on the same arrays. The laws: exactly
the requested count is pruned; ties prune the lower index first (flat C order,
or position in the group); -0.0 ranks equal to +0.0; +/-inf are ordinary;
NaN raises ``ValueError`` naming its count; with ``magnitude=True`` |MIN| of a
signed integer is the largest magnitude; inputs are never written.
"""

from __future__ import annotations

import math

import array_api_compat.numpy as xp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import arraysparse as asp
from arraysparse import _backends
from arraysparse._backends import reference
from tests.backends import to_numpy

FLOATS = [np.float16, np.float32, np.float64]
SIGNED = [np.int8, np.int16, np.int32, np.int64]
UNSIGNED = [np.uint8, np.uint16, np.uint32, np.uint64]
ALL_DTYPES = FLOATS + SIGNED + UNSIGNED
KINDS = ["random", "ties", "special"]
LARGE = 300_007  # several radix chunks (32768 keys each) at every level
HUGE = (1 << 20) + 3  # large enough for the sampled bracket ahead of the radix select
NAN_BITS = {
    np.float16: [0x7E00, 0xFE00, 0x7C01, 0x7FFF],
    np.float32: [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF],
    np.float64: [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FFFFFFFFFFFFFFF],
}


def param_id(p) -> str:
    """Test id of a parameter: a dtype's name, anything else as str."""
    return np.dtype(p).name if isinstance(p, type) else str(p)


def special_values(dtype) -> list:
    """Edge values: signed zeros, infinities, extremes, subnormals; or the integer limits."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        fi = np.finfo(dt)
        tiny = float(fi.smallest_subnormal)
        return [-np.inf, np.inf, -0.0, 0.0, float(fi.max), -float(fi.max), tiny, -tiny, 1.0, -1.0]
    ii = np.iinfo(dt)
    signed = {-1, ii.min + 1} if dt.kind == "i" else set()
    return sorted({ii.min, ii.max, ii.max - 1, 0, 1} | signed)


def make_scores(rng: np.random.Generator, dtype, kind: str, shape) -> np.ndarray:
    """``random``: spread over the dtype; ``sorted``: the same, ascending; ``ties``: a handful
    of values (both zeros for floats); ``narrow``: values sharing their top key bits;
    ``special``: edge values."""
    dt = np.dtype(dtype)
    if kind == "sorted":
        return np.sort(make_scores(rng, dtype, "random", shape), axis=None).reshape(shape)
    if kind == "ties":
        pools = {"f": [-2.0, -1.0, -0.0, 0.0, 1.0, 2.0], "u": [0, 1, 2], "i": [-2, -1, 0, 1, 2]}
        return rng.choice(np.array(pools[dt.kind], dt), size=shape)
    if kind == "special":
        return rng.choice(np.array(special_values(dt), dt), size=shape)
    if kind == "narrow":
        values = 1 + rng.random(shape) if dt.kind == "f" else rng.integers(0, 1000, shape)
        return values.astype(dt)
    if dt.kind == "f":
        return (100 * rng.standard_normal(shape)).astype(dt)
    ii = np.iinfo(dt)
    return rng.integers(ii.min, ii.max, size=shape, dtype=dt, endpoint=True)


def with_nans(rng: np.random.Generator, dtype, shape, count: int) -> np.ndarray:
    """Random scores with ``count`` NaNs of assorted bit patterns (quiet, signalling, negative)."""
    x = make_scores(rng, dtype, "random", shape)
    bits = x.view(np.dtype(f"u{np.dtype(dtype).itemsize}")).reshape(-1)
    where = rng.choice(x.size, count, replace=False)
    bits[where] = rng.choice(np.array(NAN_BITS[dtype], bits.dtype), count)
    return x


def counts(rng: np.random.Generator, size: int) -> list[int]:
    """Prune counts 0, 1, size - 1, size and one at random, those that fit."""
    return sorted({0, 1, size - 1, size, int(rng.integers(0, size + 1))} & set(range(size + 1)))


def oracle_input(x: np.ndarray, magnitude: bool) -> tuple[np.ndarray, bool]:
    """``(values, magnitude)`` for the reference that rank exactly as ``x`` should.

    The reference saturates |int64 MIN| to int64 MAX (see
    ``test_reference_int64_min_magnitude``); Python ints give the exact
    magnitudes, which uint64 holds.
    """
    if magnitude and x.dtype == np.int64:
        return np.array([abs(int(v)) for v in x.ravel()], np.uint64).reshape(x.shape), False
    return x, magnitude


def topk(x, k: int, magnitude: bool):
    return _backends.topk_keep(xp, x, k, magnitude=magnitude, name="scores")


def nm(x, n: int, m: int, axis: int, magnitude: bool):
    return _backends.nm_keep(xp, x, n, m, axis, magnitude=magnitude, name="scores")


def check_topk(x: np.ndarray, ks, magnitude: bool) -> None:
    """For each k: the kernel's mask is the reference's, prunes exactly k, and x is untouched."""
    before = x.tobytes()
    values, mag = oracle_input(x, magnitude)
    for k in ks:
        got = topk(x, k, magnitude)
        assert got.dtype == np.bool_
        assert got.shape == x.shape
        np.testing.assert_array_equal(got, reference.topk_keep(xp, values, k, mag), err_msg=f"k={k}")
        assert got.size - np.count_nonzero(got) == k
    assert x.tobytes() == before


def check_nm(x: np.ndarray, ns, m: int, axis: int, magnitude: bool) -> None:
    """For each n: the kernel's mask is the reference's, with n zeros in every group, x untouched."""
    before = x.tobytes()
    values, mag = oracle_input(x, magnitude)
    for n in ns:
        got = nm(x, n, m, axis, magnitude)
        assert got.dtype == np.bool_
        assert got.shape == x.shape
        msg = f"n={n} m={m} axis={axis} magnitude={magnitude}"
        np.testing.assert_array_equal(got, reference.nm_keep(xp, values, n, m, axis, mag), err_msg=msg)
        zeros = np.moveaxis(~got, axis, -1).reshape(-1, m).sum(axis=1)
        assert (zeros == n).all(), msg
    assert x.tobytes() == before


def mask_from_order(size: int, order: list[int], k: int) -> np.ndarray:
    """Keep-mask pruning the first ``k`` indices of ``order``."""
    keep = np.ones(size, bool)
    keep[order[:k]] = False
    return keep


# -- top-k ------------------------------------------------------------------------


@pytest.mark.parametrize("magnitude", [False, True])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=param_id)
def test_topk_matches_reference(dtype, kind, magnitude):
    """Every dtype, size 0 to a few hundred, counts 0, 1, size-1, size: the reference's mask."""
    rng = np.random.default_rng(0)
    for shape in [(0,), (2, 0, 3), (), (1,), (7,), (13, 17), (4, 5, 6)]:
        x = make_scores(rng, dtype, kind, shape)
        check_topk(x, counts(rng, x.size), magnitude)


@pytest.mark.parametrize(
    ("dtype", "kind"),
    [
        (np.float16, "special"),
        (np.float32, "narrow"),
        (np.float64, "ties"),
        (np.uint8, "random"),
        (np.int64, "special"),
        (np.int64, "narrow"),
    ],
    ids=param_id,
)
def test_topk_large_matches_reference(dtype, kind):
    """Below the sampling size but several chunks, long candidate lists over several radix
    levels: the reference's mask, both orders."""
    rng = np.random.default_rng(1)
    x = make_scores(rng, dtype, kind, (LARGE,))
    for magnitude in (False, True):
        check_topk(x, [1, LARGE // 3, LARGE - 1], magnitude)


@pytest.mark.parametrize(
    ("dtype", "kind", "magnitude"),
    [
        (np.float32, "random", False),  # the bracket holds the k-th key
        (np.float64, "random", True),
        (np.int32, "random", True),
        (np.int64, "random", False),  # the kernels are compiled per key kind and magnitude flag:
        (np.uint32, "random", False),  # every kind passes through the bracket
        (np.int32, "narrow", False),  # ~1000 copies of each value: tied candidates in every chunk
        (np.float64, "sorted", False),  # bracketed keys crowd one chunk: buffer overflow, radix
        (np.uint8, "ties", True),  # the bracket spans most of the sample: radix
    ],
    ids=param_id,
)
def test_topk_huge_matches_reference(dtype, kind, magnitude):
    """At 2**20 keys and more a sampled bracket runs first, with the radix select as fallback:
    the reference's mask at both ends (k = 1, size - 1) and in between."""
    rng = np.random.default_rng(11)
    check_topk(make_scores(rng, dtype, kind, (HUGE,)), [1, HUGE // 3, HUGE - 1], magnitude)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.int64, np.uint64], ids=param_id)
def test_topk_all_equal_prunes_lowest_flat_indices(dtype):
    """All scores equal (every radix level runs: 3 for 32-bit keys, 6 for 64-bit): the
    first k indices in flat C order of the array as given are pruned, even for a transposed view."""
    value = 3 if np.dtype(dtype).kind == "u" else -3
    base = np.full((601, 503), value, dtype)
    for x in (base, base.T):
        flat_index = np.arange(x.size).reshape(x.shape)
        for k in (0, 1, 12_345, x.size - 1, x.size):
            for magnitude in (False, True):
                np.testing.assert_array_equal(topk(x, k, magnitude), flat_index >= k)


@pytest.mark.parametrize("dtype", FLOATS, ids=param_id)
def test_topk_negative_zero_ranks_equal_to_zero(dtype):
    """-0.0 and +0.0 tie: the lower index is pruned first whatever its sign."""
    x = np.array([0.0, -0.0, 0.0, -0.0, -0.0, 0.0], dtype)
    for k in range(x.size + 1):
        for magnitude in (False, True):
            np.testing.assert_array_equal(topk(x, k, magnitude), np.arange(x.size) >= k)


@pytest.mark.parametrize("dtype", FLOATS, ids=param_id)
def test_topk_infinities_are_ordinary_values(dtype):
    """-inf goes first and +inf last; by magnitude both are largest and tie by index."""
    x = np.array([np.inf, 1.0, -np.inf, 0.0, -1.0, np.inf, -np.inf], dtype)
    by_value = [2, 6, 4, 3, 1, 0, 5]
    by_magnitude = [3, 1, 4, 0, 2, 5, 6]
    for k in range(x.size + 1):
        np.testing.assert_array_equal(topk(x, k, False), mask_from_order(x.size, by_value, k))
        np.testing.assert_array_equal(topk(x, k, True), mask_from_order(x.size, by_magnitude, k))


@pytest.mark.parametrize("dtype", SIGNED, ids=param_id)
def test_topk_signed_min_is_the_largest_magnitude(dtype):
    """|MIN| exceeds MAX (no overflow) with magnitude=True; MIN is the smallest value without."""
    ii = np.iinfo(dtype)
    x = np.array([ii.min, ii.max, -ii.max, 0, ii.min], dtype)
    by_value = [0, 4, 2, 3, 1]
    by_magnitude = [3, 1, 2, 0, 4]
    for k in range(x.size + 1):
        np.testing.assert_array_equal(topk(x, k, False), mask_from_order(x.size, by_value, k))
        np.testing.assert_array_equal(topk(x, k, True), mask_from_order(x.size, by_magnitude, k))


@pytest.mark.parametrize("dtype", [np.float16, np.int16, np.float64], ids=param_id)
def test_topk_noncontiguous_readonly_views(dtype):
    """Transposed, strided, reversed and read-only views: the reference's mask of the view;
    neither the view nor its base is written."""
    rng = np.random.default_rng(2)
    base = make_scores(rng, dtype, "ties", (40, 60))
    base.flags.writeable = False
    original = base.copy()
    views = [base, base.T, base[:, ::3], base[::-2, 1::2], np.moveaxis(base.reshape(4, 10, 60), 0, 2)]
    for x in views:
        for magnitude in (False, True):
            check_topk(x, counts(rng, x.size), magnitude)
    big = make_scores(rng, dtype, "ties", (500, 700))
    big.flags.writeable = False
    check_topk(big.T[::-1], [big.size // 2], magnitude=True)
    np.testing.assert_array_equal(base, original)


@pytest.mark.parametrize("size", [1, 10, LARGE, HUGE])
@pytest.mark.parametrize("dtype", FLOATS, ids=param_id)
def test_topk_nan_raises_with_count(dtype, size):
    """Any NaN bit pattern raises ValueError naming the NaN count, for every k and both
    orders, on the radix and the sampled-bracket paths."""
    rng = np.random.default_rng(3)
    n_nan = min(size, 5)
    x = with_nans(rng, dtype, (size,), n_nan)
    for k in {0, 1, size // 2, size}:
        for magnitude in (False, True):
            with pytest.raises(ValueError, match=rf"^scores contains {n_nan} NaN value"):
                topk(x, k, magnitude)


def test_topk_huge_bracket_on_one_repeated_value():
    """A value repeated in 10% of the keys sits at the k-th rank: the sampled bracket
    collapses onto it (lo == hi) while holding under a quarter of the keys, so the gathered
    candidates are all equal and the lowest indices among them are pruned."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal(HUGE).astype(np.float32)
    x[rng.random(HUGE) < 0.1] = 0.25
    k = int(np.count_nonzero(x < 0.25)) + HUGE // 20  # the middle of the run of 0.25s
    check_topk(x, [k], magnitude=False)
    x[rng.random(HUGE) < 0.5] *= -1  # magnitudes: +0.25 and -0.25 tie
    check_topk(x, [int(np.count_nonzero(np.abs(x) < 0.25)) + HUGE // 20], magnitude=True)


@pytest.mark.parametrize("kind", KINDS)
def test_topk_torch_bfloat16_matches_reference(kind):
    """CPU bfloat16 tensors (contiguous or not) through topk_mask: a bool tensor equal to the
    reference's mask of their exact float32 values."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    t = torch.from_numpy(make_scores(rng, np.float32, kind, (33, 31))).to(torch.bfloat16)
    for view in (t, t.T, t[::2, 1::3]):
        exact = view.float().numpy()
        for k in counts(rng, exact.size):
            for magnitude in (False, True):
                got = asp.topk_mask(view, k, magnitude=magnitude).mask
                assert isinstance(got, torch.Tensor)
                assert got.dtype == torch.bool
                np.testing.assert_array_equal(got.numpy(), reference.topk_keep(xp, exact, k, magnitude))


def test_topk_torch_bfloat16_large_and_nan():
    """A large tied bfloat16 tensor matches the reference; bfloat16 NaNs raise with their count."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    t = torch.from_numpy(make_scores(rng, np.float32, "ties", (LARGE,))).to(torch.bfloat16)
    got = asp.topk_mask(t, LARGE // 2, magnitude=True).mask.numpy()
    np.testing.assert_array_equal(got, reference.topk_keep(xp, t.float().numpy(), LARGE // 2, True))
    t[[3, 70_000, LARGE - 1]] = float("nan")
    with pytest.raises(ValueError, match=r"^scores contains 3 NaN value"):
        asp.topk_mask(t, 10)


# -- N:M --------------------------------------------------------------------------

M_ALL = [1, 2, 3, 4, 5, 8, 16, 32, 100, 256]


def group_counts(rng: np.random.Generator, m: int) -> list[int]:
    """Every n for small m, else 0, 1, 2, m/2, m-1, m and two at random."""
    if m <= 8:
        return list(range(m + 1))
    return sorted({0, 1, 2, m // 2, m - 1, m, *rng.integers(0, m + 1, 2).tolist()})


def nm_cases(rng: np.random.Generator, dtype, kind: str, m: int):
    """``(x, axis)`` with groups along the first, middle and last axis of 3-D arrays
    (short and long rows), and along both axes of a 2-D array with 70 rows."""
    length = 2 * m
    shapes = [(length, 3, 2), (2, length, 3), (3, 2, length), (70, length), (length, 70)]
    for shape, axis in zip(shapes, [0, 1, 2, 1, 0]):
        yield make_scores(rng, dtype, kind, shape), axis


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("m", M_ALL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=param_id)
def test_nm_matches_reference(dtype, m, kind):
    """Every m, n from 0 to m, groups along any axis: the reference's mask, n zeros per group."""
    rng = np.random.default_rng(6)
    for x, axis in nm_cases(rng, dtype, kind, m):
        for magnitude in (False, True):
            check_nm(x, group_counts(rng, m), m, axis, magnitude)


@pytest.mark.parametrize("kind", ["random", "ties", "special"])
@pytest.mark.parametrize("m", [4, 5, 16])
@pytest.mark.parametrize("dtype", [np.float16, *SIGNED, *UNSIGNED], ids=param_id)
def test_nm_other_dtypes_match_reference(dtype, m, kind):
    """float16 and every integer dtype (limits included, |MIN| largest) in the rank
    kernel (m=4), the quickselect (m=5) and the transposed tiles (m=16): the reference's mask."""
    rng = np.random.default_rng(7)
    for x, axis in nm_cases(rng, dtype, kind, m):
        for magnitude in (False, True):
            check_nm(x, range(m + 1), m, axis, magnitude)


@pytest.mark.parametrize("m", [2, 3, 4, 8, 16])
def test_nm_all_equal_prunes_first_positions(m):
    """All scores equal: the first n positions of every group are pruned."""
    x = np.full((3, 4 * m, 5), -1.5)
    position = (np.arange(4 * m) % m)[None, :, None]
    for n in range(m + 1):
        for magnitude in (False, True):
            want = np.broadcast_to(position >= n, x.shape)
            np.testing.assert_array_equal(nm(x, n, m, 1, magnitude), want)


@pytest.mark.parametrize("m", [16, 32])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32], ids=param_id)
def test_nm_tiles_mix_tied_and_tie_free_groups(dtype, m):
    """Transposed tiles of 16 groups where a few groups hold equal keys (they take the
    quickselect, the others the counts), lane counts that leave a short last tile, groups
    along the last and a middle axis: the reference's mask, n zeros per group."""
    rng = np.random.default_rng(12)
    for shape, axis in [((37, 3 * m), 1), ((5, m, 7), 1), ((2 * m, 19), 0)]:
        x = rng.permutation(np.arange(int(np.prod(shape)))).astype(dtype).reshape(shape)
        x -= x.size // 2  # distinct values of both signs, so magnitudes tie in pairs
        moved = np.moveaxis(x, axis, -1)
        groups = moved.reshape(-1, m)
        for g in rng.choice(groups.shape[0], 4, replace=False):
            j, t = rng.choice(m, 2, replace=False)
            groups[g, j] = groups[g, t]  # a tie inside this group only
        x = np.ascontiguousarray(np.moveaxis(groups.reshape(moved.shape), -1, axis))
        for magnitude in (False, True):
            check_nm(x, group_counts(rng, m), m, axis, magnitude)


@pytest.mark.parametrize("m", [2, 3, 4, 8, 16, 100])
@pytest.mark.parametrize("dtype", FLOATS, ids=param_id)
def test_nm_nan_raises_with_count(dtype, m):
    """NaNs raise ValueError naming their count, on every path: n == 0, n == m, rank, quickselect."""
    rng = np.random.default_rng(8)
    x = with_nans(rng, dtype, (m, 2 * m, 3 * m), 4)
    for n in {0, 1, m - 1, m}:
        for axis in range(3):
            for magnitude in (False, True):
                with pytest.raises(ValueError, match=r"^scores contains 4 NaN value"):
                    nm(x, n, m, axis, magnitude)


@pytest.mark.parametrize("m", [4, 5, 32])
def test_nm_noncontiguous_readonly_views(m):
    """Strided, reversed and transposed read-only views, groups along either axis (the rank
    kernel for m=4, the quickselect for m=5, the transposed tiles for m=32): the reference's
    mask; nothing written."""
    rng = np.random.default_rng(9)
    base = make_scores(rng, np.float64, "ties", (6 * m, 4 * m))
    base.flags.writeable = False
    original = base.copy()
    moved = np.moveaxis(base.reshape(6, m, 4 * m), 1, 2)
    views = [base[::2], base[::2], base[1::3, ::-1], base[1::3, ::-1], moved, moved]
    for x, axis in zip(views, [0, 1, 0, 1, 1, 2]):
        for magnitude in (False, True):
            check_nm(x, range(m + 1), m, axis, magnitude)
    np.testing.assert_array_equal(base, original)


# -- norms ------------------------------------------------------------------------

ORDS = [1.0, 2.0, 3.0, 0.5, math.inf]
NORM_DTYPES = [np.float32, np.float64, np.int32]


def norm_data(dtype, shape) -> np.ndarray:
    """Signed data with some exact zeros."""
    rng = np.random.default_rng(10)
    if np.dtype(dtype).kind == "f":
        x = rng.standard_normal(shape).astype(dtype)
    else:
        x = rng.integers(-1000, 1000, shape, dtype=dtype)
    x[rng.random(shape) < 0.1] = 0
    return x


def assert_norms_match(got: np.ndarray, want: np.ndarray, dtype) -> None:
    """Same shape, the result float dtype of ``dtype``, values within float tolerance."""
    float_dtype = np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float64)
    assert got.dtype == float_dtype
    assert got.shape == want.shape
    rtol = {np.dtype(np.float16): 1e-2, np.dtype(np.float32): 1e-5}.get(float_dtype, 1e-6)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


def check_slice_norms(x: np.ndarray, axis: int, ord: float) -> np.ndarray:
    """The kernel's slice norms match the reference's; the dispatch takes the normalised
    axis that structure_scores passes it."""
    got = _backends.slice_norms(xp, x, axis % x.ndim, ord)
    assert_norms_match(got, reference.slice_norms(xp, x, axis, ord), x.dtype)
    return got


def check_block_norms(x: np.ndarray, block: tuple[int, ...], ord: float) -> None:
    """The kernel's block norms match the reference's."""
    got = _backends.block_norms(xp, x, block, ord)
    assert_norms_match(got, reference.block_norms(xp, x, block, ord), x.dtype)


@pytest.mark.parametrize("ord", ORDS)
@pytest.mark.parametrize("dtype", NORM_DTYPES, ids=param_id)
@pytest.mark.parametrize(
    ("shape", "axis"),
    [((37, 23), axis) for axis in (0, 1, -1)] + [((6, 5, 4, 3), axis) for axis in (0, 1, -1)],
)
def test_slice_norms_match_reference(shape, axis, dtype, ord):
    """Lp norm of every slice along an axis (by slice and by row chunks): the reference's
    values, and what structure_scores returns."""
    x = norm_data(dtype, shape)
    got = check_slice_norms(x, axis, ord)
    np.testing.assert_array_equal(asp.structure_scores(x, axis, ord=ord), got)


@pytest.mark.parametrize("ord", ORDS)
@pytest.mark.parametrize("dtype", NORM_DTYPES, ids=param_id)
@pytest.mark.parametrize(
    ("shape", "block"),
    [
        ((12,), (3,)),
        ((5, 12), (4,)),
        ((6, 12), (2, 3)),
        ((3, 4, 6, 9), (2, 3)),
        ((8, 8), (1, 1)),
        ((6, 9), (6, 9)),
        ((4, 6, 6), (2, 3, 2)),
        ((2, 4, 6, 6), (1, 3, 6)),
    ],
)
def test_block_norms_match_reference(shape, block, dtype, ord):
    """Lp norm of every tile of 1-, 2- (kernel) and 3-D (reference) blocks: the reference's values."""
    check_block_norms(norm_data(dtype, shape), block, ord)


@pytest.mark.parametrize("dtype", [np.float16, *NORM_DTYPES], ids=param_id)
def test_norms_result_dtype_and_empty(dtype):
    """Floats keep their dtype and integers get float64, for full and empty inputs alike."""
    want = np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float64)
    x = norm_data(dtype, (4, 6))
    check_slice_norms(x, 1, 2.0)
    check_block_norms(x, (2, 3), 2.0)
    for shape, axis, out in [((0, 3), 0, (0,)), ((0, 3), 1, (3,))]:
        got = _backends.slice_norms(xp, np.zeros(shape, dtype), axis, 2.0)
        assert got.dtype == want
        np.testing.assert_array_equal(got, np.zeros(out))
    got = _backends.block_norms(xp, np.zeros((0, 6), dtype), (2, 3), 2.0)
    assert got.dtype == want
    assert got.shape == (0, 2)


def test_norms_noncontiguous_readonly():
    """Strided, reversed and transposed read-only views: the reference's norms; nothing written."""
    base = norm_data(np.float64, (12, 18, 6))
    base.flags.writeable = False
    original = base.copy()
    for x in (base[:, ::3], np.moveaxis(base[::-2, :, 1:5], 0, 1)):
        for axis in range(3):
            check_slice_norms(x, axis, 3.0)
        check_block_norms(x, (2, 2), 2.0)
    np.testing.assert_array_equal(base, original)


def test_norms_of_integer_min_are_exact():
    """int32 MIN contributes |MIN| = 2**31 to every norm (no overflow)."""
    lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    x = np.array([[lo, 1], [hi, -1]], np.int32)
    want = {
        1.0: [2.0**31 + 1, 2.0**31],
        2.0: [math.hypot(2.0**31, 1), math.hypot(hi, 1)],
        0.5: [(2.0**15.5 + 1) ** 2, (math.sqrt(hi) + 1) ** 2],
        math.inf: [2.0**31, hi],
    }
    for ord, rows in want.items():
        np.testing.assert_allclose(_backends.slice_norms(xp, x, 0, ord), rows, rtol=1e-12)
        np.testing.assert_allclose(_backends.block_norms(xp, x, (2,), ord)[:, 0], rows, rtol=1e-12)


# -- property tests ---------------------------------------------------------------

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7)


@settings(deadline=None)
@given(
    x=hnp.arrays(
        dtype=hnp.floating_dtypes(endianness="=", sizes=(16, 32, 64)),
        shape=SHAPES,
        elements={"allow_nan": False},
    ),
    magnitude=st.booleans(),
    data=st.data(),
)
def test_topk_property_floats(x, magnitude, data):
    """Arbitrary NaN-free floats (infinities, signed zeros, subnormals): the reference's mask."""
    check_topk(x, [data.draw(st.integers(0, x.size), label="k")], magnitude)


@settings(deadline=None)
@given(
    x=hnp.arrays(
        dtype=hnp.integer_dtypes(endianness="=") | hnp.unsigned_integer_dtypes(endianness="="), shape=SHAPES
    ),
    magnitude=st.booleans(),
    data=st.data(),
)
def test_topk_property_integers(x, magnitude, data):
    """Arbitrary integers of any width and sign: the exact-magnitude oracle's mask, k pruned."""
    check_topk(x, [data.draw(st.integers(0, x.size), label="k")], magnitude)


@settings(deadline=None)
@given(data=st.data())
def test_nm_property(data):
    """Arbitrary groups along any axis, any n, m in a small set: the reference's mask."""
    m = data.draw(st.sampled_from([2, 3, 4, 5, 8]), label="m")
    shape = list(data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), label="shape"))
    axis = data.draw(st.integers(0, len(shape) - 1), label="axis")
    shape[axis] = m * data.draw(st.integers(1, 3), label="groups")
    dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int32, np.int64]), label="dtype")
    elements = {"allow_nan": False} if np.dtype(dtype).kind == "f" else None
    x = data.draw(hnp.arrays(dtype, tuple(shape), elements=elements), label="x")
    n = data.draw(st.integers(0, m), label="n")
    check_nm(x, [n], m, axis, data.draw(st.booleans(), label="magnitude"))


# -- regressions: byte order, int64 MIN magnitude, reference norms -------------------


@pytest.mark.parametrize("job", ["topk", "nm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=param_id)
def test_big_endian_scores_rank_by_value(dtype, job):
    """Byte order does not change a mask: byte-swapped scores give the native mask."""
    build = {"topk": lambda s: asp.topk_mask(s, 4), "nm": lambda s: asp.nm_mask(s, 2, 4)}[job]
    native = np.array([[3.0, -1.0, 2.0, 0.5], [7.0, 8.0, -4.0, 0.25]], dtype)
    swapped = native.astype(native.dtype.newbyteorder())
    np.testing.assert_array_equal(build(swapped).mask, build(native).mask)


def test_big_endian_norms():
    """Byte order does not change a norm."""
    native = np.array([[1.0, 2.0], [3.0, 4.0]])
    swapped = native.astype(native.dtype.newbyteorder())
    np.testing.assert_allclose(asp.structure_scores(swapped, 0), [math.sqrt(5), 5.0])


@pytest.mark.parametrize("job", ["topk", "nm"])
def test_reference_int64_min_magnitude(job):
    """|int64 MIN| = 2**63 is the largest magnitude, on the reference path as on the kernel:
    of [MIN, MAX, 0, 1], pruning 3 keeps MIN alone."""
    build = {
        "topk": lambda s: asp.topk_mask(s, 3, magnitude=True),
        "nm": lambda s: asp.nm_mask(s, 3, 4, magnitude=True),
    }[job]
    array_api_strict = pytest.importorskip("array_api_strict")
    x = np.array([[np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0, 1]], np.int64)
    want = np.array([[True, False, False, False]])
    np.testing.assert_array_equal(build(x).mask, want)
    np.testing.assert_array_equal(to_numpy(build(array_api_strict.asarray(x)).mask), want)


def test_reference_norms_of_integer_min():
    """The reference's norms of int32 MIN equal the kernel's exact ones."""
    array_api_strict = pytest.importorskip("array_api_strict")
    x = np.array([[np.iinfo(np.int32).min, 1]], np.int32)
    for ord in ORDS:
        want = _backends.slice_norms(xp, x, 0, ord)
        got = asp.structure_scores(array_api_strict.asarray(x), 0, ord=ord)
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-12)


@pytest.mark.parametrize(("dtype", "scale"), [(np.float16, 1.0), (np.float32, 1e17)], ids=param_id)
def test_reference_norms_do_not_overflow(dtype, scale):
    """Row norms that fit the dtype are finite on the reference path (JAX) too, so the rows
    pruned agree with NumPy's: of norms [447, 424, 1.4] (times scale), pruning 2 keeps row 0."""
    jnp = pytest.importorskip("jax.numpy")
    w = (np.array([[200, 400], [300, 300], [1, 1]]) * scale).astype(dtype)
    want = np.array([[True, True], [False, False], [False, False]])
    np.testing.assert_array_equal(asp.structured_mask(w, 2, axis=0).mask, want)
    np.testing.assert_array_equal(to_numpy(asp.structured_mask(jnp.asarray(w), 2, axis=0).mask), want)
