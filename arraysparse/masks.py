"""Pruning masks and the functions that build them.

A mask is a boolean array, ``True`` where a value is kept, in the namespace
and on the device of the scores it was built from, wrapped in a
:class:`PruningMask` together with its :class:`~arraysparse.SparsityPattern`.

Rules shared by every builder:

* **Count.** A float ``sparsity`` prunes ``round(sparsity * count)`` items
  (Python's half-to-even ``round``, as ``torch.nn.utils.prune``); an int is a
  count. Items are elements, slices or blocks depending on the pattern.
* **Ties.** Among equal scores the one with the lower index is pruned first:
  flat C-order index for elements, index along the axis for slices, C-order
  block index for blocks, position in the group for N:M. The same inputs
  therefore give the same mask on every backend.
* **NaN** scores raise ``ValueError`` with their count; ``+/-inf`` are
  ordered normally; ``-0.0`` ranks equal to ``0.0``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from . import _backends
from ._compat import (
    array_namespace,
    backend_name,
    count_true,
    device,
    int_dtype,
    is_dask,
    is_writable,
    nonzero_mask,
    optional_import,
)
from ._validation import (
    check_has_zero,
    check_known_shape,
    check_nm,
    check_real,
    check_same_shape,
    normalize_axis,
    prune_count,
)
from .patterns import NM_KINDS, SLICE_KINDS, PatternKind, SparsityPattern
from .scores import _block_scores, _structure_scores, check_block_shape, check_ord, random_scores

__all__ = [
    "PruningMask",
    "apply_mask",
    "block_mask",
    "create_mask",
    "nm_mask",
    "random_mask",
    "structured_mask",
    "topk_mask",
]

Array = Any


class PruningMask:
    """A boolean keep-mask (``True`` = keep) and the pattern it follows.

    Parameters
    ----------
    mask : bool array
        Any supported library; the mask stays in it.
    pattern : SparsityPattern, optional
        Defaults to unstructured.
    check : bool
        Verify that ``mask`` satisfies ``pattern`` (``ValueError`` if not).

    Notes
    -----
    A Dask mask stays lazy: ``&``, ``|``, ``~``, :meth:`apply` and
    :meth:`apply_` build on it without computing. Answers that are numbers
    or booleans compute it: :attr:`num_kept`, :attr:`num_pruned`,
    :attr:`sparsity`, :attr:`density` and ``repr`` (a count; except for the
    masks the builders return, which know their count), :meth:`satisfies`,
    :meth:`equals`, :meth:`kept_indices` and :meth:`pruned_indices`.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> m = asp.topk_mask(np.array([[0.1, 0.9], [0.5, 0.3]]), 0.5)
    >>> m.mask
    array([[False,  True],
           [ True, False]])
    >>> m.sparsity, m.num_pruned
    (0.5, 2)
    >>> m.apply(np.array([[1.0, 2.0], [3.0, 4.0]]))
    array([[0., 2.],
           [3., 0.]])
    """

    __slots__ = ("_mask", "_pattern", "_pruned")

    def __init__(self, mask: Array, pattern: SparsityPattern | None = None, *, check: bool = False):
        xp = array_namespace(mask=mask)
        if mask.dtype != xp.bool:
            msg = f"mask must have dtype bool (True = keep), got {mask.dtype}"
            raise TypeError(msg)
        if pattern is None:
            pattern = SparsityPattern.unstructured()
        if not isinstance(pattern, SparsityPattern):
            msg = f"pattern must be a SparsityPattern, got {type(pattern).__name__}"
            raise TypeError(msg)
        self._mask = mask
        self._pattern = pattern
        self._pruned: int | None = None  # known count of a lazy mask (see _counted)
        if check and not self.satisfies():
            msg = f"mask does not satisfy its pattern {pattern}"
            raise ValueError(msg)

    # -- construction -------------------------------------------------------
    @classmethod
    def from_zeros(cls, x: Array, pattern: SparsityPattern | None = None) -> PruningMask:
        """The mask of an array's existing zeros (zeros pruned, everything else kept).

        With ``pattern`` given the zeros must satisfy it (``ValueError`` if not).
        """
        xp = array_namespace(x=x)
        return cls(nonzero_mask(xp, x), pattern, check=pattern is not None)

    # -- the array and its counts -------------------------------------------
    @property
    def mask(self) -> Array:
        """The boolean array, ``True`` where values are kept."""
        return self._mask

    @property
    def pattern(self) -> SparsityPattern:
        """The :class:`~arraysparse.SparsityPattern` the mask follows (see :meth:`satisfies`)."""
        return self._pattern

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the mask, that of the array it prunes."""
        return tuple(self._mask.shape)

    @property
    def size(self) -> int:
        """Number of values under the mask."""
        return math.prod(self.shape)

    @property
    def num_kept(self) -> int:
        """Number of values kept (``True``); counted on the mask's device, returned as an int."""
        if self._pruned is not None:
            return self.size - self._pruned
        xp = array_namespace(mask=self._mask)
        return count_true(xp, self._mask)

    @property
    def num_pruned(self) -> int:
        """Number of values pruned (``False``): ``size - num_kept``."""
        return self.size - self.num_kept

    @property
    def sparsity(self) -> float:
        """Fraction of values pruned (0.0 for an empty mask)."""
        return self.num_pruned / self.size if self.size else 0.0

    @property
    def density(self) -> float:
        """Fraction of values kept (1.0 for an empty mask)."""
        return 1.0 - self.sparsity

    def kept_indices(self) -> tuple[Array, ...]:
        """Indices of kept values, one array per axis (as ``nonzero``)."""
        xp = array_namespace(mask=self._mask)
        return tuple(xp.nonzero(self._mask))

    def pruned_indices(self) -> tuple[Array, ...]:
        """Indices of pruned values, one array per axis (as ``nonzero``)."""
        xp = array_namespace(mask=self._mask)
        return tuple(xp.nonzero(~self._mask))

    # -- algebra ------------------------------------------------------------
    def _other(self, other: object, op: str) -> Array:
        if isinstance(other, PruningMask):
            other = other.mask
        try:
            array_namespace(self=self._mask, other=other)
        except TypeError as e:
            msg = f"cannot combine masks with {op}: {e}"
            raise TypeError(msg) from None
        check_same_shape(self._mask, other, "self", "other")
        return other

    def _combined_pattern(self, other: object, keeps_nm: bool) -> SparsityPattern:
        same = isinstance(other, PruningMask) and other.pattern == self._pattern
        if same and (keeps_nm or self._pattern.kind not in NM_KINDS):
            return self._pattern
        return SparsityPattern.unstructured()

    def __and__(self, other: PruningMask | Array) -> PruningMask:
        """Keep where both keep. Equal patterns survive (N:M still has >= n zeros per group)."""
        arr = self._other(other, "&")
        return PruningMask(self._mask & arr, self._combined_pattern(other, keeps_nm=True))

    def __or__(self, other: PruningMask | Array) -> PruningMask:
        """Keep where either keeps. Structured patterns survive; N:M becomes unstructured."""
        arr = self._other(other, "|")
        return PruningMask(self._mask | arr, self._combined_pattern(other, keeps_nm=False))

    def __invert__(self) -> PruningMask:
        """Swap kept and pruned. Structured patterns survive; N:M becomes unstructured."""
        nm = self._pattern.kind in NM_KINDS
        return PruningMask(~self._mask, SparsityPattern.unstructured() if nm else self._pattern)

    def equals(self, other: PruningMask) -> bool:
        """Same values and same pattern."""
        if not isinstance(other, PruningMask):
            return False
        if self.shape != other.shape or self.pattern != other.pattern:
            return False
        xp = array_namespace(self=self._mask, other=other.mask)
        return bool(xp.all(self._mask == other.mask))

    # -- use ----------------------------------------------------------------
    def apply(self, weights: Array) -> Array:
        """A new array: ``weights`` with pruned values set to zero."""
        return apply_mask(weights, self, inplace=False)

    def apply_(self, weights: Array) -> Array:
        """Zero the pruned values of ``weights`` in place and return it.

        Raises ``ValueError`` for read-only arrays (read-only NumPy, JAX).
        """
        return apply_mask(weights, self, inplace=True)

    def satisfies(self, pattern: SparsityPattern | None = None) -> bool:
        """Whether the mask has the shape of ``pattern`` (default: its own).

        Slice patterns: every slice entirely kept or entirely pruned. Blocks:
        every tile entirely kept or pruned. N:M: at least ``n`` pruned values
        in every group of ``m`` (more zeros still run on 2:4 hardware).
        """
        return _satisfies(self._mask, pattern or self._pattern)

    def __repr__(self) -> str:
        return (
            f"PruningMask(shape={self.shape}, pattern={self._pattern}, "
            f"sparsity={self.sparsity:.4g}, backend={backend_name(self._mask)})"
        )


