"""Pruning schedules: formulas, torch.ao's CubicSL, update steps, compounding rules, errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from torch.ao.pruning.scheduler.cubic_scheduler import CubicSL

from arraysparse.masks import PruningMask
from arraysparse.model import ModelMask
from arraysparse.schedules import (
    CubicSchedule,
    ExponentialSchedule,
    LinearSchedule,
    to_absolute,
    to_relative,
)

fractions = st.floats(0.0, 1.0)


@st.composite
def schedule_args(draw):
    s0, sf = sorted(draw(st.lists(fractions, min_size=2, max_size=2)))
    begin = draw(st.integers(0, 50))
    end = begin + draw(st.integers(1, 200))
    freq = draw(st.integers(1, 30))
    return {"final": sf, "end_step": end, "initial": s0, "begin_step": begin, "frequency": freq}


def reference(kind: str, args: dict, t: int) -> float:
    """The formulas, written out: progress is quantised to the last update step."""
    s0, sf, t0, t1, dt = args["initial"], args["final"], args["begin_step"], args["end_step"], args["frequency"]
    if t < t0:
        return s0
    at = t1 if t >= t1 else t0 + (t - t0) // dt * dt
    p = (at - t0) / (t1 - t0)
    if kind == "cubic":
        return sf + (s0 - sf) * (1 - p) ** 3
    if kind == "linear":
        return s0 + (sf - s0) * p
    return 1 - (1 - s0) * ((1 - sf) / (1 - s0)) ** p if s0 < 1 else 1.0


CLASSES = {"cubic": CubicSchedule, "linear": LinearSchedule, "exponential": ExponentialSchedule}


@pytest.mark.parametrize("kind", list(CLASSES))
@given(args=schedule_args(), t=st.integers(0, 400))
def test_schedules_follow_their_formulas_and_stay_in_range(kind: str, args: dict, t: int) -> None:
    s = CLASSES[kind](**args)
    got = s.sparsity_at(t)
    assert got == pytest.approx(reference(kind, args, t), abs=1e-12)
    assert args["initial"] <= got <= args["final"]
    assert s(t) == got
    assert s.sparsity_at(args["end_step"]) == pytest.approx(args["final"], abs=1e-12)
    assert s.sparsity_at(args["begin_step"]) == pytest.approx(args["initial"], abs=1e-12)


@pytest.mark.parametrize("kind", list(CLASSES))
@given(args=schedule_args())
def test_monotone_and_constant_between_updates(kind: str, args: dict) -> None:
    s = CLASSES[kind](**args)
    values = [s(t) for t in range(args["end_step"] + 5)]
    assert all(a <= b + 1e-15 for a, b in itertools.pairwise(values))
    updates = set(s.update_steps())
    for t in range(1, len(values)):
        if t not in updates:
            assert values[t] == values[t - 1]
        assert s.is_update_step(t) == (t in updates)


@given(
    s0=st.floats(0, 0.5), sf=st.floats(0.5, 1.0), t0=st.integers(0, 20), dt=st.integers(1, 10),
    n=st.integers(1, 20), t=st.integers(0, 300),
)
def test_cubic_matches_torch_cubic_sl(s0: float, sf: float, t0: int, dt: int, n: int, t: int) -> None:
    """torch.ao's CubicSL is continuous in t: it agrees at frequency 1, and on update steps at frequency dt."""
    torch_value = CubicSL.sparsity_compute_fn(s0, sf, t, t0, dt, n)
    every_step = CubicSchedule(sf, end_step=t0 + dt * n, initial=s0, begin_step=t0)
    assert every_step(t) == pytest.approx(torch_value, abs=1e-12)
    on_updates = CubicSchedule(sf, end_step=t0 + dt * n, initial=s0, begin_step=t0, frequency=dt)
    if on_updates.is_update_step(t) or t < t0:
        assert on_updates(t) == pytest.approx(torch_value, abs=1e-12)


