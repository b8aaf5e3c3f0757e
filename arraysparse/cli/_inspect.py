"""``arraysparse inspect``: what each tensor of a checkpoint is, how sparse, and what it would cost.

For every tensor: shape, dtype, sparsity (its zeros, ``x == 0``), the
patterns its zeros satisfy (N:M for groups of 4 and 8 along the last axis:
the most zeros every group has; whole rows or columns), and its bytes dense
and in each sparse format, measured by compressing it
(:func:`arraysparse.compress`), one tensor at a time. An arraysparse file (what
``compress`` or :func:`arraysparse.save` wrote) is shown as stored instead: each
entry's format, sparsity, dense and stored bytes (:func:`stored_stats`).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._compat import optional_import
from ..formats import compress
from ..masks import PruningMask
from ..patterns import SparsityPattern

Array = Any

#: Formats every tensor is measured in (N:M ones are added when its zeros allow them).
FORMATS = ("coo", "csr", "csc", "ell", "bitmask")
#: Group sizes whose N:M pattern is reported.
GROUPS = (4, 8)


@dataclass
class TensorStats:
    """One tensor's row of the table."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    size: int
    zeros: int
    nbytes: int
    patterns: list[str] = field(default_factory=list)
    #: For each group size m (along the last axis, when it divides it): the fewest zeros of any group.
    min_zeros: dict[int, int] = field(default_factory=dict)
    #: Bytes in each format (N:M formats named ``"2:4"``, ``"4:8"``...).
    formats: dict[str, int] = field(default_factory=dict)

    @property
    def sparsity(self) -> float:
        return self.zeros / self.size if self.size else 0.0

    @property
    def best(self) -> tuple[str, int]:
        """The smallest way to store it: a format, or ``"dense"`` (ties: dense, then N:M, which
        sparse tensor cores read, then the others)."""
        order = [("dense", self.nbytes), *((f, b) for f, b in self.formats.items() if ":" in f),
                 *((f, b) for f, b in self.formats.items() if ":" not in f)]
        return min(order, key=lambda kv: kv[1])

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["min_zeros"] = {str(m): z for m, z in self.min_zeros.items()}
        d["sparsity"] = self.sparsity
        d["best"] = {"format": self.best[0], "nbytes": self.best[1]}
        return d


