"""Evidence that the pruning methods work: a small NumPy MLP on scikit-learn's digits.

A 64 -> 128 -> 64 -> 10 ReLU network with a softmax cross-entropy loss, written by
hand in NumPy (float64, Adam, fixed seeds: the run is deterministic), is trained on
the 8x8 digits that scikit-learn ships (no download). Every pruning method then
prunes its **weights** (never the biases), **layer by layer** (each weight matrix
gets exactly the target sparsity; 2:4 groups run along the input axis of the
``(out, in)`` matrices), except the "global magnitude" and SNIP rows, which rank
all weights of the network against one threshold (SNIP as published), and Wanda,
which prunes ``round(s * in_features)`` per output row (as published: 90% of a
64-input row is 58 weights, 90.6%).

Run::

    python examples/digits_mlp.py            # full run (see docs/evidence.md for timings)
    python examples/digits_mlp.py --quick    # shorter training (what the tests use)
    python examples/digits_mlp.py --output table.md
    python examples/digits_mlp.py --sweep 6  # the orderings the tests assert, over seeds 0..5

The model is a nested mapping ``{"fc1": {"weight": (out, in), "bias": (out,)}, ...}``;
arraysparse sees nothing but those arrays, the gradients and the layer inputs this
module computes. The network and its training are :mod:`arraysparse.demo.mlp` (the
model ``arraysparse demo`` ships was trained by it, with this file's full settings).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import platform
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

# the network and its training live in the package (the demo ships this network)
from arraysparse.demo.mlp import (  # noqa: F401 - re-exported for the tests
    FULL,
    LAYERS,
    QUICK,
    Config,
    Data,
    Model,
    accuracy,
    apply_masks,
    copy_model,
    fine_tune,
    forward,
    init_model,
    layer_inputs,
    load_data,
    loss_and_gradients,
    steps_per_epoch,
    train,
    train_dense,
    weight_gradients,
)
from arraysparse.masks import PruningMask
from arraysparse.patterns import SparsityPattern
from arraysparse.strategies.gradient import GradientPruning
from arraysparse.strategies.magnitude import MagnitudePruning

Masks = dict[str, np.ndarray]

@dataclasses.dataclass(frozen=True)
class Target:
    """One column of the table: a sparsity for unstructured pruning, or an N:M pattern."""

    label: str
    sparsity: float | None
    pattern: SparsityPattern

    @property
    def fraction(self) -> float:
        return self.sparsity if self.sparsity is not None else float(self.pattern.sparsity)


TARGETS = (
    Target("50%", 0.5, SparsityPattern.unstructured()),
    Target("75%", 0.75, SparsityPattern.unstructured()),
    Target("90%", 0.9, SparsityPattern.unstructured()),
    Target("2:4", None, SparsityPattern.two_four()),
)


# --------------------------------------------------------------------------- pruning helpers


def strategy_mask(strategy_cls: type, target: Target, weights: np.ndarray, gradients: np.ndarray | None = None, **options: Any) -> PruningMask:
    """Mask of one weight matrix from any :class:`PruningStrategy` class at ``target``."""
    strategy = strategy_cls(target.pattern, **options)
    scores = strategy.compute_importance_scores(weights, gradients)
    return strategy.create_mask(scores, target.sparsity)


def layerwise_masks(
    model: Model,
    target: Target,
    strategy_cls: type = MagnitudePruning,
    gradients: Mapping[str, np.ndarray] | None = None,
    **options: Any,
) -> dict[str, PruningMask]:
    """One mask per weight matrix, each at exactly ``target``."""
    return {
        name: strategy_mask(strategy_cls, target, model[name]["weight"], None if gradients is None else gradients[name], **options)
        for name in model
    }


def weight_sparsity(model: Model) -> float:
    """Fraction of zero weights over all weight matrices (biases excluded)."""
    zeros = sum(int(np.count_nonzero(layer["weight"] == 0)) for layer in model.values())
    return zeros / sum(layer["weight"].size for layer in model.values())


def reconstruction_error(w: np.ndarray, w_pruned: np.ndarray, x: np.ndarray) -> float:
    """``||W X - W' X|| / ||W X||`` with ``X`` given as ``(samples, in_features)``."""
    ref = x @ w.T
    return float(np.linalg.norm(ref - x @ w_pruned.T) / np.linalg.norm(ref))


