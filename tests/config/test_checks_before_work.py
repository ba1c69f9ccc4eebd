"""Settings that would throw away a whole grid or search are refused before the first job (issue
24): each command ends in one line naming the key, the value and what is allowed, exit status
1, and nothing is written: no sweep folder, no study, no output folder.

Each of these used to be found only once work had started: finalist seeds meeting the grid's
after the whole grid trained, the Optuna ones in a traceback after the search, a test_error
objective or a missing GPU by every trial failing one by one, a pruner on a multi-objective
study by doing nothing, a dry run without -m by training, Hydra's own ${hydra.job.num} subdir
and names too long for the file system by a traceback.

In-process (run_wdsweep): the exit status and the line are those the process would give."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import run_wdsweep

SHORT = ["trainer.steps=5", "trainer.eval_every=5"]
OPTUNA = ["search=optuna", *SHORT, "hydra.sweeper.n_trials=2", "hydra.sweeper.storage_dir=studies/optuna"]
TWO_OBJECTIVES = ["hydra.sweeper.direction=[minimize,minimize]", "objective=[val_error,weight_norm]"]
LONG = "a" * 256  # one byte over the file system's 255-byte names

# id, arguments (a sweep's hydra.sweep.dir is added: sweep/), texts the one line must hold.
CASES = [
    ("grid-finalist-seeds-used-by-the-grid",
     ["-m", *SHORT, "seed=0,1", "hydra.sweeper.finalists=1", "hydra.sweeper.finalist_seeds=[1,5]"],
     ["hydra.sweeper.finalist_seeds=[1, 5] is not allowed", "seeds the grid does not use", "use [1]"]),
    ("optuna-finalist-seeds-used-by-the-search",
     ["-m", *OPTUNA, "hydra.sweeper.finalists=1", "hydra.sweeper.finalist_seeds=[0,5]"],
     ["hydra.sweeper.finalist_seeds=[0, 5] is not allowed", "seeds the search does not use", "use [0]"]),
    ("optuna-finalist-seeds-a-searched-seed-may-take",
     ["-m", *OPTUNA, "seed=range(0,4)", "hydra.sweeper.finalists=1", "hydra.sweeper.finalist_seeds=[3,9]"],
     ["hydra.sweeper.finalist_seeds=[3, 9] is not allowed", "use [3]"]),
    ("two-directions-one-objective", ["-m", *OPTUNA, "hydra.sweeper.direction=[minimize,minimize]"],
     ["hydra.sweeper.direction=['minimize', 'minimize'] is not allowed",
      "one minimize or maximize, as objective='val_error' is one objective"]),
    ("one-direction-two-objectives", ["-m", *OPTUNA, "objective=[val_error,weight_norm]"],
     ["hydra.sweeper.direction='minimize' is not allowed", "a list of 2 of minimize or maximize"]),
    ("optuna-on-the-test-error", ["-m", *OPTUNA, "objective=test_error"],
     ["objective='test_error' is not allowed", "one of val_error, val_loss, sparsity, weight_norm",
      "never searched on"]),
    ("pruner-on-a-multi-objective-study", ["-m", *OPTUNA, *TWO_OBJECTIVES, "hydra/sweeper/pruner=median"],
     ["hydra/sweeper/pruner='median' is not allowed", "none for a multi-objective search"]),
    ("dry-run-without-m", [*SHORT, "hydra.sweeper.dry_run=true", "hydra.run.dir=run"],
     ["hydra.sweeper.dry_run=True is not allowed", "only with -m"]),
    ("grid-subdir-by-job-number", ["-m", *SHORT, "seed=0,1", "hydra.sweep.subdir=${hydra.job.num}"],
     ["hydra.sweep.subdir='${hydra.job.num}' is not allowed", "does not use the job's number"]),
    ("optuna-subdir-by-job-number", ["-m", *OPTUNA, "hydra.sweep.subdir=${hydra.job.num}"],
     ["hydra.sweep.subdir='${hydra.job.num}' is not allowed", "trial-NNNNN"]),
    ("study-name-outside-storage-dir", ["-m", *OPTUNA, "hydra.sweeper.study_name=../../x"],
     ["hydra.sweeper.study_name='../../x' is not allowed", "a name without /"]),
    ("study-name-too-long", ["-m", *OPTUNA, f"hydra.sweeper.study_name={'s' * 240}"],
     ["hydra.sweeper.study_name='sss", "is not allowed: at most 239 bytes", "it has 240"]),
    ("grid-sweep-dir-name-too-long", ["-m", *SHORT, "seed=0,1", f"hydra.sweep.dir=sweep/{LONG}"],
     [f"hydra.sweep.dir='sweep/{LONG}' is not allowed", "names of at most 255 bytes", "has 256"]),
    ("grid-job-folder-name-too-long", ["-m", *SHORT, "seed=0", f"hydra.sweep.subdir=x{LONG}"],
     [f"hydra.sweep.subdir='x{LONG}' is not allowed", "names of at most 255 bytes", "[job: "]),
    ("optuna-sweep-dir-name-too-long", ["-m", *OPTUNA, f"hydra.sweep.dir=sweep/{LONG}"],
     [f"hydra.sweep.dir='sweep/{LONG}' is not allowed", "names of at most 255 bytes"]),
    ("optuna-study-folder-name-too-long", ["-m", *OPTUNA, f"hydra.sweeper.storage_dir=studies/{LONG}"],
     [f"hydra.sweeper.storage_dir='studies/{LONG}' is not allowed", "names of at most 255 bytes"]),
    ("optuna-sqlite-file-name-too-long", ["-m", *OPTUNA, f"hydra.sweeper.storage=sqlite:///{LONG}.db"],
     [f"hydra.sweeper.storage='sqlite:///{LONG}.db' is not allowed", "names of at most 255 bytes"]),
    ("run-dir-name-too-long", [*SHORT, f"hydra.run.dir=run/{LONG}"],
     [f"hydra.run.dir='run/{LONG}' is not allowed", "names of at most 255 bytes"]),
    ("optuna-cuda-without-a-gpu", ["-m", *OPTUNA, "trainer.device=cuda"],
     ["trainer.device='cuda' is not allowed", "sees no CUDA GPU"]),
    ("grid-cuda-without-a-gpu", ["-m", *SHORT, "seed=0,1", "trainer.device=cuda"],
     ["trainer.device='cuda' is not allowed", "sees no CUDA GPU"]),
    ("launcher-device", ["-m", *SHORT, "seed=0,1", "hydra/launcher=vectorized", "hydra.launcher.device=cuda"],
     ["hydra.launcher.device='cuda' is not allowed", "the device is trainer.device"]),
]


def _gpu_here() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("args,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_before_the_first_job_in_one_line_with_nothing_written(tmp_path, args, needles):
    if any("cuda" in a for a in args) and "hydra.launcher.device=cuda" not in args and _gpu_here():
        pytest.skip("this machine has a CUDA GPU")
    home = tmp_path / "home"
    home.mkdir()
    sweep = [] if any(a.startswith("hydra.sweep.dir=") for a in args) else ["hydra.sweep.dir=sweep"]
    proc = run_wdsweep([*args, *sweep], cwd=home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("wdsweep: invalid "), proc.stderr
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    # nothing written: no sweep or run folder, no study, nothing outside the home either
    # (../../x would have put a journal two folders up)
    assert sorted(tmp_path.rglob("*")) == [home], sorted(tmp_path.rglob("*"))


def test_a_list_of_finalist_seeds_the_grid_does_not_use_still_runs(tmp_path):
    """The check reads the seeds the jobs really use, not the config's alone."""
    proc = run_wdsweep(["-m", *SHORT, "seed=0,1", "hydra.sweeper.finalists=1", "hydra.sweeper.finalist_seeds=[2]",
                        "hydra.sweep.dir=sweep", "hydra.sweeper.dry_run=true"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("low,high,low_open,high_open,text", [
    (0, float("inf"), True, False, "a finite number > 0"),
    (0, float("inf"), False, False, "a finite number >= 0"),
    (float("-inf"), 1, False, True, "a finite number < 1"),
    (float("-inf"), 1, False, False, "a finite number <= 1"),
    (0, 1, False, True, "a finite number in [0, 1)"),
    (0, 0.5, True, True, "a finite number in (0, 0.5)"),
    (float("-inf"), float("inf"), False, False, "a finite number"),
])
def test_every_range_text_reads_right(low, high, low_open, high_open, text):
    """Never an interval with an infinite end ("(0, inf]" claimed inf was allowed, while
    "finite" said it was not)."""
    from wdsweep.config.validation import range_text

    assert range_text(low, high, low_open, high_open) == text


def test_the_range_text_of_a_refused_value_reads_right(compose_cfg):
    from wdsweep.config.validation import ConfigError, validate

    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(["reg.p=0", "reg.lam=-1"]))
    assert "reg.lam=-1.0 is not allowed: a finite number >= 0" in str(info.value)
    assert str(info.value).endswith("reg.p=0.0 is not allowed: a finite number > 0")
    assert "inf" not in str(info.value)


def test_long_name_problem_counts_bytes_not_characters():
    from wdsweep.config.path_limits import long_name_problem

    assert long_name_problem(Path("a") / ("é" * 127)) is None  # 254 bytes
    assert "has 256" in long_name_problem(Path("a") / ("é" * 128))
    assert long_name_problem("s" * 239, suffix=".journal.asklock") is None
    assert long_name_problem("s" * 240, suffix=".journal.asklock") is not None


def test_finalist_seeds_may_be_the_config_s_seed_when_every_job_overrides_it(tmp_path):
    """seed=1,2 never trains the config's seed 0: finalist_seeds=[0] is fresh."""
    proc = run_wdsweep(["-m", *SHORT, "seed=1,2", "hydra.sweeper.finalists=1", "hydra.sweeper.finalist_seeds=[0]",
                        "hydra.sweep.dir=sweep"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = yaml.safe_load((tmp_path / "sweep" / "finalists.yaml").read_text())
    assert report["search_seeds"] == [1, 2] and report["fresh_seeds"] == [0]


def test_an_optuna_search_over_seeds_may_take_the_config_s_seed_as_a_finalist_seed(tmp_path):
    """The check and the finalists read one set of used seeds: a searched seed's values
    (here 1 and 2), not the config's seed 0, which no trial trains."""
    proc = run_wdsweep(["-m", *OPTUNA, "seed=choice(1,2)", "hydra.sweeper.finalists=1",
                        "hydra.sweeper.finalist_seeds=[0]", "hydra.sweep.dir=sweep"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = yaml.safe_load((tmp_path / "sweep" / "finalists.yaml").read_text())
    assert report["fresh_seeds"] == [0] and 0 not in report["search_seeds"]
