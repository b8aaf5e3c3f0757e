"""The digits MLP: a 64 -> 128 -> 64 -> 10 ReLU network written in NumPy, and its training.

The network the demo ships (``arraysparse demo``) and the one
``examples/digits_mlp.py`` prunes every way. A model is a nested mapping
``{"fc1": {"weight": (out, in), "bias": (out,)}, ...}`` of NumPy arrays;
:func:`forward` runs it, :func:`train` trains it with a hand-written Adam
(fixed seeds: deterministic), optionally holding pruning masks.
:func:`load_data` reads scikit-learn's digits (needed only to train: the
demo ships its data).

Examples
--------
>>> import numpy as np
>>> from arraysparse.demo.mlp import accuracy, init_model
>>> model = init_model(4, (8,), 3, seed=0)
>>> [tuple(layer["weight"].shape) for layer in model.values()]
[(8, 4), (3, 8)]
>>> 0.0 <= accuracy(model, np.ones((5, 4)), np.zeros(5, dtype=int)) <= 1.0
True
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..masks import PruningMask

Model = dict[str, dict[str, np.ndarray]]

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
    calibration_samples: int = 1347  # the whole training split
    seed: int = 0


FULL = Config()
QUICK = Config(epochs=15, ft_epochs=2, movement_epochs=1, lottery_rounds=2, lottery_epochs=8)


# --------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def split_digits(seed: int = 0, test_size: float = 0.25) -> tuple[np.ndarray, ...]:
    """scikit-learn's digits split once with a fixed seed: ``(x_train, x_test, y_train, y_test)``,
    the pixels as they come (integers 0 .. 16, float64)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    return tuple(train_test_split(x.astype(np.float64), y, test_size=test_size, random_state=seed, stratify=y))


def standardisation(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` of the training pixels, ``std`` 1 where a pixel is constant."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0  # constant border pixels
    return mean, std


def load_data(seed: int = 0, test_size: float = 0.25) -> Data:
    """Digits, split once with a fixed seed, standardised with the training statistics."""
    x_train, x_test, y_train, y_test = split_digits(seed, test_size)
    mean, std = standardisation(x_train)
    return Data((x_train - mean) / std, y_train, (x_test - mean) / std, y_test)


# --------------------------------------------------------------------------- the network


def init_model(
    in_features: int = 64, hidden: tuple[int, ...] = (128, 64), classes: int = 10, *, seed: int = 0
) -> Model:
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
    mask_fn: Callable[[int, Model], Mapping[str, Any]] | None = None,
    on_step: Callable[[Model, Model], None] | None = None,
) -> Model:
    """Mini-batch Adam on the training split; returns a new model.

    ``masks`` (layer name -> keep-mask of the weight): the pruned weights stay
    exactly zero, their gradients are masked and the weights re-masked after
    every step. ``mask_fn(step, model)`` instead gives the masks of every step
    (steps count from 0; ``model`` holds the current unmasked weights): they act
    in the forward pass only (``W * M``), pruned weights
    are frozen but keep their values and come back if a later mask keeps them
    (movement pruning's latent weights); the returned weights are unmasked.
    ``on_step(model, grads)`` sees every step's weights and the gradients with
    respect to the weights the forward pass used, before the update.
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
            if mask_fn is not None:
                keep = {name: _as_bool(m) for name, m in mask_fn(t, model).items()}
                used = apply_masks(model, keep)
            else:
                used = model
            _, grads = loss_and_gradients(used, data.x_train[idx], data.y_train[idx])
            if on_step is not None:
                on_step(model, grads)
            t += 1
            for name, layer in model.items():
                for key, value in layer.items():
                    g = grads[name][key]
                    masked = key == "weight" and name in keep
                    if masked:
                        g = g * keep[name]
                    m1[name][key] = beta1 * m1[name][key] + (1 - beta1) * g
                    m2[name][key] = beta2 * m2[name][key] + (1 - beta2) * g * g
                    step = lr * (m1[name][key] / (1 - beta1**t)) / (np.sqrt(m2[name][key] / (1 - beta2**t)) + eps)
                    if masked:
                        step *= keep[name]  # frozen, even with Adam's momentum from earlier masks
                    value -= step
                    if masked and mask_fn is None:
                        value *= keep[name]
    return model


def steps_per_epoch(data: Data, batch_size: int) -> int:
    return -(-data.x_train.shape[0] // batch_size)


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
