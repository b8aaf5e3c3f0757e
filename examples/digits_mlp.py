"""Evidence that the pruning methods work: a small NumPy MLP on scikit-learn's digits.

A 64 -> 128 -> 64 -> 10 ReLU network with a softmax cross-entropy loss, written by
hand in NumPy (float64, Adam, fixed seeds: the run is deterministic), is trained on
the 8x8 digits that scikit-learn ships (no download). Every pruning method then
prunes its **weights** (never the biases), **layer by layer** (each weight matrix
gets exactly the target sparsity; 2:4 groups run along the input axis of the
``(out, in)`` matrices), except the "global magnitude" row, which ranks all
weights of the network against one threshold.

Run::

    python examples/digits_mlp.py            # full run, well under two minutes on 2 cores
    python examples/digits_mlp.py --quick    # shorter training (what the tests use)
    python examples/digits_mlp.py --output table.md

The model is a nested mapping ``{"fc1": {"weight": (out, in), "bias": (out,)}, ...}``;
arraysparse sees nothing but those arrays, the gradients and the layer inputs this
module computes.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import itertools
import platform
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from arraysparse.masks import PruningMask
from arraysparse.patterns import SparsityPattern
from arraysparse.strategies.gradient import GradientPruning
from arraysparse.strategies.magnitude import MagnitudePruning

Model = dict[str, dict[str, np.ndarray]]
Masks = dict[str, np.ndarray]

LAYERS = ("fc1", "fc2", "fc3")


# --------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class Config:
    """Training budget of one run (``QUICK`` for tests, ``FULL`` for the table)."""

    hidden: tuple[int, ...] = (128, 64)
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    ft_epochs: int = 4
    ft_lr: float = 1e-3
    movement_epochs: int = 2
    lottery_rounds: int = 3
    lottery_epochs: int = 20
    calibration_samples: int = 512
    seed: int = 0


FULL = Config()
QUICK = Config(epochs=15, ft_epochs=2, movement_epochs=1, lottery_rounds=2, lottery_epochs=8)


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


# --------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_data(seed: int = 0, test_size: float = 0.25) -> Data:
    """Digits, split once with a fixed seed, standardised with the training statistics."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float64), y, test_size=test_size, random_state=seed, stratify=y
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0  # constant border pixels
    return Data((x_train - mean) / std, y_train, (x_test - mean) / std, y_test)


# --------------------------------------------------------------------------- the network


def init_model(in_features: int = 64, hidden: tuple[int, ...] = (128, 64), classes: int = 10, *, seed: int = 0) -> Model:
    """He-initialised Linear layers ``fc1 .. fcK`` with ``(out, in)`` weights."""
    rng = np.random.default_rng(seed)
    sizes = (in_features, *hidden, classes)
    return {
        f"fc{i + 1}": {
            "weight": rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in),
            "bias": np.zeros(n_out),
        }
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes))
    }


def copy_model(model: Model) -> Model:
    return {name: {k: v.copy() for k, v in layer.items()} for name, layer in model.items()}


