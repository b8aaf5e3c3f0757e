"""prune_checkpoint: a model too large for memory, pruned tensor by tensor from disk to disk.

A *source* is a checkpoint path (read by :func:`arraysparse.io.open_checkpoint`,
memory-mapped) or any mapping of names to arrays, nested or not, whose values
may be lazy (NumPy memmaps, zarr arrays, an open checkpoint). Every tensor
is read when it is needed and dropped after, so the peak memory is about one
tensor and its pruned copy, whatever the size of the model:

* ``scope="layer"`` reads each tensor once: mask, prune, hand to the writer.
* ``scope="global"`` runs the selection of :func:`~arraysparse.model.global_mask`
  through the backend seam (:func:`arraysparse._backends.global_cut`) in two
  phases: the threshold is found by counting key digits tensor by tensor
  (each 16-bit digit level a read of the pooled tensors: one read when they
  are all bfloat16 or all float16, two for float32, four for float64), then
  a last read builds each tensor's mask against that one threshold and
  writes it.
  The masks are those of ``prune_model`` on the whole model in memory, bit
  for bit: same count, same ties.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from array_api_compat import is_array_api_obj

from .. import _backends
from .._compat import array_namespace, device, optional_import
from .._validation import prune_count
from ..masks import PruningMask, create_mask
from ..patterns import PatternKind, SparsityPattern
from ..strategies.base import PruningStrategy
from ..strategies.magnitude import MagnitudePruning
from ..strategies.random import RandomPruning
from ..strategies.sparsegpt import SparseGPTPruning, sparsegpt_prune
from ..strategies.wanda import WandaPruning, wanda_scores
from .report import LayerReport, ModelReport, count_zeros
from .rules import NamePattern, Patterns, _matches, _pattern_list, describe, name_rules, rule_label
from .scope_global import _bounds, _clamp_label
from .scope_layer import _layer_mask

Array = Any
PathLike = str | os.PathLike


# -- the source: names, shapes and dtypes up front, data on demand ------------------------
@dataclass(frozen=True)
class Spec:
    """What a tensor is, known without reading it."""

    shape: tuple[int, ...]
    dtype: Any

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class Source:
    """A model's tensors by flat name: their specs now, their data one at a time.

    ``what`` names the source in errors (its path, or ``"model"``).
    """

    def __init__(
        self, names: list[str], specs: dict[str, Spec], load: Callable[[str], Array], what: str,
        metadata: Mapping[str, str] | None = None, close: Callable[[], None] | None = None,
    ):
        self.names = names
        self.specs = specs
        self._load = load
        self.what = what
        self.metadata = dict(metadata) if metadata else None
        self._close = close

    def close(self) -> None:
        """Release the files this source opened (none for a mapping it was given)."""
        if self._close is not None:
            self._close()

    def load(self, name: str) -> Array:
        """The data of ``name``, read now (an array of the source's library)."""
        return self._load(name)

    @classmethod
    def open(cls, src: Any, what: str) -> Source:
        """The source of a checkpoint path or of a mapping (nested mappings allowed)."""
        if isinstance(src, (str, os.PathLike)):
            from ..io import open_checkpoint

            ckpt = open_checkpoint(src)
            source = cls.of_mapping(ckpt, str(src))
            source._close = ckpt.close
            if source.metadata is not None and ckpt.path.is_dir():  # the index's total_size is the source's
                source.metadata.pop("total_size", None)
            return source
        if not isinstance(src, Mapping):
            msg = f"{what} must be a checkpoint path or a mapping of names to arrays, got {type(src).__name__}"
            raise TypeError(msg)
        return cls.of_mapping(src, what)

    @classmethod
    def of_mapping(cls, model: Mapping, what: str) -> Source:
        from ..io import Checkpoint

        if isinstance(model, Checkpoint):  # shapes and dtypes from the headers, nothing read
            infos = {n: model.info(n) for n in model}
            specs = {n: Spec(tuple(i.shape), _dtype_of(i.dtype, what)) for n, i in infos.items()}
            return cls(list(specs), specs, model.__getitem__, what, model.metadata)
        values: dict[str, Any] = {}
        _walk(model, "", values)
        if not values:
            msg = f"{what} holds no arrays"
            raise ValueError(msg)
        specs = {}
        for name, v in values.items():
            shape, dtype = getattr(v, "shape", None), getattr(v, "dtype", None)
            if shape is None or dtype is None:
                msg = f"{what}[{name!r}] is a {type(v).__name__}, not an array"
                raise TypeError(msg)
            specs[name] = Spec(tuple(int(d) for d in shape), dtype)

        def load(name: str) -> Array:
            v = values[name]
            return v if is_array_api_obj(v) else np.asarray(v)

        return cls(list(values), specs, load, what)


def _dtype_of(name: str, what: str) -> Any:
    """The NumPy dtype of a dtype name of :mod:`arraysparse.io` (``"bfloat16"``: ml_dtypes')."""
    try:
        return np.dtype(name)
    except TypeError:
        try:
            import ml_dtypes
        except ImportError:
            msg = f"{what} holds {name} tensors, which NumPy reads with ml_dtypes: pip install 'arraysparse[cli]'"
            raise TypeError(msg) from None
        return np.dtype(getattr(ml_dtypes, name))


def _walk(level: Mapping, prefix: str, out: dict[str, Any]) -> None:
    for key in level:
        if not isinstance(key, str) or not key:
            msg = f"model keys must be non-empty str, got {key!r} under {prefix or 'the top level'!r}"
            raise TypeError(msg)
        name = f"{prefix}.{key}" if prefix else key
        value = level[key]
        if isinstance(value, Mapping):
            _walk(value, name, out)
        elif name in out:
            msg = f"two entries of the model flatten to the same name {name!r}"
            raise ValueError(msg)
        else:
            out[name] = value


# -- progress -------------------------------------------------------------------------------
class _Progress:
    """A tqdm bar per read of the model, or nothing."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None

    def start(self, desc: str, total: int) -> None:
        if not self.enabled:
            return
        tqdm = optional_import("tqdm.auto", purpose="progress=True").tqdm
        self.close()
        self.bar = tqdm(total=total, desc=desc, unit="tensor", leave=False, dynamic_ncols=True)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _Reads:
    """Counts the reads of the pooled tensors (a fetch of a lower index starts one) for the bar."""

    def __init__(self, bar: _Progress, total: int):
        self.bar, self.total = bar, total
        self.last = -1
        self.count = 0

    def at(self, i: int) -> None:
        if i <= self.last or self.count == 0:
            self.count += 1
            self.bar.start(f"global threshold, read {self.count}", self.total)
        self.last = i
        self.bar.step()


# -- the plan: which tensors are pruned, and how ------------------------------------------
def _is_weight(spec: Spec) -> bool:
    """The default ``include``: floating-point tensors of rank >= 2 (matrices, conv kernels)."""
    try:
        kind = np.dtype(spec.dtype).kind
        floating = kind == "f" or (kind == "V" and "float" in np.dtype(spec.dtype).name)
    except TypeError:  # torch's and other libraries' dtypes
        floating = "float" in str(spec.dtype)
    return floating and len(spec.shape) >= 2


@dataclass
class _Plan:
    names: list[str]
    pruned: dict[str, Any]  # name -> its own target (layer scope, overrides) or None (global pool)
    labels: dict[str, str]  # the report's rule of every tensor


def _plan(source: Source, include: Patterns, exclude: Patterns, overrides: Any) -> _Plan:
    names = source.names
    included = _pattern_list(include, "include")
    rules = name_rules(names, exclude, overrides)  # every pattern must match some tensor
    for p in included:
        if not any(_matches(p, n) for n in names):
            msg = f"include pattern {describe(p)} matches no tensor of {source.what}"
            raise ValueError(msg)
    pruned: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for name in names:
        rule = rules.get(name)
        if rule is not None and rule[0] == "excluded":
            labels[name] = rule_label(rule)
        elif included and not any(_matches(p, name) for p in included):
            labels[name] = "not included"
        elif not included and not _is_weight(source.specs[name]):
            spec = source.specs[name]
            labels[name] = f"kept: {len(spec.shape)}-D {dtype_name(spec.dtype)}"
        elif rule is not None:
            pruned[name] = rule[2]
            labels[name] = rule_label(rule)
        else:
            pruned[name] = None
    if not pruned:
        msg = f"no tensor of {source.what} is left to prune (include={include!r}, exclude={exclude!r})"
        raise ValueError(msg)
    return _Plan(names, pruned, labels)


def dtype_name(dtype: Any) -> str:
    """``"float32"``, ``"bfloat16"``: a dtype's short name, NumPy's or torch's."""
    return getattr(dtype, "name", None) or str(dtype).removeprefix("torch.")


# -- calibration statistics -----------------------------------------------------------------
class _Calibration:
    """Per-layer statistics by weight name: Wanda's input norms ``(in,)`` or SparseGPT's
    Hessian ``(in, in)``, checked against the weights before anything is read."""

    def __init__(self, calibration: Any, strategy: PruningStrategy, plan: _Plan, source: Source):
        self.source = Source.open(calibration, "calibration")
        self.what = self.source.what
        try:
            self._check(strategy, plan, source)
        except BaseException:
            self.source.close()
            raise

    def _check(self, strategy: PruningStrategy, plan: _Plan, source: Source) -> None:
        hessian = isinstance(strategy, SparseGPTPruning)
        kind = "Hessian" if hessian else "input norms"
        for name in plan.pruned:
            shape = source.specs[name].shape
            if len(shape) != 2:
                msg = (
                    f"{type(strategy).__name__} prunes 2-D (out, in) weights; {name!r} has shape {shape}: "
                    "leave it out (exclude it, or include only the 2-D weights)"
                )
                raise ValueError(msg)
            want = (shape[1], shape[1]) if hessian else (shape[1],)
            if name not in self.source.specs:
                msg = f"calibration {self.what} has no {kind} for {name!r} (a tensor of that name, shape {want})"
                raise ValueError(msg)
            got = self.source.specs[name].shape
            if got != want:
                msg = (
                    f"calibration {self.what}: {name!r} has shape {got}, but the weight {shape} needs "
                    f"{kind} of shape {want}"
                )
                raise ValueError(msg)

    def __getitem__(self, name: str) -> Array:
        return self.source.load(name)


# -- the public function --------------------------------------------------------------------
def prune_checkpoint(
    src: PathLike | Mapping[str, Any],
    dst: PathLike | MutableMapping[str, Any],
    /,
    sparsity: float | int | None = None,
    *,
    scope: str = "global",
    strategy: PruningStrategy | None = None,
    pattern: SparsityPattern | None = None,
    include: Patterns = None,
    exclude: Patterns = (),
    overrides: Mapping[NamePattern, Any] | None = None,
    min_sparsity: float = 0.0,
    max_sparsity: float = 1.0,
    calibration: PathLike | Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
    max_shard_size: int | str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> ModelReport:
    """Prune a checkpoint larger than memory: read tensor by tensor, write tensor by tensor.

    The pruned tensors are those of ``prune_model(dict(checkpoint), ...)``
    bit for bit (same counts, same ties), with at most about one tensor, its
    scores and its pruned copy in memory at a time. ``scope="layer"`` reads
    every tensor once; ``scope="global"`` finds the one threshold by
    counting key digits tensor by tensor (one read of the pooled tensors per
    16-bit digit of their keys: one when they are all bfloat16 or all
    float16, two for float32, four for float64), then reads them once more to
    mask and write.

    Parameters
    ----------
    src : path or mapping
        A ``.safetensors`` file, a ``.npz`` file or a directory of
        safetensors shards (opened with :func:`arraysparse.io.open_checkpoint`,
        memory-mapped), or any mapping of names to arrays, nested or not,
        whose values may be lazy (memmaps, zarr arrays).
    dst : path or mutable mapping
        Where the pruned checkpoint goes: a path, written atomically by
        :func:`arraysparse.io.write_checkpoint` (format from the suffix, or a
        directory of shards with ``max_shard_size``; an interrupted run
        leaves nothing), or a mutable mapping (a zarr group, a dict) that
        receives one tensor at a time (an error leaves it with the tensors
        given so far). Never ``src`` itself, nor a directory holding ``src``.
    sparsity : float or int, optional
        Fraction (or count) of the pruned values: of the pool with
        ``scope="global"``, of each tensor with ``scope="layer"``. ``None``
        for N:M patterns.
    scope : {"global", "layer"}
        One threshold over all pruned tensors (unstructured only), or each
        tensor to its own target (any pattern).
    strategy : PruningStrategy, optional
        Default :class:`~arraysparse.MagnitudePruning`. Strategies that need
        gradients are refused. :class:`~arraysparse.WandaPruning` and
        :class:`~arraysparse.SparseGPTPruning` take their statistics from
        ``calibration`` (SparseGPT, layer scope only, updates the kept
        weights as published); :class:`~arraysparse.RandomPruning` needs an
        int ``seed`` with the global scope (every read must see the same scores).
    pattern : SparsityPattern, optional
        The mask pattern (default: the strategy's).
    include, exclude : glob str, re.Pattern or a list of them
        Tensors pruned: those matching ``include`` (default: every
        floating-point tensor of rank >= 2, so biases, norms and integer
        buffers pass through) and no ``exclude``. The others are copied
        through unchanged. Globs match the whole dotted name.
    overrides : mapping of pattern to sparsity
        Tensors pruned to their own target, outside the global pool.
    min_sparsity, max_sparsity : float
        Per-tensor bounds of the global threshold (as :func:`~arraysparse.global_mask`).
    calibration : path or mapping, optional
        Wanda: each pruned weight's input norms ``||X_j||_2``, shape
        ``(in_features,)``; SparseGPT: its Hessian ``2 X^T X / n``, shape
        ``(in, in)``; named as the weight (``"fc1.weight"``). All are checked
        before anything is written.
    metadata : mapping of str to str, optional
        Metadata of the written file (default: the source's, when it has
        any; a shard directory's ``total_size`` is not carried over).
    max_shard_size : int or str, optional
        Write ``dst`` as a directory of safetensors shards of at most this
        many bytes of tensor data (``"5GB"``, ``"2GiB"``, an int) and its
        Hugging Face index (see :func:`arraysparse.io.write_checkpoint`).
    overwrite : bool
        With ``max_shard_size``: replace a checkpoint the directory ``dst``
        already holds (refused otherwise).
    progress : bool
        A tqdm bar per read of the model (needs ``tqdm``, in the ``cli`` extra).

    Returns
    -------
    ModelReport
        A record per tensor: its shape, size, pruned count and rule
        (``"global"``, ``"layer"``, ``"excluded ..."``, ``"not included"``,
        ``"kept: 1-D float32"``...), and its zeros in ``dst`` (those it
        already had included), as :func:`prune_model` reports.

    Raises
    ------
    ValueError
        ``dst`` is ``src`` (or holds it); bad sparsity, scope or pattern;
        patterns matching no tensor; calibration missing or of the wrong
        shape; NaN values; a source changed between reads; a bad
        ``max_shard_size``, or a directory ``dst`` holding a checkpoint
        without ``overwrite``. Nothing is written.
    TypeError
        Wrong argument types, strategies needing gradients.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> import arraysparse as asp
    >>> rng = np.random.default_rng(0)
    >>> model = {"fc1.weight": rng.standard_normal((8, 16), dtype=np.float32),
    ...          "fc1.bias": np.zeros(8, np.float32)}
    >>> out = {}                                  # any mutable mapping, or a file path
    >>> report = asp.prune_checkpoint(model, out, 0.5)
    >>> [(r.name, r.pruned, r.rule) for r in report]
    [('fc1.weight', 64, 'global'), ('fc1.bias', 0, 'kept: 1-D float32')]
    >>> pruned, _ = asp.prune_model(model, 0.5, exclude="fc1.bias")
    >>> bool(np.array_equal(out["fc1.weight"], pruned["fc1.weight"]))
    True
    """
    if scope not in ("global", "layer"):
        msg = f"scope={scope!r} must be 'global' or 'layer'"
        raise ValueError(msg)
    if strategy is None:
        strategy = MagnitudePruning(pattern)
    if not isinstance(strategy, PruningStrategy):
        msg = f"strategy must be a PruningStrategy, got {type(strategy).__name__}"
        raise TypeError(msg)
    if strategy.requires_gradients:
        msg = f"{type(strategy).__name__} needs gradients, which a checkpoint does not hold"
        raise TypeError(msg)
    if pattern is not None and not isinstance(pattern, SparsityPattern):
        msg = f"pattern must be a SparsityPattern, got {type(pattern).__name__}"
        raise TypeError(msg)
    if not isinstance(progress, bool):
        msg = f"progress must be a bool, got {progress!r}"
        raise TypeError(msg)
    chosen = pattern if pattern is not None else strategy.pattern
    if scope == "global":
        if chosen.kind is not PatternKind.UNSTRUCTURED:
            msg = f"scope='global' ranks single values (unstructured); pattern {chosen} needs scope='layer'"
            raise ValueError(msg)
        if sparsity is None:
            msg = "sparsity is required with scope='global'"
            raise ValueError(msg)
        if isinstance(strategy, SparseGPTPruning):
            msg = "SparseGPT prunes and updates one layer at a time: use scope='layer'"
            raise ValueError(msg)
        if isinstance(strategy, RandomPruning) and not isinstance(strategy.seed, (int, np.integer)):
            msg = "RandomPruning with scope='global' needs an int seed: every read must draw the same scores"
            raise ValueError(msg)
    elif min_sparsity != 0.0 or max_sparsity != 1.0:
        msg = "min_sparsity and max_sparsity bound a global threshold; with scope='layer' set each layer's sparsity"
        raise ValueError(msg)
    check_not_input(src, dst)
    if not isinstance(dst, (str, os.PathLike, MutableMapping)):
        msg = f"dst must be a checkpoint path or a mutable mapping, got {type(dst).__name__}"
        raise TypeError(msg)
    if max_shard_size is not None:
        from ..io._shards import parse_size, shard_destination

        parse_size(max_shard_size)
        if not isinstance(dst, (str, os.PathLike)):
            msg = "max_shard_size is for a dst path (a directory of shards), not a mapping"
            raise ValueError(msg)
        shard_destination(dst, "dst")

    source = Source.open(src, "src")
    calib: _Calibration | None = None
    bar = _Progress(progress)
    try:
        plan = _plan(source, include, exclude, overrides)
        data_aware = isinstance(strategy, (WandaPruning, SparseGPTPruning))
        if data_aware and (calibration is not None or not strategy.is_calibrated):
            if calibration is None:
                msg = f"{type(strategy).__name__} needs calibration statistics: pass calibration= (a path or a mapping)"
                raise ValueError(msg)
            calib = _Calibration(calibration, strategy, plan, source)
        elif calibration is not None:
            msg = f"calibration= is for WandaPruning and SparseGPTPruning, not {type(strategy).__name__}"
            raise ValueError(msg)
        records: list[LayerReport] = []
        pruner = _Pruner(source, plan, strategy, pattern, sparsity, scope, calib, min_sparsity, max_sparsity, bar)
        items = pruner.items(records)
        if isinstance(dst, MutableMapping):
            for name, value in items:
                dst[name] = value
        else:
            from ..io import write_checkpoint

            write_checkpoint(dst, items, metadata=source.metadata if metadata is None else metadata,
                             max_shard_size=max_shard_size, overwrite=overwrite)
    finally:
        bar.close()
        if calib is not None:
            calib.source.close()
        source.close()
    return ModelReport(records)


def check_not_input(src: Any, dst: Any) -> None:
    """``dst`` must not be ``src`` (or a file inside a ``src`` directory): the input is never overwritten."""
    if src is dst and not isinstance(src, (str, os.PathLike)):
        msg = "dst is src: the input is never overwritten; give another output"
        raise ValueError(msg)
    if not isinstance(src, (str, os.PathLike)) or not isinstance(dst, (str, os.PathLike)):
        return
    a, b = Path(src).resolve(), Path(dst).resolve()
    if a == b or (a.is_dir() and a in b.parents):
        msg = f"the output {os.fspath(dst)!r} is the input {os.fspath(src)!r}; the input is never overwritten"
        raise ValueError(msg)
    if b in a.parents:
        msg = f"the output directory {os.fspath(dst)!r} holds the input {os.fspath(src)!r}; write elsewhere"
        raise ValueError(msg)


class _Pruner:
    """The reads and the masks of one prune_checkpoint call."""

    def __init__(
        self, source: Source, plan: _Plan, strategy: PruningStrategy, pattern: SparsityPattern | None,
        sparsity: Any, scope: str, calib: _Calibration | None, min_sparsity: float, max_sparsity: float,
        bar: _Progress,
    ):
        self.source, self.plan, self.strategy, self.pattern = source, plan, strategy, pattern
        self.sparsity, self.scope, self.calib, self.bar = sparsity, scope, calib, bar
        self.magnitude = type(strategy) is MagnitudePruning
        self.pool = [n for n, target in plan.pruned.items() if target is None] if scope == "global" else []
        self.cut: Any = None
        self.lo: list[int] = []
        self.hi: list[int] = []
        self.k = 0
        if self.pool:
            sizes = [source.specs[n].size for n in self.pool]
            self.k = prune_count(sparsity, sum(sizes))
            self.lo, self.hi = _bounds(min_sparsity, max_sparsity, sizes)
            if not sum(self.lo) <= self.k <= sum(self.hi):
                msg = (
                    f"sparsity={sparsity!r} prunes {self.k} of the {sum(sizes)} pooled values, but "
                    f"min_sparsity={min_sparsity!r} and max_sparsity={max_sparsity!r} allow only "
                    f"{sum(self.lo)} to {sum(self.hi)}"
                )
                raise ValueError(msg)
        for name, target in plan.pruned.items():  # every count checked before anything is read
            if target is not None or scope == "layer":
                t = sparsity if target is None else target
                on = f"overrides for {name!r}" if target is not None else "sparsity"
                _check_target(t, chosen_pattern(strategy, pattern), source.specs[name], on)

    # one tensor's scores: what the selection ranks
    def scores(self, name: str, w: Array) -> Array:
        if self.magnitude:
            return w  # ranked by |w| on the fly
        if self.calib is not None and isinstance(self.strategy, WandaPruning):
            return wanda_scores(w, self.calib[name])
        return self.strategy.compute_importance_scores(w, None)

    def _global_cut(self) -> Any:
        """The first phase of the global selection, over the pooled tensors' scores."""
        pool, source = self.pool, self.source
        reads = _Reads(self.bar, len(pool))

        names = [f"{source.what}[{n!r}]" for n in pool]
        probe = source.load(pool[0])
        unread = [probe]  # the probe is the first read's first tensor: not read twice

        def fetch(i: int) -> Array:
            reads.at(i)
            w = unread.pop() if unread and i == 0 else source.load(pool[i])
            return self.scores(pool[i], w)

        xp = array_namespace(**{names[0]: probe})
        empty = xp.empty((0,), dtype=probe.dtype, device=device(probe))  # the library and device, no data held
        dtypes = [source.specs[n].dtype for n in pool] if self.magnitude else None  # scores: learnt by a read
        stream = _backends.Stream(names, [source.specs[n].size for n in pool], dtypes, fetch, empty)
        del probe
        return _backends.global_cut(xp, stream, self.k, self.lo, self.hi, magnitude=self.magnitude)

    def items(self, records: list[LayerReport]) -> Iterator[tuple[str, Array]]:
        """The pruned checkpoint, one ``(name, tensor)`` at a time (a generator: the writer pulls)."""
        source, plan = self.source, self.plan
        if self.pool:
            self.cut = self._global_cut()
        self.bar.start("prune and write", len(plan.names))
        position = {n: i for i, n in enumerate(self.pool)}
        for name in plan.names:
            spec = source.specs[name]
            w = source.load(name)
            if tuple(w.shape) != spec.shape:
                msg = f"{source.what}[{name!r}] has shape {tuple(w.shape)}, not the {spec.shape} its header gives"
                raise ValueError(msg)
            if name not in plan.pruned:
                out, pruned, rule = w, 0, plan.labels[name]
            elif name in position:
                keep, pruned, unclamped = self.cut.keep(position[name], self.scores(name, w))
                out = PruningMask(keep).apply(w)
                rule = _clamp_label(pruned, unclamped, self.lo[position[name]], self.hi[position[name]])
            else:
                target = plan.pruned[name]
                out, pruned = self._own(name, w, self.sparsity if target is None else target)
                rule = plan.labels.get(name, "layer")
            zeros = count_zeros(out, f"{source.what}[{name!r}]")  # earlier zeros too: the report is of dst
            records.append(LayerReport(name, spec.shape, spec.size, pruned, rule, zeros))
            yield name, out
            del w, out
            self.bar.step()

    def _own(self, name: str, w: Array, target: Any) -> tuple[Array, int]:
        """A tensor pruned to its own target (layer scope, an override): pruned copy and count."""
        strategy = self.strategy
        try:
            if isinstance(strategy, SparseGPTPruning) and self.calib is not None:
                out, mask = sparsegpt_prune(
                    w, self.calib[name], target, pattern=chosen_pattern(strategy, self.pattern),
                    block_size=strategy.block_size, damp=strategy.damp, dtype=strategy.dtype,
                )
                return out, mask.num_pruned
            if self.scope == "global":  # an override of the global scope: its own top-k, as global_mask
                scores = self.scores(name, w)
                mask = create_mask(scores, target, SparsityPattern.unstructured(), magnitude=self.magnitude)
            elif self.calib is not None:  # Wanda with statistics from the file
                mask = _wanda_mask(strategy, self.pattern, self.scores(name, w), target)
            else:
                mask = _layer_mask(strategy, self.pattern, w, None, target)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{self.source.what}[{name!r}]: {e}") from None
        return mask.apply(w), mask.num_pruned


def _wanda_mask(strategy: Any, pattern: SparsityPattern | None, scores: Array, target: Any) -> PruningMask:
    if pattern is None:
        return strategy.create_mask(scores, target)
    return create_mask(scores, target, pattern, ord=strategy.ord)


def chosen_pattern(strategy: PruningStrategy, pattern: SparsityPattern | None) -> SparsityPattern:
    return pattern if pattern is not None else strategy.pattern


def _check_target(target: Any, pattern: SparsityPattern, spec: Spec, on: str) -> None:
    """The count rule's errors (range, type) before any tensor is read."""
    if pattern.is_n_m:
        return
    if target is None:
        msg = f"sparsity is required for the pattern {pattern}"
        raise ValueError(msg)
    prune_count(target, spec.size, name=on)


__all__ = ["prune_checkpoint"]
