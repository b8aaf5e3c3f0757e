"""Prune one weight matrix three ways and report what each kept.

Run: ``python examples/quickstart.py`` (NumPy only; torch and JAX arrays are
used the same way when installed).
"""

from __future__ import annotations

import time

import numpy as np

import arraysparse as asp


def main() -> None:
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((1024, 1024), dtype=np.float32)
    gradients = rng.standard_normal(weights.shape, dtype=np.float32)

    jobs = {
        "magnitude 50% (unstructured)": lambda: asp.MagnitudePruning().prune(weights, 0.5),
        "magnitude 2:4 (sparse tensor cores)": lambda: asp.MagnitudePruning(asp.SparsityPattern.two_four()).prune(weights),
        "gradient 75%": lambda: asp.GradientPruning().prune(weights, 0.75, gradients=gradients),
        "L2 rows 25%": lambda: asp.StructuredPruning(asp.SparsityPattern.rows()).prune(weights, 0.25),
        "4x4 blocks 50%": lambda: asp.MagnitudePruning(asp.SparsityPattern.blocks((4, 4))).prune(weights, 0.5),
        "random 30% (seeded)": lambda: asp.RandomPruning(seed=0).prune(weights, 0.3),
    }
    print(f"{'strategy':38} {'sparsity':>8} {'kept |w| sum':>13} {'pattern ok':>10} {'ms':>7}")
    for name, job in jobs.items():
        job()  # the first call compiles the kernels it needs
        start = time.perf_counter()
        pruned, mask = job()
        ms = (time.perf_counter() - start) * 1e3
        kept = float(np.abs(pruned).sum())
        print(f"{name:38} {mask.sparsity:8.3f} {kept:13.1f} {str(mask.satisfies()):>10} {ms:7.1f}")
    assert np.count_nonzero(weights) == weights.size, "prune() must not modify its input"


if __name__ == "__main__":
    main()
