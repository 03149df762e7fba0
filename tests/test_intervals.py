"""The Wilson bounds (costmesh.intervals): the lower bound of a rate mirrors the upper bound of its
complement, and a quality estimate without verdicts knows nothing."""

from __future__ import annotations

import pytest

from costmesh.intervals import quality_bound, wilson_lower, wilson_upper


def test_the_lower_bound_mirrors_the_upper_bound_of_the_complement():
    for rate, n in ((0.5, 6), (0.9, 100), (1.0, 3), (0.0, 10)):
        assert wilson_lower(rate, n) == pytest.approx(1 - wilson_upper(1 - rate, n))
        assert 0.0 <= wilson_lower(rate, n) <= rate <= wilson_upper(rate, n) <= 1.0
    assert wilson_lower(0.5, 6) == pytest.approx(0.2212, abs=1e-4)
    assert wilson_lower(1.0, 52) > 0.95 > wilson_lower(1.0, 51)  # 52 clean verdicts to pass a 95% target
    assert wilson_lower(0.7, 0) == 0.7


def test_a_quality_estimate_without_verdicts_knows_nothing():
    assert quality_bound(0, 0) == (1.0, 0.0)
    assert quality_bound(9, 10) == (0.9, pytest.approx(wilson_lower(0.9, 10)))