def _counted(mask: PruningMask, pruned: int | None) -> PruningMask:
    """``mask``, told its pruned count when it is lazy (Dask): a builder knows the count it
    pruned, so ``num_pruned`` / ``sparsity`` answer without computing the mask. Eager masks
    always count their values."""
    if pruned is not None and is_dask(mask.mask):
        mask._pruned = pruned
    return mask


def _satisfies(mask: Array, pattern: SparsityPattern) -> bool:
    xp = array_namespace(mask=mask)
    if pattern.kind is PatternKind.UNSTRUCTURED:
        return True
    if not _pattern_fits_shape(pattern, tuple(mask.shape)):
        return False
    if math.prod(mask.shape) == 0:
        return True  # no value can break the pattern
    if pattern.kind in SLICE_KINDS:
        ax = pattern.axis_or(0) % mask.ndim
        others = tuple(i for i in range(mask.ndim) if i != ax)
        if not others:
            return True
        return bool(xp.all(xp.all(mask, axis=others) == xp.any(mask, axis=others)))
    if pattern.kind is PatternKind.BLOCK_STRUCTURED:
        block = pattern.block or ()
        # float32 counts are exact here (float64 sums of 0/1, a tile holds far fewer than 2**24
        # values) and reuse the kernel the float32 block scores compiled; int64 would compile its own
        tiles = _block_scores(xp.astype(mask, xp.float32), block, 1, "mask")
        return bool(xp.all((tiles == 0) | (tiles == math.prod(block))))
    n, m = pattern.nm
    moved = xp.moveaxis(xp.astype(~mask, int_dtype(xp, mask, m)), pattern.axis_or(-1) % mask.ndim, -1)
    groups = xp.reshape(moved, (*moved.shape[:-1], moved.shape[-1] // m, m))
    return bool(xp.all(xp.sum(groups, axis=-1) >= n))


def _pattern_fits_shape(pattern: SparsityPattern, shape: tuple[int, ...]) -> bool:
    """Whether a mask of ``shape`` can have ``pattern`` at all (axis exists, sizes divide)."""
    if not shape:
        return False
    if pattern.kind is PatternKind.BLOCK_STRUCTURED:
        try:
            check_block_shape(shape, pattern.block or ())
        except ValueError:
            return False
        return True
    default = -1 if pattern.kind in NM_KINDS else 0
    if not -len(shape) <= pattern.axis_or(default) < len(shape):
        return False
    return pattern.kind not in NM_KINDS or shape[pattern.axis_or(-1)] % (pattern.m or 1) == 0


# -- builders -------------------------------------------------------------------
def topk_mask(scores: Array, /, sparsity: float | int, *, magnitude: bool = False) -> PruningMask:
    """Unstructured mask pruning exactly ``round(sparsity * size)`` lowest scores.

    Runs in linear time (a parallel radix select on NumPy and CPU torch; no
    sort), with ties broken toward the lower flat index.

    Dask: the threshold is eager (2 passes of per-chunk histograms for 32-bit
    keys, 4 for float64 and int64, one more counting the ties when the cut
    falls among them; inputs under 16 MiB are persisted first); the mask is
    lazy and equals NumPy's bit for bit. NaN raises here, with the count.

    Parameters
    ----------
    scores : array
        Any shape, real dtype.
    sparsity : float or int
        Fraction in ``[0, 1]`` or a count of elements to prune.
    magnitude : bool
        Rank by ``|scores|`` instead, computed on the fly without a temporary:
        ``topk_mask(w, s, magnitude=True)`` is magnitude pruning of ``w``.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> asp.topk_mask(np.array([0.3, -2.0, 1.0, 0.1]), 0.5, magnitude=True).mask
    array([False,  True,  True, False])
    """
    xp = _scores_namespace(scores, magnitude)
    count = prune_count(sparsity, math.prod(scores.shape))
    keep = _backends.topk_keep(xp, scores, count, magnitude=magnitude, name="scores")
    return _counted(PruningMask(keep, SparsityPattern.unstructured()), count)


def nm_mask(
    scores: Array, /, n: int, m: int, *, axis: int = -1, magnitude: bool = False
) -> PruningMask:
    """N:M mask: exactly ``n`` zeros in every group of ``m`` consecutive values along ``axis``.

    ``n`` counts **zeros** (the seed's convention; NVIDIA's "2:4" keeps 2 of 4,
    which is also ``n=2, m=4`` here). Groups never cross the axis: its length
    must be divisible by ``m``. Within a group the lowest scores are pruned,
    ties toward the lower position.

    Dask: lazy, chunk by chunk (the axis is rechunked to whole groups); NaN
    raises when the chunk holding it is computed, naming the chunk.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> asp.nm_mask(np.array([[4.0, 1.0, 3.0, 2.0]]), 2, 4).mask
    array([[ True, False,  True, False]])
    """
    n, m = check_nm(n, m)
    xp = _scores_namespace(scores, magnitude)
    if scores.ndim == 0:
        msg = "scores is 0-d; N:M groups need an axis"
        raise ValueError(msg)
    ax = normalize_axis(axis, scores.ndim)
    length = scores.shape[ax]
    if length % m:
        msg = (
            f"m={m} must divide the length {length} of axis {axis} "
            f"(shape {tuple(scores.shape)}); groups never cross rows and no tail is pruned silently"
        )
        raise ValueError(msg)
    keep = _backends.nm_keep(xp, scores, n, m, ax, magnitude=magnitude, name="scores")
    return _counted(PruningMask(keep, SparsityPattern.n_m(n, m, axis=axis)), math.prod(scores.shape) // m * n)


def structured_mask(
    scores: Array, /, sparsity: float | int, *, axis: int = 0, ord: float = 2
) -> PruningMask:
    """Prune whole slices along ``axis``: the ``round(sparsity * shape[axis])`` lowest-norm ones.

    Slices are ranked by the Lp norm of their scores (``ord``: any ``p > 0`` or
    ``inf``); ties toward the lower index. On tie-free inputs this is
    ``torch.nn.utils.prune.ln_structured(n=ord, dim=axis)``. The mask's pattern
    is :meth:`SparsityPattern.slices`; use :func:`create_mask` with
    ``SparsityPattern.rows()`` / ``filters()`` / ... to label it otherwise.

    Dask: the norms are lazy (chunks hold whole slices), their top-k
    threshold eager as in :func:`topk_mask`; the mask is lazy.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> w = np.array([[1.0, 1.0], [5.0, 0.0], [0.1, 0.2]])
    >>> asp.structured_mask(w, 1, axis=0).mask
    array([[ True,  True],
           [ True,  True],
           [False, False]])
    """
    return _slice_mask(scores, sparsity, SparsityPattern.slices(axis), ord)


def _slice_mask(scores: Array, sparsity: float | int, pattern: SparsityPattern, ord: float) -> PruningMask:
    xp = array_namespace(scores=scores)
    norms = _structure_scores(scores, pattern.axis_or(0), ord, "scores")
    ax = normalize_axis(pattern.axis, scores.ndim)
    count = prune_count(sparsity, scores.shape[ax])
    keep1 = _backends.topk_keep(xp, norms, count, magnitude=False, name="structure norms")
    shape = [1] * scores.ndim
    shape[ax] = scores.shape[ax]
    keep = xp.zeros(tuple(scores.shape), dtype=xp.bool, device=device(scores)) | xp.reshape(keep1, tuple(shape))
    per_slice = math.prod(scores.shape) // scores.shape[ax] if scores.shape[ax] else 0
    return _counted(PruningMask(keep, pattern), count * per_slice)


def block_mask(
    scores: Array, /, sparsity: float | int, *, block: tuple[int, ...] = (4, 4), ord: float = 2
) -> PruningMask:
    """Prune whole tiles of shape ``block`` over the trailing axes, lowest Lp norm first.

    ``round(sparsity * number_of_tiles)`` tiles are pruned, ranked together
    across any leading axes; ties toward the lower C-order tile index. The
    trailing axes must be divisible by ``block``.

    Dask: the tile norms are lazy, their top-k threshold eager as in
    :func:`topk_mask`; the mask is lazy.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> s = np.array([[1.0, 1.0, 0.0, 0.1], [1.0, 1.0, 0.2, 0.0]])
    >>> asp.block_mask(s, 0.5, block=(2, 2)).mask
    array([[ True,  True, False, False],
           [ True,  True, False, False]])
    """
    pattern = SparsityPattern.blocks(block)
    xp = array_namespace(scores=scores)
    norms = _block_scores(scores, pattern.block or (), ord, "scores")
    count = prune_count(sparsity, math.prod(norms.shape))
    keep_tiles = _backends.topk_keep(xp, norms, count, magnitude=False, name="block norms")
    k = len(pattern.block or ())
    lead = tuple(scores.shape[: scores.ndim - k])
    tiles = tuple(norms.shape[len(lead) :])
    spread: list[int] = list(lead)
    full: list[int] = list(lead)
    for t, b in zip(tiles, pattern.block or ()):
        spread += [t, 1]
        full += [t, b]
    keep = xp.zeros(tuple(full), dtype=xp.bool, device=device(scores)) | xp.reshape(keep_tiles, tuple(spread))
    return _counted(PruningMask(xp.reshape(keep, tuple(scores.shape)), pattern), count * math.prod(pattern.block or ()))


def random_mask(
    like: Array,
    /,
    sparsity: float | int | None = None,
    *,
    seed: int | Any = None,
    pattern: SparsityPattern | None = None,
) -> PruningMask:
    """A random mask of ``like``'s shape, namespace and device, exact in its count.

    Equivalent to ranking by :func:`random_scores` (a seeded permutation), so a
    seed gives the same mask on every backend. Works with any pattern; for
    N:M patterns ``sparsity`` may be omitted. Dask: as :func:`create_mask`.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> asp.random_mask(np.zeros(10), 0.3, seed=0).num_pruned
    3
    """
    return create_mask(random_scores(like, seed=seed), sparsity, pattern)


def create_mask(
    scores: Array,
    /,
    sparsity: float | int | None = None,
    pattern: SparsityPattern | None = None,
    *,
    ord: float = 2,
    magnitude: bool = False,
) -> PruningMask:
    """Build the mask of any :class:`SparsityPattern` from element scores.

    The one entry point the strategies use: unstructured -> :func:`topk_mask`;
    rows, columns, filters, channels, slices -> structures ranked by the Lp
    norm (``ord``) of their scores; blocks -> :func:`block_mask`; 2:4 and N:M ->
    :func:`nm_mask` (``sparsity`` may be omitted, and must equal ``n / m`` if given).
    Dask: N:M is lazy; the other patterns compute their top-k threshold
    (see :func:`topk_mask`) and return a lazy mask.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> s = np.arange(8.0).reshape(2, 4)
    >>> asp.create_mask(s, 0.5, asp.SparsityPattern.rows()).mask
    array([[False, False, False, False],
           [ True,  True,  True,  True]])
    """
    if pattern is None:
        pattern = SparsityPattern.unstructured()
    if not isinstance(pattern, SparsityPattern):
        msg = f"pattern must be a SparsityPattern, got {type(pattern).__name__}"
        raise TypeError(msg)
    if pattern.kind in NM_KINDS:
        n, m = pattern.nm
        if sparsity is not None:
            if isinstance(sparsity, (bool, np.bool_)):
                msg = f"sparsity={sparsity!r} is a bool; N:M patterns take sparsity=None"
                raise TypeError(msg)
            if not isinstance(sparsity, numbers.Real) or not math.isclose(float(sparsity), n / m):
                msg = (
                    f"sparsity={sparsity!r} disagrees with the pattern {pattern}, which fixes "
                    f"sparsity at {n / m:g}; pass sparsity=None"
                )
                raise ValueError(msg)
        return nm_mask(scores, n, m, axis=pattern.axis_or(-1), magnitude=magnitude)
    if sparsity is None:
        msg = f"sparsity is required for the pattern {pattern}"
        raise ValueError(msg)
    if pattern.kind is PatternKind.UNSTRUCTURED:
        return topk_mask(scores, sparsity, magnitude=magnitude)
    ord = check_ord(ord)
    if pattern.kind is PatternKind.BLOCK_STRUCTURED:
        tiles = block_mask(scores, sparsity, block=pattern.block or (), ord=ord)
        return _counted(PruningMask(tiles.mask, pattern), tiles._pruned)
    return _slice_mask(scores, sparsity, pattern, ord)


def apply_mask(weights: Array, mask: PruningMask | Array, /, *, inplace: bool = False) -> Array:
    """``weights`` with pruned values set to zero.

    ``inplace=False`` returns a new array and leaves ``weights`` untouched;
    ``inplace=True`` writes into ``weights`` (``ValueError`` when it is
    read-only, as read-only NumPy and JAX arrays are) and returns it. NaN and
    inf in pruned positions become 0; kept values are untouched. Dask: lazy
    (in place replaces the array's graph).

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> w = np.array([1.0, -2.0, 3.0])
    >>> asp.apply_mask(w, np.array([True, False, True]))
    array([1., 0., 3.])
    """
    keep = mask.mask if isinstance(mask, PruningMask) else mask
    xp = array_namespace(weights=weights, mask=keep)
    if keep.dtype != xp.bool:
        msg = f"mask must have dtype bool (True = keep), got {keep.dtype}"
        raise TypeError(msg)
    check_known_shape(weights, "weights")
    check_known_shape(keep, "mask")
    check_same_shape(weights, keep, "weights", "mask")
    check_has_zero(weights, "weights", "pruning writes zeros")
    zero = xp.zeros((), dtype=weights.dtype, device=device(weights))
    if not inplace:
        return xp.where(keep, weights, zero)
    if not is_writable(weights):
        msg = (
            f"weights is read-only ({backend_name(weights)} array); "
            "use apply_mask(weights, mask) to get a new array"
        )
        raise ValueError(msg)
    _zero_pruned(xp, weights, keep)
    return weights


def _zero_pruned(xp: Any, weights: Array, keep: Array) -> None:
    name = backend_name(weights)
    if name == "numpy":
        np.copyto(weights, 0, where=~keep)
    elif name == "torch":
        torch = optional_import("torch", purpose="reading a torch tensor")
        with torch.no_grad():
            weights.masked_fill_(~keep, 0)
    else:
        weights[~keep] = xp.zeros((), dtype=weights.dtype, device=device(weights))


def _scores_namespace(scores: Array, magnitude: bool) -> Any:
    xp = array_namespace(scores=scores)
    if not isinstance(magnitude, bool):
        msg = f"magnitude must be a bool, got {magnitude!r}"
        raise TypeError(msg)
    check_real(xp, scores, "scores")
    return xp
