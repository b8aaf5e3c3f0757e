"""The strategy interface: the seed's ``IPruningStrategy`` in Python.

A strategy turns weights (and gradients, when it needs them) into importance
scores, scores into a mask of its :class:`~arraysparse.SparsityPattern`, and a
mask into pruned weights. Every method accepts arrays of any rank from any
supported library and answers in the same library and device.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from .._compat import array_namespace, is_writable
from .._validation import check_same_shape
from ..formats import SparseCompressionResult, SparseFormat, compress
from ..masks import PruningMask, apply_mask, create_mask, nm_mask
from ..patterns import NM_KINDS, PatternKind, SparsityPattern
from ..scores import check_ord

Array = Any

ALL_KINDS: tuple[PatternKind, ...] = tuple(PatternKind)


class PruningStrategy(abc.ABC):
    """Base class of the pruning strategies.

    Parameters
    ----------
    pattern : SparsityPattern, optional
        The pattern :meth:`create_mask` builds; must be one of
        :attr:`supported_patterns`. Default: the class's ``default_pattern``.
    ord : float
        Norm order that ranks structures and blocks (any ``p > 0`` or ``inf``).
    """

    name: ClassVar[str]
    """Short name of the method (``"magnitude"``, ``"wanda"``, ...)."""
    requires_gradients: ClassVar[bool] = False
    """Whether :meth:`compute_importance_scores` needs ``gradients``."""
    supported_patterns: ClassVar[tuple[PatternKind, ...]] = ALL_KINDS
    """Pattern kinds this strategy can build; a ``pattern`` of another kind is refused."""

    @classmethod
    def default_pattern(cls) -> SparsityPattern:
        """The pattern used when none is given: unstructured (structured pruning: rows)."""
        return SparsityPattern.unstructured()

    def __init__(self, pattern: SparsityPattern | None = None, *, ord: float = 2):
        if pattern is None:
            pattern = self.default_pattern()
        if not isinstance(pattern, SparsityPattern):
            msg = f"pattern must be a SparsityPattern, got {type(pattern).__name__}"
            raise TypeError(msg)
        if pattern.kind not in self.supported_patterns:
            kinds = ", ".join(k.value for k in self.supported_patterns)
            msg = f"pattern={pattern} is not one {type(self).__name__} builds; supported: {kinds}"
            raise ValueError(msg)
        self.pattern = pattern
        """The :class:`~arraysparse.SparsityPattern` that :meth:`create_mask` builds."""
        self.ord = check_ord(ord)
        """Norm order ranking structures and blocks (``p > 0`` or ``inf``)."""

    @property
    def is_structured(self) -> bool:
        """True when the pattern removes whole rows, columns, filters, channels or slices."""
        return self.pattern.is_structured

    @abc.abstractmethod
    def compute_importance_scores(self, weights: Array, gradients: Array | None = None) -> Array:
        """Importance of every weight, same shape as ``weights`` (higher = more important)."""

    def create_mask(self, scores: Array, target_sparsity: float | int | None = None) -> PruningMask:
        """Mask of this strategy's pattern at ``target_sparsity`` (see :func:`arraysparse.create_mask`)."""
        return create_mask(scores, target_sparsity, self.pattern, ord=self.ord)

    def create_2to4_mask(self, scores: Array) -> PruningMask:
        """2 zeros in every 4 consecutive scores along the pattern's axis (default last)."""
        return self.create_n_to_m_mask(scores, 2, 4)

    def create_n_to_m_mask(self, scores: Array, n: int, m: int) -> PruningMask:
        """``n`` zeros in every ``m`` consecutive scores along the pattern's axis (default last)."""
        if not set(NM_KINDS) & set(self.supported_patterns):
            msg = f"{type(self).__name__} prunes whole structures; it builds no N:M masks"
            raise ValueError(msg)
        axis = self.pattern.axis_or(-1) if self.pattern.is_n_m else -1
        return nm_mask(scores, n, m, axis=axis)

    def apply_pruning(self, weights: Array, mask: PruningMask | Array) -> Array:
        """Zero the pruned weights: in place where ``weights`` is writable, and return them.

        Read-only arrays (read-only NumPy, JAX) are left untouched and a new
        pruned array is returned instead.
        """
        return apply_mask(weights, mask, inplace=is_writable(weights))

    def to_sparse_format(
        self, weights: Array, format: SparseFormat | str = "csr", **params: Any
    ) -> SparseCompressionResult:
        """Compress (pruned) ``weights``: the seed's ``ToSparseFormat``; see :func:`arraysparse.compress`.

        ``params`` are the format's options (``block`` for BSR, ``width`` for
        ELL; ``n``/``m`` for N:M default to this strategy's N:M pattern).
        """
        fmt = SparseFormat.parse(format)
        if fmt is SparseFormat.STRUCTURED_N_TO_M and self.pattern.is_n_m:
            params.setdefault("n", self.pattern.n)
            params.setdefault("m", self.pattern.m)
        return compress(weights, fmt, **params)

    def prune(
        self,
        weights: Array,
        target_sparsity: float | int | None = None,
        gradients: Array | None = None,
    ) -> tuple[Array, PruningMask]:
        """Scores, mask and pruned copy in one call; ``weights`` is not modified.

        Returns ``(pruned_weights, mask)``.
        """
        scores = self.compute_importance_scores(weights, gradients)
        mask = self.create_mask(scores, target_sparsity)
        return apply_mask(weights, mask), mask

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pattern={self.pattern}, ord={self.ord:g})"


def check_gradients(weights: Array, gradients: Array | None) -> None:
    """``weights`` must be an array; gradients a strategy does not use must still match
    them, if given (``None`` is the one optional value skipped)."""
    if gradients is None:
        array_namespace(weights=weights)
    else:
        array_namespace(weights=weights, gradients=gradients)
        check_same_shape(weights, gradients, "weights", "gradients")
