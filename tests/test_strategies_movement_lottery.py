"""Movement (stateful accumulator) and lottery ticket (prune, rewind, retrain): laws, masks, errors."""

from __future__ import annotations

import itertools
import math

import array_api_compat
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from arraysparse import PruningMask, PruningStrategy, SparsityPattern
from arraysparse._validation import prune_count
from arraysparse.model import ModelMask
from arraysparse.strategies.lottery import (
    LotteryTicketPruning,
    LotteryTicketResult,
    round_counts,
)
from arraysparse.strategies.movement import MovementPruning, movement_scores
from tests.backends import Backend, to_numpy

SP = SparsityPattern
SHAPES = {"enc": {"w": (8, 12), "b": (8,)}, "head": (4, 8)}


def draw(shapes, rng):
    return {k: draw(v, rng) if isinstance(v, dict) else rng.standard_normal(v) for k, v in shapes.items()}


def convert(tree, backend: Backend):
    return {k: convert(v, backend) if isinstance(v, dict) else backend.asarray(v) for k, v in tree.items()}


def flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def stable_keep(units: np.ndarray, count: int) -> np.ndarray:
    order = np.argsort(units, axis=None, kind="stable")
    keep = np.ones(units.size, dtype=bool)
    keep[order[:count]] = False
    return keep.reshape(units.shape)


def nm_keep(scores: np.ndarray, n: int, m: int) -> np.ndarray:
    groups = scores.reshape(*scores.shape[:-1], -1, m)
    rank = np.argsort(np.argsort(groups, axis=-1, kind="stable"), axis=-1, kind="stable")
    return (rank >= n).reshape(scores.shape)


def same_library(result, like) -> None:
    assert type(result) is type(like)
    assert array_api_compat.array_namespace(result) is array_api_compat.array_namespace(like)


# == movement ============================================================================
def test_movement_accumulates_the_sum_over_steps(backend: Backend) -> None:
    """After T updates S = -sum_t W_t * G_t; masks are the top-k of S; inputs untouched."""
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal((8, 12)) for _ in range(4)]
    gs = [rng.standard_normal((8, 12)) for _ in range(4)]
    mv = MovementPruning()
    for w, g in zip(ws, gs):
        mv.update(backend.asarray(w), backend.asarray(g))
    expected = -sum(w * g for w, g in zip(ws, gs))
    assert mv.steps == 4
    same_library(mv.scores, backend.asarray(ws[0]))
    np.testing.assert_allclose(to_numpy(mv.scores), expected, rtol=1e-12, atol=1e-12)
    mask = mv.masks(0.75)
    np.testing.assert_array_equal(to_numpy(mask.mask), stable_keep(expected, round(0.75 * 96)))
    W = backend.asarray(ws[-1])
    pruned, mask2 = mv.prune(W, 0.75)
    np.testing.assert_array_equal(to_numpy(mask2.mask), to_numpy(mask.mask))
    np.testing.assert_array_equal(to_numpy(pruned), np.where(to_numpy(mask.mask), ws[-1], 0))
    np.testing.assert_array_equal(to_numpy(W), ws[-1])


def test_movement_one_step_scores_and_nm(backend: Backend) -> None:
    rng = np.random.default_rng(1)
    w, g = rng.standard_normal((4, 8)), rng.standard_normal((4, 8))
    got = movement_scores(backend.asarray(w), backend.asarray(g))
    np.testing.assert_allclose(to_numpy(got), -(w * g), rtol=1e-12)
    # a fresh strategy with gradients: one step's scores, nothing stored
    mv = MovementPruning(SP.two_four())
    mask = mv.prune(backend.asarray(w), gradients=backend.asarray(g))[1]
    np.testing.assert_array_equal(to_numpy(mask.mask), nm_keep(-(w * g), 2, 4))
    assert mv.steps == 0
    mv.update(backend.asarray(w), backend.asarray(g))
    mv.update(backend.asarray(w), backend.asarray(g))
    mask = mv.create_n_to_m_mask(mv.scores, 3, 4)
    np.testing.assert_array_equal(to_numpy(mask.mask), nm_keep(-2 * (w * g), 3, 4))


