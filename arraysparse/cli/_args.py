"""The command line's small languages: patterns, sparsities, block shapes, glob lists.

Each parser raises ``ValueError`` with a message that names the bad text;
argparse turns it into a usage error (exit status 2).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from typing import TypeVar

from ..patterns import SparsityPattern

T = TypeVar("T")

#: Pattern names and the constructor each calls (all take ``axis=``).
_SLICES = {
    "rows": SparsityPattern.rows,
    "columns": SparsityPattern.columns,
    "filters": SparsityPattern.filters,
    "channels": SparsityPattern.channels,
}

PATTERN_HELP = (
    "unstructured (default); N:M, n zeros in every m consecutive values along the last axis "
    "(2:4, 4:8, ...; N:M@AXIS for another axis); rows, columns, filters, channels (whole slices, "
    "NAME@AXIS for another axis); slices@AXIS; blocks:RxC (or RxC, whole tiles)"
)


def parse_pattern(text: str) -> SparsityPattern:
    """A :class:`~arraysparse.SparsityPattern` from its command-line spelling.

    ``unstructured``; ``N:M`` (``n`` zeros in every ``m``, ``N:M@AXIS`` along
    another axis); ``rows``, ``columns``, ``filters``, ``channels`` (``@AXIS``
    for another axis); ``slices@AXIS``; ``blocks:RxC`` or ``RxC`` (``blocks:R``
    for 1-D tiles).

    Examples
    --------
    >>> from arraysparse.cli._args import parse_pattern
    >>> print(parse_pattern("2:4"), "|", parse_pattern("channels@3"), "|", parse_pattern("4x4"))
    2:4 (n zeros per m, axis=-1) | channels (axis=3) | blocks 4x4
    """
    raw = text
    text = text.strip().lower()
    body, _, axis_text = text.partition("@")
    axis = None
    if axis_text:
        if not re.fullmatch(r"-?\d+", axis_text):
            msg = f"pattern {raw!r}: the axis after '@' must be an integer"
            raise ValueError(msg)
        axis = int(axis_text)
    nm = re.fullmatch(r"(\d+):(\d+)", body)
    if nm:
        n, m = int(nm.group(1)), int(nm.group(2))
        if not 0 <= n <= m or m < 1:
            msg = f"pattern {raw!r}: N:M needs 0 <= n <= m and m >= 1 (n zeros in every m)"
            raise ValueError(msg)
        return SparsityPattern.n_m(n, m, axis=-1 if axis is None else axis)
    if body == "unstructured":
        if axis is not None:
            msg = f"pattern {raw!r}: unstructured has no axis"
            raise ValueError(msg)
        return SparsityPattern.unstructured()
    if body in _SLICES:
        return _SLICES[body]() if axis is None else _SLICES[body](axis=axis)
    if body == "slices":
        if axis is None:
            msg = f"pattern {raw!r}: slices needs an axis, e.g. slices@2"
            raise ValueError(msg)
        return SparsityPattern.slices(axis)
    block = re.fullmatch(r"(?:blocks?:)?(\d+(?:x\d+)*)", body)
    if block and axis is None and ("x" in block.group(1) or body.startswith("block")):
        shape = tuple(int(b) for b in block.group(1).split("x"))
        if not all(shape):
            msg = f"pattern {raw!r}: block sides must be positive"
            raise ValueError(msg)
        return SparsityPattern.blocks(shape)
    msg = f"unknown pattern {raw!r}; use {PATTERN_HELP}"
    raise ValueError(msg)


def parse_sparsity(text: str) -> float:
    """A fraction in ``[0, 1]`` from ``0.5`` or ``50%``.

    Examples
    --------
    >>> from arraysparse.cli._args import parse_sparsity
    >>> parse_sparsity("75%"), parse_sparsity("0.9")
    (0.75, 0.9)
    """
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        msg = f"{text!r} is not a number (give a fraction such as 0.5, or a percentage such as 50%)"
        raise ValueError(msg) from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        msg = f"{text!r} is outside [0, 1] (a fraction of the values pruned; 50% is 0.5)"
        raise ValueError(msg)
    return value


def parse_block(text: str) -> tuple[int, int]:
    """A 2-D block shape from ``RxC``."""
    m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", text.lower())
    if not m or not int(m.group(1)) or not int(m.group(2)):
        msg = f"block {text!r} must be ROWSxCOLS with positive sides, e.g. 4x4"
        raise ValueError(msg)
    return int(m.group(1)), int(m.group(2))


def parse_positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        msg = f"{text!r} is not an integer"
        raise ValueError(msg) from None
    if value < 1:
        msg = f"{text!r} must be >= 1"
        raise ValueError(msg)
    return value


def parse_number(text: str) -> float:
    """A non-negative finite number, or ``inf``."""
    try:
        value = float(text)
    except ValueError:
        msg = f"{text!r} is not a number"
        raise ValueError(msg) from None
    if math.isnan(value) or value < 0:
        msg = f"{text!r} must be a number >= 0"
        raise ValueError(msg)
    return value


def parse_shard_size(text: str) -> int:
    """``--max-shard-size``: bytes from ``5GB``, ``500MB``, ``2GiB`` or a number of bytes
    (:func:`arraysparse.io._shards.parse_size`, the units huggingface_hub reads).

    Examples
    --------
    >>> from arraysparse.cli._args import parse_shard_size
    >>> parse_shard_size("5GB"), parse_shard_size("2GiB"), parse_shard_size("1000")
    (5000000000, 2147483648, 1000)
    """
    from ..io._shards import parse_size

    try:
        return parse_size(text)
    except ValueError:
        msg = (
            f"{text!r} is not a size: give a number of bytes, or a number and a unit such as 5GB, 500MB "
            "or 2GiB (KB, MB, GB, TB: powers of 1000; KiB, MiB, GiB, TiB: powers of 1024; at least 1 byte)"
        )
        raise ValueError(msg) from None


def argparse_type(parse: Callable[[str], T], name: str) -> Callable[[str], T]:
    """``parse`` as an argparse ``type``: its ValueError becomes argparse's error, message kept."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = name
    return convert
