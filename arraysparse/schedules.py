"""Gradual pruning schedules: the target sparsity at each training step.

A schedule rises from ``initial`` at ``begin_step`` to ``final`` at
``end_step``, changing only on update steps ``begin_step + j * frequency``
(between them it holds its last value; before ``begin_step`` it is
``initial``, from ``end_step`` on ``final``). Three shapes, as functions of
the progress ``p = (update_step - begin_step) / (end_step - begin_step)``:

* :class:`CubicSchedule` (Zhu & Gupta 2017, torch.ao ``CubicSL``):
  ``s_f + (s_0 - s_f) * (1 - p)**3``, fast early, slow late. (Intel Neural
  Compressor's "cube" is the opposite, ``s_0 + (s_f - s_0) * p**3``.)
* :class:`LinearSchedule`: ``s_0 + (s_f - s_0) * p``.
* :class:`ExponentialSchedule`: the *kept* fraction decays geometrically,
  ``1 - (1 - s_0) * ((1 - s_f) / (1 - s_0))**p``: every equal stretch of
  progress prunes the same fraction of what remains (the lottery ticket's
  per-round rate ``1 - (1 - s)**(1/R)`` at ``R`` evenly spaced updates).

**Compounding.** :meth:`PruningSchedule.sparsity_at` is always the
*absolute* target: the fraction of all weights pruned, earlier pruning
included. What you pass to a pruning call depends on how that call counts,
selected with ``compounding``:

* ``"absolute"``: the call prunes a fraction of all weights, already pruned
  ones included (``global_mask``, ``topk_mask`` on weights whose pruned
  values are zero and so rank first). :meth:`~PruningSchedule.amount_at`
  returns the absolute target.
* ``"relative"``: the call prunes a fraction of what remains, as repeated
  ``torch.nn.utils.prune`` calls do (0.5 twice = 75%).
  :meth:`~PruningSchedule.amount_at` returns ``(target - current) / (1 - current)``.

:func:`to_relative` and :func:`to_absolute` convert one into the other for
a given current sparsity; :meth:`~PruningSchedule.count_at` gives the number
of weights still to prune now, given the current mask.
"""

from __future__ import annotations

import abc
import numbers
from typing import Any

from ._validation import positive_int, prune_count

__all__ = [
    "COMPOUNDING",
    "CubicSchedule",
    "ExponentialSchedule",
    "LinearSchedule",
    "PruningSchedule",
    "to_absolute",
    "to_relative",
]

COMPOUNDING = ("absolute", "relative")
"""The compounding rules a schedule can follow (what :meth:`PruningSchedule.amount_at` returns)."""


def _fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"{name} must be a float fraction in [0, 1], got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    v = float(value)
    if not 0.0 <= v <= 1.0:
        msg = f"{name}={value!r} must be a fraction in [0, 1]"
        raise ValueError(msg)
    return v


def _current_sparsity(current: Any) -> float:
    """A sparsity from a float, a PruningMask or a ModelMask (anything with ``.sparsity``)."""
    if hasattr(current, "sparsity") and not isinstance(current, numbers.Real):
        return float(current.sparsity)
    return _fraction(current, "current")


def to_relative(target: float, current: Any) -> float:
    """Fraction of the *remaining* weights to prune so that ``target`` of all are pruned.

    ``(target - current) / (1 - current)``; ``current`` is a sparsity or a
    mask (``PruningMask`` / ``ModelMask``). Pruning never regrows weights:
    a target below the current sparsity raises ``ValueError``.

    Examples
    --------
    >>> from arraysparse.schedules import to_relative
    >>> to_relative(0.75, 0.5)  # torch-style: prune half of the remaining half
    0.5
    """
    t = _fraction(target, "target")
    c = _current_sparsity(current)
    if t < c:
        msg = f"target={target!r} is below the current sparsity {c!r}; pruning does not regrow weights"
        raise ValueError(msg)
    return 0.0 if c == 1.0 else (t - c) / (1.0 - c)


