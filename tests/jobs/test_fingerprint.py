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


def test_a_helper_module_and_a_file_under_any_key_are_part_of_the_fingerprint(tmp_path, monkeypatch):
    # fpnet imports its width from helper.py; the loader reads `file=d.npz`, and the model an
    # init file under a key of its own: a change to any of them is a change of the job
    from omegaconf import OmegaConf

    from wdsweep.tracking.fingerprint import changes, fingerprint

    (tmp_path / "fpnet.py").write_text("from torch import nn\nfrom helper import WIDTH\nfrom blocks import act\n\n"
                                       "def net(n_features, n_outputs, init='init.txt'):\n"
                                       "    return nn.Linear(n_features, n_outputs)\n")
    (tmp_path / "helper.py").write_text("import os\nimport numpy\nWIDTH = 8\n")
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "__init__.py").write_text("from .acts import act\n")
    (tmp_path / "blocks" / "acts.py").write_text("act = 'relu'\n")
    (tmp_path / "myload.py").write_text("def load(file, seed=0):\n    raise NotImplementedError\n")
    (tmp_path / "d.npz").write_bytes(b"first")
    (tmp_path / "init.txt").write_text("0.1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = OmegaConf.create({"model": {"_target_": "fpnet.net", "init": "init.txt"},
                            "data": {"_target_": "myload.load", "file": "d.npz", "task": "classification",
                                     "here": "."}})  # the folder the command ran in: never listed
    before = fingerprint(cfg)
    assert set(before["code"]) == {"fpnet.py", "helper.py", "blocks/__init__.py", "blocks/acts.py", "myload.py"}
    assert set(before["data"]) == {"d.npz", "init.txt"}

    (tmp_path / "helper.py").write_text("import os\nimport numpy\nWIDTH = 64\n")
    (tmp_path / "blocks" / "acts.py").write_text("act = 'tanh'\n")
    (tmp_path / "d.npz").write_bytes(b"second!")
    (tmp_path / "init.txt").write_text("0.25\n")
    assert changes(before, fingerprint(cfg)) == ["model code changed (acts.py, helper.py)",
                                                 "data changed (d.npz, init.txt)"]
