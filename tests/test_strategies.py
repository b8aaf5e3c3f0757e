"""Pruning strategies: the interface on every backend, parity with torch.nn.utils.prune, errors, laws."""

from __future__ import annotations

import math
import re

import array_api_compat
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.utils import prune as torch_prune

import arraysparse as asp
from arraysparse import (
    GradientPruning,
    MagnitudePruning,
    PatternKind,
    RandomPruning,
    SparsityPattern,
    StructuredPruning,
)
from tests.backends import Backend, to_numpy

SP = SparsityPattern
INF = math.inf
SEED = 1234
LINEAR = (8, 12)
CONV = (8, 6, 4, 4)
TORCH_CONV = (6, 5, 3, 3)
STRATEGY_CLASSES = [MagnitudePruning, GradientPruning, RandomPruning, StructuredPruning]
ALL_KINDS = set(PatternKind)
SLICE_KINDS = {
    PatternKind.ROW_STRUCTURED,
    PatternKind.COLUMN_STRUCTURED,
    PatternKind.FILTER_STRUCTURED,
    PatternKind.CHANNEL_STRUCTURED,
    PatternKind.SLICE_STRUCTURED,
}
#: Backends whose arrays cannot be written: apply_pruning returns a new array.
READ_ONLY = {Backend.NUMPY_READONLY, Backend.JAX}
#: Weights and scores for the error tests (tie-free).
S = np.random.default_rng(SEED).standard_normal(LINEAR)

# -- helpers ------------------------------------------------------------------------
def make_strategy(cls: type, pattern: SparsityPattern | None = None, ord: float = 2) -> asp.PruningStrategy:
    """An instance of ``cls``; RandomPruning gets a fixed int seed."""
    if cls is RandomPruning:
        return cls(pattern, seed=SEED, ord=ord)
    return cls(pattern, ord=ord)


def inputs(strategy: asp.PruningStrategy, shape: tuple[int, ...], backend: Backend, seed: int = 0):
    """Tie-free NumPy weights (and gradients when needed) and their backend copies: ``w, g, W, G``."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape)
    g = rng.standard_normal(shape) if strategy.requires_gradients else None
    return w, g, backend.asarray(w), None if g is None else backend.asarray(g)


def assert_same_library(result, like) -> None:
    """``result`` is an array of ``like``'s type, namespace and device."""
    assert type(result) is type(like)
    assert array_api_compat.array_namespace(result) is array_api_compat.array_namespace(like)
    assert str(array_api_compat.device(result)) == str(array_api_compat.device(like))


def lp_norm(x: np.ndarray, ord: float, axis) -> np.ndarray:
    a = np.abs(x).astype(np.float64)
    if ord == INF:
        return a.max(axis=axis, initial=0.0)
    return (a**ord).sum(axis=axis) ** (1.0 / ord)


