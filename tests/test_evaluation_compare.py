"""Wilcoxon signed-rank p-values on constructed pairs, and the comparison tables."""

from __future__ import annotations

import math

import pytest

from echoseg.evaluation.compare import compare_tables, comparison_markdown, wilcoxon_p


def test_all_positive_distinct_differences_give_the_exact_p():
    # n = 6, every difference positive with distinct magnitudes: W- = 0, the most extreme of
    # 2^6 equally likely sign patterns, counted on both sides: p = 2 / 64
    a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    result = wilcoxon_p(a, [0.0] * 6)
    assert result["p"] == pytest.approx(2 / 2**6, abs=1e-12)
    assert (result["n"], result["nan_pairs"], result["mean_difference"]) == (6, 0, 3.5)


def test_one_negative_difference():
    # differences 1..5 positive and -6: W- = 6; subsets of {1..6} summing to <= 6:
    # {}, 1, 2, 3, 12, 4, 13, 5, 14, 23, 6, 15, 24, 123 -> 14, so p = 2 * 14 / 64
    result = wilcoxon_p([1, 2, 3, 4, 5, 0], [0, 0, 0, 0, 0, 6])
    assert result["p"] == pytest.approx(28 / 64, abs=1e-12)


def test_nan_pairs_are_left_out_and_counted():
    result = wilcoxon_p([1, 2, 3, 4, 5, 6, math.nan], [0, 0, 0, 0, 0, 0, 1])
    assert result["p"] == pytest.approx(2 / 64) and result["nan_pairs"] == 1 and result["n"] == 6


def test_identical_and_empty_samples():
    assert wilcoxon_p([0.5, 0.7], [0.5, 0.7])["p"] == 1.0
    assert math.isnan(wilcoxon_p([math.nan], [1.0])["p"])


def row(i, dice, hd, outlier=0.0):
    return {"id": f"img{i}", "dice_LV": dice, "dice_MYO": dice, "dice_LA": dice,
            "hd_LV": hd, "hd_MYO": hd, "hd_LA": hd, "anatomical_outlier": outlier}


def test_compare_tables_means_outliers_and_tests():
    a = {f"img{i}": row(i, 0.9 + i / 100, 2.0) for i in range(6)}
    b = {f"img{i}": row(i, 0.8, 3.0 + i, outlier=float(i == 0)) for i in range(6)}
    report = compare_tables({"A": a, "B": b})
    m_a, m_b = report["models"]
    assert m_a["dice"]["LV"]["mean"] == pytest.approx(0.925) and m_b["anatomical_outliers"] == 1
    assert m_b["hausdorff"]["LA"]["mean"] == pytest.approx(5.5)
    assert len(report["tests"]) == 6
    assert all(t["p"] == pytest.approx(2 / 64) for t in report["tests"])
    text = comparison_markdown(report)
    assert "| A vs B | 0.0312 |" in text and "0.925 ± 0.017" in text
