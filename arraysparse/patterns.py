"""Sparsity patterns: the shape a pruning mask is allowed to take.

A :class:`SparsityPattern` is an immutable value: its kind plus the parameters
that kind needs (the structure axis, the block shape, ``n`` and ``m``). Build
one with the class methods::

    SparsityPattern.unstructured()
    SparsityPattern.rows()              # whole rows of a matrix (axis 0)
    SparsityPattern.columns()           # whole columns (last axis)
    SparsityPattern.filters()           # conv filters, axis 0 of (out, in, kh, kw)
    SparsityPattern.channels(axis=1)    # conv input channels; any axis for other layouts
    SparsityPattern.slices(axis=2)      # whole slices along any axis
    SparsityPattern.blocks((4, 4))      # 4 x 4 tiles of the last two axes
    SparsityPattern.two_four()          # 2 zeros in every 4 along the last axis
    SparsityPattern.n_m(4, 8, axis=-1)  # n zeros in every group of m

**N:M convention.** ``n`` counts *zeros* per group of ``m`` (the seed's, Intel
Neural Compressor's, llm-compressor's, Wanda's and SparseGPT's reading).
NVIDIA and PyTorch read "N:M" as N *kept*. The two agree for 2:4 and 4:8; for
1:4 or 3:4 they do not: ``n_m(3, 4)`` keeps one value in every four.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ._validation import check_nm, positive_int

__all__ = ["PatternKind", "SparsityPattern"]


class PatternKind(str, enum.Enum):
    """The kinds of pattern; the first eight are the seed's ``SparsityPattern`` members."""

    UNSTRUCTURED = "unstructured"
    """Any element may be pruned on its own."""
    ROW_STRUCTURED = "rows"
    """Whole rows (axis 0 by default): the output neurons of a Linear weight."""
    COLUMN_STRUCTURED = "columns"
    """Whole columns (the last axis by default): input features."""
    FILTER_STRUCTURED = "filters"
    """Whole conv filters: axis 0 of torch's ``(out, in, kh, kw)``."""
    CHANNEL_STRUCTURED = "channels"
    """Whole conv input channels: axis 1 of torch's ``(out, in, kh, kw)``."""
    BLOCK_STRUCTURED = "blocks"
    """Whole tiles of a block shape over the trailing axes."""
    STRUCTURED_2TO4 = "2:4"
    """2 zeros in every 4 consecutive elements (NVIDIA's sparse tensor cores)."""
    STRUCTURED_NTOM = "n:m"
    """``n`` zeros in every ``m`` consecutive elements."""
    SLICE_STRUCTURED = "slices"
    """Whole slices ``x[..., i, ...]`` along any axis."""


#: Kinds that remove whole slices along one axis.
SLICE_KINDS = frozenset(
    {
        PatternKind.ROW_STRUCTURED,
        PatternKind.COLUMN_STRUCTURED,
        PatternKind.FILTER_STRUCTURED,
        PatternKind.CHANNEL_STRUCTURED,
        PatternKind.SLICE_STRUCTURED,
    }
)
#: Kinds made of groups of ``m`` along one axis with ``n`` zeros in each.
NM_KINDS = frozenset({PatternKind.STRUCTURED_2TO4, PatternKind.STRUCTURED_NTOM})