def test_movement_mapping_accumulator(backend: Backend) -> None:
    """A model in, scores of the same structure out; layer and global masks from S."""
    rng = np.random.default_rng(2)
    steps = [(draw(SHAPES, rng), draw(SHAPES, rng)) for _ in range(3)]
    mv = MovementPruning()
    gmv = MovementPruning(scope="global")
    for w, g in steps:
        mv.update(convert(w, backend), convert(g, backend))
        gmv.update(convert(w, backend), convert(g, backend))
    scores = mv.scores
    assert list(scores) == ["enc", "head"] and list(scores["enc"]) == ["w", "b"]
    expected = {k: -sum(flat(w)[k] * flat(g)[k] for w, g in steps) for k in flat(SHAPES)}
    for k, v in flat(scores).items():
        np.testing.assert_allclose(to_numpy(v), expected[k], rtol=1e-12, atol=1e-12)
    layer = mv.masks(0.5)
    assert isinstance(layer, ModelMask)
    for k, e in expected.items():
        np.testing.assert_array_equal(to_numpy(layer[k].mask), stable_keep(e, round(0.5 * e.size)))
    glob = gmv.masks(0.5)
    cat = np.concatenate([expected[k].ravel() for k in expected])
    keep = stable_keep(cat, round(0.5 * cat.size))
    start = 0
    for k, e in expected.items():
        np.testing.assert_array_equal(to_numpy(glob[k].mask), keep[start : start + e.size].reshape(e.shape))
        start += e.size
    pruned, mask = mv.prune(convert(steps[-1][0], backend), 0.5)
    assert list(pruned) == ["enc", "head"]
    np.testing.assert_array_equal(to_numpy(pruned["head"]), np.where(to_numpy(mask["head"].mask), steps[-1][0]["head"], 0))


def test_movement_reset_and_state_errors() -> None:
    rng = np.random.default_rng(3)
    w, g = draw(SHAPES, rng), draw(SHAPES, rng)
    mv = MovementPruning()
    with pytest.raises(ValueError, match="no step accumulated"):
        _ = mv.scores
    with pytest.raises(ValueError, match="accumulated no step"):
        mv.compute_importance_scores(w["head"])
    mv.update(w, g)
    with pytest.raises(ValueError, match=r"missing \['head'\]"):
        mv.update({"enc": w["enc"]}, {"enc": g["enc"]})
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        mv.update({**w, "extra": np.ones(2)}, {**g, "extra": np.ones(2)})
    bad = {**w, "head": np.ones((4, 9))}
    with pytest.raises(ValueError, match=r"weights\['head'\] has shape \(4, 9\) but the accumulator holds shape \(4, 8\)"):
        mv.update(bad, {**g, "head": np.ones((4, 9))})
    with pytest.raises(TypeError, match="accumulator holds a mapping"):
        mv.update(w["head"], g["head"])
    with pytest.raises(ValueError, match="gradients is None"):
        mv.update(w, None)
    with pytest.raises(ValueError, match=r"gradients\['head'\] has shape"):
        mv.update(w, {**g, "head": np.ones((4, 9))})
    with pytest.raises(TypeError, match="different array libraries"):
        mv.update(w, {**g, "head": torch.ones(4, 8, dtype=torch.float64)})
    with pytest.raises(ValueError, match="accumulated 1 step"):
        mv.compute_importance_scores(w, g)
    assert mv.steps == 1  # failed updates change nothing
    # weights of another library than the accumulated scores: the error names those scores, not
    # the mask built from them (it was "weights and mask come from different array libraries")
    tw, tg = convert(w, Backend.TORCH), convert(g, Backend.TORCH)
    for call in (lambda: mv.prune(tw, 0.5), lambda: mv.compute_importance_scores(tw), lambda: mv.update(tw, tg)):
        with pytest.raises(TypeError, match=r"^weights\['enc.w'\] and the scores accumulated by update\(\) come from different array libraries \(torch and numpy\)"):
            call()
    np.testing.assert_allclose(mv.scores["head"], -(w["head"] * g["head"]))
    mv.reset()
    assert mv.steps == 0
    mv.update(w["head"], g["head"])  # another structure after reset
    with pytest.raises(ValueError, match=r"shape \(4, 8\)"):
        mv.update(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="scope="):
        MovementPruning(scope="model")
    with pytest.raises(ValueError, match="scope='layer'"):
        m2 = MovementPruning(SP.rows(), scope="global")
        m2.update(w, g)
        m2.masks(0.5)


