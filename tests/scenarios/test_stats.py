"""``scenarios.stats``: intervals over replicates, paired verdicts and undefined quantities."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as sps

from coopsim.errors import InputError
from economics.metrics import fairness
from scenarios import stats


def test_interval_covers_the_true_mean_in_at_least_90_percent_of_200_normal_samples_of_size_10():
    rng = np.random.default_rng(2026)
    hits = 0
    for k in range(200):
        est = stats.estimate(rng.normal(3.0, 2.0, size=10), seed=k)
        assert est.method == "expanded percentile bootstrap" and est.n == 10 and est.level == 0.95
        hits += est.ci_low <= 3.0 <= est.ci_high
    assert hits / 200 >= 0.90, hits


def test_plain_percentile_bootstrap_would_under_cover_at_n_10():
    # why the interval is widened (Hesterberg's expanded percentile): the plain one misses more often
    rng = np.random.default_rng(2026)
    plain = widened = 0
    for k in range(200):
        x = rng.normal(3.0, 2.0, size=10)
        ci = sps.bootstrap((x,), np.mean, method="percentile", n_resamples=2000,
                           rng=np.random.default_rng(k)).confidence_interval
        plain += ci.low <= 3.0 <= ci.high
        est = stats.estimate(x, seed=k)
        widened += est.ci_low <= 3.0 <= est.ci_high
    assert widened > plain


def test_expanded_level_is_wider_than_nominal_and_tends_to_it():
    assert stats.expanded_level(10, 0.95) == pytest.approx(0.9829, abs=1e-4)
    assert 0.95 < stats.expanded_level(1000, 0.95) < 0.951


def test_paired_interval_is_narrower_than_unpaired_on_positively_correlated_pairs():
    rng = np.random.default_rng(7)
    for _ in range(20):
        shared = rng.normal(0.0, 5.0, size=12)  # what the two arms share (same seeds and principals)
        a = shared + 1.0 + rng.normal(0.0, 0.5, size=12)
        b = shared + rng.normal(0.0, 0.5, size=12)
        assert np.corrcoef(a, b)[0, 1] > 0.8
        p, u = stats.paired(a, b), stats.unpaired(a, b)
        assert p.mean == pytest.approx(u.mean)
        assert p.ci_high - p.ci_low < u.ci_high - u.ci_low
    # with this much shared variation the pairing decides what the unpaired comparison cannot
    assert p.verdict == "positive" and u.verdict == "inconclusive"


def test_one_replicate_has_an_undefined_interval_with_a_reason_never_zero_width():
    est = stats.estimate([0.7])
    assert est.mean == 0.7 and est.ci_low is None and est.ci_high is None and est.n == 1
    assert "one replicate" in est.reason
    d = est.with_verdict().as_dict()
    assert d["verdict"] == "inconclusive" and d["ci_low"] is None and "reason" in d
    assert stats.paired([1.0], [0.0]).verdict == "inconclusive"
    assert "n/a" in est.text()


def test_undefined_correlation_is_null_with_a_reason_never_zero():
    constant = np.array([0.9, 0.9, 0.9])  # e.g. FedAvg: every member ends with the same model
    rhos = [fairness(constant, np.array([0.1, 0.5, 0.7 + k])) for k in range(3)]
    assert all(np.isnan(rhos))
    est = stats.estimate(rhos, undefined_reason="identical models")
    d = json.loads(json.dumps(est.as_dict()))  # as stored in summary.json
    assert d["mean"] is None and d["ci_low"] is None and d["reason"] == "identical models" and d["n"] == 0
    # some replicates undefined: they are left out and counted
    part = stats.estimate([np.nan, 0.2, 0.4, 0.3])
    assert part.n == 3 and "undefined in 1 of 4" in part.note


def test_small_samples_use_student_t_and_match_scipy():
    x = [1.0, 2.5, 2.0, 3.0]
    est = stats.estimate(x, level=0.9)
    ci = sps.ttest_1samp(x, 0.0).confidence_interval(0.9)
    assert est.method == "student t" and (est.ci_low, est.ci_high) == pytest.approx((ci.low, ci.high))
    # a bounded quantity's interval stays within its range
    clipped = stats.estimate([0.98, 1.0, 0.99], bounds=(0.0, 1.0))
    assert clipped.ci_high == 1.0 and clipped.ci_low < clipped.mean


def test_verdicts_in_words():
    assert stats.estimate([1.0, 1.2, 0.9, 1.1, 1.05, 0.95, 1.0], verdict=True).verdict == "positive"
    assert stats.estimate([-1.0, -1.2, -0.9, -1.1, -1.05, -0.95], verdict=True).verdict == "negative"
    assert stats.estimate([-1.0, 1.2, -0.9, 1.1, -1.05, 0.95], verdict=True).verdict == "inconclusive"
    same = stats.estimate([0.0, 0.0, 0.0], verdict=True)  # all equal: the value itself, no sign
    assert (same.ci_low, same.ci_high, same.verdict) == (0.0, 0.0, "inconclusive")


def test_the_bootstrap_is_seeded_and_levels_are_checked():
    x = np.random.default_rng(1).normal(size=15)
    assert stats.estimate(x).as_dict() == stats.estimate(x).as_dict()
    narrow, wide = stats.estimate(x, level=0.8), stats.estimate(x, level=0.99)
    assert wide.ci_low < narrow.ci_low <= narrow.mean <= narrow.ci_high < wide.ci_high
    for bad in (0.3, 1.0, "high"):
        with pytest.raises(InputError, match="level"):
            stats.estimate(x, level=bad)
    with pytest.raises(InputError, match="same replicates"):
        stats.paired([1.0, 2.0], [1.0])
