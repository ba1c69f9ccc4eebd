"""The in-process runner (tests/in_process.py) is what a process is: for each launcher that runs
its jobs in the sweep's own process (the grid sweeper's basic launcher, the vectorized launcher,
the Optuna sweeper), the same sweep run as `python -m wdsweep` in a subprocess and in the test
process writes the same metrics.json and history.csv, bit for bit; and a run leaves the test
process as it found it."""
from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path

import pytest
import torch

from conftest import history_without_seconds, job_dirs, metrics_without_timing, run_cli, run_wdsweep

QUICK = ["trainer.steps=60", "trainer.eval_every=20"]
LAUNCHERS = {
    "basic": ["reg.p=1,2", "seed=0,1", *QUICK],
    "vectorized": ["hydra/launcher=vectorized", "reg.p=1,2", "seed=0,1", *QUICK],
    "optuna": ["search=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=3",
               "hydra.sweeper.study_name=same", *QUICK],
}


def results(sweep: Path) -> dict:
    """Each job's metrics.json without its per-execution fields, and its history.csv without
    the seconds column, by the job's folder name."""
    found = {}
    for name, record in metrics_without_timing(sweep).items():
        if "optuna" in record:  # the study's own id for the trial differs per storage
            record["optuna"] = {k: v for k, v in record["optuna"].items() if k != "trial_id"}
        found[name] = (record, history_without_seconds(sweep / name))
    return found


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_a_sweep_in_process_writes_what_the_same_sweep_in_a_process_writes(tmp_path, launcher):
    args = ["-m", *LAUNCHERS[launcher]]
    (tmp_path / "process").mkdir()
    (tmp_path / "here").mkdir()
    process = run_cli([*args, "hydra.sweep.dir=S"], cwd=tmp_path / "process")
    assert process.returncode == 0, process.stderr
    here = run_wdsweep([*args, "hydra.sweep.dir=S"], cwd=tmp_path / "here")
    assert here.returncode == 0, here.stderr
    expected = results(tmp_path / "process" / "S")
    assert len(expected) >= 3 and all(record["status"] == "completed" for record, _ in expected.values())
    assert results(tmp_path / "here" / "S") == expected
    # The same lines reach the streams (the job summaries, from Hydra's logging).
    summaries = lambda out: sorted(line.split("| completed |")[0].split("] ")[-1]  # noqa: E731
                                   for line in out.splitlines() if "| completed |" in line)
    assert summaries(here.stdout + here.stderr) == summaries(process.stdout + process.stderr)
    if launcher == "optuna":  # the study the runner left in the journal is the subprocess's study
        import optuna

        def values(root: Path) -> list:
            journal = root / "multirun" / "optuna" / "same.journal"
            storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
            return [(t.params, t.value) for t in optuna.load_study(study_name="same", storage=storage).trials]

        assert values(tmp_path / "here") == values(tmp_path / "process")


def test_a_run_in_process_leaves_this_process_as_it_found_it(tmp_path):
    """What main() and the jobs change process-wide is put back: the working directory, the
    environment, argv, the SIGTERM handler, the root logger, torch's threads; and a user's
    module of the test's folder is forgotten, so that another folder's file of that name is
    imported afresh. A second run behaves as a first one (its once-per-process state reset).
    Hydra's plugin modules are not executed again (a class made anew would not pickle)."""
    import pickle

    from hydra.core.plugins import Plugins

    Plugins.instance()  # the scan of a process's first Hydra app: it executes the plugin modules
    from hydra._internal.core_plugins.importlib_resources_config_source import ImportlibResourcesConfigSource

    before = (os.getcwd(), dict(os.environ), sys.argv[:], signal.getsignal(signal.SIGTERM),
              logging.getLogger().handlers[:], torch.get_num_threads(), sys.path[:], gc.get_threshold())
    for name, width in (("first", 8), ("second", 12)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "mynet.py").write_text(
            "from torch import nn\n\n"
            f"def build(n_features, n_outputs):\n    return nn.Sequential(nn.Linear(n_features, {width}), "
            f"nn.ReLU(), nn.Linear({width}, n_outputs))\n")
        (folder / "conf" / "model").mkdir(parents=True)
        (folder / "conf" / "model" / "mynet.yaml").write_text("_target_: mynet.build\n")
        done = run_wdsweep(["-m", "--config-dir", "conf", "model=mynet", "trainer.steps=5", "trainer.eval_every=5",
                            "hydra.sweep.dir=S"], cwd=folder)  # a sweep: it also raises the GC thresholds
        assert done.returncode == 0, done.stderr
        (job,) = job_dirs(folder / "S")
        state = torch.load(job / "model.pt")
        assert state["0.weight"].shape == (width, 1)  # this folder's mynet, not the first one's
        assert "mynet" not in sys.modules
    after = (os.getcwd(), dict(os.environ), sys.argv[:], signal.getsignal(signal.SIGTERM),
             logging.getLogger().handlers[:], torch.get_num_threads(), sys.path[:], gc.get_threshold())
    assert after == before
    pickle.dumps(ImportlibResourcesConfigSource)  # by reference: still the module's own class


def test_a_refused_run_in_process_has_the_exit_status_and_line_of_a_process(tmp_path):
    (tmp_path / "process").mkdir()
    (tmp_path / "here").mkdir()
    process = run_cli(["reg.lam=-1"], cwd=tmp_path / "process")
    here = run_wdsweep(["reg.lam=-1"], cwd=tmp_path / "here")
    assert (here.returncode, here.stdout, here.stderr) == (process.returncode, process.stdout, process.stderr)
    assert here.returncode == 1 and here.stderr.startswith("wdsweep: invalid config: reg.lam=-1.0")
    assert json.dumps(sorted(p.name for p in (tmp_path / "here").iterdir())) == "[]"