def to_absolute(amount: float, current: Any) -> float:
    """Sparsity of all weights after pruning ``amount`` of the remaining ones.

    ``current + amount * (1 - current)``: the inverse of :func:`to_relative`.

    Examples
    --------
    >>> from arraysparse.schedules import to_absolute
    >>> to_absolute(0.5, to_absolute(0.5, 0.0))  # 0.5 twice compounds to 75%
    0.75
    """
    a = _fraction(amount, "amount")
    c = _current_sparsity(current)
    return c + a * (1.0 - c)


class PruningSchedule(abc.ABC):
    """Target sparsity per step; subclasses give the shape (see the module docs).

    Parameters
    ----------
    final : float
        Sparsity reached at ``end_step``.
    end_step : int
        First step at the final sparsity; must exceed ``begin_step``.
    initial : float
        Sparsity at ``begin_step`` (and before it); at most ``final``.
    begin_step : int
        Step of the first update (``>= 0``).
    frequency : int
        Steps between updates (``>= 1``); the sparsity holds in between.
    compounding : {"absolute", "relative"}
        What :meth:`amount_at` returns (see the module docs).

    Attributes
    ----------
    final, initial : float
        The sparsities at ``end_step`` and ``begin_step``.
    begin_step, end_step, frequency : int
        First update step, first step at ``final``, steps between updates.
    compounding : str
        ``"absolute"`` or ``"relative"``.
    """

    def __init__(
        self,
        final: float,
        end_step: int,
        *,
        initial: float = 0.0,
        begin_step: int = 0,
        frequency: int = 1,
        compounding: str = "absolute",
    ):
        self.final = _fraction(final, "final")
        self.initial = _fraction(initial, "initial")
        if self.initial > self.final:
            msg = f"initial={initial!r} exceeds final={final!r}; a pruning schedule only rises"
            raise ValueError(msg)
        self.begin_step = positive_int(begin_step, "begin_step", minimum=0)
        self.end_step = positive_int(end_step, "end_step", minimum=0)
        if self.end_step <= self.begin_step:
            msg = f"end_step={end_step!r} must exceed begin_step={begin_step!r}"
            raise ValueError(msg)
        self.frequency = positive_int(frequency, "frequency")
        if compounding not in COMPOUNDING:
            msg = f"compounding={compounding!r} must be one of {COMPOUNDING}"
            raise ValueError(msg)
        self.compounding = compounding

    @abc.abstractmethod
    def _shape(self, progress: float) -> float:
        """Absolute sparsity at ``progress`` in [0, 1]."""

    def _step(self, step: Any) -> int:
        return positive_int(step, "step", minimum=0)

    def last_update(self, step: int) -> int | None:
        """The latest update step at or before ``step`` (``None`` before ``begin_step``)."""
        step = self._step(step)
        if step < self.begin_step:
            return None
        if step >= self.end_step:
            return self.end_step
        return self.begin_step + (step - self.begin_step) // self.frequency * self.frequency

    def is_update_step(self, step: int) -> bool:
        """Whether the target changes at ``step`` (``begin_step + j * frequency``, or ``end_step``)."""
        return self.last_update(step) == self._step(step)

    def update_steps(self) -> list[int]:
        """Every update step, ``begin_step`` to ``end_step`` included."""
        steps = list(range(self.begin_step, self.end_step, self.frequency))
        return [*steps, self.end_step]

    def sparsity_at(self, step: int) -> float:
        """The absolute target sparsity at ``step``.

        Examples
        --------
        >>> from arraysparse.schedules import CubicSchedule
        >>> s = CubicSchedule(0.8, end_step=100, frequency=10)
        >>> [round(s.sparsity_at(t), 4) for t in (0, 9, 10, 50, 100, 500)]
        [0.0, 0.0, 0.2168, 0.7, 0.8, 0.8]
        """
        at = self.last_update(step)
        if at is None:
            return self.initial
        progress = (at - self.begin_step) / (self.end_step - self.begin_step)
        value = self._shape(min(1.0, progress))
        return min(self.final, max(self.initial, value))  # no rounding drift outside [s_0, s_f]

    __call__ = sparsity_at

    def amount_at(self, step: int, current: Any = None) -> float:
        """What to pass to the pruning call at ``step`` under this schedule's compounding rule.

        ``"absolute"``: :meth:`sparsity_at`. ``"relative"``: the fraction of
        the remaining weights to prune now, from ``current`` (a sparsity or
        a mask). Without ``current`` the schedule is assumed followed so
        far: the amount is 0 off update steps, ``initial`` at ``begin_step``
        and takes the previous update's target to this one's otherwise, so
        the amounts compound (:func:`to_absolute`) to :meth:`sparsity_at`.
        """
        target = self.sparsity_at(step)
        if self.compounding == "absolute":
            return target
        if current is None:
            if not self.is_update_step(step):
                return 0.0  # relative amounts apply on update steps only
            at = self._step(step)
            current = 0.0 if at == self.begin_step else self.sparsity_at(self._previous_update(at))
        return to_relative(target, current)

    def _previous_update(self, at: int) -> int:
        if at == self.end_step:
            return self.begin_step + (self.end_step - 1 - self.begin_step) // self.frequency * self.frequency
        return at - self.frequency

    def count_at(self, step: int, mask: Any) -> int:
        """How many more weights to prune at ``step`` given the current ``mask``.

        ``mask`` is a ``PruningMask`` or ``ModelMask`` (``.size`` and
        ``.num_pruned``). The absolute target is rounded with the library's
        count rule, so the count brings the mask exactly to
        ``round(target * size)`` pruned; 0 when it is already there.
        """
        size, pruned = int(mask.size), int(mask.num_pruned)
        return max(0, prune_count(self.sparsity_at(step), size) - pruned)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(final={self.final:g}, end_step={self.end_step}, initial={self.initial:g}, "
            f"begin_step={self.begin_step}, frequency={self.frequency}, compounding={self.compounding!r})"
        )


