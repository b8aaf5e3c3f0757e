"""Whole-model pruning: global thresholds, layer-wise pruning and their report.

arraysparse runs no model. A *model* here is a mapping of names to arrays,
nested mappings allowed (a ``state_dict``, a JAX parameter tree of dicts, a
dict of NumPy arrays); flat names join the levels with ``"."``.

* :func:`global_mask` ranks every value of the model together and prunes the
  lowest ``round(sparsity * total)``: exactly the mask of concatenating the
  arrays in mapping order and taking top-k (ties: the lower index of that
  concatenation is pruned first), computed without concatenating anything.
* :func:`layer_masks` prunes every layer to its own target with any
  :class:`~arraysparse.PruningStrategy` and pattern.
* :func:`prune_model` does either and applies the masks.

All three answer with a :class:`ModelMask`: a read-only mapping of flat names
to :class:`~arraysparse.PruningMask`, with a per-layer :attr:`ModelMask.report`.
"""

from __future__ import annotations

import fnmatch
import math
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _kernels
from ._compat import (
    array_namespace,
    backend_name,
    device,
    from_host,
    host_view,
    is_writable,
)
from ._kernels import reference
from ._validation import check_real, prune_count
from .masks import PruningMask, create_mask
from .patterns import PatternKind, SparsityPattern

__all__ = [
    "LayerReport",
    "ModelMask",
    "ModelReport",
    "flatten_model",
    "global_mask",
    "layer_masks",
    "prune_model",
    "unflatten_model",
]

Array = Any
NamePattern = str | re.Pattern
Patterns = NamePattern | Iterable[NamePattern] | None


# -- nested mappings ----------------------------------------------------------------
def _leaves(model: Mapping, prefix: str = "") -> Iterator[tuple[Mapping, str, str, Any]]:
    """``(parent, key, flat_name, value)`` of every non-mapping value, in mapping order."""
    for key, value in model.items():
        if not isinstance(key, str):
            where = f"under {prefix!r}" if prefix else "at the top level"
            msg = f"model keys must be str, got {type(key).__name__} {key!r} {where}"
            raise TypeError(msg)
        if not key:
            where = f"under {prefix!r}" if prefix else "at the top level"
            msg = f"model keys must be non-empty strings; found '' {where}"
            raise ValueError(msg)
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            yield from _leaves(value, name)
        else:
            yield model, key, name, value


def flatten_model(model: Mapping[str, Any], /) -> dict[str, Any]:
    """A flat ``{dotted.name: value}`` dict of a nested mapping, in mapping order.

    Raises ``TypeError`` for a non-mapping or a non-string key and
    ``ValueError`` when two paths give the same dotted name
    (``{"a.b": x, "a": {"b": y}}``).

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.model import flatten_model
    >>> list(flatten_model({"fc1": {"weight": np.ones(2), "bias": np.ones(1)}, "out": np.ones(3)}))
    ['fc1.weight', 'fc1.bias', 'out']
    """
    if not isinstance(model, Mapping):
        msg = f"model must be a mapping of names to arrays, got {type(model).__name__}"
        raise TypeError(msg)
    flat: dict[str, Any] = {}
    for _, _, name, value in _leaves(model):
        if name in flat:
            msg = f"two entries of the model flatten to the same name {name!r}"
            raise ValueError(msg)
        flat[name] = value
    return flat


