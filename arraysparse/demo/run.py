"""``arraysparse demo``: the shipped digits MLP pruned every way, measured, and drawn.

Each variant runs what ``arraysparse prune`` runs (:func:`arraysparse.prune_checkpoint`,
from the shipped ``.safetensors`` to a new one, tensor by tensor), on the three
weight matrices (biases pass through). Wanda and SparseGPT take their
statistics from a calibration file the demo writes first, from the inputs
each layer sees on the shipped training digits (one-shot, no fine-tuning).
The pruned checkpoint is then read back and run on the 450 held-out test
digits, and its weights are measured in every sparse format
(``arraysparse inspect``'s statistics). Everything lands in one directory:
the pruned checkpoints, the calibration files, ``results.json`` and, with
matplotlib, the plots of ``arraysparse plot``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration import HessianAccumulator, InputNormAccumulator
from ..io import open_checkpoint, write_checkpoint
from ..model import prune_checkpoint
from ..patterns import SparsityPattern
from ..strategies import MagnitudePruning, RandomPruning, SparseGPTPruning, WandaPruning
from . import MODEL_PATH, load_data, load_model
from .mlp import accuracy, layer_inputs

WEIGHTS = ("fc1.weight", "fc2.weight", "fc3.weight")


@dataclass(frozen=True)
class Variant:
    """One way of pruning: its label, ``arraysparse prune`` options, and the library call's arguments."""

    label: str
    options: str
    sparsity: float | None
    scope: str
    strategy: Callable[[], Any]
    calibration: str | None = None
    exclude: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        keep = "".join(c if c.isalnum() else "-" for c in self.label.lower())
        return "-".join(part for part in keep.split("-") if part)


def variants() -> list[Variant]:
    """The demo's table, top to bottom."""
    un = SparsityPattern.unstructured()
    mag = MagnitudePruning
    out = []
    for s in (0.5, 0.75, 0.9):
        out.append(Variant(f"magnitude global {s:.0%}", f"-s {s:.0%}", s, "global", lambda: mag(un)))
    for s in (0.5, 0.75, 0.9):
        out.append(Variant(f"magnitude layer {s:.0%}", f"-s {s:.0%} --scope layer", s, "layer", lambda: mag(un)))
    out += [
        Variant("magnitude 2:4", "-p 2:4", None, "layer", lambda: mag(SparsityPattern.two_four())),
        Variant("magnitude 4:8", "-p 4:8", None, "layer", lambda: mag(SparsityPattern.n_m(4, 8))),
        Variant("rows 25% (L2)", "-s 25% -p rows --exclude fc3.weight", 0.25, "layer",
                lambda: mag(SparsityPattern.rows()), exclude=("fc3.weight",)),
        Variant("blocks 2x2 50%", "-s 50% -p 2x2", 0.5, "layer", lambda: mag(SparsityPattern.blocks((2, 2)))),
        Variant("random 50%", "-s 50% --strategy random", 0.5, "layer", lambda: RandomPruning(un, seed=0)),
        Variant("Wanda 50%", "-s 50% --strategy wanda --calibration wanda", 0.5, "layer",
                lambda: WandaPruning(un), "wanda"),
        Variant("Wanda 2:4", "-p 2:4 --strategy wanda --calibration wanda", None, "layer",
                lambda: WandaPruning(SparsityPattern.two_four()), "wanda"),
        Variant("SparseGPT 50%", "-s 50% --strategy sparsegpt --calibration sparsegpt", 0.5, "layer",
                lambda: SparseGPTPruning(un), "sparsegpt"),
        Variant("SparseGPT 2:4", "-p 2:4 --strategy sparsegpt --calibration sparsegpt", None, "layer",
                lambda: SparseGPTPruning(SparsityPattern.two_four()), "sparsegpt"),
    ]
    return out


#: The variants drawn in the heat maps and the occupancy plot (every variant is in the sparsity plot).
MASK_PANELS = ("magnitude global 75%", "magnitude layer 75%", "magnitude 2:4", "rows 25% (L2)",
               "blocks 2x2 50%", "Wanda 50%")
OCCUPANCY_PANELS = ("magnitude layer 50%", "random 50%", "magnitude 2:4", "magnitude 4:8", "Wanda 2:4",
                    "SparseGPT 2:4")


