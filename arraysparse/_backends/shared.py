"""What every backend shares: the signal of a pattern violation, the global selection's input and tie walk."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Array = Any


@dataclass(frozen=True)
class Stream:
    """The arrays a global selection reads: in memory, or fetched afresh on every pass.

    ``fetch(i)`` gives array ``i`` (a streamed model reads it from its file
    each time, so one array is in memory at a time); ``arrays`` holds them
    all when they are in memory already. ``names`` name the arrays in
    errors; ``sizes`` are known without fetching, and so are ``dtypes``
    unless ``None`` (then one read learns them). ``probe`` is an array of the
    arrays' library and device (the first one, say), which chooses the backend.
    """

    names: list[str]
    sizes: list[int]
    dtypes: list[Any] | None
    fetch: Callable[[int], Array]
    probe: Array
    arrays: list[Array] | None = None

    @classmethod
    def of(cls, arrays: list[Array], names: list[str]) -> Stream:
        """The stream of arrays in memory."""
        sizes = [math.prod(a.shape) for a in arrays]
        return cls(names, sizes, [a.dtype for a in arrays], arrays.__getitem__, arrays[0], arrays)


class Violation(Exception):
    """The input breaks the pattern its format needs: where, and what was found there.

    A backend raises it for the first offending group in row-major order;
    the format module catches it and raises its own ``ValueError``, so the
    message is worded in one place whichever backend found the group.
    ``found`` is what the format's message reports (a count of non-zeros, a
    meta code, the positions of a group).
    """

    def __init__(self, row: int, group: int, found: Any) -> None:
        super().__init__(row, group, found)
        self.row = row
        self.group = group
        self.found = found


def nm_group_positions(byte_at: Callable[[int], int], group: int, lay: Any) -> list[int]:
    """What group ``group`` of a row of N:M ``packed_positions`` says: its positions, or
    with ``lay.bitmask`` the positions its mask sets. ``byte_at(j)`` reads byte ``j`` of
    the row. The slow path that words a corrupt group's error; ``lay`` is the format's
    :class:`arraysparse.formats.nm.PackedLayout`."""
    width = lay.field_bits
    count = lay.m if lay.bitmask else lay.keep
    start = group * lay.group_bits
    fields = []
    for f in range(count):
        k = start + f * width
        field = 0
        for t in range(width):
            field |= (byte_at((k + t) // 8) >> ((k + t) % 8) & 1) << t
        fields.append(field)
    return [i for i, bit in enumerate(fields) if bit] if lay.bitmask else fields


def resolve_counts(less: list[int], equal: list[int], lo: list[int], hi: list[int], k: int) -> list[int]:
    """Per-array counts ``c_t`` below the global cut, for a threshold value ``T`` found so that
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
