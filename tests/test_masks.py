"""Mask builders and PruningMask: the same mask on every backend, exact counts, patterns held."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arraysparse as asp
from arraysparse import SparsityPattern
from tests.backends import Backend, to_numpy

RNG = np.random.default_rng(20261125)
SCORES = RNG.standard_normal((8, 24)).astype(np.float32)
CONV = RNG.standard_normal((6, 4, 3, 3)).astype(np.float32)


def numpy_mask(fn, *args, **kwargs) -> np.ndarray:
    return to_numpy(fn(*args, **kwargs).mask)


BUILDERS = {
    "topk": lambda x: asp.topk_mask(x, 0.4),
    "topk-count": lambda x: asp.topk_mask(x, 17),
    "topk-magnitude": lambda x: asp.topk_mask(x, 0.5, magnitude=True),
    "2:4": lambda x: asp.nm_mask(x, 2, 4),
    "1:4-magnitude": lambda x: asp.nm_mask(x, 1, 4, magnitude=True),
    "5:8-axis0": lambda x: asp.nm_mask(x, 5, 8, axis=0),
    "12:24": lambda x: asp.nm_mask(x, 12, 24),
    "rows": lambda x: asp.structured_mask(x, 0.25, axis=0),
    "columns-l1": lambda x: asp.structured_mask(x, 0.5, axis=-1, ord=1),
    "columns-inf": lambda x: asp.structured_mask(x, 3, axis=1, ord=float("inf")),
    "blocks": lambda x: asp.block_mask(x, 0.5, block=(2, 4)),
    "blocks-1d": lambda x: asp.block_mask(x, 0.3, block=(3,), ord=3),
    "random": lambda x: asp.random_mask(x, 0.6, seed=7),
    "create-filters": lambda x: asp.create_mask(x, 0.5, SparsityPattern.rows(axis=0)),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_same_mask_on_every_backend(backend: Backend, name: str) -> None:
    """Every builder gives the NumPy mask on every backend, in the caller's namespace."""
    x = backend.asarray(SCORES)
    before = to_numpy(x).copy()
    mask = BUILDERS[name](x)
    assert type(mask.mask).__module__.split(".")[0] == type(x).__module__.split(".")[0]
    np.testing.assert_array_equal(to_numpy(mask.mask), to_numpy(BUILDERS[name](SCORES).mask))
    np.testing.assert_array_equal(to_numpy(x), before)  # inputs are never written
    assert mask.satisfies()


def test_conv_patterns_on_every_backend(backend: Backend) -> None:
    """Filter and channel masks of a conv weight prune whole structures, equally everywhere."""
    x = backend.asarray(CONV)
    for pattern in (SparsityPattern.filters(), SparsityPattern.channels(), SparsityPattern.slices(3)):
        got = asp.create_mask(x, 0.5, pattern)
        assert got.pattern == pattern
        np.testing.assert_array_equal(to_numpy(got.mask), to_numpy(asp.create_mask(CONV, 0.5, pattern).mask))
        assert got.satisfies()


def test_ties_prune_the_lower_index_first() -> None:
    """The documented tie rule, for elements, groups, slices and blocks."""
    np.testing.assert_array_equal(asp.topk_mask(np.zeros(5), 2).mask, [False, False, True, True, True])
    np.testing.assert_array_equal(
        asp.nm_mask(np.array([[1.0, 1.0, 1.0, 1.0]]), 2, 4).mask, [[False, False, True, True]]
    )
    np.testing.assert_array_equal(
        asp.structured_mask(np.ones((3, 2)), 1, axis=0).mask, [[False, False], [True, True], [True, True]]
    )
    np.testing.assert_array_equal(asp.block_mask(np.ones((1, 4)), 1, block=(1, 2)).mask, [[False, False, True, True]])