def oracle_keep(scores: np.ndarray, pattern: SparsityPattern, sparsity, ord: float = 2) -> np.ndarray:
    """The keep-mask by stable sorting: the lowest ``round(s * units)`` units pruned, ties to the lower index."""
    if pattern.is_n_m:
        n, m = pattern.nm
        moved = np.moveaxis(scores, pattern.axis, -1)
        groups = moved.reshape(*moved.shape[:-1], -1, m)
        rank = np.argsort(np.argsort(groups, axis=-1, kind="stable"), axis=-1, kind="stable")
        return np.moveaxis((rank >= n).reshape(moved.shape), -1, pattern.axis)
    if pattern.kind is PatternKind.UNSTRUCTURED:
        units = scores
    elif pattern.kind is PatternKind.BLOCK_STRUCTURED:
        k = len(pattern.block)
        lead = scores.shape[: scores.ndim - k]
        split = lead + sum(((s // b, b) for s, b in zip(scores.shape[-k:], pattern.block)), ())
        units = lp_norm(scores.reshape(split), ord, axis=tuple(len(lead) + 2 * i + 1 for i in range(k)))
    else:
        ax = pattern.axis % scores.ndim
        units = lp_norm(np.moveaxis(scores, ax, 0).reshape(scores.shape[ax], -1), ord, axis=1)
    count = sparsity if isinstance(sparsity, int) else round(sparsity * units.size)
    rank = np.argsort(np.argsort(units, axis=None, kind="stable"), kind="stable").reshape(units.shape)
    keep = rank >= count
    if pattern.kind is PatternKind.UNSTRUCTURED:
        return keep
    if pattern.kind is PatternKind.BLOCK_STRUCTURED:
        for i, b in enumerate(pattern.block):
            keep = np.repeat(keep, b, axis=len(lead) + i)
        return keep
    shape = [1] * scores.ndim
    shape[ax] = scores.shape[ax]
    return np.broadcast_to(keep.reshape(shape), scores.shape)


def zeros_per_group(keep: np.ndarray, m: int, axis: int) -> np.ndarray:
    moved = np.moveaxis(~keep, axis, -1)
    return moved.reshape(*moved.shape[:-1], -1, m).sum(axis=-1)


# -- 1. the interface on every backend ------------------------------------------------
@pytest.mark.parametrize(
    "strategy, name, requires_gradients, kinds, is_structured",
    [
        pytest.param(MagnitudePruning(), "magnitude", False, ALL_KINDS, False, id="magnitude"),
        pytest.param(MagnitudePruning(SP.rows()), "magnitude", False, ALL_KINDS, True, id="magnitude-rows"),
        pytest.param(MagnitudePruning(SP.two_four()), "magnitude", False, ALL_KINDS, False, id="magnitude-2:4"),
        pytest.param(MagnitudePruning(SP.blocks((2, 2))), "magnitude", False, ALL_KINDS, False, id="magnitude-blocks"),
        pytest.param(GradientPruning(), "gradient", True, ALL_KINDS, False, id="gradient"),
        pytest.param(GradientPruning(SP.filters()), "gradient", True, ALL_KINDS, True, id="gradient-filters"),
        pytest.param(RandomPruning(seed=0), "random", False, ALL_KINDS, False, id="random"),
        pytest.param(RandomPruning(SP.channels(), seed=0), "random", False, ALL_KINDS, True, id="random-channels"),
        pytest.param(StructuredPruning(), "structured", False, SLICE_KINDS, True, id="structured"),
        pytest.param(StructuredPruning(SP.slices(2)), "structured", False, SLICE_KINDS, True, id="structured-slices"),
    ],
)
def test_strategy_attributes(strategy, name, requires_gradients, kinds, is_structured) -> None:
    """name, requires_gradients and supported_patterns are per class; is_structured follows the pattern."""
    assert isinstance(strategy, asp.PruningStrategy)
    assert strategy.name == type(strategy).name == name
    assert strategy.requires_gradients is requires_gradients
    assert isinstance(strategy.supported_patterns, tuple)
    assert set(strategy.supported_patterns) == kinds
    assert len(strategy.supported_patterns) == len(kinds)
    assert strategy.pattern.kind in strategy.supported_patterns
    assert strategy.is_structured is is_structured


@pytest.mark.parametrize(
    "cls, pattern",
    [
        (MagnitudePruning, SP.unstructured()),
        (GradientPruning, SP.unstructured()),
        (RandomPruning, SP.unstructured()),
        (StructuredPruning, SP.rows()),
    ],
)
def test_default_pattern_and_ord(cls, pattern) -> None:
    """Without a pattern: unstructured, except StructuredPruning (rows); ord defaults to 2."""
    strategy = cls()
    assert strategy.pattern == pattern == cls.default_pattern()
    assert strategy.ord == 2


@pytest.mark.parametrize("cls", STRATEGY_CLASSES)
def test_compute_importance_scores(backend: Backend, cls) -> None:
    """Scores have the weights' shape and library: |w|, |w*g|, or a seeded permutation of 0..size-1."""
    strategy = make_strategy(cls)
    w, g, W, G = inputs(strategy, CONV, backend)
    scores = strategy.compute_importance_scores(W, G)
    assert_same_library(scores, W)
    assert tuple(scores.shape) == CONV
    got = to_numpy(scores)
    if cls is GradientPruning:
        expected = np.abs(w * g)
    elif cls is RandomPruning:
        np.testing.assert_array_equal(np.sort(got, axis=None), np.arange(w.size))
        expected = to_numpy(strategy.compute_importance_scores(w))
    else:
        expected = np.abs(w)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(to_numpy(W), w)


@pytest.mark.parametrize("cls", [MagnitudePruning, StructuredPruning])
def test_magnitude_scores_ignore_gradients(backend: Backend, cls) -> None:
    """Magnitude-based strategies accept gradients of the right shape and still score |w|."""
    w = np.random.default_rng(1).standard_normal(LINEAR)
    scores = cls().compute_importance_scores(backend.asarray(w), backend.asarray(-w))
    np.testing.assert_array_equal(to_numpy(scores), np.abs(w))


#: One case per pattern kind, run for every strategy that supports the kind.
KIND_CASES = [
    # id, pattern, shape, sparsity, ord
    ("unstructured", SP.unstructured(), LINEAR, 0.5, 2),
    ("rows-l1", SP.rows(), LINEAR, 0.25, 1),
    ("columns-count-inf", SP.columns(), LINEAR, 5, INF),
    ("filters", SP.filters(), CONV, 0.5, 2),
    ("channels-inf", SP.channels(), CONV, 0.5, INF),
    ("slices2-p3", SP.slices(2), CONV, 0.5, 3),
    ("blocks2x4", SP.blocks((2, 4)), LINEAR, 0.5, 2),
    ("2:4", SP.two_four(), LINEAR, None, 2),
    ("3:4-axis0", SP.n_m(3, 4, axis=0), LINEAR, None, 2),
]
#: Counts, 1 x n and n x 1 shapes, other axes and orders: magnitude and structured only.
EXTRA_CASES = [
    ("unstructured-count", SP.unstructured(), CONV, 100, 2),
    ("unstructured-1xn", SP.unstructured(), (1, 12), 0.25, 2),
    ("unstructured-nx1", SP.unstructured(), (12, 1), 0.75, 2),
    ("rows-1xn-half-even", SP.rows(), (1, 12), 0.5, 2),  # round(0.5) = 0 rows
    ("rows-nx1", SP.rows(), (12, 1), 0.5, 2),
    ("columns-1xn", SP.columns(), (1, 12), 0.5, 2),
    ("columns-nx1", SP.columns(), (12, 1), 1.0, 2),
    ("slices-last-count", SP.slices(-1), CONV, 1, 1),
    ("blocks3-l1", SP.blocks((3,)), LINEAR, 0.25, 1),
    ("blocks2x2-conv-inf", SP.blocks((2, 2)), CONV, 0.75, INF),
    ("2:4-1xn", SP.two_four(), (1, 12), 0.5, 2),
    ("2:4-axis0-nx1", SP.two_four(axis=0), (12, 1), None, 2),
]
STRATEGY_PATTERN_CASES = [
    pytest.param(cls, pattern, shape, sparsity, ord, id=f"{cls.name}-{case_id}")
    for cls, cases in [
        (MagnitudePruning, KIND_CASES + EXTRA_CASES),
        (GradientPruning, KIND_CASES),
        (RandomPruning, KIND_CASES),
        (StructuredPruning, KIND_CASES + EXTRA_CASES),
    ]
    for case_id, pattern, shape, sparsity, ord in cases
    if pattern.kind in cls.supported_patterns
]


@pytest.mark.parametrize("cls, pattern, shape, sparsity, ord", STRATEGY_PATTERN_CASES)
def test_create_mask_every_pattern(backend: Backend, cls, pattern, shape, sparsity, ord) -> None:
    """Each supported pattern: the sorting oracle's mask, satisfying the pattern, the NumPy mask on every backend."""
    strategy = make_strategy(cls, pattern, ord)
    w, g, W, G = inputs(strategy, shape, backend)
    mask = strategy.create_mask(strategy.compute_importance_scores(W, G), sparsity)
    reference_scores = strategy.compute_importance_scores(w, g)
    reference = strategy.create_mask(reference_scores, sparsity)
    assert isinstance(mask, asp.PruningMask)
    assert mask.pattern == pattern
    assert mask.shape == shape
    assert mask.satisfies()
    assert_same_library(mask.mask, W)
    got = to_numpy(mask.mask)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, oracle_keep(to_numpy(reference_scores), pattern, sparsity, ord))
    np.testing.assert_array_equal(got, to_numpy(reference.mask))


@pytest.mark.parametrize(
    "pattern, sparsity",
    [(SP.unstructured(), 0.3), (SP.two_four(), None)],
    ids=["unstructured", "2:4"],
)
def test_mask_from_weights_equals_scores_route(backend: Backend, pattern, sparsity) -> None:
    """MagnitudePruning.mask_from_weights(w) == create_mask(compute_importance_scores(w))."""
    strategy = MagnitudePruning(pattern)
    W = backend.asarray(np.random.default_rng(2).standard_normal(CONV))
    direct = strategy.mask_from_weights(W, sparsity)
    assert direct.equals(strategy.create_mask(strategy.compute_importance_scores(W), sparsity))
    assert_same_library(direct.mask, W)


@pytest.mark.parametrize(
    "strategy, axis",
    [
        pytest.param(MagnitudePruning(), -1, id="magnitude"),
        pytest.param(GradientPruning(), -1, id="gradient"),
        pytest.param(RandomPruning(seed=SEED), -1, id="random"),
        pytest.param(MagnitudePruning(SP.n_m(1, 4, axis=0)), 0, id="magnitude-nm-axis0"),
    ],
)
def test_create_2to4_mask(backend: Backend, strategy, axis) -> None:
    """Exactly 2 zeros in every 4 along the pattern's N:M axis (else the last): the 2 lowest scores."""
    w, g, W, G = inputs(strategy, LINEAR, backend)
    scores = strategy.compute_importance_scores(W, G)
    mask = strategy.create_2to4_mask(scores)
    assert mask.pattern == SP.two_four(axis=axis)
    assert_same_library(mask.mask, W)
    got = to_numpy(mask.mask)
    assert np.all(zeros_per_group(got, 4, axis) == 2)
    np.testing.assert_array_equal(got, oracle_keep(to_numpy(scores), SP.two_four(axis=axis), None))


@pytest.mark.parametrize("n, m", [(0, 4), (1, 4), (3, 4), (4, 4)])
def test_create_n_to_m_mask(backend: Backend, n, m) -> None:
    """n counts ZEROS: exactly n of every m consecutive values are pruned, the n lowest scores."""
    strategy = MagnitudePruning()
    W = backend.asarray(S)
    scores = strategy.compute_importance_scores(W)
    mask = strategy.create_n_to_m_mask(scores, n, m)
    assert mask.pattern == SP.n_m(n, m)
    assert_same_library(mask.mask, W)
    got = to_numpy(mask.mask)
    assert np.all(zeros_per_group(got, m, -1) == n)
    assert mask.num_pruned == S.size * n // m
    np.testing.assert_array_equal(got, oracle_keep(to_numpy(scores), SP.n_m(n, m), None))


def test_n_to_m_keeps_m_minus_n(backend: Backend) -> None:
    """3:4 keeps ONE value in every four (the largest), not three."""
    scores = backend.asarray(np.array([[4.0, 1.0, 3.0, 2.0, 0.5, 0.7, 9.0, 0.1]]))
    mask = MagnitudePruning().create_n_to_m_mask(scores, 3, 4)
    np.testing.assert_array_equal(to_numpy(mask.mask), [[True, False, False, False, False, False, True, False]])


@pytest.mark.parametrize("wrap", [True, False], ids=["PruningMask", "bool-array"])
@pytest.mark.parametrize("cls", STRATEGY_CLASSES)
def test_apply_pruning(backend: Backend, cls, wrap) -> None:
    """Writable arrays are zeroed in place and returned; read-only ones are untouched and a new array returned."""
    strategy = make_strategy(cls)
    w, g, W, G = inputs(strategy, LINEAR, backend)
    mask = strategy.create_mask(strategy.compute_importance_scores(W, G), 0.5)
    out = strategy.apply_pruning(W, mask if wrap else mask.mask)
    assert_same_library(out, W)
    np.testing.assert_array_equal(to_numpy(out), np.where(to_numpy(mask.mask), w, 0.0))
    if backend in READ_ONLY:
        assert out is not W
        np.testing.assert_array_equal(to_numpy(W), w)
    else:
        assert out is W


def test_apply_pruning_on_torch_parameter() -> None:
    """A module's weight Parameter is pruned in place and keeps requiring gradients."""
    module = torch.nn.Linear(12, 8, dtype=torch.float64)
    weight = module.weight
    before = weight.detach().numpy().copy()
    strategy = MagnitudePruning()
    mask = strategy.create_mask(strategy.compute_importance_scores(weight), 0.5)
    out = strategy.apply_pruning(weight, mask)
    assert out is weight and weight.requires_grad
    np.testing.assert_array_equal(weight.detach().numpy(), np.where(to_numpy(mask.mask), before, 0.0))


@pytest.mark.parametrize("cls", STRATEGY_CLASSES)
def test_prune_never_modifies_input(backend: Backend, cls) -> None:
    """prune returns a new pruned array and its mask, the NumPy result on every backend; the input is unchanged."""
    pattern = cls.default_pattern()
    strategy = make_strategy(cls, pattern)
    w, g, W, G = inputs(strategy, CONV, backend)
    pruned, mask = strategy.prune(W, 0.5, G)
    assert pruned is not W
    np.testing.assert_array_equal(to_numpy(W), w)
    assert_same_library(pruned, W)
    assert mask.pattern == pattern
    units = w.size if pattern.kind is PatternKind.UNSTRUCTURED else w.shape[0]
    assert mask.num_pruned == round(0.5 * units) * (w.size // units)
    np.testing.assert_array_equal(to_numpy(pruned), np.where(to_numpy(mask.mask), w, 0.0))
    ref_pruned, ref_mask = strategy.prune(w, 0.5, g)
    np.testing.assert_array_equal(to_numpy(mask.mask), to_numpy(ref_mask.mask))
    np.testing.assert_array_equal(to_numpy(pruned), ref_pruned)


def test_random_pruning_seeds() -> None:
    """Different int seeds give different masks; a Generator seed advances on every call."""
    w = np.ones(LINEAR)
    a = RandomPruning(seed=0).prune(w, 0.5)[1].mask
    b = RandomPruning(seed=1).prune(w, 0.5)[1].mask
    assert not np.array_equal(a, b)
    strategy = RandomPruning(seed=np.random.default_rng(0))
    first, second = (strategy.prune(w, 0.5)[1].mask for _ in range(2))
    assert not np.array_equal(first, second)


# -- 2. peer: torch.nn.utils.prune ----------------------------------------------------
def torch_module(w: np.ndarray) -> torch.nn.Module:
    """A float64 Linear (2-D ``w``) or Conv2d (4-D ``w``) whose weight is a copy of ``w``."""
    if w.ndim == 2:
        module = torch.nn.Linear(w.shape[1], w.shape[0], dtype=torch.float64)
    else:
        module = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], dtype=torch.float64)
    module.weight.data.copy_(torch.from_numpy(w))
    return module


def torch_mask(module: torch.nn.Module) -> np.ndarray:
    return module.weight_mask.numpy().astype(bool)


@pytest.mark.parametrize(
    "shape, amount, pruned",
    [
        ((1, 5), 0.5, 2),  # 2.5 -> 2 (half to even)
        ((1, 7), 0.5, 4),  # 3.5 -> 4
        ((1, 5), 0.1, 0),  # 0.5 -> 0
        ((1, 5), 0.3, 2),  # 1.5 -> 2
        ((1, 5), 0.7, 4),  # 3.5 -> 4
        (LINEAR, 0.3, 29),  # 28.8 -> 29
        (LINEAR, 0.0, 0),
        (LINEAR, 1.0, 96),
        (LINEAR, 0, 0),
        (LINEAR, 17, 17),
        (LINEAR, 96, 96),
        (TORCH_CONV, 0.25, 68),  # 67.5 -> 68
        (TORCH_CONV, 100, 100),
    ],
)
def test_magnitude_matches_torch_l1_unstructured(shape, amount, pruned) -> None:
    """MagnitudePruning's mask is l1_unstructured's, for float fractions (half to even) and int counts."""
    w = np.random.default_rng(3).standard_normal(shape)
    module = torch_module(w)
    torch_prune.l1_unstructured(module, "weight", amount=amount)
    expected = torch_mask(module)
    assert np.count_nonzero(~expected) == pruned
    for weights in (w, torch.from_numpy(w.copy())):
        mask = MagnitudePruning().prune(weights, amount)[1]
        np.testing.assert_array_equal(to_numpy(mask.mask), expected)


@pytest.mark.parametrize("amount", [0.5, 0.34, 2])
@pytest.mark.parametrize("ord", [1, 2, INF], ids=["L1", "L2", "Linf"])
@pytest.mark.parametrize(
    "shape, pattern, dim",
    [
        pytest.param(LINEAR, SP.rows(), 0, id="linear-rows"),
        pytest.param(LINEAR, SP.columns(), 1, id="linear-columns"),
        pytest.param(LINEAR, SP.slices(1), 1, id="linear-slices1"),
        pytest.param(TORCH_CONV, SP.filters(), 0, id="conv-filters"),
        pytest.param(TORCH_CONV, SP.channels(), 1, id="conv-channels"),
        pytest.param(TORCH_CONV, SP.slices(0), 0, id="conv-slices0"),
        pytest.param(TORCH_CONV, SP.slices(2), 2, id="conv-slices2"),
        pytest.param(TORCH_CONV, SP.slices(-1), 3, id="conv-slices-last"),
    ],
)
def test_structured_matches_torch_ln_structured(shape, pattern, dim, ord, amount) -> None:
    """StructuredPruning(pattern, ord) == ln_structured(n=ord, dim=axis) on tie-free Linear and Conv2d weights."""
    w = np.random.default_rng(4).standard_normal(shape)
    module = torch_module(w)
    torch_prune.ln_structured(module, "weight", amount=amount, n=ord, dim=dim)
    expected = torch_mask(module)
    strategy = StructuredPruning(pattern, ord=ord)
    for weights in (w, torch.from_numpy(w.copy())):
        mask = strategy.prune(weights, amount)[1]
        assert mask.satisfies()
        np.testing.assert_array_equal(to_numpy(mask.mask), expected)


@pytest.mark.parametrize(
    "shape, amount, pruned",
    [((1, 5), 0.5, 2), ((1, 7), 0.5, 4), (LINEAR, 0.3, 29), (TORCH_CONV, 0.25, 68), (TORCH_CONV, 17, 17)],
)
def test_random_count_matches_torch_random_unstructured(shape, amount, pruned) -> None:
    """RandomPruning prunes as many values as random_unstructured (the values themselves differ)."""
    w = np.random.default_rng(5).standard_normal(shape)
    module = torch_module(w)
    torch.manual_seed(0)
    torch_prune.random_unstructured(module, "weight", amount=amount)
    assert np.count_nonzero(~torch_mask(module)) == pruned
    assert RandomPruning(seed=SEED).prune(w, amount)[1].num_pruned == pruned


def test_random_fixed_seed_same_mask_everywhere(backend: Backend) -> None:
    """A fixed int seed gives one mask: on repeated calls and on every backend."""
    w = np.random.default_rng(5).standard_normal(LINEAR)
    W = backend.asarray(w)
    strategy = RandomPruning(seed=SEED)
    first, second = (to_numpy(strategy.prune(W, 0.3)[1].mask) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, RandomPruning(seed=SEED).prune(w, 0.3)[1].mask)


# -- 3. errors ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sparsity, error, match",
    [
        pytest.param(-0.1, ValueError, r"sparsity=-0\.1 must be a fraction in \[0, 1\]", id="negative"),
        pytest.param(1.5, ValueError, r"sparsity=1\.5 must be a fraction in \[0, 1\]", id="above-one"),
        pytest.param(math.nan, ValueError, r"sparsity=nan", id="nan"),
        pytest.param(True, TypeError, r"sparsity=True is a bool", id="bool"),
        pytest.param(-1, ValueError, r"sparsity=-1 is a count", id="negative-count"),
        pytest.param("0.5", TypeError, r"sparsity must be a float fraction or an int count", id="str"),
    ],
)
@pytest.mark.parametrize("cls", STRATEGY_CLASSES)
def test_invalid_sparsity_raises(backend: Backend, cls, sparsity, error, match) -> None:
    """Out-of-range, NaN, bool and non-numeric sparsities raise, naming sparsity, on every backend."""
    strategy = make_strategy(cls)
    _, _, W, G = inputs(strategy, LINEAR, backend)
    with pytest.raises(error, match=match):
        strategy.prune(W, sparsity, G)


