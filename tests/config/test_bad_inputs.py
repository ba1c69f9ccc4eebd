"""Bad inputs, as a user meets them: one table of command lines. Every row must end with
exactly one line on stderr that names the key, the bad value and what is allowed, a non-zero
exit, no traceback, and nothing written: no metrics.json, no output folder.

The rows of PROCESS_ROWS run as real processes (`python -m wdsweep ...`, `python -m analysis
...`): one for each place a refusal can come from (the single run's callback, the grid sweeper,
the override syntax check before Hydra, a data file, an Optuna storage, the analysis), so the
process's own exit status and one line are what is tested there. The other rows run the same
entry point in this process (conftest.run_wdsweep: the same exit status and stderr, without a
process start of a second or two each).

Two inputs are not errors and have tests of their own, in-process: a batch larger than the
training split (allowed, with a one-line warning) and a corrupt metrics.json met by the
analysis (reported, and the other runs analysed)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from conftest import job_dirs, read_metrics, run_cli, run_wdsweep
from conftest import run_analysis as analysis_here

pytestmark = pytest.mark.integration

# Files the csv rows read, written into each test's folder before the command runs.
CSV_FILES = {
    "no_target.csv": "a,b,y\n" + "1,2,3\n4,5,6\n7,8,9\n" * 4,
    "non_numeric.csv": "a,b,y\n" + "1,x,3\n4,y,6\n7,z,9\n" * 4,
    # A split column with train and test rows but no val row.
    "no_val.csv": "a,split,y\n" + "1,train,3\n4,train,6\n7,test,9\n" * 4,
    # Numbers pandas reads as floats but the float32 model cannot hold.
    "inf_feature.csv": "a,b,y\n" + "1,2,3\n4,5,6\n" * 3 + "7,inf,9\n",
    "neg_inf_target.csv": "a,b,y\n" + "1,2,3\n4,5,6\n" * 3 + "7,8,-inf\n",
    "huge_feature.csv": "a,b,y\n" + "1,2,3\n" + "4,5,6\n1e300,8,9\n" * 3,
}

# A storage password no output may show.
SECRET = "Pw-never-shown-3141"

# id, program, arguments, the texts the one line must hold (the key with the bad value, and
# what is allowed).
CASES = [
    # Value checks report every problem of a command in its one line: six bad values, one process
    # (each start costs seconds); a rule that broke would leave its text out of the line.
    ("out-of-range-values", "wdsweep",
     ["reg.lam=-1", "reg.p=0", "reg.mode=sideways", "reg.scope=biases", "trainer.steps=0", "trainer.batch_size=-4"],
     ["reg.lam=-1.0", "a finite number >= 0", "reg.p=0.0", "a finite number > 0",
      "reg.mode='sideways'", "one of coupled, decoupled, proximal", "reg.scope='biases'", "one of weights, all",
      "trainer.steps=0", "a finite number >= 1;", "trainer.batch_size=-4",
      "a finite number >= 1 or null"]),
    ("p-string", "wdsweep", ["reg.p=abc"], ["reg.p='abc'", "a number"]),
    ("proximal-p3", "wdsweep", ["reg.mode=proximal", "reg.p=3"],
     ["reg.p=3.0", "1 or 2 with reg.mode=proximal"]),
    # Decoupled decay under Adam/AdamW minimizes no fixed penalty: nothing to correct exactly.
    ("momentum-corrected-adamw", "wdsweep", ["optimizer=adamw", "reg=decoupled", "reg.momentum_corrected=true"],
     ["reg.momentum_corrected=True", "false with optimizer=adamw", "true only with optimizer=sgd"]),
    ("unknown-model", "wdsweep", ["model=resnet999"], ["model='resnet999'", "one of cnn, linear, mlp"]),
    ("unknown-model-in-sweep", "wdsweep", ["-m", "model=resnet999", "reg.p=1,2"],
     ["model='resnet999'", "one of cnn, linear, mlp"]),
    ("type-error-in-sweep", "wdsweep", ["-m", "reg.p=1,abc"], ["reg.p='abc'", "a number", "[job: reg.p=abc]"]),
    ("unknown-key", "wdsweep", ["reg.nope=1"],
     ["reg.nope=1", "one of lam, p, mode, scope, l1_ratio, eps, impl", "did you mean reg.scope?"]),
    ("csv-missing", "wdsweep", ["data=csv", "data.path=missing.csv", "data.target=y"],
     ["data.path='missing.csv'", "an existing csv file (not found: "]),
    ("csv-no-target", "wdsweep", ["data=csv", "data.path=no_target.csv", "data.target=price"],
     ["data.target='price'", "a column of the file: a, b, y"]),
    ("csv-non-numeric", "wdsweep", ["data=csv", "data.path=non_numeric.csv", "data.target=y"],
     ["data.path='non_numeric.csv'", "numeric feature columns only; non-numeric: b"]),
    ("two-jobs-one-folder", "wdsweep",
     ["-m", "seed=0,1", "hydra.job.config.override_dirname.exclude_keys=[seed]"],
     ["hydra.sweep.subdir='default' is not allowed", "one folder per job", "[seed=0] and [seed=1]"]),
    ("csv-inf", "wdsweep", ["data=csv", "data.path=inf_feature.csv", "data.target=y"],
     ["data.path='inf_feature.csv'", "finite numbers within float32's range", "column b row 8 holds inf"]),
    ("csv-minus-inf-target", "wdsweep", ["data=csv", "data.path=neg_inf_target.csv", "data.target=y"],
     ["data.path='neg_inf_target.csv'", "column y row 8 holds -inf"]),
    ("csv-float32-overflow", "wdsweep", ["data=csv", "data.path=huge_feature.csv", "data.target=y"],
     ["data.path='huge_feature.csv'", "column a row 4 holds 1e+300"]),
    ("csv-empty-split", "wdsweep", ["data=csv", "data.path=no_val.csv", "data.target=y"],
     ["data.path='no_val.csv'", "every split non-empty; val has no rows"]),
    ("n-train-too-large", "wdsweep", ["data=digits", "data.n_train=100000"],
     ["data.n_train=100000", "at most the 1077 rows of the training split"]),
    ("sweep-trailing-comma", "wdsweep", ["-m", "reg.p=1,2,"],
     ["'reg.p=1,2,'", "key=value in Hydra's override syntax, a sweep as key=a,b,c"]),
    ("sweep-unclosed", "wdsweep", ["-m", "reg.lam=tag(log,interval(1e-5)"],
     ["'reg.lam=tag(log,interval(1e-5)'", "key=value in Hydra's override syntax"]),
    ("optuna-postgres-unreachable", "wdsweep",
     ["-m", "search=optuna", "hydra.sweeper.storage=postgresql://nobody@127.0.0.1:1/x",
      "hydra.sweeper.n_trials=1"],
     ["hydra.sweeper.storage='postgresql://nobody@127.0.0.1:1/x'",
      "an Optuna storage this process can open and write", "Connection refused"]),
    # A password in a storage URL is never shown: the one line names the URL masked.
    ("optuna-postgres-password-unreachable", "wdsweep",
     ["-m", "search=optuna", f"hydra.sweeper.storage=postgresql://nobody:{SECRET}@127.0.0.1:1/x",
      "hydra.sweeper.n_trials=1"],
     ["hydra.sweeper.storage='postgresql://nobody:***@127.0.0.1:1/x'", "Connection refused"]),
    ("analysis-postgres-password-unreachable", "analysis", [f"postgresql://nobody:{SECRET}@127.0.0.1:1/x"],
     ["postgresql://nobody:***@127.0.0.1:1/x: cannot read the Optuna storage", "Connection refused"]),
    ("optuna-sqlite-no-folder", "wdsweep",
     ["-m", "search=optuna", "hydra.sweeper.storage=sqlite:///no_such_folder/x.db",
      "hydra.sweeper.n_trials=1"],
     ["hydra.sweeper.storage='sqlite:///no_such_folder/x.db'",
      "an Optuna storage this process can open and write", "no_such_folder does not exist"]),
    ("optuna-unknown-sampler", "wdsweep", ["-m", "search=optuna", "hydra/sweeper/sampler=nonesuch"],
     ["hydra/sweeper/sampler='nonesuch'", "one of cmaes, gp, grid, random, tpe"]),
    ("optuna-enqueue-outside", "wdsweep", ["-m", "search=optuna", "hydra.sweeper.enqueue=[{reg.lam: -1}]"],
     ["hydra.sweeper.enqueue={'reg.lam': -1} is not allowed", "reg.lam=-1 is outside"]),
    ("optuna-enqueue-unknown-key", "wdsweep", ["-m", "search=optuna", "hydra.sweeper.enqueue=[{reg.nope: 1}]"],
     ["hydra.sweeper.enqueue={'reg.nope': 1} is not allowed", "reg.nope is not searched"]),
    # every problem of the sweeper's own keys on the one line
    ("optuna-zero-trials", "wdsweep", ["-m", "search=optuna", "hydra.sweeper.n_trials=0",
                                       "hydra.sweeper.workers=2", "hydra.sweeper.n_jobs=3"],
     ["hydra.sweeper.n_trials=0", "an integer >= 1",
      "hydra.sweeper.n_jobs=3 is not allowed: 1 with hydra.sweeper.workers > 1"]),
    # (vectorized_submitit_local and _slurm take the same check: they are this launcher)
    ("vectorized-max-batch-zero", "wdsweep", ["-m", "hydra/launcher=vectorized", "hydra.launcher.max_batch=0",
                                              "reg.p=1,2"],
     ["hydra.launcher.max_batch=0", "an integer >= 1"]),
    ("analysis-empty-folder", "analysis", ["empty"],
     ["empty: no runs found", "no folder with .hydra/config.yaml below it"]),
    ("analysis-not-a-source", "analysis", ["runs.txt"],
     ["runs.txt: ", "not a sweep folder, a .journal file or a storage URL"]),
]


def run_analysis(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
    """`python -m analysis ARGS` as a process."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "analysis", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=240, check=False)