def test_movement_detaches_torch_autograd() -> None:
    w = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    (w**2).sum().backward()
    mv = MovementPruning()
    for _ in range(3):
        mv.update(w, w.grad)
    assert not mv.scores.requires_grad
    torch.testing.assert_close(mv.scores, -3 * (w * w.grad).detach())


def test_movement_attributes() -> None:
    mv = MovementPruning()
    assert isinstance(mv, PruningStrategy) and mv.name == "movement" and mv.requires_gradients
    assert mv.scope == "layer" and "steps=0" in repr(mv)


# == lottery ticket: schedule ===========================================================
@given(st.floats(0, 1), st.integers(1, 10_000), st.integers(1, 12))
def test_round_counts_law(s: float, size: int, rounds: int) -> None:
    """Non-decreasing, last = the count rule's count, each close to 1 - (1 - s)^(r/R) of the size."""
    counts = round_counts(s, size, rounds)
    assert len(counts) == rounds
    assert counts[-1] == prune_count(s, size)
    assert all(a <= b for a, b in itertools.pairwise(counts))
    for r, c in enumerate(counts[:-1], start=1):
        target = (1 - (1 - counts[-1] / size) ** (r / rounds)) * size
        assert abs(c - target) <= 0.5 + 1e-9


def test_round_counts_values() -> None:
    assert round_counts(0.875, 1000, 3) == [500, 750, 875]
    assert round_counts(0.5, 7, 1) == [4]  # half to even, as everywhere
    assert round_counts(5, 8, 2) == [prune_count(1 - (3 / 8) ** 0.5, 8), 5]  # an int is a count


# == lottery ticket: procedure ==========================================================
class Recorder:
    """A train_fn that records what it is given and 'trains' by a deterministic update."""

    def __init__(self, rng_seed: int = 0):
        self.calls: list[tuple[np.ndarray, np.ndarray, int]] = []
        self.returned: list[np.ndarray] = []
        self.rng = np.random.default_rng(rng_seed)

    def __call__(self, w, masks, r):
        wn, keep = to_numpy(w).copy(), to_numpy(masks.mask).copy()
        self.calls.append((wn, keep, r))
        xp = array_api_compat.array_namespace(w)
        noise = self.rng.standard_normal(wn.shape)
        self.returned.append(wn * 1.5 + noise)
        # dense noise: the result is masked again by the procedure
        return w * 1.5 + xp.asarray(noise, dtype=w.dtype, device=array_api_compat.device(w)), {"round": r}


def test_lottery_rounds_array(backend: Backend) -> None:
    rng = np.random.default_rng(4)
    init, trained = rng.standard_normal((8, 16)), rng.standard_normal((8, 16))
    INIT, TRAINED = backend.asarray(init), backend.asarray(trained)
    lt = LotteryTicketPruning(rounds=4)
    lt.record_rewind_point(INIT)
    rec = Recorder()
    res = lt.run(TRAINED, 0.9, rec)
    assert isinstance(res, LotteryTicketResult)
    counts = round_counts(0.9, 128, 4)
    assert [c[2] for c in rec.calls] == [1, 2, 3, 4]
    assert [h["round"] for h in res.history] == [1, 2, 3, 4]
    assert [h["pruned"] for h in res.history] == counts
    assert [h["metrics"] for h in res.history] == [{"round": r} for r in range(1, 5)]
    assert res.masks.num_pruned == prune_count(0.9, 128) == 115
    # round 1 ranks |trained|; round r+1 ranks the survivors of what train_fn returned in round r
    prev, current = np.ones((8, 16), dtype=bool), trained
    for (w_given, keep, _), returned, count in zip(rec.calls, rec.returned, counts):
        np.testing.assert_array_equal(keep, stable_keep(np.where(prev, np.abs(current), -np.inf), count))
        assert np.all(keep <= prev)  # nested
        np.testing.assert_array_equal(w_given, np.where(keep, init, 0.0))  # survivors rewound exactly
        prev, current = keep, np.where(keep, returned, 0.0)
    np.testing.assert_array_equal(to_numpy(res.weights), current)
    final = to_numpy(res.weights)
    same_library(res.weights, TRAINED)
    assert np.all(final[~to_numpy(res.masks.mask)] == 0)  # masked weights stay zero
    assert np.count_nonzero(final) == 128 - 115
    np.testing.assert_array_equal(to_numpy(INIT), init)  # the caller's arrays are untouched
    np.testing.assert_array_equal(to_numpy(TRAINED), trained)


