"""Taylor (per weight and per structure) and SNIP (one array or a whole model): formulas, masks, errors."""

from __future__ import annotations

import itertools

import array_api_compat
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from arraysparse import PruningStrategy, SparsityPattern
from arraysparse.model import ModelMask
from arraysparse.strategies.snip import SNIPPruning, snip_scores
from arraysparse.strategies.taylor import TaylorPruning, taylor_scores
from tests.backends import Backend, to_numpy

SP = SparsityPattern
CONV = (6, 4, 3, 2)
LINEAR = (8, 12)


def pair(shape, backend: Backend, seed: int = 0):
    rng = np.random.default_rng(seed)
    w, g = rng.standard_normal(shape), rng.standard_normal(shape)
    return w, g, backend.asarray(w), backend.asarray(g)


def same_library(result, like) -> None:
    assert type(result) is type(like)
    assert array_api_compat.array_namespace(result) is array_api_compat.array_namespace(like)


def stable_keep(units: np.ndarray, count: int) -> np.ndarray:
    """Keep-mask pruning the ``count`` lowest units, ties to the lower flat index (stable sort)."""
    order = np.argsort(units, axis=None, kind="stable")
    keep = np.ones(units.size, dtype=bool)
    keep[order[:count]] = False
    return keep.reshape(units.shape)


def nm_keep(scores: np.ndarray, n: int, m: int) -> np.ndarray:
    groups = scores.reshape(*scores.shape[:-1], -1, m)
    rank = np.argsort(np.argsort(groups, axis=-1, kind="stable"), axis=-1, kind="stable")
    return (rank >= n).reshape(scores.shape)


def manual_structure_sums(w: np.ndarray, g: np.ndarray, axis: int) -> np.ndarray:
    """Plain loops: for each index i along axis, add up w*g over every element with that index."""
    ax = axis % w.ndim
    sums = np.zeros(w.shape[ax])
    for idx in itertools.product(*(range(s) for s in w.shape)):
        sums[idx[ax]] += w[idx] * g[idx]
    return sums


# -- Taylor: formulas ---------------------------------------------------------------------
def test_taylor_per_weight_scores(backend: Backend) -> None:
    """(w * g)^2 elementwise, in the caller's library; inputs untouched."""
    w, g, W, G = pair(CONV, backend)
    got = taylor_scores(W, G)
    same_library(got, W)
    np.testing.assert_allclose(to_numpy(got), (w * g) ** 2, rtol=1e-12)
    np.testing.assert_array_equal(to_numpy(W), w)
    np.testing.assert_array_equal(to_numpy(G), g)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_taylor_per_structure_scores_equal_a_manual_sum(backend: Backend, axis: int) -> None:
    """(sum over the structure of w * g)^2, against element-by-element accumulation."""
    w, g, W, G = pair(CONV, backend, seed=axis + 5)
    got = taylor_scores(W, G, axis=axis)
    same_library(got, W)
    assert tuple(got.shape) == (CONV[axis],)
    np.testing.assert_allclose(to_numpy(got), manual_structure_sums(w, g, axis) ** 2, rtol=1e-10)


def test_taylor_block_scores_equal_a_manual_sum(backend: Backend) -> None:
    w, g, W, G = pair(LINEAR, backend, seed=3)
    got = to_numpy(taylor_scores(W, G, block=(2, 4)))
    expected = np.array(
        [[np.sum((w * g)[2 * i : 2 * i + 2, 4 * j : 4 * j + 4]) ** 2 for j in range(3)] for i in range(4)]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5), elements=st.floats(-10, 10)),
    st.data(),
)
def test_taylor_structure_law(w: np.ndarray, data) -> None:
    """Per-structure score = square of the per-structure sum of w * g, any shape and axis."""
    g = data.draw(hnp.arrays(np.float64, w.shape, elements=st.floats(-10, 10)))
    axis = data.draw(st.integers(-w.ndim, w.ndim - 1))
    others = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
    expected = np.sum(w * g, axis=others) ** 2
    np.testing.assert_allclose(taylor_scores(w, g, axis=axis), expected, rtol=1e-9, atol=1e-9)