@pytest.mark.parametrize(
    "pattern, shape, units",
    [
        (SP.unstructured(), LINEAR, 96),
        (SP.unstructured(), (0, 12), 0),
        (SP.rows(), LINEAR, 8),
        (SP.columns(), LINEAR, 12),
        (SP.blocks((2, 4)), LINEAR, 12),
    ],
    ids=["elements", "empty", "rows", "columns", "blocks"],
)
def test_count_larger_than_units_raises(pattern, shape, units) -> None:
    """An int count may be at most the number of units (elements, slices, blocks); that maximum is valid."""
    strategy = MagnitudePruning(pattern)
    w = np.random.default_rng(6).standard_normal(shape)
    with pytest.raises(ValueError, match=rf"sparsity={units + 1} is a count .*\[0, {units}\]"):
        strategy.prune(w, units + 1)
    assert strategy.prune(w, units)[1].num_pruned == w.size


@pytest.mark.parametrize(
    "n, m, error, match",
    [
        (5, 4, ValueError, r"n=5 zeros per group cannot exceed the group size m=4"),
        (1, 0, ValueError, r"m=0 must be >= 1"),
        (0, -4, ValueError, r"m=-4 must be >= 1"),
        (-1, 4, ValueError, r"n=-1 must be >= 0"),
        (1, 4.0, TypeError, r"m must be an int"),
        (1.0, 4, TypeError, r"n must be an int"),
        (True, 4, TypeError, r"n must be an int"),
    ],
)
def test_invalid_n_m_raises(n, m, error, match) -> None:
    """n > m, m <= 0, n < 0 and non-int n or m raise, naming n or m, in the strategy and the pattern."""
    with pytest.raises(error, match=match):
        MagnitudePruning().create_n_to_m_mask(S, n, m)
    with pytest.raises(error, match=match):
        SP.n_m(n, m)


