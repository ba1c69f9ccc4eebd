"""Our Optuna sweeper, with real Optuna studies in real journal files, driven by real
`python -m wdsweep -m search=optuna` subprocesses."""
from __future__ import annotations

import importlib.util
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from wdsweep.config.urls import hide_password, split_password, with_password
from wdsweep.search.space import SearchSpaceError, parse_search_space
from wdsweep.tracking.journal import repair_torn_tail, torn_tail_start
from wdsweep.tracking.trial_link import ENV_PASSWORD

from conftest import read_metrics, run_analysis, run_cli, run_wdsweep

QUICK = ["trainer.steps=30", "trainer.eval_every=10", "model.depth=1", "model.width=16"]


def search(tmp_path: Path, *args: str, n_trials: int = 6, seed: int = 0, process: bool = False):
    """A search in-process, or with `process` as `python -m wdsweep` (where the process is the
    point: a one-line refusal on the command line, launchers that start processes)."""
    argv = ["-m", "search=optuna", f"hydra.sweeper.n_trials={n_trials}", f"hydra.sweeper.sampler.seed={seed}",
            *QUICK, *args]
    return run_cli(argv, cwd=tmp_path) if process else run_wdsweep(argv, cwd=tmp_path)


def only_study(tmp_path: Path) -> optuna.Study:
    (journal,) = (tmp_path / "multirun" / "optuna").glob("*.journal")
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def results_files(tmp_path: Path):
    return sorted((tmp_path / "multirun").glob("*/*/optimization_results.yaml"))


def states(study: optuna.Study) -> dict:
    return {s: sum(t.state == s for t in study.trials) for s in TrialState}


@pytest.mark.integration
def test_search_writes_results_that_agree_with_the_study_and_resumes(tmp_path):
    proc = search(tmp_path, n_trials=6)
    assert proc.returncode == 0, proc.stderr
    (results_path,) = results_files(tmp_path)
    results = yaml.safe_load(results_path.read_text())
    study = only_study(tmp_path)
    assert results["study_name"] == study.study_name
    assert Path(results["storage"]).is_file()
    assert results["best_value"] == study.best_value
    assert results["best_params"] == study.best_params
    assert results["best_trial_number"] == study.best_trial.number
    assert results["states"]["COMPLETE"] == 6 == len(study.trials)
    for trial in study.trials:  # the test error is kept for the analysis, the job folder says how it ended
        assert 0 <= trial.user_attrs["wdsweep_test_error"]
        assert trial.user_attrs["wdsweep_status"] == "completed"
    trial_dirs = sorted(results_path.parent.glob("trial-*"))
    assert len(trial_dirs) == 6
    first = read_metrics(trial_dirs[0])
    assert first["optuna"]["study"] == study.study_name
    assert first["config"]["reg"]["lam"] == pytest.approx(study.trials[0].params["reg.lam"])

    proc = search(tmp_path, n_trials=8)  # the same command, a larger budget: only the missing ones run
    assert proc.returncode == 0, proc.stderr
    study = only_study(tmp_path)
    assert len(study.trials) == 8 and states(study)[TrialState.COMPLETE] == 8
    # a resumed seeded sampler does not replay its first points
    assert study.trials[6].params != study.trials[0].params


@pytest.mark.integration
def test_diverged_and_invalid_trials_fail_and_the_search_goes_on(tmp_path):
    proc = search(tmp_path, "optimizer.lr=choice(0.01,1e4)", "reg.mode=choice(coupled,proximal)",
                  "reg.p=choice(2,3)", n_trials=10)
    assert proc.returncode == 0, proc.stderr
    study = only_study(tmp_path)
    counts = states(study)
    assert counts[TrialState.FAIL] >= 1 and counts[TrialState.COMPLETE] >= 1
    assert sum(counts.values()) == 10
    reasons = [t.user_attrs.get("wdsweep_fail_reason", "") for t in study.trials if t.state == TrialState.FAIL]
    for trial in study.trials:
        p = trial.params
        if p["reg.mode"] == "proximal" and p["reg.p"] == 3:
            assert trial.state == TrialState.FAIL
            assert "reg.p=3.0 is not allowed" in trial.user_attrs["wdsweep_fail_reason"]
        elif p["optimizer.lr"] == 1e4:
            assert trial.state == TrialState.FAIL and "diverged" in trial.user_attrs["wdsweep_fail_reason"]
        else:
            assert trial.state == TrialState.COMPLETE and math.isfinite(trial.value)
    assert all(reasons)