@dataclass
class Result:
    """What one variant gave: accuracy, weight sparsity, and the weights' bytes per format."""

    label: str
    options: str
    accuracy: float
    sparsity: float
    nbytes: dict[str, int] = field(default_factory=dict)  # "dense", "csr", "bitmask", "2:4", "best"
    best_format: str = "dense"
    path: str = ""
    #: The ``arraysparse prune`` arguments that write this checkpoint from the shipped model (MODEL, OUT).
    command: str = ""


def calibration_files(model: dict, x: np.ndarray, out: Path) -> dict[str, Path]:
    """Wanda's input norms and SparseGPT's Hessians of every weight, from the dense model's inputs."""
    inputs = layer_inputs(model, x)
    norms, hessians = {}, {}
    for n in model:
        norm_acc, hessian_acc = InputNormAccumulator(), HessianAccumulator()
        norm_acc.update(inputs[n])
        hessian_acc.update(inputs[n])
        norms[f"{n}.weight"], hessians[f"{n}.weight"] = norm_acc.norms.astype(np.float32), hessian_acc.hessian
    meta = {"arraysparse.demo": f"statistics of each layer's inputs on {x.shape[0]} training digits"}
    return {
        "wanda": write_checkpoint(out / "wanda.safetensors", norms, metadata=meta),
        "sparsegpt": write_checkpoint(out / "sparsegpt.safetensors", hessians, metadata=meta),
    }


def measure(path: Path, data: Any) -> tuple[float, float, dict[str, int], str]:
    """Accuracy, weight sparsity and bytes per format of a pruned checkpoint."""
    from ..cli._inspect import tensor_stats

    model = load_model(path)
    acc = accuracy(model, data.x_test, data.y_test)
    zeros = size = 0
    nbytes = dict.fromkeys(("dense", "csr", "bitmask", "2:4", "best"), 0)
    fits_24 = True
    best_formats = set()
    with open_checkpoint(path) as ckpt:
        for name in WEIGHTS:
            s = tensor_stats(name, ckpt[name])
            zeros, size = zeros + s.zeros, size + s.size
            nbytes["dense"] += s.nbytes
            nbytes["csr"] += s.formats["csr"]
            nbytes["bitmask"] += s.formats["bitmask"]
            fits_24 = fits_24 and "2:4" in s.formats
            nbytes["2:4"] += s.formats.get("2:4", 0)
            fmt, b = s.best
            nbytes["best"] += b
            best_formats.add(fmt)
    if not fits_24:
        del nbytes["2:4"]
    return acc, zeros / size, nbytes, "/".join(sorted(best_formats))


