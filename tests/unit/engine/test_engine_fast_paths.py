"""The engine's cheaper cold-path forms give exactly what the plain forms gave.

A cold decision's interpreter time counts (issue 8), so some results are built without the
generic machinery: the result dataclasses store their fields in one call, ``_whole`` rounds
instead of formatting, ``_quantised`` looks the 5 % grid's points up, ``_count`` takes a whole
value as it is. A mistake in any of them
would change published decisions by a last digit; these checks pin them to the plain forms.
"""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from streams.engine.decide import PacingDecision, _whole
from streams.engine.plan import Plan
from streams.engine.progressive import _GRID, _quantised
from streams.engine.queueing import SteadyState
from streams.engine.rates import MAX_COUNT, Observation, _count


@pytest.mark.parametrize("cls", [Observation, Plan, PacingDecision, SteadyState])
def test_result_classes_store_every_field_and_stay_frozen(cls: type) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    values = [float(i + 1) for i in range(len(names))]
    built = cls(*values)
    assert [getattr(built, name) for name in names] == values
    assert built == cls(**dict(zip(names, values, strict=True)))
    assert dataclasses.replace(built, **{names[0]: -1.0}) == cls(-1.0, *values[1:])
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, names[0], 0.0)


def test_defaults_are_the_declared_ones() -> None:
    assert Plan(3) == Plan(3, 1.0, None, None)
    assert PacingDecision(1, 1.0, True, "X", 0.5).figures == {}
    observation = Observation(1, 0, 1, 0, 0, 100.0, 0.3, 0.0, 0.0, 60.0, 600.0, None, None)
    assert (observation.abandonment_excluding_short, observation.age_s, observation.offers_since) == (None, 0.0, 0.0)


def test_whole_is_the_zero_decimal_format() -> None:
    rnd = random.Random(8)
    values = [0.0, -0.0, 0.5, 1.5, 2.5, -0.5, -0.3, 0.49999999999999994, 2.4999999999999996,
              4503599627370495.5, 1e15 - 0.5, 1e15, 1e20, 5e-324, math.inf, -math.inf, math.nan]
    values += [rnd.uniform(0, 1000) for _ in range(3000)] + [rnd.randint(0, 10**6) + 0.5 for _ in range(3000)]
    values += [10 ** rnd.uniform(-6, 17) for _ in range(3000)]
    assert [v for v in values if _whole(v) != f"{v:.0f}"] == []


def test_quantised_is_the_formula_inside_and_outside_the_table() -> None:
    def formula(value: float) -> float:
        return 0.0 if value <= 0 else float(f"{math.exp(round(math.log(value) / _GRID) * _GRID):.4g}")

    rnd = random.Random(9)
    values = [10 ** rnd.uniform(-12, 12) for _ in range(20000)] + [0.0, -3.0, 5e-324, 1e300]
    assert [v for v in values if repr(_quantised(v)) != repr(formula(v))] == []


def test_count_is_the_clamped_rounding() -> None:
    values = [0.0, -0.0, 0.5, 1.5, 2.5, -0.5, -1.5, 3.0, 7, -3, 9999.5, 10000.5, 10001.0, 1e20, -1e20]
    values += [i / 4 for i in range(-400, 48000)]
    expected = [min(MAX_COUNT, max(0, round(v))) for v in values]
    assert [_count(v) for v in values] == expected
    assert all(type(_count(v)) is int for v in values)
    for bad in (math.nan, math.inf):
        with pytest.raises((ValueError, OverflowError)):
            _count(bad)
