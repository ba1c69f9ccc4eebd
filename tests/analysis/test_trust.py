"""Conclusions that adding a run, the units of the data or a tie cannot silently change (issue 23's
review): a sparsely-run λ is not compared, small-unit errors neither tie falsely nor print as 0,
error-rate intervals stay within [0, 1], the edge flags say what was not tried, and a tie for
runner-up is named. On runs tables shaped like analysis.collect's: nothing is trained.
"""
from __future__ import annotations

import pandas as pd
from test_report import report, section, table_row

from analysis import stats
from analysis.choice import best_lambdas
from analysis.numbers import number


def table(cells, task="classification"):
    """cells: {(scope, λ): {seed: (val, test)}}, one coupled L2 setting per scope."""
    return pd.DataFrame([{"status": "completed", "seed": seed, "reg.lam": lam, "reg.p": 2.0, "reg.mode": "coupled",
                          "reg.scope": scope, "val_error": val, "test_error": test, "task": task}
                         for (scope, lam), by_seed in cells.items() for seed, (val, test) in by_seed.items()])


def seeds(vals, tests=None, start=0):
    tests = tests or vals
    return {start + i: (v, t) for i, (v, t) in enumerate(zip(vals, tests))}


def test_one_extra_single_seed_run_cannot_flip_the_best_lambda_and_the_report_says_the_seeds(tmp_path):
    # The review's R2 vs R2b: λ = 0.1 is best over seeds 0-3; another sweep adds λ = 0.03 on
    # seed 0 only, better there. Shrinking every λ to seed 0 would crown 0.03 on one seed of four.
    cells = {("weights", 0.0): seeds([0.50, 0.45, 0.52, 0.55]),
             ("weights", 0.01): seeds([0.52, 0.44, 0.50, 0.50]),
             ("weights", 0.1): seeds([0.51, 0.40, 0.43, 0.43]),
             ("weights", 0.03): seeds([0.49])}
    best = best_lambdas(table(cells))
    assert best["reg.lam"].tolist() == [0.1] and best["chosen_on"].tolist() == [4]
    assert best["not_compared"].tolist() == [[0.03]]
    text = report(table(cells), tmp_path)
    assert "coupled L2 on weights only at λ = 0.03 ran on 1 seed of the 4 the others ran: not compared" in text
    row = table_row(text, "Best λ per regularizer (chosen on validation error)", "| coupled | weights |")
    assert row[3] == "0.1" and row[-1] == "4 seeds"
    assert "over 4 seeds" in section(text, "Lowest validation error")


def test_small_unit_errors_are_not_a_false_tie_and_are_printed_with_their_digits(tmp_path):
    # The review's S14: a regression whose MSEs are 1e-10 to 1e-7. An absolute tolerance of 1e-7
    # called λ = 0.1 and 0.001 an exact tie and picked 0.001; four decimals printed all as 0.
    cells = {("weights", 0.0): seeds([2.2e-7, 2.3e-7, 2.25e-7], [2.3e-7, 2.4e-7, 2.2e-7]),
             ("weights", 0.001): seeds([3.0e-9, 3.2e-9, 3.1e-9], [3.3e-9, 3.0e-9, 3.1e-9]),
             ("weights", 0.1): seeds([1.2e-10, 1.3e-10, 1.28e-10], [1.3e-10, 1.25e-10, 1.2e-10])}
    runs = table(cells, task="regression")
    best = best_lambdas(runs)
    assert best["reg.lam"].tolist() == [0.1] and best["tied"].tolist() == [[]]
    text = report(runs, tmp_path)
    assert "tie exactly" not in text
    assert "1.260e-10 ± 5.292e-12" in text and "| 0 ± 0" not in text and "[0, 0]" not in text
    # the same values written twice (float32 rounding, another summing order) still tie
    assert stats.close(0.06944445, 0.0694444481) and not stats.close(1.26e-10, 3.10e-9)
    assert number(1.26e-10) != number(3.10e-9) and number(7.0e-5) != number(7.9e-5)
    assert number(0.4425) == "0.4425" and number(0.0) == "0" and number(-0.21834, True) == "-0.2183"


def test_an_error_rate_interval_is_cut_at_1_and_says_so(tmp_path):
    # The review's R1: "0.3800 ± 0.1909 [0 (cut at 0), 2.0953]" for an error rate.
    cells = {("weights", 0.0): seeds([0.60, 0.62], [0.9, 0.1]),
             ("weights", 0.01): seeds([0.20, 0.25], [0.95, 0.05])}
    text = report(table(cells), tmp_path)
    row = table_row(text, "Best λ per regularizer (chosen on validation error)", "| coupled | weights |")
    assert row[5].endswith("[0 (cut at 0), 1.000 (cut at 1)]"), row
    # nor a finalist's (its objective is its validation error here)
    from analysis.finalists import finalist_files, finalists_section
    from wdsweep.search import finalists

    rows = [finalists.seed_row(seed, {"status": "completed", "val_error": v, "test_error": v}, v, None)
            for seed, v in ((5, 0.9), (6, 0.18))]
    finalists.write(tmp_path, "minimize", [0], [5, 6], [finalists.summary("A", {}, 0.38, rows)])
    text = "\n".join(finalists_section(finalist_files([str(tmp_path)]), rate=True))
    assert text.count("0.5400 [0 (cut at 0), 1.000 (cut at 1)] (n = 2)") == 4  # objective, val, test; optimism
    # an MSE is not cut at 1
    text = report(table(cells, task="regression"), tmp_path)
    assert "(cut at 1)" not in text