def test_lottery_later_rounds_rank_the_retrained_weights() -> None:
    """Round r+1 ranks the weights train_fn returned in round r (retraining changes the ranking)."""
    init = np.arange(1.0, 17.0)
    reverse = -np.arange(16.0, 0.0, -1.0)

    def train(w, masks, r):  # a 'training' that inverts the magnitude order of the survivors
        return np.where(masks.mask, reverse, 0.0)

    lt = LotteryTicketPruning(rounds=2)
    lt.record_rewind_point(init)
    res = lt.run(init.copy(), 0.75, train)
    c1, c2 = round_counts(0.75, 16, 2)
    keep1 = stable_keep(np.abs(init), c1)  # lowest |init| pruned: the first entries
    keep2 = stable_keep(np.where(keep1, np.abs(reverse), -np.inf), c2)  # retrained: the last entries
    np.testing.assert_array_equal(res.masks.mask, keep2)
    one_shot = stable_keep(np.abs(init), 12)
    assert not np.array_equal(res.masks.mask, one_shot)


def test_lottery_late_rewinding_and_dense_training() -> None:
    """train_dense: round 0 trains with all-keep masks; survivors rewind to the step-k values."""
    rng = np.random.default_rng(5)
    init = rng.standard_normal(32)
    lt = LotteryTicketPruning(rounds=2, rewind_step=3)
    seen = []
    snapshot = {}

    def train(w, masks, r):
        seen.append((r, masks.mask.copy(), w.copy()))
        for step in range(1, 6):
            w = w + 0.1 * step * masks.mask  # a mask-respecting update
            if r == 0 and step == lt.rewind_step:
                lt.record_rewind_point(w)
                snapshot["w"] = w.copy()
        return w

    res = lt.run(init, 0.5, train, train_dense=True)
    assert [r for r, _, _ in seen] == [0, 1, 2]
    assert seen[0][1].all()  # dense training: nothing pruned
    np.testing.assert_array_equal(seen[0][2], init)
    assert not np.array_equal(snapshot["w"], init)
    for r, keep, w_given in seen[1:]:
        assert (~keep).sum() == round_counts(0.5, 32, 2)[r - 1]
        np.testing.assert_array_equal(w_given, np.where(keep, snapshot["w"], 0.0))  # step-3 values
    np.testing.assert_array_equal(seen[2][1], res.masks.mask)
    assert res.history[0]["round"] == 0 and res.history[-1]["pruned"] == 16
    # rewind_step=0 with train_dense records the initial weights itself
    lt0 = LotteryTicketPruning(rounds=1)
    calls = []
    lt0.run(init, 0.5, lambda w, m, r: calls.append(w.copy()) or w + 1.0, train_dense=True)
    np.testing.assert_array_equal(lt0.rewind_point, init)
    np.testing.assert_array_equal(calls[1][calls[1] != 0], init[calls[1] != 0])


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_lottery_model(backend: Backend, scope: str) -> None:
    rng = np.random.default_rng(6)
    init, trained = draw(SHAPES, rng), draw(SHAPES, rng)
    lt = LotteryTicketPruning(rounds=3, scope=scope)
    lt.record_rewind_point(convert(init, backend))
    masks_seen = []

    def train(w, masks, r):
        assert isinstance(masks, ModelMask) and list(masks) == ["enc.w", "enc.b", "head"]
        assert list(w) == ["enc", "head"]
        for k, v in flat(w).items():
            np.testing.assert_array_equal(to_numpy(v), np.where(to_numpy(masks[k].mask), flat(init)[k], 0))
        masks_seen.append({k: to_numpy(m.mask) for k, m in masks.items()})
        return {"enc": {"w": w["enc"]["w"] * 2, "b": w["enc"]["b"] + 1}, "head": w["head"] - 1}

    res = lt.run(convert(trained, backend), 0.8, train)
    sizes = {k: math.prod(s) for k, s in flat(SHAPES).items()}
    if scope == "layer":
        for k, n in sizes.items():
            assert [int((~m[k]).sum()) for m in masks_seen] == round_counts(0.8, n, 3)
            assert res.history[-1]["layer_sparsity"][k] == prune_count(0.8, n) / n
    else:
        total = sum(sizes.values())
        assert [sum(int((~m[k]).sum()) for k in m) for m in masks_seen] == round_counts(0.8, total, 3)
        # round 1 is global magnitude pruning of the trained model
        cat = np.concatenate([np.abs(v).ravel() for v in flat(trained).values()])
        keep = stable_keep(cat, round_counts(0.8, total, 3)[0])
        start = 0
        for k, n in sizes.items():
            np.testing.assert_array_equal(masks_seen[0][k].ravel(), keep[start : start + n])
            start += n
    for a, b in itertools.pairwise(masks_seen):
        assert all(np.all(b[k] <= a[k]) for k in a)
    for k, v in flat(res.weights).items():
        assert np.all(to_numpy(v)[~to_numpy(res.masks[k].mask)] == 0)
    for k, v in flat(lt.rewind_point).items():
        np.testing.assert_array_equal(to_numpy(v), flat(init)[k])