@pytest.mark.integration
def test_a_trial_whose_config_cannot_compose_fails_alone(tmp_path):
    proc = search(tmp_path, "model=choice(mlp,no_such_model)", "trainer.batch_size=choice(2,4)",
                  "hydra/sweeper/sampler=grid", "reg.lam=0.01", "reg.p=2", "reg.mode=coupled",
                  "reg.scope=weights", n_trials=4)
    assert proc.returncode == 0, proc.stderr
    study = only_study(tmp_path)
    for trial in study.trials:
        if trial.params["model"] == "no_such_model":
            assert trial.state == TrialState.FAIL and "no_such_model" in trial.user_attrs["wdsweep_fail_reason"]
        else:
            assert trial.state == TrialState.COMPLETE
    assert states(study)[TrialState.COMPLETE] == 2


@pytest.mark.integration
def test_max_failure_rate_stops_the_search_with_a_clear_message(tmp_path):
    proc = search(tmp_path, "optimizer.lr=1e4", "hydra.sweeper.max_failure_rate=0.5",
                  "hydra.sweeper.min_trials_for_failure_rate=2", n_trials=10)
    assert proc.returncode != 0
    assert "search stopped: 2 of 2 trials failed" in proc.stderr
    assert len(only_study(tmp_path).trials) == 2


@pytest.mark.integration
def test_median_pruner_stops_some_trials_early(tmp_path):
    proc = search(tmp_path, "hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_startup_trials=2",
                  "reg.lam=tag(log,interval(1e-4,10))", "trainer.steps=200", "trainer.eval_every=20",
                  n_trials=8, process=True)
    assert proc.returncode == 0, proc.stderr
    study = only_study(tmp_path)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned
    (results_path,) = results_files(tmp_path)
    for trial in pruned:
        metrics = read_metrics(results_path.parent / f"trial-{trial.number:05d}")
        assert metrics["status"] == "pruned" and metrics["steps"] < 200
        assert max(trial.intermediate_values) < 200


def test_search_space_parser():
    space = parse_search_space({"reg.p": "choice(1,2)", "seed": "1"},
                               ["reg.p=range(1,4)", "reg.lam=tag(log, interval(1e-5, 1e-1))",
                                "optimizer.lr=interval(0.01, 0.1)", "trainer.batch_size=range(16,65,16)"])
    assert space.distributions["reg.p"] == IntDistribution(1, 3)  # half-open; the command line won
    assert space.distributions["reg.lam"] == FloatDistribution(1e-5, 1e-1, log=True)
    assert space.distributions["optimizer.lr"] == FloatDistribution(0.01, 0.1)
    assert space.distributions["trainer.batch_size"] == IntDistribution(16, 64, step=16)
    assert space.fixed == {"seed": "1"}
    with pytest.raises(SearchSpaceError, match="reg.lam: the grid sampler needs choice"):
        space.grid()
    grid = parse_search_space({}, ["reg.p=range(1,4)", "reg.scope=weights,all", "x=range(0.5,1.0,0.25)"]).grid()
    assert grid == {"reg.p": [1, 2, 3], "reg.scope": ["weights", "all"], "x": [0.5, 0.75]}
    with pytest.raises(SearchSpaceError, match="interval"):
        parse_search_space({}, ["reg.lam=interval(1e-2"])


