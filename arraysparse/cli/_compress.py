"""``arraysparse compress`` / ``decompress``: a checkpoint to a compressed checkpoint and back.

Both stream. ``compress`` reads the source lazily (memory-mapped), compresses
each selected tensor (:func:`arraysparse.compress_model` on that one tensor:
its checks and its errors) and hands it to an
:class:`arraysparse.io.ModelWriter`, which writes the layout
:func:`arraysparse.save` writes (readable by :func:`arraysparse.load`) one
entry at a time. ``decompress`` maps the compressed file
(:func:`arraysparse.load`) and writes the dense tensors one at a time
(:func:`arraysparse.io.write_checkpoint`).
"""

from __future__ import annotations

import argparse
import fnmatch
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._compat import optional_import
from .._model.stream import check_not_input
from ..formats import SparseCompressionResult
from ..io import ModelWriter, load, open_checkpoint, write_checkpoint
from ..model import compress_model, flatten_model
from . import InputError, copy_companions, output_options, progress_wanted

Array = Any


def _bytes_written(dst: str) -> tuple[int, str]:
    """The bytes of the output, and how it is laid out: one file, or shards and their index."""
    p = Path(dst)
    if not p.is_dir():
        return p.stat().st_size, "one file"
    with open_checkpoint(p) as ckpt:
        files = set(ckpt.files)
    index = p / "model.safetensors.index.json"
    return sum(f.stat().st_size for f in files) + index.stat().st_size, f"{len(files)} shards and their index"


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
    check_not_input(args.src, args.dst)
    params = _params(args)
    options = output_options(args)
    compressed = total = dense_bytes = stored = 0
    with open_checkpoint(args.src) as ckpt:
        chosen = _chosen(ckpt, args.include, args.exclude)
        meta = _own_metadata(ckpt)
        with ModelWriter(args.dst, metadata=meta or None, **options) as writer:
            for name in _with_progress(list(ckpt), args):
                value = ckpt[name]
                total += 1
                if name in chosen:
                    value = compress_model({name: value}, args.format, **params)[name]
                    compressed += 1
                    dense_bytes += value.dense_nbytes
                    stored += value.nbytes
                writer.add(name, value)
                del value
    if not args.quiet:
        size, layout = _bytes_written(args.dst)
        ratio = dense_bytes / stored if stored else math.inf
        print(f"wrote {args.dst} ({size} bytes, {layout}): {compressed} of {total} tensors in {args.format}, "
              f"{dense_bytes} -> {stored} bytes ({ratio:.2f}x)")
    copy_companions(args.src, args.dst, quiet=args.quiet)
    return 0


def _chosen(ckpt: Any, include: list[str] | None, exclude: list[str] | None) -> set[str]:
    """The tensors to compress: those ``include`` matches (default: floating-point tensors of rank
    >= 2) that ``exclude`` does not; a pattern that matches no tensor is an error."""
    names = list(ckpt)
    for what, patterns in (("--include", include or []), ("--exclude", exclude or [])):
        for p in patterns:
            if not any(fnmatch.fnmatchcase(n, p) for n in names):
                msg = f"{what} {p!r} matches no tensor of {ckpt.path}"
                raise InputError(msg)
    chosen = set()
    for n in names:
        info = ckpt.info(n)
        if include:
            picked = any(fnmatch.fnmatchcase(n, p) for p in include)
        else:
            picked = "float" in info.dtype and len(info.shape) >= 2
        if picked and not any(fnmatch.fnmatchcase(n, p) for p in exclude or []):
            chosen.add(n)
    return chosen


def _with_progress(names: list[str], args: argparse.Namespace) -> Iterator[str]:
    if not progress_wanted(args):
        yield from names
        return
    tqdm = optional_import("tqdm.auto", purpose="a progress bar (--quiet goes without)").tqdm
    yield from tqdm(names, desc="compress", unit="tensor", leave=False)


def run_decompress(args: argparse.Namespace) -> int:
    check_not_input(args.src, args.dst)
    options = output_options(args)
    model = load(args.src)
    if isinstance(model, SparseCompressionResult):
        model = {"tensor": model}
    elif not isinstance(model, dict):
        msg = f"{args.src!r} holds a {type(model).__name__}, not a compressed model"
        raise InputError(msg)
    flat = flatten_model(model)
    with open_checkpoint(args.src) as ckpt:  # the source's own metadata (HF's "format": "pt") goes back on
        meta = _own_metadata(ckpt)
    write_checkpoint(args.dst, _dense(flat), metadata=meta or None, **options)
    if not args.quiet:
        print(f"wrote {args.dst}: {len(flat)} dense tensors")
    copy_companions(args.src, args.dst, quiet=args.quiet)
    return 0


def _own_metadata(ckpt: Any) -> dict[str, str]:
    """The source's metadata without arraysparse's layout keys, nor an index's ``total_size`` (the
    source's own size: a written index gets its own)."""
    meta = {k: v for k, v in ckpt.metadata.items() if not k.startswith("arraysparse.")}
    if ckpt.path.is_dir():
        meta.pop("total_size", None)
    return meta


def _dense(flat: dict[str, Any]) -> Iterator[tuple[str, Array]]:
    for name, value in flat.items():
        if isinstance(value, SparseCompressionResult):
            yield name, value.to_dense()
        elif hasattr(value, "mask"):  # a pruning mask: its keep-array
            yield name, np.asarray(value.mask)
        else:
            yield name, value