@pytest.mark.parametrize(
    "strategy, sparsity, match",
    [
        (StructuredPruning(SP.slices(2)), 0.5, r"axis=2 is out of range for an array of 2 dimension"),
        (StructuredPruning(SP.columns(axis=-3)), 0.5, r"axis=-3 is out of range"),
        (MagnitudePruning(SP.rows(axis=5)), 0.5, r"axis=5 is out of range"),
        (MagnitudePruning(SP.n_m(1, 4, axis=2)), 0.25, r"axis=2 is out of range"),
        (MagnitudePruning(SP.two_four(axis=-3)), None, r"axis=-3 is out of range"),
    ],
    ids=["slices", "columns", "rows", "n:m", "2:4"],
)
def test_axis_out_of_range_raises(strategy, sparsity, match) -> None:
    """A pattern axis outside the array raises ValueError naming the axis."""
    with pytest.raises(ValueError, match=match):
        strategy.prune(S, sparsity)


@pytest.mark.parametrize(
    "shape, pattern, match",
    [
        ((8, 10), SP.two_four(), r"m=4 must divide the length 10 of axis -1"),
        ((6, 12), SP.n_m(1, 4, axis=0), r"m=4 must divide the length 6 of axis 0"),
        (LINEAR, SP.n_m(3, 8), r"m=8 must divide the length 12"),
    ],
)
def test_nm_axis_not_divisible_raises(shape, pattern, match) -> None:
    """N:M groups never cross the axis end: its length must be divisible by m."""
    strategy = MagnitudePruning(pattern)
    w = np.random.default_rng(7).standard_normal(shape)
    with pytest.raises(ValueError, match=match):
        strategy.prune(w)
    with pytest.raises(ValueError, match=match):
        strategy.create_n_to_m_mask(w, *pattern.nm)