def test_negative_zero_ties_with_zero_and_inf_is_ordered() -> None:
    s = np.array([0.0, -0.0, np.inf, -np.inf, 1.0])
    np.testing.assert_array_equal(asp.topk_mask(s, 3).mask, [False, False, True, False, True])
    np.testing.assert_array_equal(asp.topk_mask(s, 2, magnitude=True).mask, [False, False, True, True, True])


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_subnormal_scores_rank_alike_on_jax(dtype: str) -> None:
    """XLA's CPU sort and compares treat subnormals as zero; JAX still ranks them as every
    other backend does (above 0.0, below the next subnormal), and from_zeros keeps them."""
    jnp = pytest.importorskip("jax.numpy")
    torch = pytest.importorskip("torch")
    tiny = float(jnp.finfo(getattr(jnp, dtype)).smallest_subnormal)
    values = [0.0, tiny, -tiny, 0.0, -0.0, 1.0, -2.0, 3 * tiny, np.inf, -np.inf, -tiny, 2 * tiny]
    xj = jnp.asarray(values, dtype=getattr(jnp, dtype))
    xt = torch.tensor(values, dtype=getattr(torch, dtype))  # numpy has no bfloat16: torch CPU kernels
    assert (np.asarray(xj, np.float32) != 0).sum() == 9  # the subnormals are really there
    for magnitude in (False, True):
        for k in range(len(values) + 1):
            got = np.asarray(asp.topk_mask(xj, k, magnitude=magnitude).mask)
            np.testing.assert_array_equal(got, asp.topk_mask(xt, k, magnitude=magnitude).mask.numpy())
        got = np.asarray(asp.nm_mask(xj, 2, 4, magnitude=magnitude).mask)
        np.testing.assert_array_equal(got, asp.nm_mask(xt, 2, 4, magnitude=magnitude).mask.numpy())
    np.testing.assert_array_equal(np.asarray(asp.PruningMask.from_zeros(xj).mask), (xt != 0).numpy())


@pytest.mark.parametrize("make", [lambda s: asp.topk_mask(s, 0.5), lambda s: asp.nm_mask(s, 2, 4)])
def test_nan_scores_raise_with_their_count(backend: Backend, make) -> None:
    s = SCORES.copy()
    s[0, :3] = np.nan
    with pytest.raises(ValueError, match="3 NaN"):
        make(backend.asarray(s))


# -- laws ------------------------------------------------------------------------
finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=9)


@given(hnp.arrays(np.float32, shapes, elements=finite), st.floats(0, 1))
def test_topk_prunes_exactly_round_half_even(s: np.ndarray, sparsity: float) -> None:
    mask = asp.topk_mask(s, sparsity)
    assert mask.num_pruned == round(sparsity * s.size)
    if mask.num_pruned and mask.num_kept:
        assert s[~mask.mask].max() <= s[mask.mask].min()


@given(hnp.arrays(np.float32, (6, 16), elements=finite), st.sampled_from([1, 2, 4, 8, 16]), st.data())
def test_nm_exactly_n_zeros_in_every_group(s: np.ndarray, m: int, data) -> None:
    n = data.draw(st.integers(0, m))
    mask = asp.nm_mask(s, n, m)
    zeros = (~mask.mask).reshape(6, 16 // m, m).sum(axis=-1)
    assert (zeros == n).all()
    assert mask.satisfies() and mask.pattern == SparsityPattern.n_m(n, m)


@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6), elements=finite), st.data())
def test_structured_masks_prune_whole_slices(s: np.ndarray, data) -> None:
    axis = data.draw(st.integers(0, s.ndim - 1))
    sparsity = data.draw(st.floats(0, 1))
    mask = asp.structured_mask(s, sparsity, axis=axis)
    assert mask.satisfies()
    pruned_slices = (~mask.mask).all(axis=tuple(i for i in range(s.ndim) if i != axis)).sum()
    assert pruned_slices == round(sparsity * s.shape[axis])


@given(hnp.arrays(np.float32, shapes, elements=finite), st.floats(0, 1), st.floats(0, 1))
def test_masks_nest_as_sparsity_grows(s: np.ndarray, a: float, b: float) -> None:
    low, high = sorted((a, b))
    pruned_low = ~asp.topk_mask(s, low).mask
    pruned_high = ~asp.topk_mask(s, high).mask
    assert not (pruned_low & ~pruned_high).any()


@given(hnp.arrays(np.float32, (4, 8), elements=finite), st.floats(0, 1))
def test_block_masks_prune_whole_tiles_exactly(s: np.ndarray, sparsity: float) -> None:
    mask = asp.block_mask(s, sparsity, block=(2, 2))
    assert mask.satisfies()
    assert mask.num_pruned == 4 * round(sparsity * 8)


# -- PruningMask -----------------------------------------------------------------
def test_counts_indices_and_repr(backend: Backend) -> None:
    m = asp.PruningMask(backend.asarray(np.array([[True, False], [False, False]])))
    assert (m.num_kept, m.num_pruned, m.size, m.shape) == (1, 3, 4, (2, 2))
    assert m.sparsity == 0.75 and m.density == 0.25
    assert [to_numpy(i).tolist() for i in m.kept_indices()] == [[0], [0]]
    assert [to_numpy(i).tolist() for i in m.pruned_indices()] == [[0, 1, 1], [1, 0, 1]]
    assert "sparsity=0.75" in repr(m) and "unstructured" in repr(m)


