"""The report's finalists section, on constructed finalists.yaml files: what it says of the
search's optimism and of the best finalist must follow from the numbers (checked with scipy)."""
from __future__ import annotations

import numpy as np
import yaml
from scipy import stats

from analysis.finalists import finalist_files, finalists_section
from wdsweep.search import finalists


def entry(name: str, search_value: float, val: list, seeds=(5, 6, 7)) -> dict:
    rows = [finalists.seed_row(s, {"status": "completed", "val_error": v, "test_error": v + 0.01}, v, None)
            for s, v in zip(seeds, val)]
    return finalists.summary(name, {"reg.lam": 1e-3}, search_value, rows)


def write(tmp_path, *entries) -> list:
    finalists.write(tmp_path, "minimize", [0, 1, 2], [5, 6, 7], list(entries))
    return finalist_files([str(tmp_path)])


def test_an_optimistic_search_value_is_called_the_winners_curse(tmp_path):
    text = "\n".join(finalists_section(write(tmp_path, entry("a", 0.02, [0.05, 0.06, 0.055]))))
    low, high = stats.t.interval(0.95, 2, loc=0.055, scale=stats.sem([0.05, 0.06, 0.055]))
    assert f"[{low:.4f}, {high:.4f}]" in text
    assert "optimistic by about 0.0350" in text and "winner's curse" in text


def test_a_search_value_inside_the_fresh_interval_is_no_measurable_optimism(tmp_path):
    text = "\n".join(finalists_section(write(tmp_path, entry("a", 0.055, [0.05, 0.07, 0.045]))))
    assert "no optimism measurable" in text and "winner's curse" not in text


def test_the_best_finalist_is_compared_with_the_runner_up_on_paired_fresh_seeds(tmp_path):
    best, close = [0.050, 0.060, 0.055], [0.052, 0.059, 0.058]
    text = "\n".join(finalists_section(write(tmp_path, entry("b", 0.05, close), entry("a", 0.05, best))))
    p = stats.ttest_rel(close, best).pvalue
    assert "**a**" in text and f"p = {p:.2g}" in text and "within noise" in text
    assert f"by {np.mean(np.subtract(close, best)):.4f}" in text

    clear = [0.150, 0.161, 0.157]  # far worse on every seed
    text = "\n".join(finalists_section(write(tmp_path, entry("a", 0.05, best), entry("c", 0.05, clear))))
    assert "beyond noise" in text and stats.ttest_rel(clear, best).pvalue < 0.05


def test_an_exact_tie_on_every_fresh_seed_is_called_a_tie(tmp_path):
    text = "\n".join(finalists_section(write(tmp_path, entry("a", 0.05, [0.05, 0.06, 0.07]),
                                             entry("b", 0.05, [0.05, 0.06, 0.07]))))
    assert "ties exactly" in text and "beyond noise" not in text


def test_an_unreadable_file_is_one_line_and_the_rest_is_kept(tmp_path):
    (tmp_path / "finalists.yaml").write_text(yaml.safe_dump({"finalists": [{"trial": 3}]}))
    lines = finalists_section(finalist_files([str(tmp_path)]))
    assert len([line for line in lines if line]) == 1 and "could not be read" in lines[0]
