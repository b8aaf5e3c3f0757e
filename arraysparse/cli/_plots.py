"""``arraysparse plot``: PNGs of what pruning did (matplotlib, the ``cli`` extra).

Three figures, for one checkpoint or several side by side:

* ``sparsity.png``: the fraction of zeros of every matrix (rank >= 2), one
  bar per checkpoint;
* ``masks.png``: heat maps of where the zeros are, one panel per tensor and
  checkpoint (large matrices pooled to at most 256 x 256 cells, each cell the
  fraction of values kept);
* ``nm_occupancy.png``: how many non-zeros the groups of ``m`` consecutive
  values along the last axis hold (all matrices whose last axis ``m``
  divides): a 2:4-pruned model has every group at exactly 2.

Checkpoints are read one tensor at a time; each figure is drawn with
matplotlib's object interface (no pyplot state) and written atomically.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._compat import optional_import
from ..io._atomic import AtomicFile
from ..masks import PruningMask

Array = Any

#: Largest heat map, in cells per side.
CELLS = 256
#: Most tensors drawn in the sparsity figure.
MAX_BARS = 80


def _figure_class() -> Any:
    return optional_import("matplotlib.figure", purpose="drawing plots").Figure


def save(fig: Any, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically (a temporary file in the same directory, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFile(path) as out:
        fig.savefig(out.file, format="png", dpi=100)
    return path


def keep_density(keep: np.ndarray, cells: int = CELLS) -> np.ndarray:
    """The fraction kept in each cell of a grid of at most ``cells`` x ``cells`` over a 2-D mask.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.cli._plots import keep_density
    >>> keep_density(np.array([[True, False, True, True]]), cells=2)
    array([[0.5, 1. ]], dtype=float32)
    """
    rows, cols = keep.shape
    fr, fc = max(1, math.ceil(rows / cells)), max(1, math.ceil(cols / cells))
    pr, pc = -rows % fr, -cols % fc
    k = np.pad(keep.astype(np.float32), ((0, pr), (0, pc)), constant_values=np.nan)
    return np.nanmean(k.reshape(k.shape[0] // fr, fr, k.shape[1] // fc, fc), axis=(1, 3))


def occupancy(keep: np.ndarray, m: int) -> np.ndarray:
    """Counts of groups of ``m`` (along the last axis) by their number of kept values, ``0 .. m``."""
    per_group = keep.reshape(-1, m).sum(axis=1)
    return np.bincount(per_group, minlength=m + 1)


@dataclass
class CheckpointSummary:
    """What the figures need from one checkpoint, gathered in one read of it."""

    label: str
    sparsity: dict[str, float] = field(default_factory=dict)  # matrices: fraction of zeros
    density: dict[str, np.ndarray] = field(default_factory=dict)  # heat-map cells of chosen tensors
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    occupancy: np.ndarray | None = None


def summarize(src: Any, label: str, tensors: Sequence[str] | None, m: int, limit: int = 6) -> CheckpointSummary:
    """Read a checkpoint (path or mapping) tensor by tensor into a :class:`CheckpointSummary`.

    ``tensors`` choose the heat maps (a missing name raises ``KeyError``);
    by default the ``limit`` largest matrices.
    """
    if isinstance(src, (str, os.PathLike)):
        from ..io import open_checkpoint

        ckpt = open_checkpoint(src)
    else:
        ckpt = src
    try:
        shapes = {n: _shape(ckpt, n) for n in ckpt}
        matrices = [n for n, s in shapes.items() if len(s) >= 2]
        if tensors:
            for n in tensors:
                if n not in shapes:
                    raise KeyError(n)
            chosen = list(tensors)
        else:
            chosen = sorted(matrices, key=lambda n: -math.prod(shapes[n]))[:limit]
            chosen = [n for n in matrices if n in chosen]  # in the checkpoint's order
        out = CheckpointSummary(label, shapes=shapes)
        counts = np.zeros(m + 1, np.int64)
        for name in ckpt:
            if name not in chosen and len(shapes[name]) < 2:
                continue
            x = ckpt[name]
            if not math.prod(shapes[name]):
                continue
            keep = np.asarray(PruningMask.from_zeros(x).mask)
            keep2 = keep.reshape(shapes[name][0], -1) if keep.ndim >= 2 else keep.reshape(1, -1)
            if len(shapes[name]) >= 2:
                out.sparsity[name] = 1.0 - float(keep.mean())
                if shapes[name][-1] % m == 0:
                    counts += occupancy(keep, m)
            if name in chosen:
                out.density[name] = keep_density(keep2)
            del x, keep, keep2
        out.occupancy = counts if counts.any() else None
        return out
    finally:
        if ckpt is not src:
            ckpt.close()


def _shape(ckpt: Any, name: str) -> tuple[int, ...]:
    info = getattr(ckpt, "info", None)
    return tuple(info(name).shape) if callable(info) else tuple(ckpt[name].shape)


def sparsity_figure(summaries: Sequence[CheckpointSummary]) -> Any:
    """Horizontal bars: every matrix's fraction of zeros, one bar per checkpoint."""
    Figure = _figure_class()
    names = list(dict.fromkeys(n for s in summaries for n in s.sparsity))[:MAX_BARS]
    k = len(summaries)
    fig = Figure(figsize=(8 + 2.2 * (k > 1), 1.2 + 0.25 * max(1, len(names)) * (1 + 0.35 * (k - 1))),
                 layout="constrained")
    ax = fig.add_subplot()
    height = 0.8 / k
    y = np.arange(len(names))
    colours = _colours(k)
    for j, s in enumerate(summaries):
        ax.barh(y + j * height, [100 * s.sparsity.get(n, 0.0) for n in names], height=height, label=s.label,
                color=colours[j])
    ax.set_yticks(y + height * (k - 1) / 2, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("zeros (%)")
    ax.set_title("Sparsity per layer")
    if k > 1:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _colours(k: int) -> list[Any]:
    """``k`` distinct colours: matplotlib's default cycle, tab20 beyond ten."""
    colormaps = optional_import("matplotlib", purpose="drawing plots").colormaps
    cmap = colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(k)]