def test_empty_and_0d_masks() -> None:
    empty = asp.topk_mask(np.zeros((0, 3)), 0.5)
    assert empty.shape == (0, 3) and empty.sparsity == 0.0 and empty.num_pruned == 0
    assert asp.topk_mask(np.float32(3.0).reshape(()), 1.0).mask.shape == ()
    assert bool(asp.topk_mask(np.array(3.0), 0.0).mask) is True
    assert bool(asp.topk_mask(np.array(3.0), 1.0).mask) is False
    assert asp.nm_mask(np.zeros((3, 0)), 2, 4).shape == (3, 0)


def test_algebra_keeps_patterns_where_it_can(backend: Backend) -> None:
    x = backend.asarray(SCORES)
    nm = asp.nm_mask(x, 2, 4)
    nm2 = asp.nm_mask(-x, 2, 4)
    both = nm & nm2
    assert both.pattern == nm.pattern and both.satisfies()
    assert (nm | nm2).pattern == SparsityPattern.unstructured()
    assert (~nm).pattern == SparsityPattern.unstructured()
    rows = asp.structured_mask(x, 0.5, axis=0)
    assert (~rows).pattern == rows.pattern and (~rows).satisfies()
    assert (rows | asp.structured_mask(-x, 0.5, axis=0)).satisfies()
    np.testing.assert_array_equal(to_numpy((nm & rows).mask), to_numpy(nm.mask) & to_numpy(rows.mask))
    assert (nm & rows).pattern == SparsityPattern.unstructured()
    assert (~~rows).equals(rows)
    assert not (~~nm).equals(nm)  # the N:M label is lost on the way through ~


def test_algebra_refuses_mixed_backends_and_shapes() -> None:
    import torch

    m = asp.topk_mask(SCORES, 0.5)
    with pytest.raises(TypeError, match="numpy and torch"):
        m & torch.ones(SCORES.shape, dtype=torch.bool)
    with pytest.raises(ValueError, match="shape"):
        m | np.ones((2, 2), dtype=bool)


def test_apply_and_apply_in_place(backend: Backend) -> None:
    w = np.array([[1.0, np.nan, -3.0, np.inf]], dtype=np.float32)
    keep = np.array([[True, False, True, False]])
    x = backend.asarray(w)
    mask = asp.PruningMask(backend.asarray(keep))
    out = mask.apply(x)
    np.testing.assert_array_equal(to_numpy(out), [[1.0, 0.0, -3.0, 0.0]])
    assert to_numpy(out).dtype == np.float32
    np.testing.assert_array_equal(to_numpy(x), w)  # apply never writes
    if backend in (Backend.NUMPY_READONLY, Backend.JAX):
        with pytest.raises(ValueError, match="read-only"):
            mask.apply_(x)
        np.testing.assert_array_equal(to_numpy(x), w)
    else:
        assert mask.apply_(x) is x
        np.testing.assert_array_equal(to_numpy(x), [[1.0, 0.0, -3.0, 0.0]])


def test_apply_in_place_on_a_torch_parameter() -> None:
    import torch

    p = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    asp.apply_mask(p, torch.tensor([True, False, True]), inplace=True)
    assert p.tolist() == [1.0, 0.0, 3.0] and p.requires_grad


def test_from_zeros(backend: Backend) -> None:
    w = np.array([[0.0, 1.0, 0.0, 2.0], [3.0, 0.0, 0.0, 4.0]])
    m = asp.PruningMask.from_zeros(backend.asarray(w), SparsityPattern.two_four())
    np.testing.assert_array_equal(to_numpy(m.mask), w != 0)
    assert m.pattern == SparsityPattern.two_four()
    with pytest.raises(ValueError, match="does not satisfy"):
        asp.PruningMask.from_zeros(backend.asarray(w), SparsityPattern.rows())


def test_satisfies_checks_each_kind() -> None:
    m = asp.PruningMask(np.array([[True, True, False, False], [False, True, True, False]]))
    assert m.satisfies(SparsityPattern.two_four())
    assert not m.satisfies(SparsityPattern.n_m(3, 4))
    assert not m.satisfies(SparsityPattern.rows())
    assert not m.satisfies(SparsityPattern.blocks((2, 2)))
    assert not m.satisfies(SparsityPattern.n_m(2, 3))  # 4 is not divisible by 3
    assert asp.PruningMask(np.array([[True, True, False, False]] * 2)).satisfies(SparsityPattern.blocks((2, 2)))
    assert not m.satisfies(SparsityPattern.slices(5))


def test_mask_constructor_checks() -> None:
    with pytest.raises(TypeError, match="dtype bool"):
        asp.PruningMask(np.ones(3))
    with pytest.raises(TypeError, match="must be an array"):
        asp.PruningMask([True, False])
    with pytest.raises(TypeError, match="SparsityPattern"):
        asp.PruningMask(np.ones(3, dtype=bool), "2:4")
    with pytest.raises(ValueError, match="does not satisfy"):
        asp.PruningMask(np.ones(4, dtype=bool), SparsityPattern.two_four(), check=True)


