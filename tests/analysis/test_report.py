"""report.md's statistics against independent references, and its words on constructed sweeps.

The numbers of analysis/stats.py are checked against scipy's own paired t-test and interval and
against statsmodels (Holm, t-test power), a separate implementation. The wording is checked on
runs tables shaped like analysis.collect's (one row per job: status, seed, reg.*, val_error,
test_error), built so that the right sentence is known: an exact tie, a clear win, a difference
within noise, no decay best, a single seed. In process, no training: a second or two in all.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from analysis import stats
from analysis.choice import best_lambdas
from analysis.collect import status_counts
from analysis.numbers import number
from analysis.report import write_report

SEEDS6 = [0, 1, 2, 3, 4, 5]
# A realistic per-seed spread of test error (digits: multiples of 1/360), and of validation error.
BASE_TEST = [0.0694, 0.0611, 0.0611, 0.0667, 0.0722, 0.0639]
BASE_VAL = [0.0472, 0.0694, 0.0861, 0.0556, 0.0750, 0.0611]


def runs_table(cells, seeds, scopes=("weights", "all"), ps=(2.0,), baseline=None):
    """A runs table: cells maps (scope, p, lam) to (val per seed, test per seed); `baseline`
    (val, test) is written at λ = 0 for every scope and p, as the grid records its idle twins."""
    cells = dict(cells)
    if baseline is not None:
        for scope in scopes:
            for p in ps:
                cells[(scope, p, 0.0)] = baseline
    rows = []
    for (scope, p, lam), (val, test) in cells.items():
        for i, seed in enumerate(seeds):
            rows.append({"status": "completed", "seed": seed, "reg.lam": lam, "reg.p": p, "reg.mode": "coupled",
                         "reg.scope": scope, "val_error": val[i], "test_error": test[i]})
    return pd.DataFrame(rows)


def shifted(values, by):
    return [v + d for v, d in zip(values, by if isinstance(by, list) else [by] * len(values))]


def report(runs: pd.DataFrame, tmp_path) -> str:
    return write_report(runs, status_counts(runs), [], tmp_path, "python -m analysis test", []).read_text()


def section(text: str, title: str) -> str:
    """The lines of one '## ' section."""
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_row(text: str, title: str, start: str) -> list:
    (row,) = [line for line in section(text, title).splitlines() if line.startswith(start)]
    return [cell.strip() for cell in row.strip("|").split("|")]


def assert_rounded(text: str) -> None:
    assert "-0.0000" not in text and "+0.0000" not in text and "-0 " not in text
    # 4 significant digits (analysis.numbers): no 5th after the leading zeros
    assert not re.search(r"(?<![\d.])(0\.0*[1-9]\d{4,}|[1-9]\d*\.\d{4,})", text), \
        re.search(r".{30}(0\.0*[1-9]\d{4,}|[1-9]\d*\.\d{4,}).{10}", text)


# --- the numbers -----------------------------------------------------------------------------

def test_paired_comparison_is_scipys_paired_t_test_and_interval():
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 8):
        a, b = rng.normal(0.07, 0.01, n), rng.normal(0.07, 0.01, n)
        got = stats.paired(a, b)
        ref = scipy_stats.ttest_rel(a, b)
        ci = ref.confidence_interval(0.95)
        assert got.n == n and got.mean == pytest.approx(np.mean(a - b), abs=1e-15)
        assert got.p == pytest.approx(ref.pvalue, rel=1e-12)
        assert (got.low, got.high) == (pytest.approx(ci.low, rel=1e-12), pytest.approx(ci.high, rel=1e-12))
        assert got.sd == pytest.approx(np.std(a - b, ddof=1), rel=1e-12)
        # Wilcoxon from 6 non-zero pairs on (below, its exact p cannot reach 0.05)
        if n >= stats.WILCOXON_MIN_N:
            assert got.wilcoxon_p == pytest.approx(scipy_stats.wilcoxon(a, b).pvalue, rel=1e-12)
        else:
            assert math.isnan(got.wilcoxon_p)
    # no test where there is none: one seed, the same on every seed, the same shift on every seed
    one = stats.paired([0.1], [0.2])
    assert one.mean == pytest.approx(-0.1) and math.isnan(one.low) and math.isnan(one.p)
    same = stats.paired([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    assert same.identical and same.mean == 0 and math.isnan(same.p)
    # 0.3 - 0.2 and 0.2 - 0.1 differ in the last bits: still the same shift, not p ~ 0
    shift = stats.paired([0.2, 0.3, 0.4], [0.1, 0.2, 0.3])
    assert shift.constant and not shift.identical and math.isnan(shift.p) and shift.low == shift.high
    # as the jobs write them, float32: 24, 22, 23 against 25, 22, 22 wrong of 360 cancel exactly,
    # though the float mean of the differences is 1.2e-9 (seen on the main job's p = 3 runs)
    f32 = [float(np.float32(k / 360)) for k in (24, 22, 23, 25, 22, 22)]
    cancel = stats.paired(f32[:3], f32[3:])
    assert np.mean(np.subtract(f32[:3], f32[3:])) != 0 and cancel.mean == 0


def test_holm_is_statsmodels_holm_over_the_tests_made():
    rng = np.random.default_rng(1)
    for m in (1, 2, 5, 12):
        p = rng.uniform(0, 0.2, m)
        p[m // 2] = p[0]  # a tie among the p-values
        assert stats.holm(p) == pytest.approx(multipletests(p, method="holm")[1].tolist(), rel=1e-12)
    # NaN (no test) is left out of the count and stays NaN
    with_nan = stats.holm([0.01, math.nan, 0.04])
    assert math.isnan(with_nan[1])
    assert [with_nan[0], with_nan[2]] == pytest.approx(multipletests([0.01, 0.04], method="holm")[1].tolist())


def test_power_detectable_difference_and_seeds_needed_are_statsmodels_ttest_power():
    ref = TTestPower()
    for n in (2, 3, 5, 10, 30):
        for effect in (0.3, 1.0, 2.5):
            expected = ref.power(effect_size=effect, nobs=n, alpha=0.05, alternative="two-sided")
            if n == 30 and effect == 2.5:
                # statsmodels gives NaN here (scipy's nct.cdf far in its lower tail); the power is 1
                assert math.isnan(expected) and stats.power(n, effect) == pytest.approx(1.0, abs=1e-12)
                continue
            assert stats.power(n, effect) == pytest.approx(expected, rel=1e-9)
        sd = 0.004
        d = ref.solve_power(effect_size=None, nobs=n, alpha=0.05, power=0.8, alternative="two-sided")
        assert stats.detectable_difference(n, sd) == pytest.approx(d * sd, rel=1e-6)
    for difference, sd in ((0.003, 0.004), (0.0015, 0.004), (0.01, 0.004), (-0.001, 0.001)):
        nobs = ref.solve_power(effect_size=difference / sd, nobs=None, alpha=0.05, power=0.8,
                               alternative="two-sided")
        assert stats.seeds_needed(difference, sd) == math.ceil(nobs)
    # Where statsmodels returns NaN too (2 seeds, effect 8), a simulation of the test is the
    # reference: 200,000 pairs of seeds whose difference is 8 standard deviations.
    diffs = np.random.default_rng(2).normal(8.0, 1.0, (200_000, 2))
    t = diffs.mean(1) / (diffs.std(1, ddof=1) / math.sqrt(2))
    simulated = np.mean(np.abs(t) > scipy_stats.t.ppf(0.975, 1))
    assert math.isnan(ref.power(effect_size=8.0, nobs=2, alpha=0.05))
    assert stats.power(2, 8.0) == pytest.approx(simulated, abs=0.005)
    # beyond the cap, no difference, no spread: no suggestion
    assert stats.seeds_needed(0.001, 0.004, cap=100) is None and stats.seeds_needed(0.001, 0.004, cap=200) == 128
    assert stats.seeds_needed(0.0, 0.004) is None and stats.seeds_needed(0.01, 0.0) is None
    assert math.isnan(stats.detectable_difference(1, 0.004)) and math.isnan(stats.detectable_difference(3, 0.0))


# --- the words -------------------------------------------------------------------------------

def test_the_experiments_question_comes_first_and_a_clear_win_is_lower_with_its_interval(tmp_path):
    # weight-only at λ = 0.01 is lower than global on test by about 0.03 on every one of 6 seeds
    noise = [0.001, -0.001, 0.0, 0.002, -0.002, 0.0005]
    runs = runs_table({
        ("weights", 2.0, 0.01): (shifted(BASE_VAL, -0.02), shifted(shifted(BASE_TEST, -0.03), noise)),
        ("all", 2.0, 0.01): (shifted(BASE_VAL, -0.01), BASE_TEST),
    }, SEEDS6, baseline=(BASE_VAL, shifted(BASE_TEST, [0.002, -0.001, 0.003, 0.0, 0.001, -0.002])))
    text = report(runs, tmp_path)
    headings = re.findall(r"^## (.*)$", text, re.M)
    assert headings[:2] == ["Weight-only against global decay", "Against no decay"]
    cells = table_row(text, "Weight-only against global decay", "| coupled | 2 |")
    difference, low, high = float(cells[6]), *map(float, cells[7].strip("[]").split(", "))
    assert cells[2:4] == ["0.01", "0.01"] and cells[-1] == "weight-only lower"
    assert difference == pytest.approx(-0.03, abs=1e-3) and low < difference < high < 0  # the interval excludes 0
    # the p-value is the paired t-test's, Holm-adjusted over every test the report makes: here
    # weight-only vs global (also the lowest against its runner-up), and each against no decay
    w, a, base = (runs[(runs["reg.scope"] == s) & (runs["reg.lam"] == lam)]["test_error"].to_numpy()
                  for s, lam in (("weights", 0.01), ("all", 0.01), ("all", 0.0)))
    raw = [scipy_stats.ttest_rel(w, a).pvalue, scipy_stats.ttest_rel(a, base).pvalue,
           scipy_stats.ttest_rel(w, base).pvalue]
    assert "Holm-adjusted over the 3 tests of this report" in text
    expected = multipletests(raw, method="holm")[1][0]
    assert cells[8] == ("< 0.001" if expected < 0.001 else f"{expected:.2g}")
    assert "weight-only decay has the lower test error in 1 (after Holm's correction)" in text
    # with 6 seeds, Wilcoxon's signed-rank p beside it, Holm-adjusted over the comparisons with 6
    # non-zero differences (global vs no decay ties on seed 3: it has 5, and no Wilcoxon test)
    signed_rank = [scipy_stats.wilcoxon(x, y).pvalue for x, y in ((w, a), (a, base), (w, base))
                   if np.count_nonzero(np.abs(x - y) > stats.tolerance(max(np.abs(x).max(), np.abs(y).max()))) >= 6]
    assert len(signed_rank) == 2
    assert "Wilcoxon p (Holm)" in text
    assert cells[9] == f"{multipletests(signed_rank, method='holm')[1][0]:.2g}"
    # and the winner on validation is bold only because its lead is beyond noise on test
    assert "**Coupled L2 on weights only at λ = 0.01** has the lowest mean validation error" in text
    assert "Its test error is lower than the runner-up's" in text and "p = <" not in text
    assert_rounded(text)


def test_an_exact_tie_names_both_and_no_winner(tmp_path):
    # p = 1 and p = 2, weight-only, reach the same validation errors in another seed order: the
    # same mean, whose floats differ in the last bit (summed in another order), a tie all the same
    tied = shifted(BASE_VAL, -0.01)
    rotated = tied[2:] + tied[:2]
    assert np.mean(tied) != np.mean(rotated) and abs(np.mean(tied) - np.mean(rotated)) < 1e-15
    runs = runs_table({
        ("weights", 1.0, 0.001): (tied, shifted(BASE_TEST, -0.002)),
        ("weights", 2.0, 0.001): (rotated, shifted(BASE_TEST, 0.001)),
    }, SEEDS6, scopes=("weights",), ps=(1.0, 2.0), baseline=(BASE_VAL, BASE_TEST))
    text = report(runs, tmp_path)
    lowest = section(text, "Lowest validation error")
    assert "No single winner: coupled L1 on weights only at λ = 0.001 and coupled L2 on weights only at " \
           "λ = 0.001 tie exactly on mean validation error" in lowest
    assert "**" not in text
    # only one scope ran: the question is said to be unanswered, not answered
    assert "Not answered by this sweep: its decayed runs have scope weights" in text
    assert_rounded(text)


def test_a_difference_within_noise_is_called_so_and_the_lowest_is_not_bold(tmp_path):
    # weight-only vs global: a mean difference of 0.0005 against a per-seed scatter of 0.01
    scatter = [0.012, -0.009, 0.004, -0.011, 0.008, -0.001]
    runs = runs_table({
        ("weights", 2.0, 0.01): (shifted(BASE_VAL, -0.02), shifted(BASE_TEST, scatter)),
        ("all", 2.0, 0.01): (shifted(BASE_VAL, -0.015), BASE_TEST),
    }, SEEDS6, baseline=(BASE_VAL, BASE_TEST))
    text = report(runs, tmp_path)
    cells = table_row(text, "Weight-only against global decay", "| coupled | 2 |")
    low, high = map(float, cells[7].strip("[]").split(", "))
    assert cells[-1] == "within noise" and low < 0 < high
    assert "In none of the 1 setting(s) does the test error of weight-only and global decay differ beyond noise" \
        in text
    assert "**" not in text
    assert ("Coupled L2 on weights only at λ = 0.01 has the lowest mean validation error (0.04573 over 6 seeds); "
            "the runner-up is coupled L2 on all parameters at λ = 0.01 (0.05073). Its test error is not "
            "distinguishable from the runner-up's") in text
    # the power line: what 6 seeds could detect, and how many the difference seen would need
    diff = np.subtract(shifted(BASE_TEST, scatter), BASE_TEST)
    detect = TTestPower().solve_power(effect_size=None, nobs=6, alpha=0.05, power=0.8) * diff.std(ddof=1)
    need = math.ceil(TTestPower().solve_power(effect_size=abs(diff.mean()) / diff.std(ddof=1), nobs=None,
                                              alpha=0.05, power=0.8))
    assert need > 100 and "Power: with 6 seeds" in text
    # (at Holm's strictest level over the report's tests: more seeds than at α = 0.05, still > 100)
    assert (f"mode=coupled, p=2: {number(detect)} (seen {number(abs(diff.mean()))}; not reachable within 100 seeds"
            in text)
    assert_rounded(text)


def test_no_decay_can_be_the_best_lambda(tmp_path):
    # for global decay every λ > 0 is worse on validation than none; weight-only gains
    runs = runs_table({
        ("weights", 2.0, 0.01): (shifted(BASE_VAL, -0.01), shifted(BASE_TEST, -0.01)),
        ("all", 2.0, 0.001): (shifted(BASE_VAL, 0.005), BASE_TEST),
        ("all", 2.0, 0.01): (shifted(BASE_VAL, 0.02), shifted(BASE_TEST, 0.02)),
    }, SEEDS6, baseline=(BASE_VAL, BASE_TEST))
    table = best_lambdas(runs)
    assert table.set_index("reg.scope").loc["all", "reg.lam"] == 0.0
    assert table.set_index("reg.scope").loc["weights", "reg.lam"] == 0.01
    text = report(runs, tmp_path)
    assert table_row(text, "Against no decay", "| coupled | all |")[3:5] == ["0 (no decay)", "0.06573"]
    assert table_row(text, "Against no decay", "| coupled | all |")[-1] == "chooses no decay"
    assert table_row(text, "Weight-only against global decay", "| coupled | 2 |")[2:4] == ["0.01", "0 (no decay)"]
    # the best-λ table shows the spread over seeds, val and test: mean ± std [95% interval]
    best = table_row(text, "Best λ per regularizer (chosen on validation error)", "| coupled | all |")
    val, test, seeds = best[4:7]
    low, high = stats.interval(BASE_VAL)
    assert val == f"{number(np.mean(BASE_VAL))} ± {number(np.std(BASE_VAL, ddof=1))} [{number(low)}, {number(high)}]"
    assert test.startswith(f"{number(np.mean(BASE_TEST))} ± ") and seeds == "6"
    assert_rounded(text)


def test_a_single_seed_gets_no_interval_and_says_so(tmp_path):
    runs = runs_table({
        ("weights", 2.0, 0.01): ([0.05], [0.06]),
        ("all", 2.0, 0.01): ([0.055], [0.07]),
    }, [1], baseline=([0.06], [0.065]))
    text = report(runs, tmp_path)
    cells = table_row(text, "Weight-only against global decay", "| coupled | 2 |")
    assert cells[6:] == ["-0.01000", "–", "–", "1", "one seed: no interval or test"]
    assert "Its test error is not distinguishable from the runner-up's: on one seed, with no interval or test" in text
    assert "One seed per configuration: no comparison has an interval or a test" in text
    assert "0.05000 (one seed)" in text and "**" not in text
    assert_rounded(text)


def test_no_decay_lowest_against_the_next_lambda_of_the_same_setting(tmp_path):
    # one setting, as a sweep of λ alone: λ = 0 edges out λ = 0.001 on validation, λ = 100 is far off
    seeds = [0, 1, 2]
    runs = runs_table({
        ("weights", 2.0, 0.001): (shifted(BASE_VAL[:3], 0.0001), shifted(BASE_TEST[:3], [0.0003, -0.0001, 0.0002])),
        ("weights", 2.0, 100.0): (shifted(BASE_VAL[:3], 0.5), shifted(BASE_TEST[:3], 0.5)),
    }, seeds, scopes=("weights",), baseline=(BASE_VAL[:3], BASE_TEST[:3]))
    text = report(runs, tmp_path)
    assert best_lambdas(runs)["reg.lam"].tolist() == [0.0]
    lowest = section(text, "Lowest validation error")
    assert lowest.strip().startswith("No decay has the lowest mean validation error (0.06757 over 3 seeds); "
                                     "the runner-up is coupled L2 on weights only at λ = 0.001 (0.06767). "
                                     "Its test error is not distinguishable from the runner-up's: ")
    assert "**" not in text
    power = section(text, "What the seeds can detect")
    assert "| no decay − coupled L2 on weights only at λ = 0.001 | 3 |" in power and "One seed" not in power
    assert_rounded(text)


def test_a_sweep_of_one_configuration_compares_nothing_and_says_so(tmp_path):
    runs = runs_table({("weights", 2.0, 0.01): (BASE_VAL[:2], BASE_TEST[:2])}, [0, 1], scopes=("weights",))
    text = report(runs, tmp_path)
    assert "Coupled L2 on weights only at λ = 0.01 is the only configuration: validation error 0.05830 over 2" in text
    assert "No λ = 0 run shares the other keys of a decayed setting: there is no baseline." in text
    assert "No two configurations were compared on shared seeds: nothing to detect." in text
    assert "One seed" not in text and "**" not in text