def unflatten_model(flat: Mapping[str, Any], /, like: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``flat`` nested as ``like`` is (plain dicts at every level).

    ``flat`` must have exactly the dotted names of ``like``'s leaves.

    Examples
    --------
    >>> from arraysparse.model import unflatten_model
    >>> unflatten_model({"fc.w": 1, "fc.b": 2}, like={"fc": {"w": 0, "b": 0}})
    {'fc': {'w': 1, 'b': 2}}
    """
    names = list(flatten_model(like))
    missing = [n for n in names if n not in flat]
    extra = [n for n in flat if n not in set(names)]
    if missing or extra:
        msg = f"flat does not have the names of like: missing {missing[:5]}, unexpected {extra[:5]}"
        raise ValueError(msg)

    def build(level: Mapping, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in level.items():
            name = f"{prefix}.{key}" if prefix else key
            out[key] = build(value, name) if isinstance(value, Mapping) else flat[name]
        return out

    return build(like, "")


def _model_arrays(model: Any, what: str) -> tuple[Any, dict[str, Array]]:
    """Namespace and flat arrays of a model: non-empty, arrays only, one library and device."""
    flat = flatten_model(model)
    if not flat:
        msg = f"{what} holds no arrays"
        raise ValueError(msg)
    xp = array_namespace(**{f"{what}[{n!r}]": a for n, a in flat.items()})
    return xp, flat


# -- name rules -----------------------------------------------------------------------
def _pattern_list(patterns: Patterns, what: str) -> list[NamePattern]:
    if patterns is None:
        return []
    if isinstance(patterns, (str, re.Pattern)):
        patterns = [patterns]
    if not isinstance(patterns, Iterable):
        msg = f"{what} must be a glob string, a compiled re.Pattern or a list of them, got {type(patterns).__name__}"
        raise TypeError(msg)
    out = list(patterns)
    for p in out:
        if not isinstance(p, (str, re.Pattern)):
            msg = f"{what} entries must be glob strings or compiled re.Pattern, got {type(p).__name__} {p!r}"
            raise TypeError(msg)
    return out


def _matches(pattern: NamePattern, name: str) -> bool:
    if isinstance(pattern, str):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern.search(name) is not None


def _describe(pattern: NamePattern) -> str:
    return repr(pattern) if isinstance(pattern, str) else f"re.compile({pattern.pattern!r})"


def _name_rules(
    names: list[str], exclude: Patterns, overrides: Mapping[NamePattern, Any] | None
) -> dict[str, tuple[str, NamePattern, Any]]:
    """``{name: ("excluded" | "override", pattern, sparsity)}`` for the names a rule claims.

    Exclusion wins over an override; among overrides the first matching
    pattern (in the mapping's order) wins. A pattern that matches no name is
    an error: it is almost always a typo.
    """
    excluded = _pattern_list(exclude, "exclude")
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, Mapping):
        msg = f"overrides must be a mapping of name patterns to sparsities, got {type(overrides).__name__}"
        raise TypeError(msg)
    override_items = list(overrides.items())
    _pattern_list([p for p, _ in override_items], "overrides keys")
    rules: dict[str, tuple[str, NamePattern, Any]] = {}
    used: set[int] = set()
    for name in names:
        for i, p in enumerate(excluded):
            if _matches(p, name):
                used.add(i)
                rules.setdefault(name, ("excluded", p, None))
        for j, (p, s) in enumerate(override_items):
            if _matches(p, name):
                used.add(len(excluded) + j)
                rules.setdefault(name, ("override", p, s))
    every = [("exclude", p) for p in excluded] + [("overrides", p) for p, _ in override_items]
    for i, (what, p) in enumerate(every):
        if i not in used:
            shown = ", ".join(repr(n) for n in names[:6]) + (", ..." if len(names) > 6 else "")
            msg = f"{what} pattern {_describe(p)} matches no layer (layers: {shown})"
            raise ValueError(msg)
    return rules


def _rule_label(rule: tuple[str, NamePattern, Any]) -> str:
    kind, p, s = rule
    if kind == "excluded":
        return f"excluded {_describe(p)}"
    return f"override {_describe(p)} -> {s!r}"


# -- report ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerReport:
    """What one layer got: its name, shape, size, pruned count and the rule applied.

    ``rule`` is ``"global"`` (the shared threshold), ``"global, min_sparsity"``
    or ``"global, max_sparsity"`` (clamped at a bound), ``"layer"`` (its own
    target), ``"override <pattern> -> <sparsity>"``, ``"excluded <pattern>"``
    or ``"given"``.
    """

    name: str
    shape: tuple[int, ...]
    size: int
    pruned: int
    rule: str

    @property
    def kept(self) -> int:
        return self.size - self.pruned

    @property
    def sparsity(self) -> float:
        return self.pruned / self.size if self.size else 0.0


class ModelReport(list):
    """A list of :class:`LayerReport`, one per layer, whose ``str`` is a table."""

    @property
    def size(self) -> int:
        return sum(r.size for r in self)

    @property
    def pruned(self) -> int:
        return sum(r.pruned for r in self)

    @property
    def sparsity(self) -> float:
        size = self.size
        return self.pruned / size if size else 0.0

    def __str__(self) -> str:
        head = ("name", "shape", "size", "pruned", "sparsity", "rule")
        rows = [
            (r.name, str(r.shape), str(r.size), str(r.pruned), f"{100 * r.sparsity:.2f}%", r.rule)
            for r in self
        ]
        rows.append(("total", "", str(self.size), str(self.pruned), f"{100 * self.sparsity:.2f}%", ""))
        widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
        right = {2, 3, 4}

        def line(row: tuple[str, ...]) -> str:
            cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
            return "  ".join(cells).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([line(head), rule, *(line(r) for r in rows[:-1]), rule, line(rows[-1])])


# -- the mask of a model ----------------------------------------------------------
class ModelMask(Mapping[str, PruningMask]):
    """Read-only mapping of flat layer names to :class:`~arraysparse.PruningMask`.

    Parameters
    ----------
    masks : mapping
        Flat or nested mapping of names to ``PruningMask`` or boolean arrays
        (``True`` = keep).
    report : list of LayerReport, optional
        What each layer got; built with rule ``"given"`` when omitted.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.model import ModelMask
    >>> mm = ModelMask({"fc": {"w": np.array([True, False])}})
    >>> list(mm), mm.sparsity
    (['fc.w'], 0.5)
    >>> mm.apply({"fc": {"w": np.array([3.0, 4.0])}})
    {'fc': {'w': array([3., 0.])}}
    """

    __slots__ = ("_masks", "_report")

    def __init__(self, masks: Mapping[str, Any], /, *, report: Iterable[LayerReport] | None = None):
        flat = flatten_model(masks)
        self._masks: dict[str, PruningMask] = {}
        for name, m in flat.items():
            if not isinstance(m, PruningMask):
                try:
                    m = PruningMask(m)
                except TypeError as e:
                    raise TypeError(f"masks[{name!r}]: {e}") from None
            self._masks[name] = m
        if report is None:
            report = [LayerReport(n, m.shape, m.size, m.num_pruned, "given") for n, m in self._masks.items()]
        self._report = ModelReport(report)
        if [r.name for r in self._report] != list(self._masks):
            msg = "report must have one record per mask, in the masks' order"
            raise ValueError(msg)

    def __getitem__(self, name: str) -> PruningMask:
        return self._masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    @property
    def report(self) -> ModelReport:
        """Per-layer records (name, shape, size, pruned, sparsity, rule); ``print`` it for a table."""
        return self._report

    @property
    def size(self) -> int:
        """Number of values under the masks."""
        return sum(m.size for m in self._masks.values())

    @property
    def num_pruned(self) -> int:
        return self._report.pruned

    @property
    def sparsity(self) -> float:
        """Fraction of all values pruned, excluded layers included."""
        return self._report.sparsity

    def _targets(self, model: Mapping[str, Any]) -> list[tuple[Mapping, str, str, Array]]:
        leaves = [leaf for leaf in _leaves(model) if leaf[2] in self._masks]
        found = {leaf[2] for leaf in leaves}
        missing = [n for n in self._masks if n not in found]
        if missing:
            msg = f"model has no layer named {missing[0]!r} ({len(missing)} masked layer(s) missing)"
            raise ValueError(msg)
        return leaves

    def apply(self, model: Mapping[str, Any], /) -> dict[str, Any]:
        """A new model, nested as ``model``, with pruned values zeroed; ``model`` is untouched.

        Every masked name must be in ``model``; its other entries are passed
        through as they are.
        """
        flat = flatten_model(model)
        self._targets(model)
        out = {}
        for name, value in flat.items():
            out[name] = _on_layer(name, self._masks[name].apply, value) if name in self._masks else value
        return unflatten_model(out, like=model)

    def apply_(self, model: MutableMapping[str, Any], /) -> MutableMapping[str, Any]:
        """Zero pruned values in place and return ``model``.

        Writable arrays (NumPy, torch, a ``state_dict``'s tensors, which share
        the module's storage) are written into. Read-only ones (JAX,
        read-only NumPy) cannot be: a pruned copy replaces them in their
        mapping, which must then be mutable (``TypeError`` otherwise).
        """
        for parent, key, name, value in self._targets(model):
            mask = self._masks[name]
            if is_writable(value):
                _on_layer(name, mask.apply_, value)
                continue
            if not isinstance(parent, MutableMapping):
                msg = (
                    f"layer {name!r} is read-only ({backend_name(value)}) and its mapping "
                    f"{type(parent).__name__} cannot take a pruned copy; use apply()"
                )
                raise TypeError(msg)
            parent[key] = _on_layer(name, mask.apply, value)
        return model

    def __repr__(self) -> str:
        return f"ModelMask({len(self)} layers, size={self.size}, sparsity={self.sparsity:.4g})"


def _on_layer(name: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` with the layer's name put in front of any error message."""
    try:
        return fn(*args)
    except (TypeError, ValueError) as e:
        raise type(e)(f"layer {name!r}: {e}") from None


# -- global pruning -------------------------------------------------------------------
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
    xp, flat = _model_arrays(scores, "scores")
    names = list(flat)
    rules = _name_rules(names, exclude, overrides)
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
    selected = _global_select(xp, [flat[n] for n in pool], pool, k, lo, hi, magnitude) if pool else []

    masks: dict[str, PruningMask] = {}
    records: list[LayerReport] = []
    chosen = dict(zip(pool, selected))
    unstructured = SparsityPattern.unstructured()
    for name in names:
        arr = flat[name]
        shape = tuple(arr.shape)
        size = math.prod(shape)
        if name in chosen:
            keep, pruned, rule = chosen[name]
        elif rules[name][0] == "excluded":
            keep, pruned, rule = xp.ones(shape, dtype=xp.bool, device=device(arr)), 0, _rule_label(rules[name])
        else:
            _, p, s = rules[name]
            check_real(xp, arr, f"scores[{name!r}]")
            count = prune_count(s, size, name=f"overrides[{_describe(p)}]")
            keep = _kernels.topk_keep(xp, arr, count, magnitude=magnitude, name=f"scores[{name!r}]")
            pruned, rule = count, _rule_label(rules[name])
        masks[name] = PruningMask(keep, unstructured)
        records.append(LayerReport(name, shape, size, pruned, rule))
    return ModelMask(masks, report=records)


def _resolve(less: list[int], equal: list[int], lo: list[int], hi: list[int], k: int) -> list[int]:
    """Per-layer counts ``c_t`` below the global cut, for a threshold value ``T`` found so that
    ``sum clamp(less) < k <= sum clamp(less + equal)``.

    Walking the values equal to ``T`` in concatenation order, the cut stops
    at the first position where the clamped counts add up to ``k``.
    """
    def clamp(c: int, i: int) -> int:
        return max(lo[i], min(hi[i], c))

    remaining = k - sum(clamp(c, i) for i, c in enumerate(less))
    counts = []
    for i in range(len(less)):
        gain = clamp(less[i] + equal[i], i) - clamp(less[i], i)
        if remaining == 0:
            counts.append(less[i])
        elif remaining >= gain:
            counts.append(less[i] + equal[i])
            remaining -= gain
        else:
            counts.append(max(less[i], lo[i]) + remaining)
            remaining = 0
    return counts


def _clamp_label(p: int, c: int, lo: int, hi: int) -> str:
    if p == c:
        return "global"
    return "global, min_sparsity" if p == lo else "global, max_sparsity"


def _global_select(
    xp: Any, arrays: list[Array], names: list[str], k: int, lo: list[int], hi: list[int], magnitude: bool
) -> list[tuple[Array, int, str]]:
    """``(keep, pruned, rule)`` per pooled array; requires ``sum(lo) <= k <= sum(hi)``."""
    hosts = [host_view(a) for a in arrays]
    if all(h is not None for h in hosts):
        return _select_host(arrays, hosts, names, k, lo, hi, magnitude)
    return _select_reference(xp, arrays, names, k, lo, hi, magnitude)


def _select_host(
    arrays: list[Array], hosts: list[np.ndarray], names: list[str], k: int,
    lo: list[int], hi: list[int], magnitude: bool,
) -> list[tuple[Array, int, str]]:
    from ._kernels.cpu import global_select as gs
    from ._kernels.cpu import select

    src = gs.KeySource(hosts)
    sizes = [h.size for h in hosts]

    def on_nan(i: int) -> None:
        _kernels._raise_nan(f"scores[{names[i]!r}]", _kernels._count_nan_host(hosts[i]))

    def own_topk(i: int, p: int) -> np.ndarray:
        keep, nans = select.topk_keep(src.values(i), p, magnitude)
        if nans:
            on_nan(i)
        return keep

    def wrap(i: int, keep: np.ndarray) -> Array:
        return from_host(keep.reshape(hosts[i].shape), arrays[i])

    bounded = any(lo) or any(h < n for h, n in zip(hi, sizes))
    if k <= sum(lo) or k >= sum(hi):  # every layer at one of its bounds
        counts, cut = (lo, [0] * len(sizes)) if k <= sum(lo) else (hi, sizes)
        return [(wrap(i, own_topk(i, p)), p, _clamp_label(p, cut[i], lo[i], hi[i])) for i, p in enumerate(counts)]
    everything = range(len(hosts))
    if not bounded:
        threshold, less_total, _ = gs.find_threshold(src, k, magnitude, None, None, on_nan)
        keeps, equal, less = gs.keep_from(src, everything, magnitude, threshold)
        remaining = k - int(less_total[0])
        out = []
        for i in everything:
            j = min(equal[i], remaining)  # ties: earlier arrays, then lower indices, first
            gs.prune_equal(src, i, magnitude, threshold, j, keeps[i])
            remaining -= j
            out.append((wrap(i, keeps[i]), less[i] + j, "global"))
        return out
    lo_a, hi_a = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
    threshold, less_a, equal_a = gs.find_threshold(src, k, magnitude, lo_a, hi_a, on_nan)
    less, equal = [int(v) for v in less_a], [int(v) for v in equal_a]
    counts = _resolve(less, equal, lo, hi, k)
    pruned = [max(lo[i], min(hi[i], c)) for i, c in enumerate(counts)]
    cut = [i for i in everything if pruned[i] == counts[i]]
    keeps = gs.keep_from(src, cut, magnitude, threshold)[0]
    out = []
    for i, c in enumerate(counts):
        if i in keeps:
            gs.prune_equal(src, i, magnitude, threshold, c - less[i], keeps[i])
            keep = keeps[i]
        else:
            keep = own_topk(i, pruned[i])
        out.append((wrap(i, keep), pruned[i], _clamp_label(pruned[i], c, lo[i], hi[i])))
    return out


def _select_reference(
    xp: Any, arrays: list[Array], names: list[str], k: int, lo: list[int], hi: list[int], magnitude: bool
) -> list[tuple[Array, int, str]]:
    """The standard-only global selection: one array in memory at a time.

    The threshold value is found by a selection over the union of the arrays:
    each round sorts every array (one at a time), takes the median of its
    remaining candidates, and splits the candidates at the weighted median
    of those medians, which removes at least a quarter of them. The same
    tie walk as the kernels then places the cut.
    """
    for a, n in zip(arrays, names):
        nans = reference.count_nan(xp, a)
        if nans:
            _kernels._raise_nan(f"scores[{n!r}]", nans)
    dev = device(arrays[0])
    sizes = [math.prod(a.shape) for a in arrays]
    flats = [xp.reshape(a, (-1,)) for a in arrays]
    order_dtypes = {reference._order_values(xp, f[: min(1, n)], magnitude).dtype for f, n in zip(flats, sizes)}
    common = next(iter(order_dtypes)) if len(order_dtypes) == 1 else reference._accumulator(xp, arrays[0])
    integral = xp.isdtype(common, "integral")

    def values(i: int) -> Array:
        v = reference._order_values(xp, flats[i], magnitude)
        return v if v.dtype == common else xp.astype(v, common)

    def count(x: Array) -> int:
        return int(xp.sum(xp.astype(x, xp.int64)))

    def scalar(x: Array) -> int | float:
        return int(x) if integral else float(x)

    def clamp(c: int, i: int) -> int:
        return max(lo[i], min(hi[i], c))

    def own_topk(i: int, p: int) -> Array:
        return reference.topk_keep(xp, xp.reshape(values(i), tuple(arrays[i].shape)), p, False)

    if k <= sum(lo) or k >= sum(hi):  # every layer at one of its bounds
        counts, cut = (lo, [0] * len(sizes)) if k <= sum(lo) else (hi, sizes)
        return [(own_topk(i, p), p, _clamp_label(p, cut[i], lo[i], hi[i])) for i, p in enumerate(counts)]

    below: Array | None = None  # candidates lie strictly between below and above
    above: Array | None = None
    while True:
        medians = []
        for i, n in enumerate(sizes):
            if n == 0:
                continue
            s = xp.sort(values(i))
            a = count(s <= below) if below is not None else 0
            b = count(s < above) if above is not None else n
            if b > a:
                medians.append((scalar(s[(a + b - 1) // 2]), b - a))
        medians.sort(key=lambda mw: mw[0])
        half, acc = (sum(w for _, w in medians) + 1) // 2, 0
        for value, w in medians:  # noqa: B007 - value is the weighted median after the break
            acc += w
            if acc >= half:
                break
        pivot = xp.asarray(value, dtype=common, device=dev)
        f_lt = f_le = 0
        for i in range(len(arrays)):
            v = values(i)
            f_lt += clamp(count(v < pivot), i)
            f_le += clamp(count(v <= pivot), i)
        if f_lt >= k:
            above = pivot
        elif f_le < k:
            below = pivot
        else:
            break
    less, equal = [], []
    for i in range(len(arrays)):
        v = values(i)
        less.append(count(v < pivot))
        equal.append(count(v == pivot))
    out = []
    for i, c in enumerate(_resolve(less, equal, lo, hi, k)):
        p = clamp(c, i)
        if p != c:
            keep = own_topk(i, p)
        else:
            v = values(i)
            eq = v == pivot
            keep = v > pivot
            j = c - less[i]
            if j:
                eq = eq & (xp.cumulative_sum(xp.astype(eq, xp.int64)) > j)
            keep = xp.reshape(keep | eq, tuple(arrays[i].shape))
        out.append((keep, p, _clamp_label(p, c, lo[i], hi[i])))
    return out


# -- layer-wise pruning ---------------------------------------------------------------
def layer_masks(
    model: Mapping[str, Any],
    /,
    sparsity: float | None = None,
    *,
    strategy: Any = None,
    pattern: SparsityPattern | None = None,
    gradients: Mapping[str, Any] | None = None,
    exclude: Patterns = (),
    overrides: Mapping[NamePattern, float | int | None] | None = None,
) -> ModelMask:
    """Prune every layer to its own target with any strategy and pattern.

    Parameters
    ----------
    model : mapping
        Names (nested mappings allowed) to weight arrays of one library.
    sparsity : float, int or None
        Each layer's target (fraction or count); ``None`` for N:M patterns.
    strategy : PruningStrategy, optional
        Scores each layer (default: :class:`~arraysparse.MagnitudePruning`).
    pattern : SparsityPattern, optional
        The mask pattern for every layer; default: the strategy's own.
    gradients : mapping, optional
        Same names as ``model`` (nesting may differ), required by strategies
        with ``requires_gradients`` for every layer they prune.
    exclude, overrides
        As in :func:`global_mask`; an override gives the layer's own target.

    Errors raised for one layer (a pattern that does not fit its shape, a
    missing gradient, NaN scores) name that layer.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse import SparsityPattern
    >>> from arraysparse.model import layer_masks
    >>> w = {"a": np.array([[1.0, -4.0, 2.0, 0.5]]), "b": np.array([3.0, 1.0])}
    >>> mm = layer_masks(w, pattern=SparsityPattern.two_four(), exclude="b")
    >>> mm["a"].mask
    array([[False,  True,  True, False]])
    >>> [r.rule for r in mm.report]
    ['layer', "excluded 'b'"]
    """
    from .strategies.base import PruningStrategy
    from .strategies.magnitude import MagnitudePruning

    xp, flat = _model_arrays(model, "model")
    if strategy is None:
        strategy = MagnitudePruning(pattern)
    if not isinstance(strategy, PruningStrategy):
        msg = f"strategy must be a PruningStrategy, got {type(strategy).__name__}"
        raise TypeError(msg)
    if pattern is not None and not isinstance(pattern, SparsityPattern):
        msg = f"pattern must be a SparsityPattern, got {type(pattern).__name__}"
        raise TypeError(msg)
    names = list(flat)
    rules = _name_rules(names, exclude, overrides)
    grads = _gradients(gradients, flat, rules, strategy)

    masks: dict[str, PruningMask] = {}
    records: list[LayerReport] = []
    for name in names:
        w = flat[name]
        rule = rules.get(name)
        if rule is not None and rule[0] == "excluded":
            masks[name] = PruningMask(xp.ones(tuple(w.shape), dtype=xp.bool, device=device(w)))
            label = _rule_label(rule)
        else:
            target = sparsity if rule is None else rule[2]
            masks[name] = _on_layer(name, _layer_mask, strategy, pattern, w, grads.get(name), target)
            label = "layer" if rule is None else _rule_label(rule)
        m = masks[name]
        records.append(LayerReport(name, m.shape, m.size, m.num_pruned, label))
    return ModelMask(masks, report=records)


def _gradients(gradients: Any, flat: dict[str, Array], rules: dict, strategy: Any) -> dict[str, Array]:
    pruned = [n for n in flat if rules.get(n, ("",))[0] != "excluded"]
    if gradients is None:
        if strategy.requires_gradients:
            msg = f"{type(strategy).__name__} needs gradients: pass gradients={{name: array}} for the model"
            raise ValueError(msg)
        return {}
    grads = flatten_model(gradients)
    unknown = [n for n in grads if n not in flat]
    if unknown:
        msg = f"gradients has names the model lacks: {unknown[:5]}"
        raise ValueError(msg)
    if strategy.requires_gradients:
        missing = [n for n in pruned if n not in grads]
        if missing:
            msg = f"gradients lacks {len(missing)} pruned layer(s), first {missing[0]!r}"
            raise ValueError(msg)
    return grads


def _layer_mask(strategy: Any, pattern: SparsityPattern | None, w: Array, g: Array | None, target: Any) -> PruningMask:
    from .strategies.magnitude import MagnitudePruning

    if pattern is None and type(strategy) is MagnitudePruning and g is None:
        return strategy.mask_from_weights(w, target)  # ranks |w| without a score array
    scores = strategy.compute_importance_scores(w, g)
    if pattern is None:
        return strategy.create_mask(scores, target)
    return create_mask(scores, target, pattern, ord=strategy.ord)


def prune_model(
    model: Mapping[str, Any],
    /,
    sparsity: float | None = None,
    *,
    scope: str = "global",
    strategy: Any = None,
    pattern: SparsityPattern | None = None,
    gradients: Mapping[str, Any] | None = None,
    exclude: Patterns = (),
    overrides: Mapping[NamePattern, Any] | None = None,
    min_sparsity: float = 0.0,
    max_sparsity: float = 1.0,
) -> tuple[dict[str, Any], ModelMask]:
    """Prune a whole model; returns ``(pruned_model, model_mask)``, ``model`` untouched.

    ``scope="global"`` ranks all pooled values together (:func:`global_mask`,
    unstructured only): the strategy's scores, or ``|w|`` computed on the fly
    with the default magnitude strategy. With another strategy, its scores
    of all pooled layers are held at once (one score array per layer).
    ``scope="layer"`` prunes each layer to ``sparsity`` (:func:`layer_masks`;
    any pattern; ``min_sparsity`` / ``max_sparsity`` do not apply).

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.model import prune_model
    >>> model = {"a": np.array([0.5, -1.0, 2.0]), "b": np.array([[0.1, 3.0]])}
    >>> pruned, mm = prune_model(model, 0.4)
    >>> pruned
    {'a': array([ 0., -1.,  2.]), 'b': array([[0., 3.]])}
    >>> mm.sparsity
    0.4
    """
    from .strategies.base import PruningStrategy
    from .strategies.magnitude import MagnitudePruning

    if scope == "layer":
        if min_sparsity != 0.0 or max_sparsity != 1.0:
            msg = "min_sparsity and max_sparsity bound a global threshold; with scope='layer' set each layer's sparsity"
            raise ValueError(msg)
        mm = layer_masks(
            model, sparsity, strategy=strategy, pattern=pattern, gradients=gradients,
            exclude=exclude, overrides=overrides,
        )
        return mm.apply(model), mm
    if scope != "global":
        msg = f"scope={scope!r} must be 'global' or 'layer'"
        raise ValueError(msg)
    if strategy is not None and not isinstance(strategy, PruningStrategy):
        msg = f"strategy must be a PruningStrategy, got {type(strategy).__name__}"
        raise TypeError(msg)
    chosen = pattern if pattern is not None else (strategy.pattern if strategy is not None else None)
    if chosen is not None and chosen.kind is not PatternKind.UNSTRUCTURED:
        msg = f"scope='global' ranks single values (unstructured); pattern {chosen} needs scope='layer'"
        raise ValueError(msg)
    if sparsity is None:
        msg = "sparsity is required with scope='global'"
        raise ValueError(msg)
    options = {"exclude": exclude, "overrides": overrides, "min_sparsity": min_sparsity, "max_sparsity": max_sparsity}
    if strategy is None or (type(strategy) is MagnitudePruning and gradients is None):
        _model_arrays(model, "model")  # errors name model, not global_mask's scores
        mm = global_mask(model, sparsity, magnitude=True, **options)
        return mm.apply(model), mm
    _, flat = _model_arrays(model, "model")
    rules = _name_rules(list(flat), exclude, overrides)
    grads = _gradients(gradients, flat, rules, strategy)
    scores = {
        n: (w if rules.get(n, ("",))[0] == "excluded"
            else _on_layer(n, strategy.compute_importance_scores, w, grads.get(n)))
        for n, w in flat.items()
    }
    mm = global_mask(scores, sparsity, **options)
    return mm.apply(model), mm
