"""Resume knows what it resumes: a finished job whose model code or data file changed since is
trained again, and the dry run and the log say why; an unchanged one is skipped, and a record
made before fingerprints were written is taken as it is."""
from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd

from conftest import job_dirs, read_metrics, run_wdsweep

NET = '''
from torch import nn


def build(n_features, n_outputs, width=8):
    return nn.Sequential(nn.Linear(n_features, width), nn.ReLU(), nn.Linear(width, n_outputs))
'''


def test_a_change_of_model_code_or_data_trains_the_job_again_and_says_why(tmp_path, monkeypatch):
    (tmp_path / "mynet.py").write_text(NET)
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "mynet.yaml").write_text("_target_: mynet.build\n")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    frame.assign(y=frame["a"] - frame["b"]).to_csv(tmp_path / "d.csv", index=False)
    grid = ["--config-dir", "conf", "-m", "model=mynet", "data=csv", "data.path=d.csv", "data.target=y",
            "seed=0,1", "trainer.steps=10", "trainer.eval_every=5", "hydra.sweep.dir=S"]

    def sweep(*extra):
        monkeypatch.delitem(sys.modules, "mynet", raising=False)
        proc = run_wdsweep([*grid, *extra], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout + proc.stderr

    def run_ids():
        return {job.name: read_metrics(job)["run_id"] for job in job_dirs(tmp_path / "S")}

    sweep()
    first = run_ids()
    assert all("mynet.py" in read_metrics(j)["fingerprint"]["code"] for j in job_dirs(tmp_path / "S"))
    assert sweep("hydra.sweeper.dry_run=true").count("skip: done") == 2 and run_ids() == first

    (tmp_path / "mynet.py").write_text(NET.replace("nn.ReLU()", "nn.Tanh()"))
    plan = sweep("hydra.sweeper.dry_run=true")
    assert plan.count("train: model code changed (mynet.py)") == 2, plan
    log = sweep()
    assert "trains again: model code changed (mynet.py) since it was done" in log
    second = run_ids()
    assert all(second[name] != first[name] for name in first)

    frame.assign(y=frame["a"] + frame["b"]).to_csv(tmp_path / "d.csv", index=False)
    assert sweep("hydra.sweeper.dry_run=true").count("train: data changed (d.csv)") == 2
    sweep()
    third = run_ids()
    assert all(third[name] != second[name] for name in first)
    sweep()
    assert run_ids() == third  # nothing changed: skipped

    # a record from before fingerprints: taken as it is
    for job in job_dirs(tmp_path / "S"):
        record = read_metrics(job)
        del record["fingerprint"]
        (job / "metrics.json").write_text(json.dumps(record))
    (tmp_path / "mynet.py").write_text(NET)
    assert sweep("hydra.sweeper.dry_run=true").count("skip: done") == 2