def run_demo(
    out_dir: str | os.PathLike = "arraysparse-demo", *, plots: bool = True, progress: bool = False,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Prune the shipped model every way; print the table; write checkpoints, results and plots.

    Parameters
    ----------
    out_dir : path
        Directory for everything written (created).
    plots : bool
        Draw ``sparsity.png``, ``masks.png`` and ``nm_occupancy.png`` (needs matplotlib).
    progress : bool
        tqdm bars while pruning.
    out : callable
        Where the lines of the report go.

    Returns
    -------
    dict
        ``dense_accuracy``, ``results`` (one :class:`Result` per variant),
        ``files`` and ``seconds``.
    """
    with _one_kernel_thread():
        return _run(Path(out_dir), plots, progress, out)


@contextlib.contextmanager
def _one_kernel_thread() -> Iterator[None]:
    """The demo's matrices are tiny (at most 128 x 64): waking a pool of kernel threads for each
    costs more than the work (2x the demo's time on a busy 2-core machine), so one thread runs them."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _run(root: Path, plots: bool, progress: bool, out: Callable[[str], None]) -> dict[str, Any]:
    t0 = time.perf_counter()
    for sub in ("checkpoints", "calibration"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    data = load_data()
    dense = load_model()
    dense_acc = accuracy(dense, data.x_test, data.y_test)
    calib = calibration_files(dense, data.x_calib, root / "calibration")
    results = []
    paths: dict[str, Path] = {}
    todo = variants()
    # the table comes at the end; until then one line a variant, so a first run (which compiles
    # the kernels: about a minute, once per machine) shows what it is doing
    out(f"Pruning the shipped digits MLP {len(todo)} ways (a first run compiles the kernels, about a "
        "minute; later runs load them from the cache):")
    for i, v in enumerate(todo, 1):
        out(f"  [{i}/{len(todo)}] {v.label}")
        path = root / "checkpoints" / f"{v.slug}.safetensors"
        prune_checkpoint(
            MODEL_PATH, path, v.sparsity, scope=v.scope, strategy=v.strategy(), exclude=v.exclude,
            calibration=calib[v.calibration] if v.calibration else None, progress=progress,
        )
        acc, sparsity, nbytes, best = measure(path, data)
        options = v.options if not v.calibration else v.options.replace(
            f"--calibration {v.calibration}", f"--calibration {shlex.quote(str(calib[v.calibration]))}")
        command = f"arraysparse prune MODEL OUT {options}"
        results.append(Result(v.label, v.options, acc, sparsity, nbytes, best, str(path), command))
        paths[v.label] = path
    files = [str(p) for p in (*paths.values(), *calib.values())]
    report = table(results, dense_acc, len(data.y_test))
    for line in report.splitlines():
        out(line)
    if plots and importlib.util.find_spec("matplotlib") is None:
        out("(plots skipped: they need matplotlib, pip install 'arraysparse[cli]')")
        plots = False
    if plots:
        files += [str(p) for p in draw(results, paths, root / "plots")]
    results_path = root / "results.json"
    seconds = time.perf_counter() - t0
    payload = {"dense_accuracy": dense_acc, "test_digits": len(data.y_test), "seconds": seconds,
               "results": [r.__dict__ for r in results]}
    _write_text(results_path, json.dumps(payload, indent=1))
    files.append(str(results_path))
    out("")
    out(f"Wrote {len(files)} files under {root}/ in {seconds:.1f} s: pruned checkpoints in checkpoints/, "
        f"calibration statistics in calibration/, results.json" + (", plots in plots/" if plots else "") + ".")
    out(f"Each row is one command (MODEL = {MODEL_PATH}):")
    width = max(len(r.label) for r in results)
    for r in results:
        out(f"  {r.label.ljust(width)}  {r.command.replace('OUT', 'out.safetensors')}")
    return {"dense_accuracy": dense_acc, "results": results, "files": files, "seconds": seconds}


def draw(results: list[Result], paths: dict[str, Path], out: Path) -> list[Path]:
    """The plots of ``arraysparse plot``: every variant's sparsity per layer, and the heat maps and
    N:M occupancy of a readable subset."""
    from ..cli._plots import masks_figure, occupancy_figure, save, sparsity_figure, summarize

    summaries = {r.label: summarize(paths[r.label], r.label, WEIGHTS, 4) for r in results}
    return [
        save(sparsity_figure(list(summaries.values())), out / "sparsity.png"),
        save(masks_figure([summaries[k] for k in MASK_PANELS]), out / "masks.png"),
        save(occupancy_figure([summaries[k] for k in OCCUPANCY_PANELS], 4), out / "nm_occupancy.png"),
    ]


def table(results: list[Result], dense_acc: float, digits: int) -> str:
    """The demo's table: accuracy and sizes of every variant."""
    from ..cli._inspect import human

    head = ("variant", "sparsity", "accuracy", "change", "dense", "CSR", "bitmask", "2:4", "best")
    rows = [("dense", "0.0%", f"{100 * dense_acc:.1f}%", "", "", "", "", "", "")]
    for r in results:
        b = r.nbytes
        rows.append((
            r.label, f"{100 * r.sparsity:.1f}%", f"{100 * r.accuracy:.1f}%", f"{100 * (r.accuracy - dense_acc):+.1f}",
            human(b["dense"]), human(b["csr"]), human(b["bitmask"]), human(b["2:4"]) if "2:4" in b else "-",
            f"{human(b['best'])} {r.best_format}",
        ))
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    title = (f"The digits MLP shipped with arraysparse (64-128-64-10, {digits} held-out test digits), its three "
             "weight matrices pruned one-shot, no fine-tuning; sizes of those weights:")
    return "\n".join([title, "", line(head), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)