def _optional(module: str, name: str) -> Any | None:
    """A name from a module another helper may not have landed yet (``None`` if absent)."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


# --------------------------------------------------------------------------- experiments


@dataclasses.dataclass(frozen=True)
class Context:
    """What every experiment starts from: the data, the settings, the initial and trained networks."""

    data: Data
    config: Config
    init: Model
    dense: Model


@dataclasses.dataclass
class Row:
    method: str
    pruned: dict[str, float | None]
    tuned: dict[str, float | None]
    note: str = ""


def _row(method: str, note: str = "") -> Row:
    return Row(method, {}, {}, note)


def _score(ctx: Context, row: Row, target: Target, masks: Mapping[str, Any], base: Model | None = None) -> None:
    """Accuracy of ``base`` (the trained network) with ``masks`` applied, then after short masked fine-tuning."""
    pruned = apply_masks(ctx.dense if base is None else base, masks)
    row.pruned[target.label] = accuracy(pruned, ctx.data.x_test, ctx.data.y_test)
    tuned = fine_tune(pruned, ctx.data, masks, ctx.config)
    row.tuned[target.label] = accuracy(tuned, ctx.data.x_test, ctx.data.y_test)


def run_magnitude(ctx: Context) -> Row:
    row = _row("magnitude", "score \\|w\\|")
    for target in TARGETS:
        _score(ctx, row, target, layerwise_masks(ctx.dense, target, MagnitudePruning))
    return row


def run_gradient(ctx: Context) -> Row:
    row = _row("gradient", "\\|w g\\|, full-batch training gradient")
    grads = weight_gradients(ctx.dense, ctx.data.x_train, ctx.data.y_train)
    for target in TARGETS:
        _score(ctx, row, target, layerwise_masks(ctx.dense, target, GradientPruning, grads))
    return row


def run_global_magnitude(ctx: Context) -> Row | None:
    global_mask = _optional("arraysparse.model", "global_mask")
    if global_mask is None:
        return None
    row = _row("global magnitude", "one \\|w\\| threshold over all weights (biases excluded); no N:M")
    for target in TARGETS:
        if target.sparsity is None:  # N:M is per group: a global ranking does not apply
            continue
        model_mask = global_mask(ctx.dense, target.sparsity, magnitude=True, exclude="*.bias")
        _score(ctx, row, target, {name: model_mask[f"{name}.weight"] for name in ctx.dense})
    return row


def batch_weight_gradients(model: Model, data: Data, batch_size: int) -> list[dict[str, np.ndarray]]:
    """Weight gradients of every mini-batch of one pass over the training split (fixed order)."""
    return [
        weight_gradients(model, data.x_train[start : start + batch_size], data.y_train[start : start + batch_size])
        for start in range(0, data.x_train.shape[0], batch_size)
    ]


def run_taylor(ctx: Context) -> Row | None:
    taylor = _optional("arraysparse.strategies.taylor", "TaylorPruning")
    taylor_scores = _optional("arraysparse.strategies.taylor", "taylor_scores")
    if taylor is None or taylor_scores is None:
        return None
    row = _row("Taylor", "(w g)^2 per batch, averaged over one epoch (Molchanov 2019)")
    per_batch = batch_weight_gradients(ctx.dense, ctx.data, ctx.config.batch_size)
    scores = {
        name: np.mean([taylor_scores(ctx.dense[name]["weight"], g[name]) for g in per_batch], axis=0)
        for name in ctx.dense
    }
    for target in TARGETS:
        strategy = taylor(target.pattern)
        _score(ctx, row, target, {name: strategy.create_mask(scores[name], target.sparsity) for name in ctx.dense})
    return row


def run_snip(ctx: Context) -> Row | None:
    """SNIP prunes the *initial* network, which is then trained from scratch with its mask."""
    snip = _optional("arraysparse.strategies.snip", "SNIPPruning")
    if snip is None:
        return None
    data, config = ctx.data, ctx.config
    row = _row("SNIP (at init)", "global over layers (2:4 per layer); +FT = full masked training from init")
    weights = {name: {"weight": layer["weight"]} for name, layer in ctx.init.items()}
    sl = slice(0, 4 * config.batch_size)  # a few batches of training data, at initialisation
    grads = {name: {"weight": g} for name, g in weight_gradients(ctx.init, data.x_train[sl], data.y_train[sl]).items()}
    for target in TARGETS:
        _, model_mask = snip(target.pattern).prune(weights, target.sparsity, gradients=grads)
        masks = {name: model_mask[f"{name}.weight"] for name in ctx.init}
        pruned = apply_masks(ctx.init, masks)
        row.pruned[target.label] = accuracy(pruned, data.x_test, data.y_test)
        trained = train(
            pruned, data, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size, seed=config.seed, masks=masks
        )
        row.tuned[target.label] = accuracy(trained, data.x_test, data.y_test)
    return row


def cubic_sparsity(step: int, total: int, final: float) -> float:
    """Zhu & Gupta's cubic schedule from 0 to ``final`` over ``total`` steps (fast early)."""
    frac = min(step / total, 1.0) if total else 1.0
    return final * (1.0 - (1.0 - frac) ** 3)


