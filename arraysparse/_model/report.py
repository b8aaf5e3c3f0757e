"""What pruning a model did: a record per layer, the table of them, and the mask of the model."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from .. import _backends
from .._compat import array_namespace, backend_name, is_writable
from ..masks import PruningMask
from .rules import on_layer
from .tree import flatten_model, leaves, unflatten_model

Array = Any


@dataclass(frozen=True)
class LayerReport:
    """What one layer got: its name, shape, size, pruned count and the rule applied.

    ``rule`` is ``"global"`` (the shared threshold), ``"global, min_sparsity"``
    or ``"global, max_sparsity"`` (clamped at a bound), ``"layer"`` (its own
    target), ``"override <pattern> -> <sparsity>"``, ``"excluded <pattern>"``
    or ``"given"``.

    ``pruned`` counts the values the mask prunes. ``zeros``, when the report
    comes with a pruned model (:func:`~arraysparse.model.prune_model`,
    :func:`~arraysparse.prune_checkpoint`), counts the zero values of the
    layer in that model: the pruned ones plus the zeros it already had (an
    earlier pruning, an excluded layer); ``None`` otherwise.
    """

    name: str
    """Flat layer name (levels joined with ``"."``)."""
    shape: tuple[int, ...]
    """Shape of the layer's array."""
    size: int
    """Number of values in the layer."""
    pruned: int
    """Number of values pruned."""
    rule: str
    """Why the layer got its mask (see above)."""
    zeros: int | None = None
    """Zero values of the layer in the pruned model (see above), else ``None``."""

    @property
    def kept(self) -> int:
        """Number of values kept: ``size - pruned``."""
        return self.size - self.pruned

    @property
    def sparsity(self) -> float:
        """Fraction of zeros of the pruned layer where known (``zeros``), else of pruned values
        (0.0 for an empty layer)."""
        count = self.pruned if self.zeros is None else self.zeros
        return count / self.size if self.size else 0.0


class ModelReport(list):
    """A list of :class:`LayerReport`, one per layer, whose ``str`` is a table.

    With a pruned model (``zeros`` known for every layer) the table has a
    ``zeros`` column and ``sparsity`` is the fraction of zeros of that model.
    """

    @property
    def size(self) -> int:
        """Number of values over all layers."""
        return sum(r.size for r in self)

    @property
    def pruned(self) -> int:
        """Number of values pruned over all layers."""
        return sum(r.pruned for r in self)

    @property
    def zeros(self) -> int | None:
        """Zero values of the pruned model, or ``None`` when a layer's count is unknown."""
        counts = [r.zeros for r in self]
        return None if not counts or None in counts else sum(counts)

    @property
    def sparsity(self) -> float:
        """Fraction of zeros of the pruned model where known (:attr:`zeros`), else of all values
        pruned; excluded layers included (0.0 when empty)."""
        size = self.size
        zeros = self.zeros
        return (self.pruned if zeros is None else zeros) / size if size else 0.0

    def __str__(self) -> str:
        with_zeros = self.zeros is not None
        head = ("name", "shape", "size", "pruned", *(("zeros",) if with_zeros else ()), "sparsity", "rule")

        def zeros(count: int | None) -> tuple[str, ...]:
            return (str(count),) if with_zeros else ()

        rows = [
            (r.name, str(r.shape), str(r.size), str(r.pruned), *zeros(r.zeros), f"{100 * r.sparsity:.2f}%", r.rule)
            for r in self
        ]
        rows.append(
            ("total", "", str(self.size), str(self.pruned), *zeros(self.zeros), f"{100 * self.sparsity:.2f}%", "")
        )
        widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
        right = set(range(2, len(head) - 1))

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
        """Number of values pruned over all layers."""
        return self._report.pruned

    @property
    def sparsity(self) -> float:
        """Fraction of all values the masks prune, excluded layers included.

        The masks' own fraction; after :func:`~arraysparse.model.prune_model`,
        ``report.sparsity`` is the pruned model's, zeros it already had included.
        """
        size = self.size
        return self.num_pruned / size if size else 0.0

    def _targets(self, model: Mapping[str, Any]) -> list[tuple[Mapping, str, str, Array]]:
        targets = [leaf for leaf in leaves(model) if leaf[2] in self._masks]
        found = {leaf[2] for leaf in targets}
        missing = [n for n in self._masks if n not in found]
        if missing:
            msg = f"model has no layer named {missing[0]!r} ({len(missing)} masked layer(s) missing)"
            raise ValueError(msg)
        return targets

    def apply(self, model: Mapping[str, Any], /) -> dict[str, Any]:
        """A new model, nested as ``model``, with pruned values zeroed; ``model`` is untouched.

        Every masked name must be in ``model``; its other entries are passed
        through as they are.
        """
        flat = flatten_model(model)
        self._targets(model)
        out = {}
        for name, value in flat.items():
            out[name] = on_layer(name, self._masks[name].apply, value) if name in self._masks else value
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
                on_layer(name, mask.apply_, value)
                continue
            if not isinstance(parent, MutableMapping):
                msg = (
                    f"layer {name!r} is read-only ({backend_name(value)}) and its mapping "
                    f"{type(parent).__name__} cannot take a pruned copy; use apply()"
                )
                raise TypeError(msg)
            parent[key] = on_layer(name, mask.apply, value)
        return model

    def __repr__(self) -> str:
        return f"ModelMask({len(self)} layers, size={self.size}, sparsity={self.sparsity:.4g})"


def with_zeros(mm: ModelMask, pruned: Mapping[str, Any]) -> ModelMask:
    """``mm`` with every report record's ``zeros`` counted in the pruned model ``pruned``.

    The masks say what one call pruned; a model pruned before (or a layer
    excluded this time but pruned earlier) holds more zeros, and the report of
    :func:`~arraysparse.model.prune_model` describes the model it returns.
    """
    flat = flatten_model(pruned)
    records = [replace(r, zeros=count_zeros(flat[r.name], f"model[{r.name!r}]")) for r in mm.report]
    return ModelMask({n: mm[n] for n in mm}, report=records)


def count_zeros(a: Array, name: str) -> int:
    """Zero values of ``a`` (``-0.0`` is zero, NaN is not), for a report's ``zeros``."""
    xp = array_namespace(**{name: a})
    size = math.prod(a.shape)
    return size - _backends.count_nonzero(xp, xp.reshape(a, (-1,))) if size else 0