def test_edge_flags_say_what_was_not_tried(tmp_path):
    # The review's S4 (reg.lam=0,100: no decay best, nothing tried between) and S9 (no λ = 0 run).
    far = {("weights", 0.0): seeds([0.20, 0.22, 0.21]), ("weights", 100.0): seeds([0.50, 0.5, 0.5])}
    text = report(table(far), tmp_path)
    assert "the best is no decay, and the smallest λ > 0 swept is 100: nothing between 0 and 100 was tried" in text
    near = {("weights", 0.0): seeds([0.20, 0.22, 0.21]), ("weights", 1e-5): seeds([0.50, 0.5, 0.5])}
    assert "try smaller λ" not in report(table(near), tmp_path)
    no_zero = {(scope, lam): seeds([0.2 + lam, 0.22 + lam, 0.21 + lam]) for scope in ("weights", "all")
               for lam in (0.01, 0.1)}
    text = report(table(no_zero), tmp_path)
    assert "λ = 0 included" not in text and "λ = 0 is a candidate" not in text
    assert "no λ = 0 run" in text and "No λ = 0 ran" in text


def test_a_tie_for_runner_up_names_every_tied_configuration(tmp_path):
    # The review's R1: no decay and weight-only at λ = 0.01 both 0.3825; only no decay was named.
    cells = {("weights", 0.0): seeds([0.40, 0.365], [0.40, 0.39]),
             ("weights", 0.01): seeds([0.39, 0.375], [0.41, 0.40]),
             ("all", 0.0): seeds([0.40, 0.365], [0.40, 0.39]),
             ("all", 0.01): seeds([0.30, 0.32], [0.35, 0.33])}
    text = section(report(table(cells), tmp_path), "Lowest validation error")
    assert "no decay and coupled L2 on weights only at λ = 0.01 tie for runner-up (0.3825)" in text
    assert "- against coupled L2 on weights only at λ = 0.01:" in text


def test_a_diverged_finalist_is_never_picked_and_the_pick_is_signed_on_the_seeds_it_ranks_on(tmp_path):
    # The review's R3c: finalist A 0.20, 0.20 and a diverged seed (its record says val 0.90);
    # B 0.21, 0.22, 0.215. A was crowned "ahead ... by 0.2183" though worse by that on 3 seeds.
    from analysis.finalists import finalist_files, finalists_section
    from wdsweep.search import finalists

    def rows(values):
        return [finalists.seed_row(seed, {"status": status, "val_error": v, "test_error": v}, v, None)
                for seed, (status, v) in zip((5, 6, 7), values)]

    a = finalists.summary("A", {}, 0.19, rows([("completed", 0.20), ("completed", 0.20), ("diverged", 0.90)]))
    b = finalists.summary("B", {}, 0.19, rows([("completed", 0.21), ("completed", 0.22), ("completed", 0.215)]))
    c = finalists.summary("C", {}, 0.19, rows([("completed", 0.25), ("completed", 0.23), ("completed", 0.26)]))
    finalists.write(tmp_path, "minimize", [0, 1], [5, 6, 7], [a, b, c])
    text = "\n".join(finalists_section(finalist_files([str(tmp_path)]), rate=True))
    assert "| A (diverged on seed 7 (1 of its 3 fresh seeds): fails, never picked" in text
    assert "Never picked, because a fresh seed of theirs diverged or failed: A (diverged on seed 7" in text
    assert "A: diverged on seed 7 (1 of its 3 fresh seeds): it fails there" in text
    assert "better than the search's own value" not in text  # no verdict from A's two equal seeds
    pick = text.split("Best on fresh validation error: ")[1]
    assert pick.startswith("B; ahead of the runner-up (C) by +0.03167 (runner-up − best) on the 3 paired")
    d = finalists.summary("D", {}, 0.19, rows([("completed", 0.25), ("completed", 0.23), ("completed", 0.26)]))
    finalists.write(tmp_path, "minimize", [0, 1], [5, 6, 7], [a, b, c, d])
    text = "\n".join(finalists_section(finalist_files([str(tmp_path)]), rate=True))
    assert "ahead of C and D, tied for runner-up at 0.2467 (the test is against C) by +0.03167" in text
    finalists.write(tmp_path, "minimize", [0, 1], [5, 6, 7], [a, b])
    text = "\n".join(finalists_section(finalist_files([str(tmp_path)]), rate=True))
    assert "Best on fresh validation error: B (the only finalist compared" in text


