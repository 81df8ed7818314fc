"""The keep rule on constructed per-image tables: ties, all worse, one significant, one worse."""

import math

import numpy as np
import pytest

from echoseg.ablation.plan import Rule
from echoseg.ablation.rule import choose, decide, mean_dice, paired_tests

N = 20  # images; a Wilcoxon test of 20 same-sign differences gives p = 2 / 2**20


def table(dice=(0.8, 0.7, 0.6), hd=(5.0, 6.0, 7.0), shift=None, spread=0.01):
    """A per-image table whose image i has the given Dice/HD plus a small distinct offset,
    ``shift`` adding {column: per-image change} on top."""
    rows = {}
    for i in range(N):
        offset = spread * (i - N / 2) / N
        row = {f"dice_{s}": d + offset for s, d in zip(("LV", "MYO", "LA"), dice, strict=True)}
        row.update({f"hd_{s}": h + 10 * offset for s, h in zip(("LV", "MYO", "LA"), hd,
                                                                strict=True)})
        row["anatomical_outlier"] = 0.0
        rows[f"img{i:02d}"] = row
    for column, change in (shift or {}).items():
        for i, row in enumerate(rows.values()):
            row[column] += change(i)
    return rows


def up(amount):
    """A change of ``amount`` on every image, slightly different per image (no ties)."""
    return lambda i: amount * (1 + i / 100)


def test_mean_dice_is_the_mean_of_the_structure_means():
    assert mean_dice(table()) == pytest.approx(0.7 - 0.01 * 0.5 / N, abs=1e-12)


def test_identical_tables_are_a_tie_and_not_kept():
    best = table()
    d = decide(best, table())
    assert not d["keep"] and d["reason"] == "mean Dice not higher"
    assert all(t["p"] == 1.0 and t["effect"] == "none" for t in d["tests"])
    assert len(d["tests"]) == 6  # 2 metrics x 3 structures


def test_all_worse_is_not_kept_and_names_every_worse_metric():
    worse = {f"dice_{s}": up(-0.05) for s in ("LV", "MYO", "LA")}
    worse.update({f"hd_{s}": up(2.0) for s in ("LV", "MYO", "LA")})
    d = decide(table(), table(shift=worse))
    assert not d["keep"]
    assert d["reason"] == ("significantly worse: dice LV, dice MYO, dice LA, hausdorff LV, "
                           "hausdorff MYO, hausdorff LA")
    assert d["mean_dice"] < d["best_mean_dice"]


def test_one_structure_significantly_better_is_kept():
    d = decide(table(), table(shift={"dice_LA": up(0.03)}))
    assert d["keep"] and d["reason"] == "significantly better: dice LA"
    la = next(t for t in d["tests"] if t["metric"] == "dice" and t["structure"] == "LA")
    assert la["p"] == pytest.approx(2 / 2**N) and la["n"] == N
    assert la["mean_difference"] == pytest.approx(0.03 * (1 + (N - 1) / 200))


def test_better_hausdorff_alone_counts_as_an_improvement():
    d = decide(table(), table(shift={"hd_LV": up(-1.0), "dice_LV": up(1e-4)}))
    assert d["keep"] and d["reason"] == "significantly better: dice LV, hausdorff LV"


def test_one_structure_significantly_worse_vetoes_a_better_mean():
    shift = {"dice_LV": up(0.05), "dice_MYO": up(0.05), "dice_LA": up(-0.01)}
    d = decide(table(), table(shift=shift))
    assert d["mean_dice"] > d["best_mean_dice"]
    assert not d["keep"] and d["reason"] == "significantly worse: dice LA"


def test_a_significant_gain_with_a_lower_mean_dice_is_not_kept_unless_the_rule_says_so():
    shift = {"hd_LV": up(-2.0), "dice_MYO": lambda i: -0.01 if i % 2 else 0.005}
    candidate = table(shift=shift)
    assert not decide(table(), candidate)["keep"]
    relaxed = Rule(require_mean_dice_gain=False)
    assert decide(table(), candidate, relaxed)["keep"]


def test_a_noisy_difference_is_not_significant():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.02, N)
    noise -= noise.mean()  # a mean gain of 0.001, far below the noise
    d = decide(table(), table(shift={"dice_LV": lambda i: noise[i] + 0.001}))
    assert not d["keep"] and d["reason"] == "no significant improvement"


def test_choose_keeps_the_best_mean_dice_among_passing_and_none_when_none_pass():
    best = table()
    candidates = {"worse": table(shift={"dice_LV": up(-0.05)}),
                  "small": table(shift={"dice_LV": up(0.01)}),
                  "large": table(shift={"dice_MYO": up(0.04)}),
                  "same": table()}
    kept, decisions = choose(best, candidates)
    assert kept == "large"
    assert [n for n, d in decisions.items() if d["keep"]] == ["small", "large"]
    assert choose(best, {"same": table(), "worse": candidates["worse"]})[0] is None


def test_metrics_of_the_rule_limit_the_tests():
    tests = paired_tests(table(), table(), Rule(metrics=("dice",)))
    assert {t["metric"] for t in tests} == {"dice"} and len(tests) == 3


def test_images_with_undefined_hausdorff_are_left_out_of_that_test():
    best, candidate = table(), table(shift={"dice_LA": up(0.02)})
    best["img00"]["hd_LA"] = float("nan")
    la = next(t for t in paired_tests(best, candidate) if t["metric"] == "hausdorff"
              and t["structure"] == "LA")
    assert la["n"] == N - 1 and la["nan_pairs"] == 1


def test_a_structure_no_table_scored_is_left_out():
    rng = np.random.default_rng(3)
    base = {f"i{k}": {"dice_LV": 0.80 + 0.01 * rng.random(), "hd_LV": 5.0,
                      **{f"{m}_{s}": math.nan for m in ("dice", "hd") for s in ("MYO", "LA")}}
            for k in range(30)}
    better = {k: {**v, "dice_LV": v["dice_LV"] + 0.05} for k, v in base.items()}
    decision = decide(base, better)
    assert decision["keep"] and decision["mean_dice"] == pytest.approx(
        np.mean([r["dice_LV"] for r in better.values()]))
    assert {t["structure"] for t in decision["tests"]} == {"LV"}