# -- bad input -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: asp.topk_mask(SCORES, -0.1), ValueError, "sparsity=-0.1"),
        (lambda: asp.topk_mask(SCORES, 1.5), ValueError, "sparsity=1.5"),
        (lambda: asp.topk_mask(SCORES, float("nan")), ValueError, "sparsity=nan"),
        (lambda: asp.topk_mask(SCORES, True), TypeError, "bool"),
        (lambda: asp.topk_mask(SCORES, 1000), ValueError, "count"),
        (lambda: asp.topk_mask(SCORES, "half"), TypeError, "sparsity"),
        (lambda: asp.topk_mask(SCORES, 0.5, magnitude=1), TypeError, "magnitude"),
        (lambda: asp.topk_mask(SCORES > 0, 0.5), TypeError, "bool"),
        (lambda: asp.topk_mask(SCORES.astype(np.complex64), 0.5), TypeError, "complex"),
        (lambda: asp.topk_mask([1.0, 2.0], 0.5), TypeError, "scores must be an array"),
        (lambda: asp.nm_mask(SCORES, 5, 4), ValueError, "n=5"),
        (lambda: asp.nm_mask(SCORES, 0, 0), ValueError, "m=0"),
        (lambda: asp.nm_mask(SCORES, -1, 4), ValueError, "n=-1"),
        (lambda: asp.nm_mask(SCORES, 2, 4.0), TypeError, "m must be an int"),
        (lambda: asp.nm_mask(SCORES, 2, 5), ValueError, "m=5 must divide the length 24"),
        (lambda: asp.nm_mask(SCORES, 2, 4, axis=2), ValueError, "axis=2 is out of range"),
        (lambda: asp.nm_mask(np.array(1.0), 1, 1), ValueError, "0-d"),
        (lambda: asp.structured_mask(SCORES, 0.5, axis=-3), ValueError, "axis=-3"),
        (lambda: asp.structured_mask(SCORES, 0.5, ord=0), ValueError, "ord=0"),
        (lambda: asp.structured_mask(np.array(1.0), 0.5), ValueError, "0-d"),
        (lambda: asp.block_mask(SCORES, 0.5, block=(3, 5)), ValueError, r"block=\(3, 5\) does not divide"),
        (lambda: asp.block_mask(SCORES, 0.5, block=(2, 2, 2)), ValueError, "more dimensions"),
        (lambda: asp.block_mask(SCORES, 0.5, block=(0, 2)), ValueError, "block=0"),
        (lambda: asp.create_mask(SCORES, 0.3, SparsityPattern.two_four()), ValueError, "disagrees"),
        (lambda: asp.create_mask(SCORES, None, SparsityPattern.rows()), ValueError, "sparsity is required"),
        (lambda: asp.create_mask(SCORES, 0.5, "rows"), TypeError, "pattern must be"),
        (lambda: asp.random_mask(SCORES, 0.5, seed="x"), TypeError, "seed"),
        (lambda: asp.apply_mask(SCORES, np.ones((2, 2), bool)), ValueError, "mask has shape"),
        (lambda: asp.apply_mask(SCORES, np.ones(SCORES.shape)), TypeError, "dtype bool"),
    ],
)
def test_bad_input_gets_a_clear_error(call, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call()


def test_mixed_backends_raise() -> None:
    import torch

    with pytest.raises(TypeError, match="different array libraries"):
        asp.apply_mask(SCORES, torch.ones(SCORES.shape, dtype=torch.bool))
    with pytest.raises(TypeError, match="different array libraries"):
        asp.gradient_scores(SCORES, torch.from_numpy(SCORES))


def test_nm_sparsity_given_to_create_mask_must_agree() -> None:
    m = asp.create_mask(SCORES, 0.5, SparsityPattern.two_four())
    assert m.sparsity == 0.5
    assert math.isclose(asp.create_mask(SCORES, 0.75, SparsityPattern.n_m(3, 4)).sparsity, 0.75)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builders_need_no_data_dependent_shapes(name: str) -> None:
    """The standard-only path runs where boolean indexing and nonzero are forbidden."""
    import array_api_strict

    with array_api_strict.ArrayAPIStrictFlags(data_dependent_shapes=False):
        x = array_api_strict.asarray(SCORES)
        got = BUILDERS[name](x)
        np.testing.assert_array_equal(to_numpy(got.mask), to_numpy(BUILDERS[name](SCORES).mask))