# The rows run as processes (see the module docstring); every analysis row is one (it runs in
# the command's folder).
PROCESS_ROWS = {"out-of-range-values", "type-error-in-sweep", "sweep-unclosed", "csv-inf",
                "optuna-postgres-password-unreachable"}


@pytest.mark.parametrize("row,program,args,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, row, program, args, needles):
    for name, text in CSV_FILES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "empty").mkdir()
    before = sorted(tmp_path.rglob("*"))

    if program == "analysis":
        proc = run_analysis(args, cwd=tmp_path)
    else:
        proc = (run_cli if row in PROCESS_ROWS else run_wdsweep)(args, cwd=tmp_path)

    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    assert SECRET not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{program}: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert not list(tmp_path.rglob("metrics.json"))
    assert sorted(tmp_path.rglob("*")) == before  # no outputs/, multirun/ or journal folder


def test_a_batch_larger_than_the_training_split_is_allowed_with_one_warning(tmp_path):
    # regression1d has 10 training rows: 10 is exactly full-batch, 64 is more than there is.
    proc = run_wdsweep(["-m", "trainer.batch_size=10,64", "trainer.steps=2", "trainer.eval_every=1",
                        "hydra.sweep.dir=sweep"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    # Once, though validate runs twice (the sweeper, then the job), and not for 10.
    assert warnings == [("wdsweep: warning: trainer.batch_size=64 is larger than the 10 rows of the "
                         "training split (data=regression1d): allowed, but every step is then full-batch")]
    runs = [read_metrics(job) for job in job_dirs(tmp_path / "sweep")]
    assert sorted(r["config"]["trainer"]["batch_size"] for r in runs) == [10, 64]
    assert all(r["status"] == "completed" and r["data_sizes"]["train"] == 10 for r in runs)


def test_the_analysis_reports_a_corrupt_metrics_json_and_goes_on(tmp_path, monkeypatch):
    proc = run_wdsweep(["-m", "reg.p=1,2", "trainer.steps=5", "trainer.eval_every=5",
                        "hydra.sweep.dir=sweep"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    bad, good = job_dirs(tmp_path / "sweep")
    text = (bad / "metrics.json").read_text()
    (bad / "metrics.json").write_text(text[: len(text) // 2])  # as a killed writer would leave it
    good_metrics = read_metrics(good)

    monkeypatch.chdir(tmp_path)  # the paths the analysis is given, and names, are relative
    proc = analysis_here("sweep", "--out", "report")

    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("analysis: ") and "corrupt metrics.json" in lines[0]
    assert str(Path("sweep") / bad.name / "metrics.json") in lines[0]
    runs = pd.read_csv(tmp_path / "report" / "runs.csv")
    by_job = {Path(job).name: row for job, row in zip(runs["job"], runs.to_dict("records"))}
    assert set(by_job) == {bad.name, good.name}
    assert by_job[bad.name]["status"] == "unreadable"
    assert by_job[good.name]["status"] == "completed"
    assert by_job[good.name]["test_error"] == pytest.approx(good_metrics["test_error"])
    assert "unreadable" in (tmp_path / "report" / "report.md").read_text()
    assert json.loads((good / "metrics.json").read_text()) == good_metrics  # only read


@pytest.mark.parametrize("option,options,hint", [
    ("submitit_local", ["basic", "vectorized"], "pip install 'wdsweep[submitit]'"),
    ("vectorized_submitit_slurm", ["basic", "vectorized"], "pip install 'wdsweep[submitit]'"),
    ("joblib", ["basic", "vectorized"], "pip install 'wdsweep[joblib]'"),
    ("submitit_locl", ["basic", "submitit_local", "vectorized"], None),  # installed: a typo, no hint
])
def test_a_launcher_of_an_extra_that_is_not_installed_names_the_extra(option, options, hint):
    """What Hydra raises for a launcher it cannot find, as the one line says it."""
    from hydra.errors import MissingConfigException

    from wdsweep.config.validation import composition_error_line

    err = MissingConfigException(f"Could not find 'hydra/launcher/{option}'", f"hydra/launcher/{option}",
                                 options=options)
    line = composition_error_line(err)
    assert line.startswith(f"invalid config: hydra/launcher='{option}' is not allowed: one of ")
    assert (hint in line) if hint else ("pip install" not in line)


@pytest.mark.parametrize("args,torch_needed", [
    (["reg.lam=-1"], False),  # refused before Hydra runs: no torch at all
    (["-m", "reg.p=1,2,-1"], True),  # the sweep's validation builds each model on the meta device
    (["-m", "reg.p=1,2", "hydra.sweeper.dry_run=true"], True),
], ids=["refused-run", "refused-sweep", "dry-run"])
def test_a_start_that_trains_nothing_imports_nothing_training_needs(tmp_path, args, torch_needed):
    """A command that only validates, plans or refuses never imports the training loop, the
    job runner or torch._dynamo (which torch's optimizers import at their first step: about
    a second of every process that trains)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "wdsweep", *args], cwd=tmp_path,
                          env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True, timeout=240)
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "wdsweep.app" in imported and "hydra" in imported  # -X importtime did report
    assert not imported & {"torch._dynamo", "wdsweep.jobs.run", "wdsweep.train.training", "wdsweep.train.optimizers"}
    assert ("torch" in imported) == torch_needed
    said = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    if "-1" in " ".join(args):
        assert proc.returncode == 1 and len(said) == 1 and said[0].startswith("wdsweep: invalid config: ")
    else:
        assert proc.returncode == 0 and "would train" in proc.stdout + proc.stderr, proc.stdout
    assert not list(tmp_path.rglob("metrics.json"))