def tensor_stats(name: str, x: Array) -> TensorStats:
    """The statistics of one tensor (any array :func:`arraysparse.compress` takes).

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.cli._inspect import tensor_stats
    >>> s = tensor_stats("w", np.array([[0.0, 1.0, 0.0, 2.0], [3.0, 0.0, 0.0, 4.0]], np.float32))
    >>> s.sparsity, s.patterns, s.formats["2:4"], s.formats["csr"]
    (0.5, ['2:4'], 18, 44)
    """
    shape = tuple(int(d) for d in x.shape)
    size = math.prod(shape)
    dtype = getattr(x.dtype, "name", None) or str(x.dtype).removeprefix("torch.")
    itemsize = getattr(x.dtype, "itemsize", None) or x.element_size()
    stats = TensorStats(name, shape, dtype, size, 0, size * int(itemsize))
    if not shape or not size:
        return stats
    keep = PruningMask.from_zeros(x)
    stats.zeros = keep.num_pruned
    for fmt in FORMATS:
        stats.formats[fmt] = compress(x, fmt).nbytes
    if not stats.zeros:
        return stats
    kept = np.asarray(keep.mask)
    last = shape[-1]
    for m in GROUPS:
        if last % m == 0:
            groups = kept.reshape(-1, m)
            stats.min_zeros[m] = int(m - groups.sum(axis=1).max())
    reported: list[tuple[int, int]] = []
    for m, n in sorted(stats.min_zeros.items()):
        if not n or any(m % m0 == 0 and n == n0 * (m // m0) for n0, m0 in reported):
            continue  # no zeros in some group, or what a smaller group already says (2:4 -> 4:8)
        reported.append((n, m))
        label = f"{n}:{m}"
        stats.patterns.append(label)
        stats.formats[label] = compress(x, "2:4" if (n, m) == (2, 4) else "n:m", **_nm(n, m)).nbytes
    if len(shape) >= 2:
        for kind, pattern in (("rows", SparsityPattern.rows()), ("columns", SparsityPattern.columns())):
            if keep.satisfies(pattern):
                stats.patterns.append(kind)
    return stats


def _nm(n: int, m: int) -> dict[str, int]:
    return {} if (n, m) == (2, 4) else {"n": n, "m": m}


def checkpoint_stats(src: Any, include: list[str] | None = None) -> Iterator[TensorStats]:
    """:func:`tensor_stats` of every tensor of a checkpoint path (or mapping), read one at a time."""
    import fnmatch

    from ..io import open_checkpoint

    ckpt = open_checkpoint(src) if not hasattr(src, "keys") else src
    try:
        names = [n for n in ckpt if not include or any(fnmatch.fnmatchcase(n, p) for p in include)]
        if include and not names:
            msg = f"--include {' '.join(include)} matches no tensor of {src}"
            raise ValueError(msg)
        for name in names:
            yield tensor_stats(name, ckpt[name])
    finally:
        if ckpt is not src:
            ckpt.close()


@dataclass
class StoredStats:
    """One entry of an arraysparse file (a compressed tensor, a mask or a dense array): how it is
    stored and what that saves."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    stored_as: str  # a format ("csr", "2:4", ...), "mask" or "dense"
    size: int
    zeros: int
    dense_nbytes: int  # the tensor dense (a mask: one byte per bool)
    nbytes: int  # the bytes the file holds for it

    @property
    def sparsity(self) -> float:
        return self.zeros / self.size if self.size else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["sparsity"] = self.sparsity
        return d


def stored_stats(src: Any) -> list[StoredStats] | None:
    """The entries of an arraysparse file (what :func:`arraysparse.save` wrote: compressed
    results, masks, dense arrays), each as stored; ``None`` for any other checkpoint."""
    from ..io import load, open_checkpoint
    from ..io._dtypes import itemsize
    from ..io.results import _read_layout

    with open_checkpoint(src) as ckpt:
        if "arraysparse.layout" not in ckpt.metadata:
            return None
        _, entries = _read_layout(ckpt.metadata, str(src))
        stored = {n: ckpt.info(n).nbytes for n in ckpt}
    obj = load(src)
    rows = []
    for e in entries:
        path = [str(p) for p in e.get("path", [])]
        value = _walk(obj, path)
        shape = tuple(int(d) for d in e.get("shape", ()))
        size = math.prod(shape)
        tensors = list(e["arrays"].values()) if "arrays" in e else [e["tensor"]]
        nbytes = sum(stored[t] for t in tensors)
        kind = e.get("kind")
        if kind == "mask":
            rows.append(StoredStats(".".join(path), shape, "bool", "mask", size, int(value.num_pruned), size, nbytes))
            continue
        dtype = str(e.get("dtype"))
        dense = size * (itemsize(dtype) or 0)
        if kind == "sparse":
            rows.append(StoredStats(".".join(path), shape, dtype, str(e["format"]), size, size - int(value.nnz),
                                    dense, nbytes))
        else:
            zeros = PruningMask.from_zeros(value).num_pruned if size else 0
            rows.append(StoredStats(".".join(path), shape, dtype, "dense", size, int(zeros), dense, nbytes))
    return rows


def _walk(obj: Any, path: list[str]) -> Any:
    """The object at ``path`` of a loaded file: nested mappings (a model), or one flat name (a ModelMask)."""
    for i, p in enumerate(path):
        if p in obj:
            obj = obj[p]
        else:
            return obj[".".join(path[i:])]
    return obj


def stored_table(rows: list[StoredStats]) -> str:
    """The human table of an arraysparse file: one line per entry, then the totals."""
    head = ("name", "shape", "dtype", "stored as", "sparsity", "dense", "stored", "ratio")
    lines = [(
        r.name or "(result)", "x".join(map(str, r.shape)) or "()", r.dtype, r.stored_as, f"{100 * r.sparsity:.1f}%",
        human(r.dense_nbytes), human(r.nbytes), f"{r.dense_nbytes / r.nbytes:.2f}x" if r.nbytes else "-",
    ) for r in rows]
    dense, stored = sum(r.dense_nbytes for r in rows), sum(r.nbytes for r in rows)
    zeros, size = sum(r.zeros for r in rows), sum(r.size for r in rows)
    lines.append(("total", "", "", "", f"{100 * zeros / size:.1f}%" if size else "-", human(dense), human(stored),
                  f"{dense / stored:.2f}x" if stored else "-"))
    return _aligned(head, lines, right={4, 5, 6, 7})


def human(n: int) -> str:
    """Bytes, readably: ``512 B``, ``3.2 KiB``, ``1.5 GiB``."""
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
    return f"{n:.1f} TiB"  # pragma: no cover


def table(rows: list[TensorStats]) -> str:
    """The human table: one line per tensor, then the totals."""
    head = ("name", "shape", "dtype", "sparsity", "patterns", "dense", "csr", "bitmask", "N:M", "best")
    lines = []
    for s in rows:
        nm = [f for f in s.formats if ":" in f]
        lines.append((
            s.name, "x".join(map(str, s.shape)) or "()", s.dtype, f"{100 * s.sparsity:.1f}%",
            ", ".join(s.patterns) or ("dense" if not s.zeros else "-"), human(s.nbytes),
            human(s.formats["csr"]) if "csr" in s.formats else "-",
            human(s.formats["bitmask"]) if "bitmask" in s.formats else "-",
            f"{human(s.formats[nm[0]])} ({nm[0]})" if nm else "-",
            f"{s.best[0]} {s.nbytes / s.best[1]:.2f}x" if s.best[1] else s.best[0],
        ))
    total = sum(s.nbytes for s in rows)
    best = sum(s.best[1] for s in rows)
    zeros, size = sum(s.zeros for s in rows), sum(s.size for s in rows)
    lines.append((
        "total", "", "", f"{100 * zeros / size:.1f}%" if size else "-", "", human(total),
        human(sum(s.formats.get("csr", s.nbytes) for s in rows)),
        human(sum(s.formats.get("bitmask", s.nbytes) for s in rows)), "",
        f"{human(best)} {total / best:.2f}x" if best else "",
    ))
    return _aligned(head, lines, right={3, 5, 6, 7})


def _aligned(head: tuple[str, ...], lines: list[tuple[str, ...]], right: set[int]) -> str:
    """``head``, a rule, every line but the last, a rule, the last (the totals), in columns."""
    widths = [max(len(r[i]) for r in [head, *lines]) for i in range(len(head))]

    def fmt(r: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(head), rule, *(fmt(r) for r in lines[:-1]), rule, fmt(lines[-1])])


def run(args: argparse.Namespace) -> int:
    entries = stored_stats(args.src)
    if entries is not None:  # an arraysparse file: what each entry is stored as, and what it saves
        if args.include:
            import fnmatch

            entries = [r for r in entries if any(fnmatch.fnmatchcase(r.name, p) for p in args.include)]
            if not entries:
                msg = f"--include {' '.join(args.include)} matches no entry of {args.src}"
                raise ValueError(msg)
        if args.json:
            print(json.dumps({
                "source": str(args.src), "content": "arraysparse", "entries": [r.as_dict() for r in entries],
                "total": {"size": sum(r.size for r in entries), "zeros": sum(r.zeros for r in entries),
                          "dense_nbytes": sum(r.dense_nbytes for r in entries),
                          "nbytes": sum(r.nbytes for r in entries)},
            }, indent=1))
        else:
            print(stored_table(entries))
        return 0
    rows = list(_with_progress(checkpoint_stats(args.src, args.include), args))
    if args.json:
        total = sum(s.nbytes for s in rows)
        print(json.dumps({
            "source": str(args.src),
            "tensors": [s.as_dict() for s in rows],
            "total": {"size": sum(s.size for s in rows), "zeros": sum(s.zeros for s in rows), "nbytes": total,
                      "best_nbytes": sum(s.best[1] for s in rows)},
        }, indent=1))
    else:
        print(table(rows))
    return 0


def _with_progress(it: Iterator[TensorStats], args: argparse.Namespace) -> Iterator[TensorStats]:
    from . import progress_wanted

    if not progress_wanted(args):
        yield from it
        return
    tqdm = optional_import("tqdm.auto", purpose="a progress bar (--quiet goes without)").tqdm
    with tqdm(desc="inspect", unit="tensor", leave=False) as bar:
        for s in it:
            bar.update(1)
            yield s