def diverging(cells, bad):
    """table(cells) where the (scope, λ, seed)s in `bad` diverged (no errors, as such a job leaves)."""
    runs = table(cells)
    for scope, lam, seed in bad:
        hit = (runs["reg.scope"] == scope) & (runs["reg.lam"] == lam) & (runs["seed"] == seed)
        runs.loc[hit, ["status", "val_error", "test_error"]] = ["diverged", float("nan"), float("nan")]
    return runs


def test_a_no_decay_baseline_with_a_diverged_seed_is_not_drawn_as_its_survivors_mean():
    # The review's R2: λ = 0's dashed line at the mean of its surviving seeds, "single seed".
    import matplotlib.pyplot as plt

    from analysis.figures import baseline, lambda_figure

    cells = {("weights", 0.0): seeds([0.5, 0.26, 0.52, 0.57]), ("weights", 0.01): seeds([0.4, 0.3, 0.35, 0.38])}
    runs = diverging(cells, [("weights", 0.0, 0), ("weights", 0.0, 2), ("weights", 0.0, 3)])
    base = baseline(runs, "test_error")
    assert base["n"] == 0 and base["n_diverged"] == 3 and base["seeds"] == 4
    _, fig = lambda_figure(runs, "test_error", "t", "test error")
    ax = fig.axes[0]
    assert not [line for line in ax.lines if line.get_gid() == "baseline"]
    (said,) = [t.get_text() for t in ax.texts if t.get_gid() == "baseline-failing"]
    assert said == "λ = 0 (no decay): diverged or failed on 3 of 4 seeds: no baseline"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert not any("single seed" in text for text in legend) and said + " drawn" in legend
    plt.close(fig)
    healthy = table(cells)
    assert baseline(healthy, "test_error")["n"] == 4


def test_a_sweep_whose_every_decayed_point_diverged_still_gets_its_chart_and_report(tmp_path):
    # The review's S5: min() of an empty sequence in seeds_phrase, and no report.
    import matplotlib.pyplot as plt

    from analysis.figures import lambda_figure

    cells = {("weights", lam): seeds([0.3, 0.32, 0.31]) for lam in (0.0, 0.01, 10.0)}
    runs = diverging(cells, [("weights", 0.01, 1), ("weights", 10.0, 0)])
    curves, fig = lambda_figure(runs, "test_error", "t", "test error")
    assert (curves["n"] == 0).all()
    assert "no point: every λ > 0 collapsed, diverged or failed on a seed" in fig._suptitle.get_text()
    plt.close(fig)
    assert "Never chosen, because they diverged or failed" in report(runs, tmp_path)


def test_paper_width_figures_are_that_wide_with_readable_fonts_and_unclashing_lambda_ticks(tmp_path):
    # The review's R3col (a "column" chart 6 in wide: savefig's tight box) and R12 (the Optuna
    # chart 13.7 in whatever --width said, λ labels over each other, an error axis below 0).
    import re

    import matplotlib.pyplot as plt

    from analysis.chartbase import save, set_layout
    from analysis.figures import lambda_figure

    grid = table({("weights", lam): seeds([0.2 + lam, 0.22 + lam, 0.21 + lam]) for lam in (0.0, 1e-4, 1e-3, 1e-2)}
                 | {("all", lam): seeds([0.21 + lam, 0.2 + lam, 0.2]) for lam in (1e-4, 1e-3, 1e-2)})
    trials = pd.DataFrame([{"status": "completed", "seed": 0, "reg.lam": lam, "reg.p": 2.0 + i / 10,
                            "reg.mode": "coupled", "reg.scope": "all", "val_error": 0.3, "test_error": 0.3 + i / 100,
                            "task": "classification", "trial": i, "study": "s"}
                           for i, lam in enumerate((1.5e-4, 2.2e-4, 3.1e-4, 4.4e-4, 6e-4, 8e-4, 1.1e-3, 1.9e-3))])
    try:
        for width, inches, charts in (("column", 3.5, ("grid", "optuna")), ("page", 7.0, ("grid",))):
            set_layout(width)
            for name, runs in ((name, {"grid": grid, "optuna": trials}[name]) for name in charts):
                _, fig = lambda_figure(runs, "test_error", name, "test error")
                fig.canvas.draw()
                sizes = [t.get_fontsize() for t in fig.findobj(plt.Text) if t.get_visible() and t.get_text()]
                assert min(sizes) >= 7, (name, width, min(sizes))
                for ax in fig.axes[:1]:
                    assert ax.get_ylim()[0] >= 0
                    boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_visible() and t.get_text()
                             and ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]]
                    assert all(not a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]), (name, width)
                (pdf,) = save(fig, tmp_path, f"{name}-{width}", formats=("pdf",))
                box = re.search(rb"/MediaBox \[ *0 0 ([\d.]+) ([\d.]+) *\]", pdf.read_bytes())
                assert float(box.group(1)) == inches * 72, (name, width, box.group(0))
    finally:
        set_layout(None)
