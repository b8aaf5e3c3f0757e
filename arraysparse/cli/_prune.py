"""``arraysparse prune``: :func:`arraysparse.prune_checkpoint` from the command line."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..model import ModelReport, prune_checkpoint
from ..patterns import PatternKind, SparsityPattern
from ..strategies import MagnitudePruning, PruningStrategy, RandomPruning, SparseGPTPruning, WandaPruning
from . import InputError, copy_companions, output_options, progress_wanted


def strategy_of(args: argparse.Namespace, pattern: SparsityPattern) -> PruningStrategy:
    """The strategy the arguments name, built for ``pattern``."""
    if args.strategy == "random":
        return RandomPruning(pattern, seed=args.seed, ord=args.ord)
    if args.strategy == "wanda":
        return WandaPruning(pattern, comparison=args.comparison)
    if args.strategy == "sparsegpt":
        return SparseGPTPruning(pattern, block_size=args.block_size, damp=args.damp)
    return MagnitudePruning(pattern, ord=args.ord)


def default_scope(strategy: str, pattern: SparsityPattern) -> str:
    """Global for unstructured magnitude pruning; every other case prunes layer by layer (random
    scores are a permutation per tensor, which ranks no two tensors fairly against each other)."""
    return "global" if pattern.kind is PatternKind.UNSTRUCTURED and strategy == "magnitude" else "layer"


def target_sparsity(sparsity: float | None, pattern: SparsityPattern) -> float | None:
    """``--sparsity`` checked against the pattern: required, except for N:M (which fixes it)."""
    if pattern.is_n_m:
        n, m = pattern.nm
        if sparsity is not None and abs(sparsity - n / m) > 1e-12:
            msg = f"--sparsity {sparsity:g} disagrees with --pattern {n}:{m}, which prunes {n / m:g}; drop --sparsity"
            raise InputError(msg)
        return None
    if sparsity is None:
        msg = f"--sparsity is required with --pattern {pattern}"
        raise InputError(msg)
    return sparsity


def run(args: argparse.Namespace) -> int:
    pattern = args.pattern or SparsityPattern.unstructured()
    sparsity = target_sparsity(args.sparsity, pattern)
    if args.calibration is None and args.strategy in ("wanda", "sparsegpt"):
        msg = f"--strategy {args.strategy} needs --calibration FILE (per-weight statistics, see docs/cli.md)"
        raise InputError(msg)
    if args.calibration is not None and args.strategy not in ("wanda", "sparsegpt"):
        msg = f"--calibration is for --strategy wanda or sparsegpt, not {args.strategy}"
        raise InputError(msg)
    scope = args.scope or default_scope(args.strategy, pattern)
    report = prune_checkpoint(
        args.src, args.dst, sparsity, scope=scope, strategy=strategy_of(args, pattern),
        include=args.include, exclude=args.exclude or (), calibration=args.calibration,
        min_sparsity=args.min_sparsity, max_sparsity=args.max_sparsity, progress=progress_wanted(args),
        **output_options(args),
    )
    if args.json:
        print(json.dumps(report_json(report, args.dst), indent=1))
    elif not args.quiet:
        print(report)
        pruned = sum(1 for r in report if r.pruned)
        print(f"wrote {args.dst}: {len(report)} tensors, {pruned} pruned ({scope} scope), "
              f"{100 * report.sparsity:.2f}% of all values zero")
    copy_companions(args.src, args.dst, quiet=args.quiet or args.json)
    return 0


def report_json(report: ModelReport, dst: str) -> dict[str, Any]:
    """The report as plain data: every tensor's name, shape, size, pruned count, zeros in the
    output, sparsity (its fraction of zeros) and rule."""
    return {
        "output": str(dst),
        "size": report.size,
        "pruned": report.pruned,
        "zeros": report.zeros,
        "sparsity": report.sparsity,
        "tensors": [
            {"name": r.name, "shape": list(r.shape), "size": r.size, "pruned": r.pruned, "zeros": r.zeros,
             "sparsity": r.sparsity, "rule": r.rule}
            for r in report
        ],
    }
