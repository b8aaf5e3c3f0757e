"""``scope="global"``: one exact threshold over every pooled layer of a model."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _backends
from .._compat import device
from .._validation import check_real, prune_count
from ..masks import PruningMask, _counted
from ..patterns import SparsityPattern
from .report import LayerReport, ModelMask
from .rules import NamePattern, Patterns, describe, name_rules, rule_label
from .tree import model_arrays

Array = Any


def _fraction(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        msg = f"{name} must be a float fraction in [0, 1], got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    v = float(value)
    if not 0.0 <= v <= 1.0:  # also refuses NaN
        msg = f"{name}={value!r} must be a fraction in [0, 1]"
        raise ValueError(msg)
    return v


def _bounds(min_sparsity: Any, max_sparsity: Any, sizes: list[int]) -> tuple[list[int], list[int]]:
    """Per-layer pruned-count bounds: ``round(min * n)`` and ``round(max * n)``.

    The library's one count rule (:func:`~arraysparse._validation.prune_count`,
    half to even): a bound is the count that sparsity prunes, so bounds of a
    small layer never cross (``ceil(0.2 * 1) > floor(0.8 * 1)`` would).
    """
    lo_f = _fraction(min_sparsity, "min_sparsity")
    hi_f = _fraction(max_sparsity, "max_sparsity")
    if lo_f > hi_f:
        msg = f"min_sparsity={min_sparsity!r} exceeds max_sparsity={max_sparsity!r}"
        raise ValueError(msg)
    lo = [prune_count(lo_f, n) for n in sizes]
    hi = [prune_count(hi_f, n) for n in sizes]
    return lo, hi


def global_mask(
    scores: Mapping[str, Any],
    /,
    sparsity: float,
    *,
    magnitude: bool = False,
    exclude: Patterns = (),
    overrides: Mapping[NamePattern, float | int] | None = None,
    min_sparsity: float = 0.0,
    max_sparsity: float = 1.0,
) -> ModelMask:
    """One exact threshold over every array of a (nested) mapping.

    The pooled layers (those neither excluded nor overridden) are ranked
    together and the lowest ``round(sparsity * pooled_size)`` values pruned
    (an int ``sparsity`` is a count). The masks equal those of concatenating
    the pooled arrays, flattened in mapping order, and calling
    :func:`~arraysparse.topk_mask`: among equal scores the one earlier in
    that concatenation is pruned first. Nothing is concatenated: on NumPy and
    CPU torch a radix select counts key digits array by array (a few passes
    over the model, extra memory of a few histograms plus at most one widened
    copy of one array); other libraries run a standard-only selection that
    sorts one array at a time and gives the identical mask.
    Dask arrays: the threshold and every layer's pruned count are eager
    (summed per-chunk histograms, 2 passes for 32-bit keys, 4 for 64-bit
    keys or with ``min_sparsity`` / ``max_sparsity``, then one counting pass;
    only histograms and counts reach the client, nothing is concatenated);
    the masks are lazy and equal NumPy's bit for bit. See docs/scaling-out.md.

    Parameters
    ----------
    scores : mapping
        Names (nested mappings allowed) to arrays of one library and device,
        real dtypes. Mixed dtypes rank by value: arrays whose keys share a
        kind and width compare on them, otherwise all values compare as
        float64 (exact for every float and every integer up to 2**53).
    sparsity : float or int
        Fraction of the pooled values to prune, or a count.
    magnitude : bool
        Rank ``|scores|``: ``global_mask(weights, s, magnitude=True)`` is
        global magnitude pruning, with no score array built.
    exclude : glob str, re.Pattern or a list of them
        Layers never pruned (all-keep masks, outside the pool). Globs match
        the whole dotted name (``fnmatch``); a compiled pattern matches if
        ``pattern.search(name)`` does. Exclusion wins over an override.
    overrides : mapping of pattern to sparsity
        Layers pruned on their own at a fixed sparsity (their own top-k,
        ties to the lower index), outside the pool; the first matching
        pattern wins. A pattern that matches no layer raises ``ValueError``.
    min_sparsity, max_sparsity : float
        Per-layer bounds for the pooled layers: each of ``n`` values prunes
        at least ``round(min_sparsity * n)`` and at most
        ``round(max_sparsity * n)`` (the count rule of every ``sparsity``,
        so a layer's sparsity can miss a bound by half a value of rounding). The pooled count is still met exactly: the
        shared threshold moves until the clamped per-layer counts add up to
        it (a clamped layer prunes exactly its bound, its lowest scores; the
        others prune what lies below the threshold). If the bounds make the
        count impossible (``sum of minima > count`` or ``sum of maxima <
        count``) a ``ValueError`` gives the feasible range.

    Returns
    -------
    ModelMask
        A mask for every layer, excluded ones (all kept) included, and the
        report of what each got.

    Raises
    ------
    ValueError
        NaN scores (with their count and the layer's name), an empty model,
        bad fractions, infeasible bounds, unknown name patterns.
    TypeError
        Non-array values, arrays of different libraries, bool or complex
        dtypes, non-string names.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.model import global_mask
    >>> model = {"fc1": {"weight": np.array([[0.1, -3.0], [0.5, 2.0]])},
    ...          "fc2": {"weight": np.array([-0.2, 0.3, 4.0]), "bias": np.array([0.01])}}
    >>> mm = global_mask(model, 0.5, magnitude=True, exclude="*.bias")
    >>> mm["fc1.weight"].mask
    array([[False,  True],
           [False,  True]])
    >>> mm["fc2.weight"].mask
    array([False, False,  True])
    >>> print(mm.report)
    name        shape   size  pruned  sparsity  rule
    ----------  ------  ----  ------  --------  -----------------
    fc1.weight  (2, 2)     4       2    50.00%  global
    fc2.weight  (3,)       3       2    66.67%  global
    fc2.bias    (1,)       1       0     0.00%  excluded '*.bias'
    ----------  ------  ----  ------  --------  -----------------
    total                  8       4    50.00%
    """
    if not isinstance(magnitude, bool):
        msg = f"magnitude must be a bool, got {magnitude!r}"
        raise TypeError(msg)
    xp, flat = model_arrays(scores, "scores")
    names = list(flat)
    rules = name_rules(names, exclude, overrides)
    pool = [n for n in names if n not in rules]
    for n in pool:
        check_real(xp, flat[n], f"scores[{n!r}]")
    sizes = [math.prod(flat[n].shape) for n in pool]
    k = prune_count(sparsity, sum(sizes))
    lo, hi = _bounds(min_sparsity, max_sparsity, sizes)
    if not sum(lo) <= k <= sum(hi):
        msg = (
            f"sparsity={sparsity!r} prunes {k} of the {sum(sizes)} pooled values, but "
            f"min_sparsity={min_sparsity!r} and max_sparsity={max_sparsity!r} allow only "
            f"{sum(lo)} to {sum(hi)}"
        )
        raise ValueError(msg)
    selected = []
    if pool:
        labels = [f"scores[{n!r}]" for n in pool]
        selected = _backends.global_keep(xp, [flat[n] for n in pool], labels, k, lo, hi, magnitude=magnitude)

    masks: dict[str, PruningMask] = {}
    records: list[LayerReport] = []
    chosen = {
        n: (keep, p, _clamp_label(p, c, lo[i], hi[i])) for i, (n, (keep, p, c)) in enumerate(zip(pool, selected))
    }
    unstructured = SparsityPattern.unstructured()
    for name in names:
        arr = flat[name]
        shape = tuple(arr.shape)
        size = math.prod(shape)
        if name in chosen:
            keep, pruned, rule = chosen[name]
        elif rules[name][0] == "excluded":
            keep, pruned, rule = xp.ones(shape, dtype=xp.bool, device=device(arr)), 0, rule_label(rules[name])
        else:
            _, p, s = rules[name]
            check_real(xp, arr, f"scores[{name!r}]")
            count = prune_count(s, size, name=f"overrides[{describe(p)}]")
            keep = _backends.topk_keep(xp, arr, count, magnitude=magnitude, name=f"scores[{name!r}]")
            pruned, rule = count, rule_label(rules[name])
        masks[name] = _counted(PruningMask(keep, unstructured), pruned)
        records.append(LayerReport(name, shape, size, pruned, rule))
    return ModelMask(masks, report=records)


def _clamp_label(p: int, c: int, lo: int, hi: int) -> str:
    if p == c:
        return "global"
    return "global, min_sparsity" if p == lo else "global, max_sparsity"
