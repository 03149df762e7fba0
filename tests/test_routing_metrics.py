"""Router metrics (quality curve, premium share at 95%, APGR) and the operating point."""

from __future__ import annotations

import numpy as np
import pytest

from costmesh.errors import InvalidRequest
from costmesh.routing.calibration import OperatingPoint, calibrated_threshold, expected_at, threshold_for
from costmesh.routing.metrics import curve, random_curve, summary

# 10 prompts: the strong model wins on 0-3, the weak one on 9, they tie elsewhere.
WEAK = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1], dtype=float)
STRONG = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], dtype=float)


def test_perfect_router_recovers_the_gap_with_the_fewest_calls():
    perfect = STRONG - WEAK  # sends exactly the prompts where strong does better
    c = curve(perfect, WEAK, STRONG)
    assert c.weak_quality == pytest.approx(0.5) and c.strong_quality == pytest.approx(0.8)
    assert list(c.quality[:5]) == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    # 95% of 0.8 = 0.76: three strong calls reach 0.8.
    assert c.premium_share_at(0.95) == pytest.approx(0.3)
    assert c.apgr() == pytest.approx(1.0)  # 0, 1/3, 2/3, 1, then 4/3 six times, then 1


def test_random_router_is_the_straight_line():
    c = random_curve(WEAK, STRONG)
    assert list(c.quality) == pytest.approx(list(np.linspace(0.5, 0.8, 11)))
    assert c.apgr() == pytest.approx(0.5)
    assert c.premium_share_at(0.95) == pytest.approx(0.9)  # 0.5 + 0.03 k >= 0.76 -> k = 9


def test_ties_are_the_expectation_over_tie_breaks():
    # Every score equal: the same as random, whatever order the rows come in.
    assert list(curve(np.ones(10), WEAK, STRONG).quality) == pytest.approx(list(random_curve(WEAK, STRONG).quality))
    # Two blocks: the first four (all wins) then the rest.
    scores = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=float)
    c = curve(scores, WEAK, STRONG)
    assert c.quality[4] == pytest.approx(0.9)
    assert c.quality[10] == pytest.approx(0.8)
    assert c.quality[7] == pytest.approx(0.9 - 0.1 * 3 / 6)  # linear inside the block


def test_worst_router_needs_every_call_and_summary_has_the_keys():
    c = curve(-(STRONG - WEAK), WEAK, STRONG)
    figures = summary(c)
    assert set(figures) == {"weak_quality", "strong_quality", "premium_share_at_95", "apgr"}
    assert figures["premium_share_at_95"] == pytest.approx(1.0)
    assert figures["apgr"] < 0.5


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        curve([1.0], WEAK, STRONG)
    with pytest.raises(ValueError):
        random_curve([], [])


def test_threshold_for_a_quality_target_and_what_it_gives():
    scores = STRONG - WEAK + np.linspace(0, 0.01, 10)  # wins first, distinct scores
    t = threshold_for(OperatingPoint(quality_target=0.95), scores, WEAK, STRONG)
    got = expected_at(t, scores, WEAK, STRONG)
    assert got.premium_share == pytest.approx(0.3)
    assert got.quality_fraction >= 0.95


def test_threshold_for_a_premium_budget_never_exceeds_it_even_with_ties():
    scores = np.array([0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1])
    t = threshold_for(OperatingPoint(quality_target=None, premium_budget=0.4), scores, WEAK, STRONG)
    assert expected_at(t, scores, WEAK, STRONG).premium_share == pytest.approx(0.3)
    t0 = threshold_for(OperatingPoint(quality_target=None, premium_budget=0.0), scores, WEAK, STRONG)
    assert expected_at(t0, scores, WEAK, STRONG).premium_share == 0.0


@pytest.mark.parametrize("kwargs", [
    {"quality_target": None, "premium_budget": None},
    {"quality_target": 0.9, "premium_budget": 0.3},
    {"quality_target": 1.5},
    {"quality_target": None, "premium_budget": -0.1},
    {"quality_target": 0.95, "confidence": 1.0},
])
def test_operating_point_validation(kwargs):
    with pytest.raises(InvalidRequest):
        OperatingPoint(**kwargs)


def _population(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A noisy router: the score tells the strong model's wins apart only loosely."""
    weak = (rng.random(n) < 0.68).astype(float)
    strong = np.where(weak == 1, (rng.random(n) < 0.9).astype(float), (rng.random(n) < 0.6).astype(float))
    scores = (strong - weak) + rng.normal(0, 1.0, n)
    return scores, weak, strong


def test_a_confident_threshold_undershoots_the_target_on_new_rows_far_less_often():
    rng = np.random.default_rng(7)
    plain, sure = OperatingPoint(0.95, confidence=0.0), OperatingPoint(0.95, confidence=0.9)
    misses = {"plain": 0, "sure": 0}
    shares = {"plain": [], "sure": []}
    for trial in range(40):
        cal, new = _population(300, rng), _population(3000, rng)
        for name, point in (("plain", plain), ("sure", sure)):
            t = calibrated_threshold(point, *cal, resamples=100, seed=trial)
            got = expected_at(t, *new)
            misses[name] += got.quality_fraction < 0.95
            shares[name].append(got.premium_share)
    assert misses["plain"] >= 14  # about half the time
    assert misses["sure"] <= 10  # about one time in ten (7 with this seed)
    assert np.mean(shares["sure"]) > np.mean(shares["plain"])  # the margin is paid in premium calls


def test_confidence_leaves_a_budget_and_zero_confidence_alone():
    scores, weak, strong = _population(200, np.random.default_rng(1))
    budget = OperatingPoint(None, premium_budget=0.3, confidence=0.9)
    assert calibrated_threshold(budget, scores, weak, strong) == threshold_for(budget, scores, weak, strong)
    plain = OperatingPoint(0.95, confidence=0.0)
    assert calibrated_threshold(plain, scores, weak, strong) == threshold_for(plain, scores, weak, strong)
    assert (
        calibrated_threshold(OperatingPoint(0.95), scores, weak, strong) <= threshold_for(plain, scores, weak, strong)
    )