def run_movement(ctx: Context) -> Row | None:
    """Hard movement pruning during a short fine-tuning run (Sanh et al. 2020).

    The masks are recomputed from the accumulated scores ``S = -sum W * dL/dW'`` at
    every step (``W' = W * M``; pruned weights are frozen but keep their values, so a
    weight whose score recovers comes back), the sparsity following a cubic schedule
    that reaches the target after 2/3 of the run (2:4: from the first step).
    """
    movement = _optional("arraysparse.strategies.movement", "MovementPruning")
    if movement is None:
        return None
    data, config = ctx.data, ctx.config
    total = config.movement_epochs * steps_per_epoch(data, config.batch_size)
    ramp = max(1, (2 * total) // 3)
    row = _row("movement", f"hard movement over {config.movement_epochs} fine-tuning epoch(s), cubic schedule")
    for target in TARGETS:
        strategy = movement(target.pattern)

        def masks_at(step: int, model: Model, strategy: Any = strategy, target: Target = target) -> dict[str, Any]:
            if strategy.steps == 0:
                return {}
            if target.sparsity is None:
                return strategy.masks()
            return strategy.masks(cubic_sparsity(step, ramp, target.sparsity))

        def on_step(model: Model, grads: Model, strategy: Any = strategy) -> None:
            strategy.update({n: model[n]["weight"] for n in model}, {n: grads[n]["weight"] for n in model})

        latent = train(
            ctx.dense, data, epochs=config.movement_epochs, lr=config.ft_lr, batch_size=config.batch_size,
            seed=config.seed + 2, mask_fn=masks_at, on_step=on_step,
        )
        final = strategy.masks(target.sparsity)
        _score(ctx, row, target, {n: final[n] for n in latent}, base=latent)
    return row


def run_gradual_magnitude(ctx: Context) -> Row:
    """Baseline for movement: magnitude masks of the latent weights on the same schedule and run."""
    data, config = ctx.data, ctx.config
    total = config.movement_epochs * steps_per_epoch(data, config.batch_size)
    ramp = max(1, (2 * total) // 3)
    row = _row("gradual magnitude", "the movement run with \\|w\\| scores instead (same schedule, same steps)")
    for target in TARGETS:

        def masks_at(step: int, model: Model, target: Target = target) -> dict[str, Any]:
            s = None if target.sparsity is None else cubic_sparsity(step, ramp, target.sparsity)
            return layerwise_masks(model, dataclasses.replace(target, sparsity=s), MagnitudePruning)

        latent = train(
            ctx.dense, data, epochs=config.movement_epochs, lr=config.ft_lr, batch_size=config.batch_size,
            seed=config.seed + 2, mask_fn=masks_at,
        )
        _score(ctx, row, target, layerwise_masks(latent, target, MagnitudePruning), base=latent)
    return row


def run_lottery(ctx: Context) -> Row | None:
    """Iterative magnitude pruning; every round rewinds to the initial weights and retrains them."""
    lottery = _optional("arraysparse.strategies.lottery", "LotteryTicketPruning")
    if lottery is None:
        return None
    data, config = ctx.data, ctx.config
    row = _row(
        "lottery ticket",
        f"{config.lottery_rounds} rounds x {config.lottery_epochs} epochs, rewind to init; pruned = after the last round",
    )
    biases: dict[str, np.ndarray] = {}

    def train_fn(weights: dict[str, np.ndarray], masks: Mapping[str, Any], round: int) -> dict[str, np.ndarray]:
        # the strategy sees the weights only: the biases are rewound and retrained here
        start = {n: {"weight": weights[n], "bias": ctx.init[n]["bias"]} for n in weights}
        trained = train(
            start, data, epochs=config.lottery_epochs, lr=config.lr, batch_size=config.batch_size,
            seed=config.seed + round, masks={n: masks[n] for n in weights},
        )
        biases.update({n: trained[n]["bias"] for n in trained})
        return {n: trained[n]["weight"] for n in trained}

    for target in TARGETS:
        strategy = lottery(target.pattern, rounds=config.lottery_rounds)
        strategy.record_rewind_point({n: ctx.init[n]["weight"] for n in ctx.init})
        result = strategy.run({n: ctx.dense[n]["weight"] for n in ctx.dense}, target.sparsity, train_fn)
        ticket = {n: {"weight": np.asarray(result.weights[n]), "bias": biases[n]} for n in ctx.dense}
        _score(ctx, row, target, {n: result.masks[n] for n in ctx.dense}, base=ticket)
    return row


PRUNE_RUNNERS: list[Callable[[Context], Row | None]] = [
    run_magnitude,
    run_gradient,
    run_taylor,
    run_snip,
    run_movement,
    run_gradual_magnitude,
    run_lottery,
    run_global_magnitude,
]


# --------------------------------------------------------------------------- one-shot with calibration


def calibration_inputs(ctx: Context) -> np.ndarray:
    """The first ``calibration_samples`` training digits (the split is already shuffled)."""
    return ctx.data.x_train[: ctx.config.calibration_samples]


def prune_layer(method: str, weights: np.ndarray, x: np.ndarray, target: Target) -> tuple[np.ndarray, PruningMask]:
    """``(new weights, mask)`` of one layer by ``method``, calibrated on its inputs ``x`` (samples, in)."""
    if method == "magnitude":
        mask = strategy_mask(MagnitudePruning, target, weights)
        return mask.apply(weights), mask
    if method == "Wanda":
        wanda = _optional("arraysparse.strategies.wanda", "WandaPruning")
        strategy = wanda(target.pattern)
        strategy.calibrate(x)
        return strategy.prune(weights, target.sparsity)
    if method == "SparseGPT":
        sparsegpt = _optional("arraysparse.strategies.sparsegpt", "SparseGPTPruning")
        strategy = sparsegpt(target.pattern, dtype="float64")
        strategy.calibrate(x)
        return strategy.prune(weights, target.sparsity)
    msg = f"unknown method {method!r}"
    raise ValueError(msg)


def oneshot_methods() -> list[str]:
    methods = ["magnitude"]
    if _optional("arraysparse.strategies.wanda", "WandaPruning") is not None:
        methods.append("Wanda")
    if _optional("arraysparse.strategies.sparsegpt", "SparseGPTPruning") is not None:
        methods.append("SparseGPT")
    return methods


def oneshot_prune(ctx: Context, method: str, target: Target) -> tuple[Model, dict[str, PruningMask]]:
    """Prune the trained network layer after layer, as the Wanda and SparseGPT papers do.

    Each layer is calibrated on the inputs it receives from the *already pruned*
    layers before it (sequential calibration), on training digits only.
    """
    model = copy_model(ctx.dense)
    masks = {}
    x = calibration_inputs(ctx)
    names = list(model)
    for i, name in enumerate(names):
        w, mask = prune_layer(method, model[name]["weight"], x, target)
        model[name]["weight"] = np.asarray(w)
        masks[name] = mask
        x = x @ model[name]["weight"].T + model[name]["bias"]
        if i < len(names) - 1:
            x = np.maximum(x, 0.0)
    return model, masks


def oneshot_table(ctx: Context) -> tuple[str, dict[str, dict[str, float]]]:
    acc: dict[str, dict[str, float]] = {}
    lines = [
        "| method | " + " | ".join(t.label for t in TARGETS) + " |",
        "| --- |" + " ---: |" * len(TARGETS),
    ]
    for method in oneshot_methods():
        acc[method] = {}
        cells = []
        for target in TARGETS:
            model, _ = oneshot_prune(ctx, method, target)
            acc[method][target.label] = accuracy(model, ctx.data.x_test, ctx.data.y_test)
            cells.append(f"{_fmt(acc[method][target.label])} ({100 * weight_sparsity(model):.1f}%)")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines), acc


def reconstruction_errors(ctx: Context) -> dict[tuple[str, str, str, str], float]:
    """``||W X - W' X|| / ||W X||`` per (method, target, layer, split) on the dense network's activations.

    Every layer is pruned on its own from the dense network's inputs on the
    calibration digits; the error is measured on those inputs (``calib``) and on
    the held-out test digits' inputs (``test``).
    """
    calib = layer_inputs(ctx.dense, calibration_inputs(ctx))
    test = layer_inputs(ctx.dense, ctx.data.x_test)
    errors = {}
    for method in oneshot_methods():
        for target in TARGETS:
            for name, layer in ctx.dense.items():
                w = layer["weight"]
                w2, _ = prune_layer(method, w, calib[name], target)
                errors[method, target.label, name, "calib"] = reconstruction_error(w, np.asarray(w2), calib[name])
                errors[method, target.label, name, "test"] = reconstruction_error(w, np.asarray(w2), test[name])
    return errors


def reconstruction_table(errors: Mapping[tuple[str, str, str, str], float]) -> str:
    methods = list(dict.fromkeys(k[0] for k in errors))
    layers = list(dict.fromkeys(k[2] for k in errors))
    lines = [
        "| layer | method | " + " | ".join(t.label for t in TARGETS) + " |",
        "| --- | --- |" + " ---: |" * len(TARGETS),
    ]
    for layer in layers:
        for method in methods:
            cells = [
                f"{errors[method, t.label, layer, 'calib']:.3f} / {errors[method, t.label, layer, 'test']:.3f}"
                for t in TARGETS
            ]
            lines.append(f"| {layer} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- report


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def prune_table(rows: list[Row], dense_acc: float) -> str:
    head = "| method | " + " | ".join(f"{t.label} pruned | {t.label} +FT" for t in TARGETS) + " | notes |"
    sep = "| --- |" + " ---: | ---: |" * len(TARGETS) + " --- |"
    lines = [head, sep, "| dense | " + " | ".join(f"{_fmt(dense_acc)} | " for _ in TARGETS).rstrip("| ") + " | |"]
    lines[2] = "| dense |" + "".join(f" {_fmt(dense_acc)} | {_fmt(dense_acc)} |" for _ in TARGETS) + " no pruning |"
    for r in rows:
        cells = "".join(f" {_fmt(r.pruned.get(t.label))} | {_fmt(r.tuned.get(t.label))} |" for t in TARGETS)
        lines.append(f"| {r.method} |{cells} {r.note} |")
    return "\n".join(lines)


def run(config: Config, *, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, prune with every available method, print the tables; returns the figures."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    # the matrices are tiny: BLAS threads only fight over the cores (30x slower on a busy 2-core machine)
    with threadpool_limits(1, user_api="blas"):
        return _run(config, out)


def _run(config: Config, out: Callable[[str], None]) -> dict[str, Any]:
    t0, cpu0 = time.perf_counter(), time.process_time()
    data = load_data(config.seed)
    init, dense = train_dense(data, config)
    dense_acc = accuracy(dense, data.x_test, data.y_test)
    ctx = Context(data, config, init, dense)
    rows = []
    for runner in PRUNE_RUNNERS:
        r = runner(ctx)
        if r is not None:
            rows.append(r)
    oneshot, oneshot_acc = oneshot_table(ctx)
    errors = reconstruction_errors(ctx)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    out(f"Test accuracy (%) on scikit-learn digits ({data.x_train.shape[0]} train / {data.x_test.shape[0]} test), "
        f"MLP {' -> '.join(map(str, (64, *config.hidden, 10)))}; weights pruned layer-wise unless noted, biases never.")
    out("")
    out(prune_table(rows, dense_acc))
    out("")
    out(f"One-shot pruning, no fine-tuning, calibrated on {calibration_inputs(ctx).shape[0]} training digits, "
        f"layers pruned in order on the pruned network's activations: test accuracy % (weight sparsity). "
        f"Dense: {_fmt(dense_acc)}.")
    out("")
    out(oneshot)
    out("")
    out("Layer reconstruction error ||W X - W' X|| / ||W X|| of each layer pruned alone, on the dense network's "
        "inputs to it: calibration digits / test digits.")
    out("")
    out(reconstruction_table(errors))
    out("")
    out(f"({elapsed:.1f} s wall, {cpu:.1f} s CPU, including Numba's first-call compilation; Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()})")
    return {
        "dense": dense_acc, "rows": rows, "oneshot": oneshot_acc, "reconstruction": errors,
        "seconds": elapsed, "context": ctx,
    }


def sweep(config: Config, seeds: list[int], *, out: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """The orderings the tests rely on, over several seeds (split, initialisation and batch order).

    Prints one line per seed: one-shot accuracy of magnitude / Wanda / SparseGPT at
    50% and 2:4, the largest SparseGPT-minus-magnitude reconstruction error over the
    layers (calibration and test inputs), and the 50% magnitude accuracy after
    fine-tuning minus dense.
    """
    from threadpoolctl import threadpool_limits

    results = []
    out("| seed | dense | " + " | ".join(f"{m} {t}" for t in ("50%", "2:4") for m in oneshot_methods())
        + " | max(SparseGPT - magnitude) err, calib | same, test | magnitude 50% +FT - dense |")
    out("| --- |" + " ---: |" * (2 * len(oneshot_methods()) + 4))
    with threadpool_limits(1, user_api="blas"):
        for seed in seeds:
            cfg = dataclasses.replace(config, seed=seed)
            data = load_data(seed)
            init, dense = train_dense(data, cfg)
            ctx = Context(data, cfg, init, dense)
            dense_acc = accuracy(dense, data.x_test, data.y_test)
            picked = [t for t in TARGETS if t.label in ("50%", "2:4")]
            acc = {(m, t.label): accuracy(oneshot_prune(ctx, m, t)[0], data.x_test, data.y_test)
                   for t in picked for m in oneshot_methods()}
            errors = reconstruction_errors(ctx)
            gaps = {
                split: max(errors["SparseGPT", t.label, n, split] - errors["magnitude", t.label, n, split]
                           for t in picked for n in dense)
                for split in ("calib", "test")
            } if "SparseGPT" in oneshot_methods() else {"calib": float("nan"), "test": float("nan")}
            masks = layerwise_masks(dense, TARGETS[0], MagnitudePruning)
            tuned = accuracy(fine_tune(apply_masks(dense, masks), data, masks, cfg), data.x_test, data.y_test)
            results.append({"seed": seed, "dense": dense_acc, "oneshot": acc, "gaps": gaps, "ft_gap": tuned - dense_acc})
            cells = " | ".join(_fmt(acc[m, t.label]) for t in picked for m in oneshot_methods())
            out(f"| {seed} | {_fmt(dense_acc)} | {cells} | {gaps['calib']:+.3f} | {gaps['test']:+.3f} | "
                f"{100 * (tuned - dense_acc):+.1f} |")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short training (for tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="also write the tables to this Markdown file")
    parser.add_argument("--sweep", type=int, metavar="K", help="instead: the robust orderings over seeds 0..K-1")
    args = parser.parse_args(argv)
    config = dataclasses.replace(QUICK if args.quick else FULL, seed=args.seed)
    lines: list[str] = []

    def out(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    if args.sweep:
        sweep(config, list(range(args.sweep)), out=out)
    else:
        run(config, out=out)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