@pytest.mark.parametrize("cls", [MagnitudePruning, GradientPruning, StructuredPruning])
def test_gradients_shape_mismatch_raises(cls) -> None:
    """Gradients of another shape raise ValueError naming weights and gradients."""
    match = r"gradients has shape \(12, 8\) but weights has shape \(8, 12\)"
    with pytest.raises(ValueError, match=match):
        cls().compute_importance_scores(S, S.T)
    with pytest.raises(ValueError, match=match):
        cls().prune(S, 0.5, gradients=S.T)


def test_gradient_pruning_requires_gradients() -> None:
    """GradientPruning without gradients raises ValueError naming gradients."""
    with pytest.raises(ValueError, match=r"requires gradients"):
        GradientPruning().compute_importance_scores(S)
    with pytest.raises(ValueError, match=r"requires gradients"):
        GradientPruning().prune(S, 0.5)


def test_apply_pruning_mask_shape_mismatch_raises() -> None:
    """A mask of another shape raises ValueError naming mask and weights; nothing is written."""
    w = S.copy()
    keep = np.zeros(LINEAR[::-1], dtype=bool)
    for mask in (keep, asp.PruningMask(keep)):
        with pytest.raises(ValueError, match=r"mask has shape \(12, 8\) but weights has shape \(8, 12\)"):
            MagnitudePruning().apply_pruning(w, mask)
    np.testing.assert_array_equal(w, S)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.uint8])