def masks_figure(summaries: Sequence[CheckpointSummary]) -> Any:
    """Heat maps: a row per checkpoint, a column per tensor; colour = fraction kept per cell."""
    Figure = _figure_class()
    names = list(dict.fromkeys(n for s in summaries for n in s.density))
    rows, cols = len(summaries), max(1, len(names))
    width, height = 2.6 * cols + 1.2, 2.3 * rows + 0.6
    fig = Figure(figsize=(width, height))  # a fixed grid: placed by hand, twice as fast as a layout engine
    fig.subplots_adjust(left=0.5 / width, right=1 - 1.0 / width, bottom=0.1 / height, top=1 - 0.7 / height,
                        wspace=0.08, hspace=0.45)
    image = None
    for i, s in enumerate(summaries):
        for j, n in enumerate(names):
            ax = fig.add_subplot(rows, cols, i * cols + j + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if n not in s.density:
                ax.set_axis_off()
                continue
            image = ax.imshow(s.density[n], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto",
                              interpolation="nearest")
            shape = "x".join(map(str, s.shapes[n]))
            zeros = s.sparsity.get(n)
            ax.set_title(f"{n} {shape}" + (f"\n{100 * zeros:.0f}% zeros" if zeros is not None else ""), fontsize=7)
            if j == 0:
                ax.set_ylabel(s.label, fontsize=8)
    if image is not None:
        cax = fig.add_axes((1 - 0.75 / width, 0.25, 0.12 / width, 0.5))
        fig.colorbar(image, cax=cax, label="fraction kept")
    fig.suptitle("Where the zeros are (rows x columns of each matrix)", fontsize=9, y=1 - 0.15 / height)
    return fig


def occupancy_figure(summaries: Sequence[CheckpointSummary], m: int) -> Any:
    """Bars per checkpoint: the share of groups of ``m`` holding 0 .. m non-zeros."""
    Figure = _figure_class()
    shown = [s for s in summaries if s.occupancy is not None]
    cols = min(4, max(1, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    width, height = 2.8 * cols + 0.4, 2.3 * rows + 0.5
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.45 / height, top=1 - 0.6 / height,
                        wspace=0.45, hspace=0.75)
    for i, s in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        share = s.occupancy / s.occupancy.sum()
        ax.bar(np.arange(m + 1), 100 * share, color="tab:blue")
        ax.set_xticks(np.arange(m + 1))
        ax.set_ylim(0, 100)
        ax.set_title(s.label, fontsize=8)
        ax.set_xlabel(f"non-zeros per group of {m}", fontsize=7)
        ax.set_ylabel("groups (%)", fontsize=7)
        ax.tick_params(labelsize=7)
    if not shown:
        fig.text(0.5, 0.5, f"no matrix has a last axis divisible by {m}", ha="center")
    fig.suptitle(f"N:M occupancy (groups of {m} along the last axis)", fontsize=9, y=1 - 0.15 / height)
    return fig


def plot_checkpoints(
    sources: Sequence[Any], out_dir: str | os.PathLike, *, labels: Sequence[str] | None = None,
    tensors: Sequence[str] | None = None, m: int = 4,
) -> list[Path]:
    """Draw the three figures of ``sources`` (paths or mappings) into ``out_dir``; their paths."""
    _figure_class()  # fail before reading anything when matplotlib is missing
    labels = list(labels) if labels is not None else [_label(s, i) for i, s in enumerate(sources)]
    summaries = [summarize(s, label, tensors, m) for s, label in zip(sources, labels)]
    out = Path(out_dir)
    return [
        save(sparsity_figure(summaries), out / "sparsity.png"),
        save(masks_figure(summaries), out / "masks.png"),
        save(occupancy_figure(summaries, m), out / "nm_occupancy.png"),
    ]


def _label(src: Any, i: int) -> str:
    return Path(src).name if isinstance(src, (str, os.PathLike)) else f"model {i}"


def run(args: argparse.Namespace) -> int:
    paths = plot_checkpoints(args.src, args.output, tensors=args.tensor, m=args.group)
    if not args.quiet:
        for p in paths:
            print(f"wrote {p}")
    return 0