# -- Taylor: strategy ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "pattern, axis",
    [(SP.filters(), 0), (SP.channels(), 1), (SP.slices(2), 2), (SP.slices(-1), -1)],
    ids=["filters", "channels", "slices2", "slices-1"],
)
def test_taylor_structured_mask(backend: Backend, pattern: SparsityPattern, axis: int) -> None:
    """Structures ranked by their own (sum w*g)^2; the mask prunes exactly the lowest, whole."""
    w, g, W, G = pair(CONV, backend, seed=11)
    strategy = TaylorPruning(pattern)
    pruned, mask = strategy.prune(W, 0.5, gradients=G)
    same_library(pruned, W)
    per = manual_structure_sums(w, g, axis) ** 2
    keep1 = stable_keep(per, round(0.5 * CONV[axis]))
    shape = [1] * len(CONV)
    shape[axis] = CONV[axis]
    expected = np.broadcast_to(keep1.reshape(shape), CONV)
    np.testing.assert_array_equal(to_numpy(mask.mask), expected)
    np.testing.assert_array_equal(to_numpy(pruned), np.where(expected, w, 0.0))
    assert mask.pattern == pattern and mask.satisfies()
    # scores have the weights' shape: every weight carries its structure's score
    scores = to_numpy(strategy.compute_importance_scores(W, G))
    np.testing.assert_allclose(scores, np.broadcast_to(per.reshape(shape), CONV), rtol=1e-10)