def test_range_edges_and_null_values():
    space = parse_search_space({}, ["x=range(0.3,0.9,0.1)", "n=range(1,2)"])
    assert space.distributions["x"].high == pytest.approx(0.8)  # 0.9 is the stop: never taken
    assert space.distributions["n"] == IntDistribution(1, 1)
    with pytest.raises(SearchSpaceError, match="needs a positive step"):
        parse_search_space({}, ["x=range(5,1,-1)"])
    # An int interval holds the integers inside it, not its ends truncated.
    assert parse_search_space({}, ["w=tag(int, interval(1.5, 4.9))"]).distributions["w"] == IntDistribution(2, 4)
    with pytest.raises(SearchSpaceError, match=r"w: tag\(int, interval\(1.2, 1.8\)\) holds no integer"):
        parse_search_space({}, ["w=tag(int, interval(1.2, 1.8))"])
    from wdsweep.search.trials import override_value as _override_value
    assert _override_value(None) == "null" and _override_value("a b") == "'a b'"
    assert _override_value(1e-05) == "1e-05" and _override_value(3) == "3"


def test_log_interval_is_sampled_log_uniformly():
    space = parse_search_space({}, ["reg.lam=tag(log,interval(1e-5,1e-1))"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = [study.ask(space.distributions).params["reg.lam"] for _ in range(2000)]
    decades = [sum(10 ** k <= v < 10 ** (k + 1) for v in values) for k in range(-5, -1)]
    assert all(400 < n < 600 for n in decades)  # a quarter per decade, not 90% in the top one


@pytest.mark.integration
def test_malformed_sweep_string_is_a_one_line_error(tmp_path):
    proc = search(tmp_path, "reg.lam=tag(log,interval(1e-5)", process=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wdsweep: invalid override 'reg.lam=tag(log,interval(1e-5)'")
    assert not (tmp_path / "multirun").exists()


def run_two_cooperating_sweeps(tmp_path: Path, *extra: str) -> None:
    # Trials of about half a second (the weight-decay article's net, 600 steps), so that both processes, started
    # together, are still asking when the other is ready, even on a busy machine.
    args = [sys.executable, "-m", "wdsweep", "-m", "search=optuna", "hydra.sweeper.n_trials=8",
            "trainer.steps=600", "trainer.eval_every=300", *extra]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    procs = [subprocess.Popen(args + [f"hydra.sweep.dir=multirun/worker{i}"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    ran = [len(list((tmp_path / "multirun" / f"worker{i}").glob("trial-*"))) for i in range(2)]
    assert sum(ran) == 8 and min(ran) >= 1  # both did work, and together exactly the budget


def assert_exact_study(study: optuna.Study) -> None:
    assert sorted(t.number for t in study.trials) == list(range(8))  # none lost, none repeated
    assert states(study)[TrialState.COMPLETE] == 8


@pytest.mark.integration
def test_two_sweep_processes_share_one_journal_exactly(tmp_path):
    run_two_cooperating_sweeps(tmp_path, "hydra.sweeper.study_name=shared")
    assert_exact_study(only_study(tmp_path))


@pytest.mark.integration
def test_two_sweep_processes_share_one_postgresql_study_exactly(tmp_path):
    url = os.environ.get("WDSWEEP_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL server: set WDSWEEP_TEST_POSTGRES_URL (.ci/run starts one)")
    study_name = f"pg-{tmp_path.name}-{os.getpid()}"
    run_two_cooperating_sweeps(tmp_path, f"hydra.sweeper.study_name={study_name}",
                               f"hydra.sweeper.storage={url}")
    study = optuna.load_study(study_name=study_name, storage=url)
    assert_exact_study(study)
    optuna.delete_study(study_name=study_name, storage=url)


@pytest.mark.integration
def test_joblib_launcher_runs_trials_in_parallel_and_prunes(tmp_path):
    proc = search(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
                  "hydra/sweeper/pruner=median", "hydra.sweeper.pruner.n_startup_trials=2",
                  "reg.lam=tag(log,interval(1e-4,10))", "trainer.steps=200", "trainer.eval_every=20",
                  n_trials=8, process=True)
    assert proc.returncode == 0, proc.stderr
    # two trials trained at the same time (joblib's own log line is kept at WARNING)
    spans = []
    for metrics in tmp_path.glob("multirun/*/*/trial-*/metrics.json"):
        record = read_metrics(metrics.parent)
        spans.append((datetime.fromisoformat(record["started_at"]), datetime.fromisoformat(record["finished_at"])))
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])
    study = only_study(tmp_path)
    assert len(study.trials) == 8 and states(study)[TrialState.PRUNED] >= 1
    assert states(study)[TrialState.COMPLETE] + states(study)[TrialState.PRUNED] == 8


@pytest.mark.integration
def test_grid_sampler_runs_the_grid_once_and_enqueued_points_go_first(tmp_path):
    proc = search(tmp_path, "hydra/sweeper/sampler=grid", "reg.lam=choice(0,0.01)", "reg.p=range(1,3)",
                  "reg.scope=choice(weights,all)", "reg.mode=coupled", n_trials=20)
    assert proc.returncode == 0, proc.stderr
    points = sorted((t.params["reg.lam"], t.params["reg.p"], t.params["reg.scope"])
                    for t in only_study(tmp_path).trials)
    assert points == sorted((lam, p, s) for lam in (0, 0.01) for p in (1, 2) for s in ("weights", "all"))

    other = tmp_path / "enqueued"
    other.mkdir()
    proc = search(other, "reg.mode=coupled", "reg.p=2", "reg.scope=all",
                  "+hydra.sweeper.enqueue=[{reg.lam: 0.0042}]", n_trials=2)
    assert proc.returncode == 0, proc.stderr
    assert only_study(other).trials[0].params["reg.lam"] == 0.0042


@pytest.mark.integration
def test_multi_objective_search_writes_the_pareto_front(tmp_path):
    proc = search(tmp_path, "hydra.sweeper.direction=[minimize,minimize]", "objective=[val_error,weight_norm]",
                  n_trials=4)
    assert proc.returncode == 0, proc.stderr
    (results_path,) = results_files(tmp_path)
    results = yaml.safe_load(results_path.read_text())
    study = only_study(tmp_path)
    assert {t["number"] for t in results["pareto_front"]} == {t.number for t in study.best_trials}
    assert all(len(t.values) == 2 for t in study.trials)
    # The analysis of the sweep folder and its journal: each trial once, both objectives, and
    # no single best (it used to crash ranking lists).
    (journal,) = (tmp_path / "multirun" / "optuna").glob("*.journal")
    done = run_analysis(results_path.parent, journal, "--out", tmp_path / "out")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    runs = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert len(runs) == 4 and runs["objective"].isna().all()
    for _, row in runs.iterrows():  # both objectives, as the job recorded them
        record = read_metrics(results_path.parent / row["job"])
        assert [float(v) for v in row["objectives"].split()] == pytest.approx(record["objective"], rel=1e-5)
    assert f"| {study.study_name} | 4 | multi-objective: no single best" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.integration
@pytest.mark.parametrize("sampler", ["random", "cmaes", "gp"])
def test_other_samplers_run(tmp_path, sampler):
    proc = search(tmp_path, f"hydra/sweeper/sampler={sampler}", "reg.mode=coupled", "reg.scope=weights",
                  n_trials=3)
    assert proc.returncode == 0, proc.stderr
    assert states(only_study(tmp_path))[TrialState.COMPLETE] == 3


@pytest.mark.integration
def test_a_killed_sweep_resumes_and_its_stale_trial_is_failed(tmp_path):
    args = [sys.executable, "-m", "wdsweep", "-m", "search=optuna", "hydra.sweeper.n_trials=3",
            "hydra.sweeper.study_name=killed", "hydra.sweeper.heartbeat_seconds=0.5",
            "hydra.sweeper.stale_after_seconds=2", "trainer.steps=100000", "trainer.eval_every=1000",
            "model.depth=1", "model.width=16"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    journal = tmp_path / "multirun" / "optuna" / "killed.journal"
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "multirun").glob("*/*/trial-00000/.hydra")):
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert journal.is_file()
    time.sleep(2.5)  # longer than stale_after_seconds since its last heartbeat

    resumed = run_wdsweep(["-m", "search=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.study_name=killed",
                           "hydra.sweeper.stale_after_seconds=2", "trainer.steps=30", "trainer.eval_every=10",
                           # shorter trials than the killed one's: other fixed settings, mixed on purpose
                           "hydra.sweeper.mix_settings=true", "model.depth=1", "model.width=16"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name="killed", storage=storage)
    stale = study.trials[0]
    assert stale.state == TrialState.FAIL and "stale" in stale.user_attrs["wdsweep_fail_reason"]
    assert len(study.trials) == 3 and all(t.state != TrialState.RUNNING for t in study.trials)


@pytest.mark.integration
def test_custom_search_space_hook_makes_p_conditional_on_the_mode(tmp_path):
    proc = run_wdsweep(["-m", "search=optuna_proximal", "hydra.sweeper.n_trials=8", "hydra/sweeper/sampler=random",
                        "hydra.sweeper.sampler.seed=1", *QUICK], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    study = only_study(tmp_path)
    assert states(study)[TrialState.COMPLETE] == 8  # no trial was an invalid proximal p
    (results_path,) = results_files(tmp_path)
    modes = set()
    for trial in study.trials:
        config = read_metrics(results_path.parent / f"trial-{trial.number:05d}")["config"]
        modes.add(config["reg"]["mode"])
        if config["reg"]["mode"] == "proximal":
            assert config["reg"]["p"] in (1.0, 2.0) and "reg.p_proximal" in trial.params
        else:
            assert 1.0 <= config["reg"]["p"] <= 3.0 and config["reg"]["p"] == trial.params["reg.p"]
    assert "proximal" in modes and len(modes) >= 2


@pytest.mark.integration
def test_an_experiments_grid_does_not_leak_into_the_search(tmp_path):
    proc = search(tmp_path, "experiment=lp_vs_global", "trainer.steps=20", n_trials=2)
    assert proc.returncode == 0, proc.stderr
    study = only_study(tmp_path)
    assert set(study.trials[0].params) == {"reg.lam", "reg.p", "reg.mode", "reg.scope"}  # no seed
    (results_path,) = results_files(tmp_path)
    config = read_metrics(results_path.parent / "trial-00000")["config"]
    assert config["data"]["name"] == "digits" and config["seed"] == 0


@pytest.mark.integration
def test_a_second_study_may_not_take_over_a_sweep_folder(tmp_path):
    """Trial folders are named by number: a second study in the same hydra.sweep.dir would
    overwrite trial-00000 of the first, whose storage still points there."""
    first = search(tmp_path, "hydra.sweep.dir=S", "hydra.sweeper.study_name=first", n_trials=2)
    assert first.returncode == 0, first.stderr
    before = {p: p.read_bytes() for p in (tmp_path / "S").rglob("metrics.json")}
    assert len(before) == 2
    second = search(tmp_path, "hydra.sweep.dir=S", "hydra.sweeper.study_name=second", n_trials=2)
    assert second.returncode != 0
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in second.stderr
    assert "hydra.sweep.dir='S' is not allowed" in lines[0] and "'first'" in lines[0]
    assert {p: p.read_bytes() for p in (tmp_path / "S").rglob("metrics.json")} == before
    again = search(tmp_path, "hydra.sweep.dir=S", "hydra.sweeper.study_name=first", n_trials=3)
    assert again.returncode == 0, again.stderr  # the same study resumes in its own folder


@pytest.fixture
def postgres_user_with_password():
    """(URL, password) of a role of its own with a password, owning a database of its own, on
    the CI server (its URL's role may create roles); both dropped afterwards."""
    admin = os.environ.get("WDSWEEP_TEST_POSTGRES_URL")
    if not admin:
        pytest.skip("no PostgreSQL server: set WDSWEEP_TEST_POSTGRES_URL (.ci/run starts one)")
    import psycopg
    from sqlalchemy.engine import make_url

    name, password = f"wds_{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {name} OWNER {name}")
    url = make_url(admin).set(username=name, password=password, database=name)
    try:
        yield url.render_as_string(hide_password=False), password
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {name}")


@pytest.mark.integration
@pytest.mark.parametrize("mode", [
    [],
    # worker mode, each worker a submitit job: the workers' command lines, submitit's pickles
    # and logs, and the workers' own logs must not hold it either
    pytest.param(["hydra.sweeper.workers=2", "hydra/launcher=submitit_local"], id="submitit-workers",
                 marks=pytest.mark.skipif(importlib.util.find_spec("submitit") is None,
                                          reason="needs the submitit extra")),
])
def test_a_storage_password_is_in_no_file_and_no_output(tmp_path, postgres_user_with_password, mode):
    """A real search and its analysis on a PostgreSQL storage whose URL holds the password: the
    jobs reach the database (they record their results on their trials), and the password is
    in no file under the sweep and analysis folders and in no line either printed."""
    url, password = postgres_user_with_password
    masked = url.replace(f":{password}@", ":***@")
    sweep = search(tmp_path, f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=secret",
                   "hydra.sweep.dir=S", "trainer.steps=5", "trainer.eval_every=5", *mode, n_trials=2,
                   process=bool(mode))  # submitit's workers are processes of the sweep's
    assert sweep.returncode == 0, sweep.stderr
    report = run_analysis(url, "--out", tmp_path / "report")
    assert report.returncode == 0, report.stderr

    for proc in (sweep, report):
        assert password not in proc.stdout + proc.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"multirun.yaml", "hydra.yaml", "optimization_results.yaml", "runs.csv",
            "report.md"} <= {p.name for p in files}
    assert [p for p in files if password.encode() in p.read_bytes()] == []
    assert yaml.safe_load((tmp_path / "S" / "optimization_results.yaml").read_text())["storage"] == masked
    assert masked in (tmp_path / "report" / "report.md").read_text()

    study = optuna.load_study(study_name="secret", storage=url)
    assert states(study)[TrialState.COMPLETE] == 2
    if mode:  # each worker was a submitit job of its own
        assert len(list((tmp_path / "S" / "workers" / ".submitit").glob("*_0_result.pkl"))) == 2
    assert all("wdsweep_test_error" in t.user_attrs for t in study.trials)  # written by the jobs


@pytest.mark.parametrize("content,start", [
    (b"", None), (b'{"a":1}\n', None), (b'{"a":1}\n{"b":2}\n', None),
    (b'{"a":1}\n{"b"', 8),               # no newline: a write cut short
    (b'{"a":1}\n{"b"\n', 8),             # a newline, but not JSON
    (b'{"a":1}\n\n', 8),                 # an empty last line, which Optuna cannot read either
    (b'{"a', 0),                         # the very first record torn
    (b'{"a":1}\n' + b"x" * 200_000, 8),  # longer than one block read back from the end
])
def test_a_journal_is_torn_when_its_last_line_is_not_a_whole_record(tmp_path, capsys, content, start):
    journal = tmp_path / "s.journal"
    journal.write_bytes(content)
    assert torn_tail_start(journal) == start
    copy = repair_torn_tail(journal)
    if start is None:
        assert copy is None and journal.read_bytes() == content and not capsys.readouterr().err
    else:
        assert journal.read_bytes() == content[:start] and copy.read_bytes() == content[start:]
        assert capsys.readouterr().err.count("wdsweep: warning:") == 1


@pytest.mark.parametrize("url,public,password", [
    ("postgresql://me:pw@host:5432/db", "postgresql://me:***@host:5432/db", "pw"),
    ("postgresql+psycopg://me:p%40ss/w:x@host/db", "postgresql+psycopg://me:***@host/db", "p%40ss/w:x"),
    ("postgresql://me@host/db", "postgresql://me@host/db", None),      # PGPASSWORD or ~/.pgpass
    ("postgresql://host:5432/db", "postgresql://host:5432/db", None),
    ("/runs/optuna/s.journal", "/runs/optuna/s.journal", None),
])
def test_a_storage_password_is_masked_and_put_back_only_in_memory(monkeypatch, url, public, password):
    assert split_password(url) == (public, password)
    assert hide_password(f"x='{url}' and more", password) == f"x='{public}' and more"
    monkeypatch.setenv(ENV_PASSWORD, password or "unused")
    assert with_password(public, ENV_PASSWORD) == url


@pytest.mark.integration
def test_a_search_whose_every_trial_failed_exits_non_zero_with_one_line(tmp_path):
    proc = search(tmp_path, "optimizer.lr=1e30", "reg.lam=tag(log,interval(1e-4,1))", n_trials=2)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("wdsweep: search ended without a completed trial: 2 trials, 2 failed"), last
    assert [t.state for t in only_study(tmp_path).trials] == [TrialState.FAIL] * 2
    assert results_files(tmp_path)  # the results are still written
