"""A plain (non-editable) install ships conf/ inside the package and the sweeper plugin, and
works from any working directory."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import job_dirs, read_metrics

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent


def test_wheel_runs_from_any_directory(tmp_path):
    dist, site, work = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # The build backend is the test extra's hatchling: an isolated build env would fetch it again.
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", dist, ROOT], check=True, timeout=300)
    (wheel,) = dist.glob("wdsweep-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True, timeout=300)
    assert (site / "wdsweep" / "conf" / "config.yaml").is_file()
    assert (site / "wdsweep" / "conf" / "experiment" / "lp_vs_global.yaml").is_file()

    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import wdsweep.app as a; print(a.CONFIG_DIR)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()) == site / "wdsweep" / "conf"
    proc = subprocess.run([sys.executable, "-m", "wdsweep", "-m", "reg.p=1,2", "trainer.steps=5",
                           "trainer.eval_every=5"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    jobs = job_dirs(work / "multirun")
    assert len(jobs) == 2 and all(read_metrics(j)["status"] == "completed" for j in jobs)
    bad = subprocess.run([sys.executable, "-m", "wdsweep", "-m", "reg.p=1,0"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "reg.p=0.0 is not allowed" in bad.stderr  # the plugin validated
    # A user's own `analysis` package in the working folder shadows ours for `python -m
    # analysis`; the console script still runs ours.
    (work / "analysis").mkdir()
    (work / "analysis" / "__init__.py").write_text("raise SystemExit('the user analysis ran')\n")
    report = subprocess.run([site / "bin" / "wdsweep-analysis", str(work / "multirun"), "--out", "report"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert (work / "report" / "runs.csv").read_text().count("\n") == 3  # a header and the two jobs