def forward(model: Model, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits and the input of every Linear layer (``(samples, in_features)``)."""
    inputs = {}
    h = x
    names = list(model)
    for i, name in enumerate(names):
        inputs[name] = h
        h = h @ model[name]["weight"].T + model[name]["bias"]
        if i < len(names) - 1:
            h = np.maximum(h, 0.0)
    return h, inputs


def loss_and_gradients(model: Model, x: np.ndarray, y: np.ndarray) -> tuple[float, Model]:
    """Mean softmax cross-entropy and its gradient for every weight and bias."""
    logits, inputs = forward(model, x)
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    n = x.shape[0]
    loss = float(-np.mean(np.log(p[np.arange(n), y] + 1e-300)))
    delta = p
    delta[np.arange(n), y] -= 1.0
    delta /= n
    grads: Model = {}
    names = list(model)
    for i in range(len(names) - 1, -1, -1):
        name = names[i]
        grads[name] = {"weight": delta.T @ inputs[name], "bias": delta.sum(axis=0)}
        if i:
            # inputs[name] is the ReLU output of the previous layer: gate where it was zero
            delta = (delta @ model[name]["weight"]) * (inputs[name] > 0)
    return loss, {name: grads[name] for name in names}


def weight_gradients(model: Model, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Full-batch loss gradient of every weight matrix, keyed by layer name."""
    _, grads = loss_and_gradients(model, x, y)
    return {name: g["weight"] for name, g in grads.items()}


def accuracy(model: Model, x: np.ndarray, y: np.ndarray) -> float:
    logits, _ = forward(model, x)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def layer_inputs(model: Model, x: np.ndarray) -> dict[str, np.ndarray]:
    """The input ``X`` (``(samples, in_features)``) each Linear layer sees on ``x``."""
    return forward(model, x)[1]


def _as_bool(mask: PruningMask | np.ndarray) -> np.ndarray:
    return np.asarray(mask.mask if isinstance(mask, PruningMask) else mask, dtype=bool)


def apply_masks(model: Model, masks: Mapping[str, PruningMask | np.ndarray]) -> Model:
    """A copy of ``model`` with the pruned weights of the masked layers set to zero."""
    out = copy_model(model)
    for name, mask in masks.items():
        out[name]["weight"] *= _as_bool(mask)
    return out


def train(
    model: Model,
    data: Data,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    seed: int = 0,
    masks: Mapping[str, PruningMask | np.ndarray] | None = None,
    on_step: Callable[[Model, Model], None] | None = None,
) -> Model:
    """Mini-batch Adam on the training split; returns a new model.

    With ``masks`` (layer name -> keep-mask of the weight) the pruned weights
    stay exactly zero: their gradients are masked and the weights re-masked
    after every step. ``on_step(model, grads)`` is called with the gradients of
    every step before the update (movement pruning accumulates its scores there).
    """
    model = copy_model(model)
    keep = {name: _as_bool(m) for name, m in (masks or {}).items()}
    for name, m in keep.items():
        model[name]["weight"] *= m
    rng = np.random.default_rng(seed)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    m1 = {n: {k: np.zeros_like(v) for k, v in layer.items()} for n, layer in model.items()}
    m2 = {n: {k: np.zeros_like(v) for k, v in layer.items()} for n, layer in model.items()}
    n = data.x_train.shape[0]
    t = 0
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            _, grads = loss_and_gradients(model, data.x_train[idx], data.y_train[idx])
            if on_step is not None:
                on_step(model, grads)
            t += 1
            for name, layer in model.items():
                for key, value in layer.items():
                    g = grads[name][key]
                    if key == "weight" and name in keep:
                        g = g * keep[name]
                    m1[name][key] = beta1 * m1[name][key] + (1 - beta1) * g
                    m2[name][key] = beta2 * m2[name][key] + (1 - beta2) * g * g
                    mhat = m1[name][key] / (1 - beta1**t)
                    vhat = m2[name][key] / (1 - beta2**t)
                    value -= lr * mhat / (np.sqrt(vhat) + eps)
                    if key == "weight" and name in keep:
                        value *= keep[name]
    return model


def fine_tune(model: Model, data: Data, masks: Mapping[str, PruningMask | np.ndarray], config: Config) -> Model:
    """Short masked fine-tuning (``config.ft_epochs`` at ``config.ft_lr``)."""
    return train(
        model, data, epochs=config.ft_epochs, lr=config.ft_lr, batch_size=config.batch_size,
        seed=config.seed + 1, masks=masks,
    )


def train_dense(data: Data, config: Config) -> tuple[Model, Model]:
    """``(initial model, trained model)`` for ``config``."""
    init = init_model(data.x_train.shape[1], config.hidden, int(data.y_train.max()) + 1, seed=config.seed)
    trained = train(init, data, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size, seed=config.seed)
    return init, trained


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


def _score(ctx: Context, row: Row, target: Target, masks: Mapping[str, PruningMask]) -> None:
    """Accuracy of the trained network with ``masks`` applied, then after short masked fine-tuning."""
    pruned = apply_masks(ctx.dense, masks)
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
    row = _row("global magnitude", "one \\|w\\| threshold over all weights; no N:M")
    weights = {name: {"weight": layer["weight"]} for name, layer in ctx.dense.items()}
    for target in TARGETS:
        if target.sparsity is None:  # N:M is per group: a global ranking does not apply
            continue
        model_mask = global_mask(weights, target.sparsity, magnitude=True)
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


PRUNE_RUNNERS: list[Callable[[Context], Row | None]] = [
    run_magnitude,
    run_gradient,
    run_taylor,
    run_snip,
    run_global_magnitude,
]


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
    t0 = time.perf_counter()
    data = load_data(config.seed)
    init, dense = train_dense(data, config)
    dense_acc = accuracy(dense, data.x_test, data.y_test)
    ctx = Context(data, config, init, dense)
    rows = []
    for runner in PRUNE_RUNNERS:
        r = runner(ctx)
        if r is not None:
            rows.append(r)
    elapsed = time.perf_counter() - t0
    out(f"Test accuracy (%) on scikit-learn digits ({data.x_train.shape[0]} train / {data.x_test.shape[0]} test), "
        f"MLP {' -> '.join(map(str, (64, *config.hidden, 10)))}; weights pruned layer-wise unless noted, biases never.")
    out("")
    out(prune_table(rows, dense_acc))
    out("")
    out(f"({elapsed:.1f} s, Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()})")
    return {"dense": dense_acc, "rows": rows, "seconds": elapsed, "init": init, "model": dense}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short training (for tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="also write the tables to this Markdown file")
    args = parser.parse_args(argv)
    config = dataclasses.replace(QUICK if args.quick else FULL, seed=args.seed)
    lines: list[str] = []

    def out(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    run(config, out=out)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
