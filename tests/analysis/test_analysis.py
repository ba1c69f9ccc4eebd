"""The analysis stage on real sweeps: python -m wdsweep -m ..., then python -m analysis."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest

from analysis.choice import best_lambdas
from analysis.collect import collect, status_counts
from analysis.figures import headline_chart

from conftest import SEED_REGRESSION_SWEEP, job_dirs, run_analysis, run_wdsweep, shared_sweep

pytestmark = pytest.mark.integration
SMALL = ["trainer.steps=30", "trainer.eval_every=10", "model.depth=1", "model.width=16"]


def sweep(root: Path, *args: str, small: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    proc = run_wdsweep(["-m", *args, *(SMALL if small else []), "hydra.sweep.dir=sweep"], cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "sweep"


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    """24 jobs: lambda x scope x p x seed, on the weight-decay article's data (one sweep for the session, tests
    copy it before changing it)."""
    return shared_sweep(tmp_path_factory, "analysis-grid", ["reg.lam=0,0.01,1", "reg.scope=weights,all",
                                                            "reg.p=1,2", "seed=0,1", *SMALL])


def test_every_job_is_one_row_with_its_own_config(grid):
    runs = collect([grid]).runs
    assert len(runs) == 24 == len(job_dirs(grid))
    for _, row in runs.iterrows():
        job = row["job"]
        assert f"reg.lam={row['reg.lam']:g}" in job and f"reg.p={row['reg.p']:g}" in job
        assert f"reg.scope={row['reg.scope']}" in job and f"seed={row['seed']}" in job
    assert set(runs["status"]) == {"completed"}
    assert runs["test_error"].notna().all()


def test_incomplete_corrupt_and_diverged_runs_are_counted(grid, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(grid, copy)
    jobs = job_dirs(copy)
    (jobs[0] / "metrics.json").unlink()
    (jobs[1] / "metrics.json").write_text("{not json")
    diverged = sweep(tmp_path / "div", "optimizer.lr=1e4,0.01")
    collection = collect([copy, diverged])
    counts = status_counts(collection.runs)
    assert counts["incomplete"] == 1 and counts["unreadable"] == 1
    assert counts["diverged"] == 1 and counts["completed"] == 22 + 1
    (problem,) = collection.problems
    assert str(jobs[1] / "metrics.json") in problem and "corrupt" in problem


def test_sweeps_with_different_keys_merge(grid, tmp_path):
    moons = sweep(tmp_path / "moons", "data=moons", "optimizer=adam", "seed=0,1")
    runs = collect([grid, moons]).runs
    assert len(runs) == 26
    from_moons = runs[runs["data.name"] == "moons"]
    assert from_moons["optimizer.betas"].notna().all() and from_moons["data.label_noise"].notna().all()
    assert runs[runs["data.name"] == "regression1d"]["data.label_noise"].isna().all()
    proc = run_analysis(moons, "--out", tmp_path / "moons_report")  # classification: no fit chart
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "moons_report" / "regression_fits.png").exists()


def test_headline_chart_draws_one_line_per_scope_and_p_over_the_swept_lambdas(grid, tmp_path):
    runs = collect([grid]).runs
    curves, files = headline_chart(runs, tmp_path)
    assert {(p, c) for p, c in zip(curves["reg.p"], curves["curve"])} == {
        (p, c) for p in (1.0, 2.0) for c in ("weights only", "all parameters (global)")}
    for _, line in curves.groupby(["reg.p", "curve"]):
        assert sorted(line["reg.lam"]) == [0.01, 1.0]  # lambda = 0 is the dashed baseline instead
        # two seeds each; a λ with a collapsed seed gets no mean of its survivor, only its marker
        assert ((line["n"] == 2) | ((line["n"] == 0) & (line["n_collapsed"] > 0))).all()
    assert {f.suffix for f in files} == {".png", ".pdf"}
    image = mpimg.imread(files[0] if files[0].suffix == ".png" else files[1])
    assert image.std() > 0.05  # not blank


def test_the_analysis_writes_table_charts_and_a_report_naming_the_known_winner(tmp_path):
    # lambda = 100 crushes a linear fit to a constant: the best lambda is 0 or 0.001 (those two are
    # within noise of each other, and the report must not crown either: tests/analysis/test_report.py).
    known = sweep(tmp_path / "known", "model=linear", "reg.lam=0,0.001,100", "seed=0,1,2",
                  "trainer.steps=300", "trainer.eval_every=100", small=False)
    proc = run_analysis(known, "--out", tmp_path / "report")
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Lowest validation error" in report and "λ = 100" not in report.split("## Best λ")[0]
    assert re.search(r"\| coupled \| weights \| 2 \| (0 \(no decay\)|0\.001) \|", report)
    assert "python -m analysis" in report and "test_error_vs_lambda.png" in report
    runs = pd.read_csv(tmp_path / "report" / "runs.csv")
    assert len(runs) == 9
    table = best_lambdas(runs)
    assert table.iloc[0]["reg.lam"] in (0.0, 0.001) and table.iloc[0]["seeds"] == 3
    for name in ("test_error_vs_lambda", "generalization_gap_vs_lambda"):
        assert (tmp_path / "report" / f"{name}.png").stat().st_size > 10_000
        assert (tmp_path / "report" / f"{name}.pdf").is_file()


def test_bad_sources_get_one_line_each(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_analysis(empty, tmp_path / "nope.txt")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"analysis: {empty}: no runs found (no folder with .hydra/config.yaml below it)",
                     f"analysis: {tmp_path / 'nope.txt'}: not a sweep folder, a .journal file or a storage URL"]


@pytest.fixture(scope="module")
def seed_sweep(tmp_path_factory) -> Path:
    """The weight-decay article's experiment (its two runs for seeds 1 and 2): seed 1's figures,
    and a sweep whose figures load model.pt. One sweep for the session, shared with
    test_cli.py; tests copy it before changing anything."""
    return shared_sweep(tmp_path_factory, "seed_regression", SEED_REGRESSION_SWEEP)


def png_is_drawn(path: Path) -> bool:
    return path.stat().st_size > 5_000 and mpimg.imread(path).std() > 0.05


def test_seed_one_figures_from_its_experiment(tmp_path, seed_sweep):
    sweep_dir = seed_sweep
    out = tmp_path / "report"
    proc = run_analysis(sweep_dir, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert png_is_drawn(out / "weight_histograms.png") and png_is_drawn(out / "regression_fits.png")
    report = (out / "report.md").read_text()
    assert "weight_histograms.png" in report and "regression_fits.png" in report

    from analysis.figures import regression_fits, weight_histograms
    runs = collect([sweep_dir]).runs
    weights, _ = weight_histograms(runs, tmp_path / "again")
    assert set(weights["layer"]) == {"0.weight", "2.weight", "4.weight", "6.weight"}
    spread = weights.groupby("run")["weight"].std()
    assert spread["no decay"] > spread.drop("no decay").iloc[0]  # decay shrinks the weights
    fits, _ = regression_fits(runs, tmp_path / "again")
    assert fits.groupby("run").size().tolist() == [200, 200]


def test_lr_lambda_heatmap_when_lr_is_swept(tmp_path):
    sweep_dir = sweep(tmp_path / "lr", "optimizer.lr=0.01,0.05", "reg.lam=0.001,0.01", "reg.mode=coupled,decoupled")
    from analysis.figures import lr_lambda_heatmap
    cells, files = lr_lambda_heatmap(collect([sweep_dir]).runs, tmp_path / "out")
    assert len(cells) == 8 and set(cells["mode"]) == {"coupled", "decoupled"}
    assert png_is_drawn([f for f in files if f.suffix == ".png"][0])
    # a swept learning rate is a setting of its own, not averaged over like a seed
    table = best_lambdas(collect([sweep_dir]).runs)
    assert len(table) == 4 and set(table["optimizer.lr"]) == {0.01, 0.05} and (table["seeds"] == 1).all()
    proc = run_analysis(sweep_dir, "--out", tmp_path / "report")
    assert proc.returncode == 0, proc.stderr
    assert "| mode | scope | p | optimizer.lr | best λ |" in (tmp_path / "report" / "report.md").read_text()


def test_optuna_study_and_grid_are_analysed_together(grid, tmp_path):
    proc = run_wdsweep(["-m", "search=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.study_name=s", *SMALL],
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    journal = tmp_path / "multirun" / "optuna" / "s.journal"
    (study_sweep,) = [p.parent for p in (tmp_path / "multirun").glob("*/*/optimization_results.yaml")]
    out = tmp_path / "out"
    # The study's journal and its own sweep folder are one study: each trial counts once.
    proc = run_analysis(grid, journal, study_sweep, "--out", out)
    assert proc.returncode == 0, proc.stderr
    runs = pd.read_csv(out / "runs.csv")
    trials = runs[runs["trial"].notna()]
    assert sorted(trials["trial"]) == [0, 1, 2] and trials["test_error"].notna().all()
    assert len(runs) == 24 + 3
    assert png_is_drawn(out / "optuna_s_history.png")  # the study's own plots (tests/analysis/test_analysis_optuna.py)


def test_another_tools_or_a_cut_config_is_one_line_and_not_a_row(grid, tmp_path):
    foreign = tmp_path / "foreign" / "job" / ".hydra"
    foreign.mkdir(parents=True)
    (foreign / "config.yaml").write_text("lr: 0.1\nname: not ours\n")
    cut = tmp_path / "cut"
    shutil.copytree(job_dirs(grid)[0], cut / "job")
    (cut / "job" / ".hydra" / "config.yaml").write_text("reg:\n  lam: 0.1\n")  # valid YAML, cut short
    found = collect([tmp_path / "foreign", cut, grid])
    assert len(found.runs) == 24  # the grid's jobs only
    assert f"{foreign / 'config.yaml'}: not a wdsweep job's config (no model, data, optimizer, reg, trainer)" \
        in " ".join(found.problems)
    assert any(p.startswith(f"{cut / 'job' / '.hydra' / 'config.yaml'}: not a wdsweep job's config")
               for p in found.problems)


class _RunsCode:
    """Unpickling this calls os.system: what a crafted model.pt would do under a full load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("damage", ["crafted", "truncated"])