def test_lottery_nm_rounds(backend: Backend) -> None:
    """N:M: round r keeps an n_r:m mask, the last n:m, nested, each pruning the smallest survivors per group."""
    rng = np.random.default_rng(7)
    init, trained = rng.standard_normal((4, 16)), rng.standard_normal((4, 16))
    lt = LotteryTicketPruning(SP.n_m(6, 8), rounds=3)
    lt.record_rewind_point(backend.asarray(init))
    rec = Recorder(1)
    res = lt.run(backend.asarray(trained), None, rec)
    zeros = round_counts(6, 8, 3)
    assert zeros[-1] == 6
    prev = np.ones((4, 16), dtype=bool)
    for (_, keep, _), n_r in zip(rec.calls, zeros):
        per_group = (~keep).reshape(4, 2, 8).sum(axis=-1)
        assert np.all(per_group == n_r)
        assert np.all(keep <= prev)
        prev = keep
    assert res.masks.pattern == SP.n_m(6, 8) and res.masks.satisfies()
    np.testing.assert_array_equal(rec.calls[0][1], nm_keep(np.abs(trained), zeros[0], 8))
    lt24 = LotteryTicketPruning(SP.two_four(), rounds=2)
    lt24.record_rewind_point(init)
    assert lt24.run(trained, 0.5, lambda w, m, r: w).masks.pattern == SP.two_four()


def test_lottery_retraining_beats_one_shot_on_a_toy_regression() -> None:
    """Linear regression, one strong signal spread over 4 near-copies: one-shot magnitude pruning drops it,
    iterative pruning with retraining moves it onto one copy and keeps it."""
    rng = np.random.default_rng(0)
    n = 400
    z = rng.standard_normal((n, 3))
    copies = z[:, :1] + 0.05 * rng.standard_normal((n, 4))
    X = np.concatenate([copies, z[:, 1:], 0.5 * rng.standard_normal((n, 10))], axis=1)
    y = 4 * z[:, 0] + 1.5 * z[:, 1] + 1.5 * z[:, 2]
    init = 0.01 * rng.standard_normal(16)

    def loss(w):
        return float(np.mean((X @ w - y) ** 2))

    def train(w, masks, r):
        start = loss(w)
        w = np.array(w, copy=True)
        for _ in range(500):
            w -= 0.05 * (2 * X.T @ (X @ w - y) / n) * masks.mask  # gradient step on survivors only
        return w, {"start": start, "loss": loss(w)}

    results = {}
    for rounds in (1, 4):
        lt = LotteryTicketPruning(rounds=rounds)
        results[rounds] = lt.run(init, 14, train, train_dense=True)
    dense_loss = results[1].history[0]["metrics"]["loss"]
    one_shot, iterative = results[1], results[4]
    assert len(iterative.history) == 5
    for h in iterative.history:
        assert h["metrics"]["loss"] < h["metrics"]["start"]  # every round really retrains
    assert not np.array_equal(one_shot.masks.mask, iterative.masks.mask)
    assert not one_shot.masks.mask[:4].any()  # one-shot lost the strong signal
    assert iterative.masks.mask[:4].sum() == 1  # iterative kept it on one copy
    lo, li = one_shot.history[-1]["metrics"]["loss"], iterative.history[-1]["metrics"]["loss"]
    assert li < lo / 3 and dense_loss < li