def test_apply_pruning_non_bool_mask_raises(dtype) -> None:
    """A non-bool mask raises TypeError naming mask; nothing is written."""
    w = S.copy()
    with pytest.raises(TypeError, match=r"mask must have dtype bool"):
        MagnitudePruning().apply_pruning(w, np.zeros(LINEAR, dtype=dtype))
    np.testing.assert_array_equal(w, S)


@pytest.mark.parametrize("cls", [MagnitudePruning, GradientPruning, StructuredPruning])
@pytest.mark.parametrize("torch_first", [False, True], ids=["numpy-torch", "torch-numpy"])
def test_mixed_backends_raise(cls, torch_first) -> None:
    """Weights and gradients from different libraries raise TypeError naming both."""
    w, g = S, torch.from_numpy(S.copy())
    libs = "numpy and torch"
    if torch_first:
        w, g, libs = g, w, "torch and numpy"
    match = rf"weights and gradients come from different array libraries \({libs}\)"
    with pytest.raises(TypeError, match=match):
        cls().compute_importance_scores(w, g)
    with pytest.raises(TypeError, match=match):
        cls().prune(w, 0.5, gradients=g)


def test_apply_pruning_mixed_backends_raises() -> None:
    """A torch mask for NumPy weights raises TypeError naming weights and mask."""
    w = S.copy()
    with pytest.raises(TypeError, match=r"weights and mask come from different array libraries \(numpy and torch\)"):
        MagnitudePruning().apply_pruning(w, torch.ones(LINEAR, dtype=torch.bool))
    np.testing.assert_array_equal(w, S)


@pytest.mark.parametrize(
    "pattern", [SP.two_four(), SP.n_m(1, 4), SP.unstructured(), SP.blocks((2, 2))], ids=str
)
def test_structured_pruning_rejects_other_patterns(pattern) -> None:
    """StructuredPruning builds only slice patterns: others raise ValueError listing the supported ones."""
    supported = "channels, columns, filters, rows, slices"
    match = rf"pattern={re.escape(str(pattern))} is not one StructuredPruning builds; supported: {supported}"
    with pytest.raises(ValueError, match=match):
        StructuredPruning(pattern)


def test_structured_pruning_builds_no_nm_masks() -> None:
    """StructuredPruning.create_2to4_mask / create_n_to_m_mask raise ValueError."""
    with pytest.raises(ValueError, match=r"StructuredPruning prunes whole structures; it builds no N:M masks"):
        StructuredPruning().create_2to4_mask(S)
    with pytest.raises(ValueError, match=r"StructuredPruning prunes whole structures; it builds no N:M masks"):
        StructuredPruning().create_n_to_m_mask(S, 1, 4)


@pytest.mark.parametrize("cls", STRATEGY_CLASSES)
def test_pattern_must_be_a_sparsity_pattern(cls) -> None:
    """A pattern that is not a SparsityPattern raises TypeError naming pattern."""
    with pytest.raises(TypeError, match=r"pattern must be a SparsityPattern, got str"):
        make_strategy(cls, "rows")