def test_zhu_gupta_values() -> None:
    """The paper's shape: 0 -> 0.875 over 100 steps is at 1 - (1 - 0.5)**3 of the way at half time."""
    s = CubicSchedule(0.875, end_step=100)
    assert s(50) == pytest.approx(0.875 * (1 - 0.5**3))
    assert s(0) == 0.0 and s(100) == 0.875 and s(10**6) == 0.875


# -- compounding -------------------------------------------------------------------
def test_relative_compounds_like_torch_prune() -> None:
    assert to_absolute(0.5, 0.5) == 0.75
    assert to_relative(0.75, 0.5) == 0.5
    assert to_relative(1.0, 1.0) == 0.0
    with pytest.raises(ValueError, match="does not regrow"):
        to_relative(0.2, 0.5)


@given(target=fractions, current=fractions)
def test_conversions_invert_each_other(target: float, current: float) -> None:
    if target < current:
        return
    assert to_absolute(to_relative(target, current), current) == pytest.approx(target, abs=1e-12)


@pytest.mark.parametrize("kind", list(CLASSES))
@given(args=schedule_args())
def test_relative_amounts_compound_to_the_absolute_targets(kind: str, args: dict) -> None:
    rel = CLASSES[kind](**args, compounding="relative")
    absolute = CLASSES[kind](**args)
    current = 0.0
    for t in range(args["end_step"] + 3):
        current = to_absolute(rel.amount_at(t), current)
        if t >= args["begin_step"]:
            assert current == pytest.approx(absolute.amount_at(t), abs=1e-9)
        assert absolute.amount_at(t) == absolute(t)


def test_amounts_from_a_current_mask() -> None:
    s = LinearSchedule(0.8, end_step=10, compounding="relative")
    mask = PruningMask(np.array([True, False, True, True, True]))  # 20% pruned
    assert s.amount_at(5, mask) == pytest.approx((0.4 - 0.2) / 0.8)
    mm = ModelMask({"a": np.array([True, False]), "b": np.array([True, True, False, True])})
    assert s.amount_at(10, mm) == pytest.approx((0.8 - 2 / 6) / (1 - 2 / 6))
    assert s.count_at(10, mm) == round(0.8 * 6) - 2
    assert s.count_at(0, mm) == 0


def test_exponential_prunes_a_constant_fraction_of_what_remains() -> None:
    rounds, final = 4, 0.9
    s = ExponentialSchedule(final, end_step=rounds, compounding="relative")
    rate = 1 - (1 - final) ** (1 / rounds)  # the lottery ticket's per-round rate
    assert [s.amount_at(t) for t in range(1, rounds + 1)] == pytest.approx([rate] * rounds)
    assert ExponentialSchedule(1.0, end_step=3)(1) == 1.0
    assert ExponentialSchedule(1.0, end_step=3, initial=1.0)(1) == 1.0
    assert math.isclose(ExponentialSchedule(0.5, end_step=2, initial=0.5)(1), 0.5)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="final"):
        CubicSchedule(1.5, end_step=10)
    with pytest.raises(TypeError, match="final"):
        CubicSchedule(True, end_step=10)
    with pytest.raises(ValueError, match="exceeds final"):
        CubicSchedule(0.5, end_step=10, initial=0.6)
    with pytest.raises(ValueError, match="must exceed begin_step"):
        CubicSchedule(0.5, end_step=10, begin_step=10)
    with pytest.raises(ValueError, match="frequency"):
        LinearSchedule(0.5, end_step=10, frequency=0)
    with pytest.raises(TypeError, match="end_step"):
        LinearSchedule(0.5, end_step=10.0)
    with pytest.raises(ValueError, match="compounding"):
        LinearSchedule(0.5, end_step=10, compounding="torch")
    with pytest.raises(ValueError, match="step"):
        LinearSchedule(0.5, end_step=10)(-1)
    with pytest.raises(TypeError, match="current"):
        to_relative(0.5, "half")
    assert "compounding='absolute'" in repr(LinearSchedule(0.5, end_step=10))
