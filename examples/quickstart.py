"""Prune one weight matrix six ways, compress each result, and report what each kept.

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

    # each job: the pruning, then the sparse format that suits its pattern
    jobs = {
        "magnitude 50% (unstructured)": (lambda: asp.MagnitudePruning().prune(weights, 0.5), {"format": "bitmask"}),
        "magnitude 2:4 (sparse tensor cores)": (
            lambda: asp.MagnitudePruning(asp.SparsityPattern.two_four()).prune(weights),
            {"format": "2:4"},
        ),
        "gradient 75%": (lambda: asp.GradientPruning().prune(weights, 0.75, gradients=gradients), {"format": "csr"}),
        "L2 rows 25%": (lambda: asp.StructuredPruning(asp.SparsityPattern.rows()).prune(weights, 0.25), {"format": "csr"}),
        "4x4 blocks 50%": (
            lambda: asp.MagnitudePruning(asp.SparsityPattern.blocks((4, 4))).prune(weights, 0.5),
            {"format": "bsr", "block": (4, 4)},
        ),
        "random 30% (seeded)": (lambda: asp.RandomPruning(seed=0).prune(weights, 0.3), {"format": "bitmask"}),
    }
    print(
        f"{'strategy':38} {'sparsity':>8} {'kept |w| sum':>13} {'pattern ok':>10} {'ms':>7}"
        f"  {'format':>8} {'MiB':>6} {'ratio':>6}"
    )
    for name, (job, how) in jobs.items():
        job()  # the first call compiles the kernels it needs
        start = time.perf_counter()
        pruned, mask = job()
        ms = (time.perf_counter() - start) * 1e3
        kept = float(np.abs(pruned).sum())
        packed = asp.compress(pruned, **how)
        assert np.array_equal(packed.to_dense(), pruned), "compression must round-trip exactly"
        print(
            f"{name:38} {mask.sparsity:8.3f} {kept:13.1f} {str(mask.satisfies()):>10} {ms:7.1f}"
            f"  {how['format']:>8} {packed.nbytes / 2**20:6.2f} {packed.compression_ratio:5.2f}x"
        )
    assert np.count_nonzero(weights) == weights.size, "prune() must not modify its input"


if __name__ == "__main__":
    main()
