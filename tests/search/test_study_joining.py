"""The same search command again: it says which study it joins and what that leaves to run,
skips its finished finalists, and a study never takes trials of other fixed settings silently
(issue: nothing lost, round 2)."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import run_wdsweep

SEARCH = ["--config-dir", "conf", "-m", "search=optuna", "experiment=mine", "hydra.sweep.dir=S",
          "hydra.sweeper.finalists=1", "hydra.sweeper.finalist_seeds=1", "hydra.sweeper.n_trials=2",
          "hydra.sweeper.sampler.seed=0", "model.depth=1", "model.width=8", "trainer.eval_every=10"]


def preset(tmp_path: Path, steps: int) -> None:
    """The user's own experiment preset, edited between searches as a user would."""
    folder = tmp_path / "conf" / "experiment"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mine.yaml").write_text(f"# @package _global_\ntrainer:\n  steps: {steps}\n")


def test_a_search_says_what_it_joins_and_refuses_other_fixed_settings_unless_asked_to_mix(tmp_path):
    def trained() -> int:
        return len(list((tmp_path / "S").glob("trial-*/metrics.json")))

    def finalist_runs() -> dict:
        return {p.parent.relative_to(tmp_path): json.loads(p.read_text())["run_id"]
                for p in (tmp_path / "S" / "finalists").rglob("metrics.json")}

    preset(tmp_path, 20)
    first = run_wdsweep(SEARCH, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "new study 'wdsweep-" in first.stdout + first.stderr
    finalists = finalist_runs()
    assert len(finalists) == 1
    again = run_wdsweep(SEARCH, cwd=tmp_path)  # the same command: it joins, and n_trials is a total
    out = again.stdout + again.stderr
    assert again.returncode == 0, again.stderr
    assert "joins study 'wdsweep-" in out and "it holds 2 trials, 2 finished" in out
    assert "so 0 more run: raise hydra.sweeper.n_trials" in out
    assert trained() == 2
    assert finalist_runs() == finalists  # its finalist was done: not trained again
    assert "already done" in out

    preset(tmp_path, 30)  # the same command, another step count: the default study name is the same
    more = [*SEARCH[:-4], "hydra.sweeper.n_trials=3", *SEARCH[-3:]]
    refused = run_wdsweep(more, cwd=tmp_path)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "holds trials made with other fixed settings (trainer.steps: 20 -> 30)" in lines[0]
    assert "hydra.sweeper.mix_settings=true" in lines[0]
    assert trained() == 2
    mixed = run_wdsweep([*more, "hydra.sweeper.mix_settings=true"], cwd=tmp_path)
    assert mixed.returncode == 0, mixed.stderr
    assert trained() == 3
    assert "(same search space, other fixed settings mixed in)" in mixed.stdout + mixed.stderr
    # the study remembers what was mixed in, and the report says it beside the study
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from analysis.report import _study_details
    from analysis.study import StudySummary
    from wdsweep.search.study_settings import MIXED_ATTR

    (journal,) = (tmp_path / "multirun" / "optuna").glob("*.journal")
    study = optuna.load_study(study_name=None, storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))
    assert study.user_attrs[MIXED_ATTR] == ["trainer.steps: 20 -> 30"]
    summary = StudySummary(study.study_name, str(journal), ["minimize"], 3, {"COMPLETE": 3},
                           mixed=study.user_attrs[MIXED_ATTR])
    assert "different fixed settings (trainer.steps: 20 -> 30), mixed on purpose" in "\n".join(_study_details(summary))


def test_the_join_line_counts_a_killed_sweeps_running_trial_in_the_budget(caplog):
    """A killed sweep's trial is still RUNNING when the next search opens the study: it counts
    toward n_trials (failed once stale), so the line must not promise a trial too many."""
    import logging
    from types import SimpleNamespace

    import optuna

    from wdsweep.search.study import StudyStorage

    study = optuna.create_study()
    study.tell(study.ask(), 1.0)
    study.ask()  # left RUNNING, as by a killed sweep
    with caplog.at_level(logging.INFO, logger="wdsweep.search.study"):
        StudyStorage._say_what_study(SimpleNamespace(n_trials=3), study, "memory", 2)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "it holds 2 trials, 1 finished, 1 running or left running by a killed sweep" in line
    assert "so 1 more run" in line


def test_a_changed_data_file_is_a_changed_fixed_setting(tmp_path, compose_cfg):
    """The same command on an edited data file: the study's recorded settings differ in
    "data files", which the refusal above names, so trials of the old and new data never share
    a study silently. A file that did not change differs in nothing."""
    from wdsweep.search.study_settings import differences, fixed_settings

    table = tmp_path / "d.csv"
    table.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{2 * i}\n" for i in range(20)))
    cfg = compose_cfg(["data=csv", f"data.path={table}", "data.target=y", "data.task=regression"])
    before = fixed_settings(cfg, ["reg.lam"], replicated=False)
    assert "data files" in before
    assert differences(before, fixed_settings(cfg, ["reg.lam"], replicated=False)) == []
    table.write_text(table.read_text().replace("19,1,38", "19,1,39"))
    changed = differences(before, fixed_settings(cfg, ["reg.lam"], replicated=False))
    assert len(changed) == 1 and changed[0].startswith("data files: "), changed