@dataclass(frozen=True)
class SparsityPattern:
    """A kind of sparsity with its parameters. Use the class methods to build one.

    Attributes
    ----------
    kind : PatternKind
        Which kind of pattern this is.
    axis : int or None
        Slice kinds: the axis whose index names a structure (rows: 0, columns:
        -1, ...). N:M kinds: the axis the groups run along. ``None`` otherwise.
    block : tuple of int or None
        Block kind: the tile shape, laid over the trailing ``len(block)`` axes.
    n, m : int or None
        N:M kinds: ``n`` zeros in every group of ``m`` consecutive elements.
    """

    kind: PatternKind
    axis: int | None = None
    block: tuple[int, ...] | None = None
    n: int | None = None
    m: int | None = None

    # -- constructors -------------------------------------------------------
    @classmethod
    def unstructured(cls) -> SparsityPattern:
        """Any element may be pruned on its own."""
        return cls(PatternKind.UNSTRUCTURED)

    @classmethod
    def rows(cls, axis: int = 0) -> SparsityPattern:
        """Whole rows are pruned: the structures are indexed by ``axis`` (default 0)."""
        return cls(PatternKind.ROW_STRUCTURED, axis=_axis(axis))

    @classmethod
    def columns(cls, axis: int = -1) -> SparsityPattern:
        """Whole columns are pruned: the structures are indexed by ``axis`` (default -1)."""
        return cls(PatternKind.COLUMN_STRUCTURED, axis=_axis(axis))

    @classmethod
    def filters(cls, axis: int = 0) -> SparsityPattern:
        """Whole conv filters (output channels); axis 0 of torch's (out, in, kh, kw)."""
        return cls(PatternKind.FILTER_STRUCTURED, axis=_axis(axis))

    @classmethod
    def channels(cls, axis: int = 1) -> SparsityPattern:
        """Whole conv input channels; axis 1 of torch's (out, in, kh, kw)."""
        return cls(PatternKind.CHANNEL_STRUCTURED, axis=_axis(axis))

    @classmethod
    def slices(cls, axis: int) -> SparsityPattern:
        """Whole slices ``x[..., i, ...]`` along any ``axis``."""
        return cls(PatternKind.SLICE_STRUCTURED, axis=_axis(axis))

    @classmethod
    def blocks(cls, block: tuple[int, ...] | list[int]) -> SparsityPattern:
        """Whole tiles of shape ``block`` laid over the trailing ``len(block)`` axes."""
        if isinstance(block, (str, bytes)) or not hasattr(block, "__iter__"):
            msg = f"block must be a tuple of ints such as (4, 4), got {block!r}"
            raise TypeError(msg)
        shape = tuple(positive_int(b, "block") for b in block)
        if not shape:
            msg = "block=() is empty; give at least one block dimension"
            raise ValueError(msg)
        return cls(PatternKind.BLOCK_STRUCTURED, block=shape)

    @classmethod
    def two_four(cls, axis: int = -1) -> SparsityPattern:
        """2 zeros in every 4 consecutive elements along ``axis`` (NVIDIA's 2:4)."""
        return cls(PatternKind.STRUCTURED_2TO4, axis=_axis(axis), n=2, m=4)

    @classmethod
    def n_m(cls, n: int, m: int, axis: int = -1) -> SparsityPattern:
        """``n`` zeros in every group of ``m`` consecutive elements along ``axis``."""
        n, m = check_nm(n, m)
        if (n, m) == (2, 4):
            return cls.two_four(axis)
        return cls(PatternKind.STRUCTURED_NTOM, axis=_axis(axis), n=n, m=m)

    # -- properties ---------------------------------------------------------
    @property
    def is_structured(self) -> bool:
        """True for the kinds that remove whole slices (rows, columns, filters, ...)."""
        return self.kind in SLICE_KINDS

    @property
    def is_n_m(self) -> bool:
        """True for 2:4 and N:M."""
        return self.kind in NM_KINDS

    @property
    def sparsity(self) -> float | None:
        """The sparsity the pattern fixes by itself (N:M: ``n / m``), else ``None``."""
        if self.n is not None and self.m is not None:
            return self.n / self.m
        return None

    @property
    def nm(self) -> tuple[int, int]:
        """``(n, m)`` of an N:M pattern; ``TypeError`` for other kinds."""
        if self.n is None or self.m is None:
            msg = f"the pattern {self} has no n and m"
            raise TypeError(msg)
        return self.n, self.m

    def axis_or(self, default: int) -> int:
        """The pattern's axis, or ``default`` for kinds without one."""
        return default if self.axis is None else self.axis

    def __str__(self) -> str:
        if self.kind is PatternKind.UNSTRUCTURED:
            return "unstructured"
        if self.kind is PatternKind.BLOCK_STRUCTURED:
            return "blocks " + "x".join(map(str, self.block or ()))
        if self.is_n_m:
            return f"{self.n}:{self.m} (n zeros per m, axis={self.axis})"
        return f"{self.kind.value} (axis={self.axis})"


def _axis(axis: object) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        msg = f"axis must be an int, got {type(axis).__name__} {axis!r}"
        raise TypeError(msg)
    return axis