class CubicSchedule(PruningSchedule):
    """Zhu & Gupta: ``s_f + (s_0 - s_f) * (1 - p)**3`` (torch.ao ``CubicSL``).

    Examples
    --------
    >>> from arraysparse.schedules import CubicSchedule
    >>> s = CubicSchedule(0.9, end_step=1000, begin_step=200, frequency=100)
    >>> s(150), s(250), round(s(300), 4), round(s(399), 4), round(s(600), 4), s(1200)
    (0.0, 0.0, 0.2971, 0.2971, 0.7875, 0.9)
    """

    def _shape(self, progress: float) -> float:
        return self.final + (self.initial - self.final) * (1.0 - progress) ** 3


class LinearSchedule(PruningSchedule):
    """``s_0 + (s_f - s_0) * p``.

    Examples
    --------
    >>> from arraysparse.schedules import LinearSchedule
    >>> LinearSchedule(0.5, end_step=10)(4)
    0.2
    """

    def _shape(self, progress: float) -> float:
        return self.initial + (self.final - self.initial) * progress


class ExponentialSchedule(PruningSchedule):
    """Kept fraction decays geometrically: ``1 - (1 - s_0) * ((1 - s_f) / (1 - s_0))**p``.

    Examples
    --------
    >>> from arraysparse.schedules import ExponentialSchedule
    >>> s = ExponentialSchedule(0.75, end_step=2, compounding="relative")
    >>> s(1), s.amount_at(1), s.amount_at(2)  # half of what remains, twice
    (0.5, 0.5, 0.5)
    """

    def _shape(self, progress: float) -> float:
        if self.initial == 1.0:
            return 1.0
        kept0, kept1 = 1.0 - self.initial, 1.0 - self.final
        return 1.0 - kept0 * (kept1 / kept0) ** progress  # 0.0 ** p = 0 for p > 0: final = 1 works