def test_a_crafted_or_truncated_model_file_is_one_line_and_runs_no_code(tmp_path, damage, seed_sweep,
                                                                       monkeypatch):
    """The analysis loads weights only: a model.pt that would run code under a full unpickle
    runs none (even with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1), and a truncated one leaves out
    the figures that need it, with one line, while the rest of the report is made."""
    import torch

    sweep_dir = tmp_path / "s"
    shutil.copytree(seed_sweep, sweep_dir)
    marker = tmp_path / "code-ran"
    for job in job_dirs(sweep_dir):
        model = job / "model.pt"
        if damage == "crafted":
            torch.save({"0.weight": _RunsCode(marker)}, model)  # a pickle inside torch's zip format
            with pytest.raises(Exception):
                torch.load(model, weights_only=True)
            assert not marker.exists()
        else:
            model.write_bytes(model.read_bytes()[:100])
    out = tmp_path / "report"
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # torch reads it at each load
    proc = run_analysis(sweep_dir, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    problems = [line for line in proc.stderr.splitlines() if "unreadable model.pt" in line]
    assert problems and all("Traceback" not in line for line in proc.stderr.splitlines())
    assert "weight_histograms not drawn" in proc.stderr and not (out / "weight_histograms.png").exists()
    report = (out / "report.md").read_text()
    assert "unreadable model.pt" in report and (out / "runs.csv").is_file()


def test_with_no_source_the_newest_sweep_is_taken_dated_or_named(tmp_path):
    from analysis.__main__ import newest_sweep

    assert newest_sweep(tmp_path / "multirun") is None
    for i, folder in enumerate(("multirun/2026-12-01/10-00-00", "multirun/mysweep", "multirun/2026-12-02/09-00-00")):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "multirun.yaml").write_text("{}")
        os.utime(tmp_path / folder / "multirun.yaml",
                 (1_000_000 + i, 1_000_000 + (10 if folder.endswith("mysweep") else i)))
    assert newest_sweep(tmp_path / "multirun") == tmp_path / "multirun" / "mysweep"