@pytest.mark.parametrize(
    "pattern, sparsity, error, match",
    [
        (SP.two_four(), 0.25, ValueError, r"sparsity=0\.25 disagrees with the pattern 2:4"),
        (SP.two_four(), 2, ValueError, r"sparsity=2 disagrees with the pattern 2:4"),
        (SP.n_m(1, 4), 0.5, ValueError, r"sparsity=0\.5 disagrees with the pattern 1:4"),
        (SP.two_four(), True, TypeError, r"sparsity=True is a bool"),
    ],
)
def test_nm_pattern_rejects_other_sparsity(pattern, sparsity, error, match) -> None:
    """An N:M pattern fixes the sparsity at n/m; any other value raises, naming sparsity."""
    strategy = MagnitudePruning(pattern)
    with pytest.raises(error, match=match):
        strategy.create_mask(S, sparsity)
    with pytest.raises(error, match=match):
        strategy.prune(S, sparsity)


@pytest.mark.parametrize("pattern", [SP.two_four(), SP.n_m(1, 4), SP.n_m(3, 4, axis=0)], ids=str)
def test_nm_pattern_accepts_its_own_sparsity(pattern) -> None:
    """sparsity=None and sparsity=n/m give the same N:M mask."""
    strategy = MagnitudePruning(pattern)
    assert strategy.create_mask(S).equals(strategy.create_mask(S, pattern.n / pattern.m))


@pytest.mark.parametrize(
    "block, match",
    [
        ((3, 5), r"block=\(3, 5\) does not divide the trailing axes \(8, 12\)"),
        ((5,), r"block=\(5,\) does not divide the trailing axes \(12,\)"),
        ((2, 2, 2), r"block=\(2, 2, 2\) has more dimensions than the array's shape \(8, 12\)"),
    ],
)
def test_block_shape_must_tile(block, match) -> None:
    """Blocks must tile the trailing axes exactly: ValueError naming block otherwise."""
    with pytest.raises(ValueError, match=match):
        MagnitudePruning(SP.blocks(block)).prune(S, 0.5)


@pytest.mark.parametrize(
    "block, error, match",
    [
        ((), ValueError, r"block=\(\) is empty"),
        ((0, 2), ValueError, r"block=0 must be >= 1"),
        ((2.0, 2), TypeError, r"block must be an int"),
        (4, TypeError, r"block must be a tuple of ints"),
    ],
)
def test_invalid_block_raises(block, error, match) -> None:
    """Empty, non-positive and non-int block shapes raise, naming block."""
    with pytest.raises(error, match=match):
        SP.blocks(block)


@pytest.mark.parametrize(
    "ord, error, match",
    [
        (0, ValueError, r"ord=0 must be > 0"),
        (-1, ValueError, r"ord=-1 must be > 0"),
        (-INF, ValueError, r"ord=-inf must be > 0"),
        (math.nan, ValueError, r"ord=nan must be > 0"),
        (True, TypeError, r"ord must be a positive number or inf, got True"),
        ("fro", TypeError, r"ord must be a positive number or inf, got 'fro'"),
    ],
)
@pytest.mark.parametrize("cls", STRATEGY_CLASSES)
def test_invalid_ord_raises(cls, ord, error, match) -> None:
    """ord must be a real p > 0 or inf: otherwise the constructor raises, naming ord."""
    with pytest.raises(error, match=match):
        make_strategy(cls, ord=ord)


@pytest.mark.parametrize(
    "dtype, match",
    [(np.bool_, r"^scores has dtype bool"), (np.complex128, r"^scores has complex dtype")],
    ids=["bool", "complex"],
)
@pytest.mark.parametrize(
    "strategy, sparsity",
    [
        pytest.param(MagnitudePruning(), 0.5, id="unstructured"),
        pytest.param(MagnitudePruning(SP.two_four()), None, id="2:4"),
        pytest.param(StructuredPruning(), 0.5, id="rows"),
        pytest.param(StructuredPruning(SP.columns()), 0.5, id="columns"),
        pytest.param(MagnitudePruning(SP.blocks((2, 2))), 0.5, id="blocks"),
    ],
)
def test_unordered_scores_raise(strategy, sparsity, dtype, match) -> None:
    """Bool and complex scores have no order: create_mask raises TypeError naming scores."""
    with pytest.raises(TypeError, match=match):
        strategy.create_mask(np.ones(LINEAR, dtype=dtype), sparsity)


@pytest.mark.parametrize("cls", [MagnitudePruning, StructuredPruning])
def test_bool_weights_raise(cls) -> None:
    """Bool weights have no magnitude: compute_importance_scores raises TypeError naming weights."""
    w = np.ones(LINEAR, dtype=bool)
    with pytest.raises(TypeError, match=r"weights has dtype bool"):
        cls().compute_importance_scores(w, w)


# -- edge cases -------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(0,), (0, 12), (8, 0)], ids=str)
@pytest.mark.parametrize(
    "cls, pattern",
    [
        (MagnitudePruning, SP.unstructured()),
        (GradientPruning, SP.unstructured()),
        (RandomPruning, SP.unstructured()),
        (StructuredPruning, SP.rows()),
        (StructuredPruning, SP.columns()),
        (MagnitudePruning, SP.two_four()),
        (MagnitudePruning, SP.blocks((1,))),
    ],
    ids=["magnitude", "gradient", "random", "rows", "columns", "2:4", "blocks"],
)
def test_empty_arrays(backend: Backend, cls, pattern, shape) -> None:
    """0-size weights give 0-size masks, satisfying the pattern, and pruned arrays of the same shape and library."""
    strategy = make_strategy(cls, pattern)
    _, _, W, G = inputs(strategy, shape, backend)
    pruned, mask = strategy.prune(W, None if pattern.is_n_m else 0.5, G)
    assert mask.shape == shape and tuple(pruned.shape) == shape
    assert mask.num_pruned == 0 and mask.sparsity == 0.0
    assert mask.pattern == pattern
    assert_same_library(mask.mask, W)
    assert_same_library(pruned, W)
    out = strategy.apply_pruning(W, mask)
    assert tuple(out.shape) == shape
    assert (out is W) is (backend not in READ_ONLY)
    assert mask.satisfies()


