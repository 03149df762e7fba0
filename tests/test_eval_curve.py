"""`costmesh eval cache --curve`: the packaged verifier's operating curve on a pairs file, the bound on
what any threshold (and so the shadow-check loop) can reach on it."""

from __future__ import annotations

import numpy as np

from costmesh.tooling.datasets import Pair
from costmesh.tooling.eval.cache_curve import curve, format_curve, score_pairs


def test_the_curve_reads_recall_and_false_hits_at_every_threshold():
    # 4 duplicates, 5 non-duplicates; -1: vetoed before scoring (never a hit)
    scores = np.array([0.95, 0.8, 0.6, -1.0, 0.9, 0.7, 0.5, 0.2, -1.0])
    duplicate = np.array([True, True, True, True, False, False, False, False, False])
    result = curve(scores, duplicate, 0.75, max_false_hit_rate=0.2, min_recall=0.5,
                   kinds=["paraphrase"] * 4 + ["negation", "entity", "entity", "number", "number"])
    assert result["calibrated"] == {"threshold": 0.75, "recall": 0.5, "false_hit_rate": 0.2, "precision": 0.6667,
                                    "hits": 3}
    # at most 1 of 5 non-duplicates: the threshold 0.8 keeps 2 of 4 duplicates
    assert result["best_recall_within_max"]["recall"] == 0.5
    assert result["best_recall_within_max"]["false_hit_rate"] <= 0.2
    # at least 2 of 4 duplicates: 1 of 5 false hits at best
    assert result["least_false_hit_rate_at_min_recall"]["false_hit_rate"] == 0.2
    assert result["never_scored"] == {"pairs": 2, "duplicates": 1}
    assert result["hits_by_kind_at_calibrated"]["negation"] == {"hits": 1, "pairs": 1}
    assert result["hits_by_kind_at_calibrated"]["paraphrase"] == {"hits": 2, "pairs": 4}
    assert "most recall at a false-hit rate <= 0.2: 0.500" in format_curve(result)


async def test_pairs_are_scored_as_the_cache_scores_a_lookup():
    pairs = [Pair("How do I reset my password?", "How can I reset my password?", True),
             Pair("What time does the store open on Monday?", "What time does the store open on Sunday?", False)]
    scores, calibrated = await score_pairs(pairs)
    assert 0 < calibrated < 1  # the packaged artifact's threshold at the 5% bound
    assert scores[0] >= calibrated > scores[1]  # the paraphrase is a hit, the changed day is not