def test_lottery_as_a_plain_strategy() -> None:
    lt = LotteryTicketPruning()
    assert isinstance(lt, PruningStrategy) and lt.name == "lottery_ticket" and not lt.requires_gradients
    w = np.random.default_rng(8).standard_normal((4, 8))
    _, mask = lt.prune(w, 0.5)
    np.testing.assert_array_equal(mask.mask, stable_keep(np.abs(w), 16))
    assert isinstance(mask, PruningMask)


def test_lottery_errors() -> None:
    rng = np.random.default_rng(9)
    w = rng.standard_normal((4, 8))
    model = draw(SHAPES, rng)
    for bad, exc in ((0, ValueError), (-2, ValueError), (True, TypeError), (1.5, TypeError)):
        with pytest.raises(exc, match="rounds"):
            LotteryTicketPruning(rounds=bad)
    with pytest.raises(ValueError, match="rewind_step=-1"):
        LotteryTicketPruning(rewind_step=-1)
    with pytest.raises(ValueError, match="scope="):
        LotteryTicketPruning(scope="net")
    with pytest.raises(ValueError, match="scope='layer'"):
        LotteryTicketPruning(SP.two_four(), scope="global")
    with pytest.raises(ValueError, match="supported"):
        LotteryTicketPruning(SP.rows())
    lt = LotteryTicketPruning(rounds=2)
    with pytest.raises(ValueError, match="no rewind point"):
        lt.run(w, 0.5, lambda w, m, r: w)
    lt.record_rewind_point(w)
    with pytest.raises(TypeError, match="train_fn must be callable"):
        lt.run(w, 0.5, None)
    with pytest.raises(TypeError, match="returned None in round 1"):
        lt.run(w, 0.5, lambda w, m, r: None)
    with pytest.raises(ValueError, match=r"returned in round 1 has shape \(4, 7\)"):
        lt.run(w, 0.5, lambda w, m, r: np.ones((4, 7)))
    with pytest.raises(TypeError, match="tuple of 3"):
        lt.run(w, 0.5, lambda w, m, r: (w, 1, 2))
    with pytest.raises(TypeError, match="is a mapping but weights is an array"):
        lt.run(w, 0.5, lambda w, m, r: {"w": w})
    with pytest.raises(TypeError, match="different array libraries"):
        lt.run(w, 0.5, lambda w, m, r: torch.from_numpy(w))
    with pytest.raises(ValueError, match="target_sparsity=1.5"):
        lt.run(w, 1.5, lambda w, m, r: w)
    with pytest.raises(ValueError, match="target_sparsity is required"):
        lt.run(w, None, lambda w, m, r: w)
    with pytest.raises(TypeError, match="rewind point is an array but weights is a mapping"):
        lt.run(model, 0.5, lambda w, m, r: w)  # rewind point is an array, weights a model
    with pytest.raises(TypeError, match="real floating"):
        lt.run(np.ones((4, 8), dtype=np.int64), 0.5, lambda w, m, r: w)
    lm = LotteryTicketPruning(rounds=2)
    lm.record_rewind_point(model)
    with pytest.raises(ValueError, match=r"missing \['head'\]"):
        lm.run(model, 0.5, lambda w, m, r: {"enc": w["enc"]})
    with pytest.raises(TypeError, match="scope='global'"):
        lm.run(model, 10, lambda w, m, r: w)
    with pytest.raises(ValueError, match="disagrees"):
        nm = LotteryTicketPruning(SP.two_four())
        nm.record_rewind_point(w)
        nm.run(w, 0.75, lambda w, m, r: w)
    with pytest.raises(ValueError, match="m=4 must divide"):
        nm.run(np.ones((2, 6)), None, lambda w, m, r: w)
