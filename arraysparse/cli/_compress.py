"""``arraysparse compress`` / ``decompress``: a checkpoint to a compressed checkpoint and back.

``compress`` reads the source lazily (memory-mapped) and compresses the
selected tensors with :func:`arraysparse.compress_model`; the compressed
model is written by :func:`arraysparse.save` (its layout, readable by
:func:`arraysparse.load`), which needs every compressed tensor before it
writes, so the compressed model is held in memory once. ``decompress``
maps the compressed file (:func:`arraysparse.load`) and writes the dense
tensors one at a time (:func:`arraysparse.io.write_checkpoint`).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..formats import SparseCompressionResult
from ..io import load, open_checkpoint, save, write_checkpoint
from ..model import compress_model, flatten_model
from . import InputError

Array = Any


def _check_output(src: str, dst: str) -> None:
    a, b = Path(src).resolve(), Path(dst).resolve()
    if a == b or (a.is_dir() and a in b.parents):
        msg = f"the output {dst!r} is the input {src!r}; the input is never overwritten"
        raise InputError(msg)


def _is_weight(name: str, a: Array) -> bool:
    """The default selection: floating-point tensors of rank >= 2 (biases and norms stay dense)."""
    kind = getattr(a.dtype, "kind", "")
    floating = kind == "f" or "float" in str(a.dtype)
    return floating and a.ndim >= 2


def _params(args: argparse.Namespace) -> dict[str, Any]:
    fmt = args.format
    if args.block is not None and fmt != "bsr":
        msg = f"--block is for --format bsr, not {fmt}"
        raise InputError(msg)
    if args.nm is not None and fmt != "n:m":
        msg = f"--nm is for --format n:m, not {fmt}"
        raise InputError(msg)
    if fmt == "bsr":
        if args.block is None:
            msg = "--format bsr needs --block RxC (e.g. --block 4x4)"
            raise InputError(msg)
        return {"block": args.block}
    if fmt == "n:m":
        if args.nm is None:
            msg = "--format n:m needs --nm N:M (e.g. --nm 4:8)"
            raise InputError(msg)
        if not args.nm.is_n_m or args.nm.axis_or(-1) != -1:
            msg = f"--nm must be N:M along the last axis, got {args.nm}"
            raise InputError(msg)
        n, m = args.nm.nm
        return {"n": n, "m": m}
    return {}


def run_compress(args: argparse.Namespace) -> int:
    _check_output(args.src, args.dst)
    params = _params(args)
    with open_checkpoint(args.src) as ckpt:
        where = None if args.include else _is_weight
        packed = compress_model(ckpt, args.format, include=args.include, exclude=args.exclude, where=where, **params)
        meta = {k: v for k, v in ckpt.metadata.items() if not k.startswith("arraysparse.")}
        save(args.dst, packed, metadata=meta or None)
    if not args.quiet:
        flat = flatten_model(packed)
        done = [v for v in flat.values() if isinstance(v, SparseCompressionResult)]
        dense = sum(v.dense_nbytes for v in done)
        stored = sum(v.nbytes for v in done)
        size = os.path.getsize(args.dst) if os.path.isfile(args.dst) else 0
        print(f"wrote {args.dst} ({size} bytes): {len(done)} of {len(flat)} tensors in {args.format}, "
              f"{dense} -> {stored} bytes ({dense / stored if stored else math.inf:.2f}x)")
    return 0


def run_decompress(args: argparse.Namespace) -> int:
    _check_output(args.src, args.dst)
    model = load(args.src)
    if isinstance(model, SparseCompressionResult):
        model = {"tensor": model}
    elif not isinstance(model, dict):
        msg = f"{args.src!r} holds a {type(model).__name__}, not a compressed model"
        raise InputError(msg)
    flat = flatten_model(model)
    write_checkpoint(args.dst, _dense(flat))
    if not args.quiet:
        print(f"wrote {args.dst}: {len(flat)} dense tensors")
    return 0


def _dense(flat: dict[str, Any]) -> Iterator[tuple[str, Array]]:
    for name, value in flat.items():
        if isinstance(value, SparseCompressionResult):
            yield name, value.to_dense()
        elif hasattr(value, "mask"):  # a pruning mask: its keep-array
            yield name, np.asarray(value.mask)
        else:
            yield name, value
