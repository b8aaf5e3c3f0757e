"""The demo: a small trained model shipped with the package, pruned every way by ``arraysparse demo``.

Two files come with the package (a few hundred KB in all), made by
``python -m arraysparse.demo.build`` (which needs scikit-learn; the run is
deterministic):

* ``digits_mlp.safetensors``: the float32 weights and biases of the
  64 -> 128 -> 64 -> 10 ReLU network of :mod:`arraysparse.demo.mlp`, trained
  on scikit-learn's 8x8 digits with the settings of ``examples/digits_mlp.py``;
  flat names ``fc1.weight``, ``fc1.bias``, ... (``(out, in)`` weights).
* ``digits_data.npz``: the digits it was trained on (calibration inputs for
  Wanda and SparseGPT) and the held-out test digits with their labels, as raw
  pixels (uint8, 0 .. 16), and the training mean and standard deviation that
  standardise them.

:func:`run_demo` (what ``arraysparse demo`` runs) needs nothing beyond NumPy,
Numba and, for its plots, matplotlib: no scikit-learn, no torch, no download.

Examples
--------
>>> from arraysparse.demo import load_data, load_model
>>> from arraysparse.demo.mlp import accuracy
>>> data, model = load_data(), load_model()
>>> [tuple(layer["weight"].shape) for layer in model.values()]
[(128, 64), (64, 128), (10, 64)]
>>> accuracy(model, data.x_test, data.y_test) > 0.95
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DATA_PATH", "MODEL_PATH", "DemoData", "load_data", "load_model", "run_demo"]

_HERE = Path(__file__).resolve().parent
MODEL_PATH = _HERE / "digits_mlp.safetensors"
"""The shipped model: the network's float32 weights and biases, flat names (``fc1.weight``, ...)."""
DATA_PATH = _HERE / "digits_data.npz"
"""The shipped digits: ``x_calib``, ``x_test``, ``y_test`` (uint8), ``mean`` and ``std`` (float64)."""


@dataclass(frozen=True)
class DemoData:
    """The shipped digits, standardised as in training.

    Attributes
    ----------
    x_calib : numpy.ndarray
        The 1,347 training digits, ``(1347, 64)`` float32: calibration inputs.
    x_test : numpy.ndarray
        The 450 held-out digits, ``(450, 64)`` float32.
    y_test : numpy.ndarray
        Their labels, int64.
    """

    x_calib: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_data(path: str | Path = DATA_PATH) -> DemoData:
    """The shipped digits, standardised as in training."""
    with np.load(path) as f:
        mean, std = f["mean"], f["std"]

        def standard(x: np.ndarray) -> np.ndarray:
            return ((x.astype(np.float64) - mean) / std).astype(np.float32)

        return DemoData(standard(f["x_calib"]), standard(f["x_test"]), f["y_test"].astype(np.int64))


def load_model(path: str | Path = MODEL_PATH) -> dict[str, dict[str, Any]]:
    """A checkpoint of the demo's network as the nested model :mod:`arraysparse.demo.mlp` runs."""
    from ..io import open_checkpoint

    with open_checkpoint(path) as ckpt:
        model: dict[str, dict[str, Any]] = {}
        for name in ckpt:
            layer, _, key = name.rpartition(".")
            model.setdefault(layer, {})[key] = np.array(ckpt[name])
    return model


def run_demo(*args: Any, **kwargs: Any) -> Any:
    """:func:`arraysparse.demo.run.run_demo` (imported when called)."""
    from .run import run_demo as run

    return run(*args, **kwargs)
