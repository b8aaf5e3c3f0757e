"""Evidence on a real network: the digits MLP of ``examples/digits_mlp.py``.

The network is trained once per module with the example's quick settings (a few
seconds); the assertions are the orderings that held with a margin on every seed
tried (``python examples/digits_mlp.py --quick --sweep 6``, see docs/evidence.md),
never exact accuracies.
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys

import numpy as np
import pytest

from arraysparse.strategies.magnitude import MagnitudePruning

pytest.importorskip("sklearn")
threadpoolctl = pytest.importorskip("threadpoolctl")

_PATH = pathlib.Path(__file__).resolve().parents[1] / "examples" / "digits_mlp.py"
_spec = importlib.util.spec_from_file_location("digits_mlp", _PATH)
dm = importlib.util.module_from_spec(_spec)
sys.modules["digits_mlp"] = dm  # dataclasses look their module up by name
_spec.loader.exec_module(dm)

TARGETS = {t.label: t for t in dm.TARGETS}


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    # the matrices are tiny: BLAS threads only fight over the cores
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def ctx(_one_blas_thread):
    data = dm.load_data(0)
    init, dense = dm.train_dense(data, dm.QUICK)
    return dm.Context(data, dm.QUICK, init, dense)


def _expected_pruned(target, shape):
    if target.sparsity is None:
        n, m = target.pattern.nm
        return math.prod(shape) * n // m
    return round(target.sparsity * math.prod(shape))  # Python rounds half to even, as the library


# --------------------------------------------------------------------------- the network itself


def test_gradients_match_finite_differences(ctx):
    model = dm.copy_model(ctx.init)
    x, y = ctx.data.x_train[:32], ctx.data.y_train[:32]
    _, grads = dm.loss_and_gradients(model, x, y)
    rng = np.random.default_rng(1)
    eps = 1e-6
    for name in model:
        for key in ("weight", "bias"):
            value = model[name][key]
            for flat in rng.choice(value.size, size=3, replace=False):
                idx = np.unravel_index(flat, value.shape)
                old = value[idx]
                value[idx] = old + eps
                up = dm.loss_and_gradients(model, x, y)[0]
                value[idx] = old - eps
                down = dm.loss_and_gradients(model, x, y)[0]
                value[idx] = old
                assert (up - down) / (2 * eps) == pytest.approx(grads[name][key][idx], rel=1e-4, abs=1e-7)


def test_dense_accuracy_is_high(ctx):
    assert dm.accuracy(ctx.dense, ctx.data.x_test, ctx.data.y_test) > 0.9


def test_training_is_deterministic(ctx):
    again = dm.train(ctx.init, ctx.data, epochs=2, lr=1e-3, seed=3)
    twice = dm.train(ctx.init, ctx.data, epochs=2, lr=1e-3, seed=3)
    for name in again:
        np.testing.assert_array_equal(again[name]["weight"], twice[name]["weight"])


# --------------------------------------------------------------------------- masks and fine-tuning


@pytest.mark.parametrize("label", list(TARGETS))
def test_layerwise_masks_have_the_exact_sparsity(ctx, label):
    target = TARGETS[label]
    masks = dm.layerwise_masks(ctx.dense, target, MagnitudePruning)
    pruned = dm.apply_masks(ctx.dense, masks)
    for name, layer in ctx.dense.items():
        w = layer["weight"]
        assert masks[name].num_pruned == _expected_pruned(target, w.shape)
        assert np.count_nonzero(pruned[name]["weight"] == 0) == _expected_pruned(target, w.shape)
        np.testing.assert_array_equal(pruned[name]["bias"], layer["bias"])  # biases never pruned
        if target.sparsity is None:
            groups = masks[name].mask.reshape(w.shape[0], -1, 4)
            assert np.all(groups.sum(axis=-1) == 2)
        else:  # magnitude: every pruned |w| <= every kept |w|
            assert np.abs(w[~masks[name].mask]).max() <= np.abs(w[masks[name].mask]).min()


def test_fine_tuning_keeps_pruned_weights_zero_and_recovers(ctx):
    dense_acc = dm.accuracy(ctx.dense, ctx.data.x_test, ctx.data.y_test)
    for label in ("50%", "2:4"):
        masks = dm.layerwise_masks(ctx.dense, TARGETS[label], MagnitudePruning)
        pruned = dm.apply_masks(ctx.dense, masks)
        tuned = dm.fine_tune(pruned, ctx.data, masks, ctx.config)
        for name in tuned:
            keep = masks[name].mask
            assert np.all(tuned[name]["weight"][~keep] == 0)
            assert not np.array_equal(tuned[name]["weight"][keep], pruned[name]["weight"][keep])
        # robust on every seed tried: within 3 points of dense after two epochs
        assert dm.accuracy(tuned, ctx.data.x_test, ctx.data.y_test) >= dense_acc - 0.03


def test_global_magnitude_has_one_threshold(ctx):
    model_mod = pytest.importorskip("arraysparse.model")
    mask = model_mod.global_mask(ctx.dense, 0.75, magnitude=True, exclude="*.bias")
    weights = [ctx.dense[n]["weight"] for n in ctx.dense]
    total = sum(w.size for w in weights)
    assert sum(mask[f"{n}.weight"].num_pruned for n in ctx.dense) == round(0.75 * total)
    assert all(mask[f"{n}.bias"].num_pruned == 0 for n in ctx.dense)
    kept = np.concatenate([np.abs(ctx.dense[n]["weight"][mask[f"{n}.weight"].mask]) for n in ctx.dense])
    gone = np.concatenate([np.abs(ctx.dense[n]["weight"][~mask[f"{n}.weight"].mask]) for n in ctx.dense])
    assert gone.max() <= kept.min()
    layer_sparsity = [mask[f"{n}.weight"].sparsity for n in ctx.dense]
    assert max(layer_sparsity) - min(layer_sparsity) > 0.05  # layers get different shares


# --------------------------------------------------------------------------- data-aware strategies


@pytest.mark.parametrize("label", ["50%", "2:4"])
def test_sparsegpt_reconstructs_layers_better_than_magnitude(ctx, label):
    pytest.importorskip("arraysparse.strategies.sparsegpt")
    target = TARGETS[label]
    x = dm.layer_inputs(ctx.dense, dm.calibration_inputs(ctx))
    for name, layer in ctx.dense.items():
        w = layer["weight"]
        w_gpt, mask = dm.prune_layer("SparseGPT", w, x[name], target)
        w_gpt = np.asarray(w_gpt)
        assert mask.num_pruned == _expected_pruned(target, w.shape)
        assert np.all(w_gpt[~mask.mask] == 0)
        w_mag, _ = dm.prune_layer("magnitude", w, x[name], target)
        gpt = dm.reconstruction_error(w, w_gpt, x[name])
        mag = dm.reconstruction_error(w, w_mag, x[name])
        assert gpt < mag, f"{name} at {label}: SparseGPT {gpt:.3f} vs magnitude {mag:.3f}"


def test_sparsegpt_one_shot_2to4_at_or_above_magnitude(ctx):
    # held on all 12 runs tried (6 seeds, quick and full) with 0.4 to 5 points to spare;
    # at 50% SparseGPT lost to magnitude once by one test digit, so 50% is not asserted
    pytest.importorskip("arraysparse.strategies.sparsegpt")
    target = TARGETS["2:4"]
    gpt, masks = dm.oneshot_prune(ctx, "SparseGPT", target)
    mag, _ = dm.oneshot_prune(ctx, "magnitude", target)
    for name in gpt:
        assert masks[name].satisfies()
        assert np.count_nonzero(gpt[name]["weight"] == 0) >= gpt[name]["weight"].size // 2
    acc_gpt = dm.accuracy(gpt, ctx.data.x_test, ctx.data.y_test)
    acc_mag = dm.accuracy(mag, ctx.data.x_test, ctx.data.y_test)
    assert acc_gpt >= acc_mag


def test_wanda_one_shot_masks(ctx):
    # Wanda's accuracy against magnitude flips with the seed on this network: reported, not asserted
    pytest.importorskip("arraysparse.strategies.wanda")
    x = dm.calibration_inputs(ctx)
    for label in ("50%", "2:4"):
        model, masks = dm.oneshot_prune(ctx, "Wanda", TARGETS[label])
        for name, layer in ctx.dense.items():
            keep = masks[name].mask
            # no weight update: kept weights are the dense ones, the rest zero
            np.testing.assert_array_equal(model[name]["weight"], np.where(keep, layer["weight"], 0.0))
            assert np.all((~keep).sum(axis=1) == (~keep).sum(axis=1)[0])  # per-row comparison
        if label == "50%":  # the first layer: per row, the half with the lowest |W| * ||X_j|| goes
            s = np.abs(ctx.dense["fc1"]["weight"]) * np.linalg.norm(x, axis=0)
            gone = np.argsort(s, axis=1, kind="stable")[:, : s.shape[1] // 2]  # ties: lower index first
            expected = np.ones_like(s, dtype=bool)
            np.put_along_axis(expected, gone, False, axis=1)
            np.testing.assert_array_equal(masks["fc1"].mask, expected)
        assert dm.accuracy(model, ctx.data.x_test, ctx.data.y_test) > 0.8


def test_lottery_ticket_retrains_every_round(ctx):
    lottery = pytest.importorskip("arraysparse.strategies.lottery")
    config = ctx.config
    rounds, target = 2, 0.75
    seen = []
    biases = {}

    def train_fn(weights, masks, round):
        seen.append((round, {n: masks[n].sparsity for n in weights}))
        for n in weights:  # survivors rewound to their initial values, the rest zero
            keep = masks[n].mask
            np.testing.assert_array_equal(weights[n], np.where(keep, ctx.init[n]["weight"], 0.0))
        start = {n: {"weight": weights[n], "bias": ctx.init[n]["bias"]} for n in weights}
        trained = dm.train(start, ctx.data, epochs=config.lottery_epochs, lr=config.lr, seed=round, masks=masks)
        biases.update({n: trained[n]["bias"] for n in trained})
        return {n: trained[n]["weight"] for n in trained}

    strategy = lottery.LotteryTicketPruning(rounds=rounds)
    strategy.record_rewind_point({n: ctx.init[n]["weight"] for n in ctx.init})
    result = strategy.run({n: ctx.dense[n]["weight"] for n in ctx.dense}, target, train_fn)
    assert [r for r, _ in seen] == [1, 2]
    first = 1 - (1 - target) ** (1 / rounds)
    for n, w in ctx.dense.items():
        assert seen[0][1][n] == pytest.approx(first, abs=1 / w["weight"].size)
        assert result.masks[n].num_pruned == round(target * w["weight"].size)
        assert np.all(np.asarray(result.weights[n])[~result.masks[n].mask] == 0)
    ticket = {n: {"weight": np.asarray(result.weights[n]), "bias": biases[n]} for n in ctx.dense}
    one_shot = dm.apply_masks(ctx.dense, dm.layerwise_masks(ctx.dense, TARGETS["75%"], MagnitudePruning))
    # retrained tickets beat one-shot magnitude at 75% by 5 to 10 points on every seed tried
    assert dm.accuracy(ticket, ctx.data.x_test, ctx.data.y_test) > dm.accuracy(one_shot, ctx.data.x_test, ctx.data.y_test)


def test_movement_accumulates_over_fine_tuning(ctx):
    # movement against magnitude depends on the run length and seed here: reported, not asserted
    movement = pytest.importorskip("arraysparse.strategies.movement")
    data, config = ctx.data, ctx.config
    strategy = movement.MovementPruning()
    steps = dm.steps_per_epoch(data, config.batch_size)
    total = {n: np.zeros_like(ctx.dense[n]["weight"]) for n in ctx.dense}

    def on_step(model, grads):
        strategy.update({n: model[n]["weight"] for n in model}, {n: grads[n]["weight"] for n in model})
        for n in model:
            total[n] -= model[n]["weight"] * grads[n]["weight"]

    def masks_at(step, model):
        return strategy.masks(dm.cubic_sparsity(step, steps, 0.75)) if strategy.steps else {}

    latent = dm.train(ctx.dense, data, epochs=1, lr=config.ft_lr, mask_fn=masks_at, on_step=on_step)
    assert strategy.steps == steps
    final = strategy.masks(0.75)
    for n, layer in latent.items():
        np.testing.assert_allclose(strategy.scores[n], total[n], rtol=1e-12, atol=1e-15)
        assert final[n].num_pruned == round(0.75 * layer["weight"].size)
        # hard movement keeps the latent weights: pruned ones were frozen, not zeroed
        assert np.count_nonzero(layer["weight"][~final[n].mask]) > 0