ZERO_D_CASES = [(0.0, True), (1, False), (0.5, True)]  # round(0.5 * 1) = 0: kept


@pytest.mark.parametrize("sparsity, kept", ZERO_D_CASES)
def test_zero_d_create_mask(backend: Backend, sparsity, kept) -> None:
    """A 0-d score is one element: sparsity 0 keeps it, 1 prunes it; the mask is 0-d."""
    scores = backend.asarray(np.array(3.0))
    mask = MagnitudePruning().create_mask(scores, sparsity)
    assert mask.shape == () and tuple(mask.mask.shape) == ()
    assert_same_library(mask.mask, scores)
    assert bool(to_numpy(mask.mask)) is kept


@pytest.mark.parametrize("cls", STRATEGY_CLASSES)
def test_zero_d_importance_scores_are_arrays(backend: Backend, cls) -> None:
    """compute_importance_scores of a 0-d array is a 0-d array of the caller's library."""
    strategy = make_strategy(cls)
    _, _, W, G = inputs(strategy, (), backend)
    scores = strategy.compute_importance_scores(W, G)
    assert_same_library(scores, W)
    assert tuple(scores.shape) == ()


@pytest.mark.parametrize("sparsity, kept", ZERO_D_CASES)
@pytest.mark.parametrize("cls", [MagnitudePruning, GradientPruning, RandomPruning])
def test_zero_d_prune(backend: Backend, cls, sparsity, kept) -> None:
    """prune on a 0-d weight: 0 keeps it, 1 zeroes it; the result is 0-d in the caller's library."""
    strategy = make_strategy(cls)
    w, _, W, G = inputs(strategy, (), backend)
    pruned, mask = strategy.prune(W, sparsity, G)
    assert mask.shape == () and tuple(pruned.shape) == ()
    assert_same_library(pruned, W)
    assert float(to_numpy(pruned)) == (float(w) if kept else 0.0)
    np.testing.assert_array_equal(to_numpy(W), w)


def test_zero_d_has_no_axis_for_structures_or_groups() -> None:
    """Slice and N:M patterns need an axis: 0-d input raises ValueError naming the argument."""
    w = Backend.ARRAY_API_STRICT.asarray(np.array(3.0))
    with pytest.raises(ValueError, match=r"scores is 0-d"):
        StructuredPruning().prune(w, 0.5)
    with pytest.raises(ValueError, match=r"scores is 0-d"):
        MagnitudePruning().create_2to4_mask(np.array(3.0))


# -- 4. laws -----------------------------------------------------------------------------
ELEMENTS = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, INF, -INF]),  # ties and infinities
    st.floats(-1e6, 1e6),
)


def fractions(units: int) -> st.SearchStrategy[float]:
    """Floats in [0, 1], mixed with exact halves k / (2 * units) to hit round-half-to-even."""
    denominator = 2 * max(units, 1)
    return st.one_of(st.floats(0.0, 1.0), st.integers(0, denominator).map(lambda k: k / denominator))


@pytest.mark.parametrize("lib", [Backend.NUMPY, Backend.ARRAY_API_STRICT], ids=lambda b: b.value)
@pytest.mark.parametrize(
    "strategy",
    [MagnitudePruning(), StructuredPruning(SP.rows(), ord=1), StructuredPruning(SP.rows(), ord=2)],
    ids=["magnitude", "rows-L1", "rows-L2"],
)
@given(data=st.data())
def test_masks_nest_and_count_exactly(lib: Backend, strategy, data) -> None:
    """For s1 <= s2, pruned(s1) is a subset of pruned(s2), and exactly round(s * units) units are pruned."""
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6), label="shape")
    w = data.draw(hnp.arrays(np.float64, shape, elements=ELEMENTS), label="w")
    rows = strategy.pattern.kind is PatternKind.ROW_STRUCTURED
    units, per_unit = (shape[0], math.prod(shape[1:])) if rows else (w.size, 1)
    s1, s2 = sorted(data.draw(st.lists(fractions(units), min_size=2, max_size=2), label="sparsities"))
    W = lib.asarray(w)
    masks = [strategy.prune(W, s)[1] for s in (s1, s2)]
    keep1, keep2 = (to_numpy(m.mask) for m in masks)
    assert np.all(keep2 <= keep1)
    for s, mask in zip((s1, s2), masks):
        if w.size:  # empty slices fail satisfies(): see test_empty_arrays
            assert mask.satisfies()
        assert mask.num_pruned == round(s * units) * per_unit


@pytest.mark.parametrize("shape", [(), (7,), (4, 6), (2, 3, 5)])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 1.0, 3])
def test_random_unstructured_equals_topk_of_its_scores(shape, sparsity):
    """RandomPruning's unstructured shortcut (scores below k) is the top-k mask of its scores."""
    w = np.ones(shape, np.float32)
    size = int(np.prod(shape))
    if isinstance(sparsity, int) and sparsity > size:
        pytest.skip("count above the size")
    pruned, mask = asp.RandomPruning(seed=3).prune(w, sparsity)
    expected = asp.topk_mask(asp.random_scores(w, seed=3), sparsity)
    assert np.array_equal(np.asarray(mask.mask), np.asarray(expected.mask))
    assert mask.pattern == expected.pattern
    assert np.array_equal(pruned, np.where(np.asarray(mask.mask), w, 0))
    with pytest.raises(ValueError, match="sparsity"):
        asp.RandomPruning(seed=3).prune(w, 1.5)
