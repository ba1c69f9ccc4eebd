"""Jobs that cannot differ train once: with reg.lam=0, p, mode, scope, l1_ratio, eps and impl
change nothing (checked here by training them), and a sweep writes the others as records."""
from __future__ import annotations

import csv

import pytest

from wdsweep.jobs.canonical import canonical_hash
from wdsweep.jobs.run import run

from conftest import history_without_seconds, job_dirs, read_metrics, run_analysis, run_wdsweep

# Fields a record of another job's result has of its own.
OWN = ("train_seconds", "eval_seconds", "started_at", "finished_at", "run_id", "config",
       "config_hash", "overrides", "decay", "torch_threads", "thread_independent", "same_as", "throughput")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_with_lam_zero_the_idle_reg_keys_change_no_number(compose_cfg, tmp_path, optimizer):
    base = ["data=digits", "data.n_train=200", "trainer.steps=60", "trainer.eval_every=30",
            f"optimizer={optimizer}", "reg.lam=0"]
    variants = [["reg.p=2", "reg.scope=weights", "reg.mode=coupled"],
                ["reg.p=1", "reg.scope=all", "reg.mode=proximal"],
                ["reg.p=3", "reg.scope=all", "reg.mode=decoupled", "reg.impl=manual"],
                ["reg=elastic", "reg.lam=0", "reg.l1_ratio=0.3", "reg.eps=1e-5"]]
    numbers, hashes = [], set()
    for i, variant in enumerate(variants):
        cfg = compose_cfg([*base, *variant])
        hashes.add(canonical_hash(cfg))
        run(cfg, tmp_path / str(i))
        record = read_metrics(tmp_path / str(i))
        numbers.append(({k: v for k, v in record.items() if k not in OWN},
                        history_without_seconds(tmp_path / str(i))))
    assert len(hashes) == 1
    assert all(n == numbers[0] for n in numbers[1:])


def test_with_lam_above_zero_every_reg_key_counts(compose_cfg):
    hashes = {canonical_hash(compose_cfg(["reg.lam=1e-3", change]))
              for change in ("reg.p=1", "reg.p=2", "reg.scope=all", "reg.mode=decoupled", "reg.eps=1e-5")}
    assert len(hashes) == 5
    assert canonical_hash(compose_cfg(["reg.lam=0", "seed=1"])) != canonical_hash(compose_cfg(["reg.lam=0"]))


@pytest.mark.integration
def test_a_sweep_trains_each_distinct_config_once_and_records_the_rest(tmp_path):
    sweep = ["-m", "hydra.sweep.dir=sweep", "data=digits", "data.n_train=200", "trainer.steps=30",
             "trainer.eval_every=30", "reg.lam=0,1e-3", "reg.p=1,2", "reg.scope=weights,all"]
    first = run_wdsweep(sweep, tmp_path)
    assert first.returncode == 0, first.stderr
    dirs = job_dirs(tmp_path / "sweep")
    records = {d: read_metrics(d) for d in dirs}
    assert len(records) == 8
    trained = [d for d, r in records.items() if "same_as" not in r]
    copies = [d for d, r in records.items() if "same_as" in r]
    assert len(trained) == 5 and len(copies) == 3  # lam=0: 4 jobs, one trained
    (source,) = {(tmp_path / "sweep" / records[d]["same_as"]).resolve() for d in copies}
    assert source in [d.resolve() for d in trained] and records[source]["config"]["reg"]["lam"] == 0
    for d in copies:
        r = records[d]
        assert r["config"]["reg"]["lam"] == 0 and r["train_seconds"] == 0
        assert r["test_error"] == records[source]["test_error"] and r["status"] == "completed"
        assert r["config_hash"] != records[source]["config_hash"]  # its own config, as run
        assert (d / "history.csv").read_bytes() == (source / "history.csv").read_bytes()
        assert (d / "model.pt").stat().st_size == (source / "model.pt").stat().st_size
    assert "5 completed, 3 same as another job (not trained)" in first.stdout

    again = run_wdsweep(sweep, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "skipped 8 of 8" in again.stdout
    assert {d: read_metrics(d)["run_id"] for d in dirs} == {d: r["run_id"] for d, r in records.items()}

    analysis = tmp_path / "analysis"
    done = run_analysis(tmp_path / "sweep", "--out", analysis)
    assert done.returncode == 0, done.stderr
    with open(analysis / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    assert sum(bool(row["same_as"]) for row in rows) == 3


@pytest.mark.integration
@pytest.mark.parametrize("n_jobs", [1, 4], ids=["one-by-one", "one-batch"])
def test_an_optuna_trial_that_repeats_a_finished_config_is_told_its_value(tmp_path, n_jobs):
    """The grid sampler over lam in {0, 1e-3} x p in {1, 2}: the two lam=0 trials train one
    configuration. One trial trains, the other is told its value (one by one: from the study;
    in one batch: after its twin of the same round has finished)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    proc = run_wdsweep(["-m", "search=optuna", "hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=4",
                    f"hydra.sweeper.n_jobs={n_jobs}", "reg.lam=choice(0,1e-3)", "reg.p=choice(1,2)",
                    "hydra.sweep.dir=sweep", "data=digits", "data.n_train=200", "trainer.steps=20",
                    "trainer.eval_every=10"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (journal,) = (tmp_path / "multirun" / "optuna").glob("*.journal")
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    twins = [t for t in study.trials if "wdsweep_same_as" in t.user_attrs]
    assert len(twins) == 1
    (twin,) = twins
    source = study.trials[twin.user_attrs["wdsweep_same_as"]]
    assert twin.params["reg.lam"] == source.params["reg.lam"] == 0
    assert twin.params["reg.p"] != source.params["reg.p"]
    assert twin.values == source.values
    assert twin.user_attrs["wdsweep_test_error"] == source.user_attrs["wdsweep_test_error"]
    records = {d.name: read_metrics(d) for d in job_dirs(tmp_path / "sweep")}
    assert len(records) == 4
    twin_record = records[f"trial-{twin.number:05d}"]
    assert twin_record["same_as"] == f"trial-{source.number:05d}" and twin_record["train_seconds"] == 0
    assert twin_record["val_error"] == records[f"trial-{source.number:05d}"]["val_error"]
    assert sum("same_as" not in r for r in records.values()) == 3
    summary = (tmp_path / "sweep" / "optimization_results.yaml").read_text()
    assert "same_as_another_trial: 1" in summary