def test_taylor_structures_with_cancelling_contributions_go_first() -> None:
    """The sum comes before the square: a row of large but cancelling w*g is pruned, unlike a norm."""
    w = np.array([[5.0, 5.0, 5.0, 5.0], [0.3, 0.2, 0.1, 0.2], [1.0, 1.0, 1.0, 1.0]])
    g = np.array([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    mask = TaylorPruning(SP.rows()).prune(w, 1, gradients=g)[1]
    np.testing.assert_array_equal(mask.mask.all(axis=1), [False, True, True])
    per_weight_l2 = np.sqrt(np.sum(taylor_scores(w, g) ** 2, axis=1))
    assert np.argmin(per_weight_l2) == 1  # a norm of per-weight scores would prune row 1 instead


def test_taylor_blocks_mask(backend: Backend) -> None:
    w, g, W, G = pair(LINEAR, backend, seed=2)
    mask = TaylorPruning(SP.blocks((2, 4))).prune(W, 0.5, gradients=G)[1]
    tiles = np.array(
        [[np.sum((w * g)[2 * i : 2 * i + 2, 4 * j : 4 * j + 4]) ** 2 for j in range(3)] for i in range(4)]
    )
    keep_tiles = stable_keep(tiles, 6)
    expected = np.repeat(np.repeat(keep_tiles, 2, axis=0), 4, axis=1)
    np.testing.assert_array_equal(to_numpy(mask.mask), expected)


def test_taylor_unstructured_and_nm(backend: Backend) -> None:
    w, g, W, G = pair(LINEAR, backend, seed=4)
    s = (w * g) ** 2
    mask = TaylorPruning().prune(W, 0.4, gradients=G)[1]
    np.testing.assert_array_equal(to_numpy(mask.mask), stable_keep(s, round(0.4 * s.size)))
    strategy = TaylorPruning(SP.two_four())
    mask24 = strategy.prune(W, gradients=G)[1]
    np.testing.assert_array_equal(to_numpy(mask24.mask), nm_keep(s, 2, 4))
    mask34 = strategy.create_n_to_m_mask(strategy.compute_importance_scores(W, G), 3, 4)
    np.testing.assert_array_equal(to_numpy(mask34.mask), nm_keep(s, 3, 4))


def test_taylor_attributes() -> None:
    t = TaylorPruning(SP.filters())
    assert isinstance(t, PruningStrategy)
    assert t.name == "taylor" and t.requires_gradients and t.is_structured
    assert TaylorPruning().pattern == SP.unstructured()


def test_taylor_errors() -> None:
    w = np.ones((4, 4))
    with pytest.raises(ValueError, match="gradients is None"):
        TaylorPruning().prune(w, 0.5)
    with pytest.raises(ValueError, match=r"gradients has shape \(4, 3\)"):
        taylor_scores(w, np.ones((4, 3)))
    with pytest.raises(TypeError, match="different array libraries"):
        taylor_scores(w, torch.ones(4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="not both"):
        taylor_scores(w, w, axis=0, block=(2, 2))
    with pytest.raises(TypeError, match="dtype bool"):
        taylor_scores(w, np.ones((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        taylor_scores(w, w, axis=2)
    with pytest.raises(ValueError, match="0-d"):
        TaylorPruning(SP.rows()).compute_importance_scores(np.asarray(1.0), np.asarray(2.0))
    with pytest.raises(ValueError, match="block"):
        TaylorPruning(SP.blocks((3, 3))).compute_importance_scores(w, w)


# -- SNIP --------------------------------------------------------------------------------
def test_snip_scores_array(backend: Backend) -> None:
    """|g * w| / sum |g * w|, summing to 1, in the caller's library; inputs untouched."""
    w, g, W, G = pair(LINEAR, backend, seed=7)
    got = snip_scores(W, G)
    same_library(got, W)
    expected = np.abs(w * g) / np.sum(np.abs(w * g))
    np.testing.assert_allclose(to_numpy(got), expected, rtol=1e-12)
    assert np.isclose(np.sum(to_numpy(got)), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(to_numpy(W), w)


def random_model(backend: Backend, seed: int = 0):
    rng = np.random.default_rng(seed)
    shapes = {"enc": {"w": (8, 12), "b": (8,)}, "dec": {"w": (4, 8)}, "head": (4, 4)}

    def draw(tree):
        return {k: draw(v) if isinstance(v, dict) else rng.standard_normal(v) for k, v in tree.items()}

    w, g = draw(shapes), draw(shapes)

    def conv(tree):
        return {k: conv(v) if isinstance(v, dict) else backend.asarray(v) for k, v in tree.items()}

    return w, g, conv(w), conv(g)


def flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def test_snip_scores_model_normalised_over_every_layer(backend: Backend) -> None:
    w, g, W, G = random_model(backend)
    got = snip_scores(W, G)
    assert list(got) == ["enc", "dec", "head"] and list(got["enc"]) == ["w", "b"]
    fw, fg, fs = flat(w), flat(g), {k: to_numpy(v) for k, v in flat(got).items()}
    total = sum(np.sum(np.abs(fw[k] * fg[k])) for k in fw)
    for k in fw:
        np.testing.assert_allclose(fs[k], np.abs(fw[k] * fg[k]) / total, rtol=1e-12)
    assert np.isclose(sum(np.sum(v) for v in fs.values()), 1.0, rtol=1e-12)
    assert sum(np.sum(v) for v in fs.values()) > max(np.sum(v) for v in fs.values())  # not per layer


@given(st.lists(hnp.array_shapes(min_dims=1, max_dims=3, max_side=6), min_size=1, max_size=4), st.integers(0, 2**16))
def test_snip_scores_sum_to_one(shapes, seed) -> None:
    rng = np.random.default_rng(seed)
    w = {f"l{i}": rng.standard_normal(s) for i, s in enumerate(shapes)}
    g = {f"l{i}": rng.standard_normal(s) for i, s in enumerate(shapes)}
    got = snip_scores(w, g)
    assert np.isclose(sum(float(np.sum(v)) for v in got.values()), 1.0, rtol=1e-12)
    assert all(np.all(v >= 0) for v in got.values())


def test_snip_global_mask_equals_concatenated_topk(backend: Backend) -> None:
    """scope='global': one threshold over the model, as concatenating |g*w| and pruning the lowest."""
    w, g, W, G = random_model(backend, seed=1)
    pruned, mask = SNIPPruning().prune(W, 0.6, gradients=G)
    assert isinstance(mask, ModelMask)
    fw, fg = flat(w), flat(g)
    cat = np.concatenate([np.abs(fw[k] * fg[k]).ravel() for k in fw])
    keep = stable_keep(cat, round(0.6 * cat.size))
    start = 0
    for k in fw:
        n = fw[k].size
        np.testing.assert_array_equal(to_numpy(mask[k].mask), keep[start : start + n].reshape(fw[k].shape))
        np.testing.assert_array_equal(to_numpy(flat(pruned)[k]), np.where(keep[start : start + n].reshape(fw[k].shape), fw[k], 0))
        start += n
    assert mask.num_pruned == round(0.6 * cat.size)
    for k, v in flat(W).items():
        np.testing.assert_array_equal(to_numpy(v), fw[k])


def test_snip_layer_scope_and_nm(backend: Backend) -> None:
    w, g, W, G = random_model(backend, seed=2)
    mask = SNIPPruning(scope="layer").prune(W, 0.5, gradients=G)[1]
    fw, fg = flat(w), flat(g)
    for k in fw:
        s = np.abs(fw[k] * fg[k])
        np.testing.assert_array_equal(to_numpy(mask[k].mask), stable_keep(s, round(0.5 * s.size)))
    # N:M: per array whatever the scope (the pattern fixes every group's sparsity)
    mask24 = SNIPPruning(SP.two_four()).prune(W, gradients=G)[1]
    for k in fw:
        np.testing.assert_array_equal(to_numpy(mask24[k].mask), nm_keep(np.abs(fw[k] * fg[k]), 2, 4))
        assert mask24[k].pattern == SP.two_four()


def test_snip_structured_needs_layer_scope() -> None:
    w, g, _, _ = random_model(Backend.NUMPY, seed=3)
    with pytest.raises(ValueError, match="scope='layer'"):
        SNIPPruning(SP.rows()).prune(w, 0.5, gradients=g)
    mask = SNIPPruning(SP.rows(), scope="layer").prune(w, 0.5, gradients=g)[1]
    assert all(m.satisfies() and m.pattern == SP.rows() for m in mask.values())


def test_snip_single_array_mask_is_gradient_ranking() -> None:
    """On one array, normalisation does not change the ranking: same mask as |g * w|."""
    w, g, _, _ = pair(LINEAR, Backend.NUMPY, seed=9)
    mask = SNIPPruning().prune(w, 0.7, gradients=g)[1]
    np.testing.assert_array_equal(mask.mask, stable_keep(np.abs(w * g), round(0.7 * w.size)))


def test_snip_errors() -> None:
    w, g, _, _ = random_model(Backend.NUMPY, seed=4)
    with pytest.raises(ValueError, match="gradients is None"):
        SNIPPruning().prune(w, 0.5)
    missing = {"enc": g["enc"], "dec": g["dec"]}
    with pytest.raises(ValueError, match=r"missing \['head'\]"):
        snip_scores(w, missing)
    bad = {**g, "head": np.ones((4, 5))}
    with pytest.raises(ValueError, match=r"gradients\['head'\] has shape \(4, 5\)"):
        snip_scores(w, bad)
    with pytest.raises(TypeError, match="gradients is an array but weights is a mapping"):
        snip_scores(w, np.ones(3))
    with pytest.raises(ValueError, match="zero"):
        snip_scores(np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match="inf or nan"):
        snip_scores(np.array([1.0, np.inf]), np.ones(2))
    with pytest.raises(TypeError, match="real floating"):
        snip_scores(np.ones(4, dtype=np.int64), np.ones(4, dtype=np.int64))
    with pytest.raises(ValueError, match="empty"):
        snip_scores({}, {})
    with pytest.raises(ValueError, match="scope='bad' must be"):
        SNIPPruning(scope="bad")
