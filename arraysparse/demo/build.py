"""Make the demo's files: ``python -m arraysparse.demo.build [--output DIR]`` (needs scikit-learn).

Trains the digits MLP of :mod:`arraysparse.demo.mlp` with the full settings of
``examples/digits_mlp.py`` (seed 0, 40 epochs of Adam, one BLAS thread: the
same weights on every run of one machine) and writes, next to this file by
default:

* ``digits_mlp.safetensors``: the weights and biases, float32, flat names
  (``fc1.weight``, ...), written by :func:`arraysparse.io.write_checkpoint`;
* ``digits_data.npz``: the training digits (``x_calib``), the test digits and
  labels (``x_test``, ``y_test``) as raw uint8 pixels, and the training
  ``mean`` / ``std`` (float64) that standardise them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

import numpy as np

from ..io import write_checkpoint
from ..io._atomic import AtomicFile
from .mlp import FULL, Config, Data, accuracy, split_digits, standardisation, train_dense

HERE = Path(__file__).resolve().parent


def build(out_dir: str | os.PathLike = HERE, config: Config = FULL) -> tuple[Path, Path, float]:
    """Train and write the two files; returns their paths and the model's test accuracy (float32)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = split_digits(config.seed)
    mean, std = standardisation(x_train)
    data = Data((x_train - mean) / std, y_train, (x_test - mean) / std, y_test)
    with _one_blas_thread():
        _, dense = train_dense(data, config)
    weights = {f"{layer}.{key}": v.astype(np.float32) for layer, params in dense.items() for key, v in params.items()}
    shipped = {layer: {k: weights[f"{layer}.{k}"] for k in params} for layer, params in dense.items()}
    acc = accuracy(shipped, (data.x_test).astype(np.float32), y_test)
    sizes = " -> ".join(str(s) for s in (64, *config.hidden, 10))
    model_path = write_checkpoint(out / "digits_mlp.safetensors", weights, metadata={
        "arraysparse.demo": f"digits MLP {sizes}, ReLU; python -m arraysparse.demo.build (seed {config.seed}, "
                            f"{config.epochs} epochs); test accuracy {acc:.4f}",
    })
    data_path = out / "digits_data.npz"
    with AtomicFile(data_path) as f:
        np.savez_compressed(
            f.file, x_calib=x_train.astype(np.uint8), x_test=x_test.astype(np.uint8), y_test=y_test.astype(np.uint8),
            mean=mean, std=std,
        )
    return model_path, data_path, acc


@contextlib.contextmanager
def _one_blas_thread():  # noqa: ANN202 - a context manager
    """One BLAS thread while training (tiny matrices; and the same sums on every run)."""
    try:
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency
    except ImportError:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arraysparse.demo.build", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(HERE), help="directory for the two files (default: the package)")
    args = parser.parse_args(argv)
    model, data, acc = build(args.output)
    print(f"wrote {model} ({model.stat().st_size} bytes) and {data} ({data.stat().st_size} bytes); "
          f"test accuracy {100 * acc:.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
