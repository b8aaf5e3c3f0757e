"""Timing and reporting helpers shared by the benchmark case modules.

Each ``benchmarks/cases_*.py`` module defines ``CASES``: functions that take
the float32 benchmark matrix ``x`` (4096 x 4096, or 512 x 512 with
``--quick``: test ``is_quick(x)``) and return a list of :class:`Row`.
``run.py`` runs them all and prints one table.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

REPEAT = 10
FULL_SHAPE = (4096, 4096)
QUICK_SHAPE = (512, 512)


def is_quick(x):
    """True when ``x`` is the ``--quick`` smoke-test matrix."""
    return x.shape != FULL_SHAPE


@dataclass
class Row:
    """One line of the results table.

    ``ratio`` is peer / ours (None where it means nothing); ``target`` is
    the goal in words and ``passed`` whether it was met (None: information
    only).
    """

    job: str
    ours_ms: float
    peer: str
    peer_ms: float
    ratio: float | None
    target: str
    passed: bool | None


def versus(job, ours_ms, peer, peer_ms, min_ratio=None, target=None):
    """Row comparing our time with a peer's; pass if peer/ours >= min_ratio."""
    ratio = peer_ms / ours_ms
    if min_ratio is None:
        return Row(job, ours_ms, peer, peer_ms, ratio, "info", None)
    return Row(job, ours_ms, peer, peer_ms, ratio,
               target or f">= {min_ratio:g}x", ratio >= min_ratio)


def bench(fn):
    """Time ``fn()``: one warm-up call, then the best of REPEAT calls (``race`` of one).

    Returns
    -------
    ms : float
        Best wall time in milliseconds (``time.perf_counter``).
    out : object
        The result of the last call, for the correctness checks.
    """
    return race(fn)[0]


def race(*fns, sync=None):
    """Time several callables alternately: one warm-up call each, then REPEAT rounds in
    which each is called once in turn; the best time of each.

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called before each timing starts and
    before it stops, so work a call queues on a device is counted, and nothing else's.

    On a shared machine whose speed drifts over seconds, alternating gives every
    contender the same slow and fast spells, so their ratio holds better than
    when each is timed in its own window. Returns ``[(ms, out), ...]`` in order.
    """
    wait = sync or (lambda: None)
    outs = [fn() for fn in fns]  # warm-ups: absorb JIT / kernel compilation and first-touch costs
    wait()
    best = [float("inf")] * len(fns)
    gc.collect()
    gc.disable()
    try:
        for _ in range(REPEAT):
            for i, fn in enumerate(fns):
                outs[i] = None  # free the last result: every call allocates alike
                wait()
                t0 = time.perf_counter()
                outs[i] = fn()
                wait()
                best[i] = min(best[i], time.perf_counter() - t0)
    finally:
        gc.enable()
    return [(b * 1e3, o) for b, o in zip(best, outs)]
