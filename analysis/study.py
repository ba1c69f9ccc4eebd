"""Optuna studies as analysis input, and each study's own plots.

One file of about 450 lines, on purpose: finding a study from any of its folders, loading it
once and joining its trials with their job folders is one chain, whose fallbacks (a killed
sweep, a moved tree) only make sense read together.

A study is named by any of these sources, and each gives the same study, whole:
- its storage: a journal file or a storage URL (every study in it);
- any sweep folder of any of its invocations (a resumed study writes one per command). The
  folder's `optimization_results.yaml` names the study and its storage; a folder whose sweep was
  killed before writing it names them in a trial's `.hydra/hydra.yaml` (the trial link the
  sweeper passes through `hydra.job.env_set`), or in `multirun.yaml` (the sweeper's
  `study_name`, `storage`, `storage_dir` under `hydra.runtime.cwd`). A journal that is not where
  the folder says (the tree was moved) is looked for in `optuna/` beside the sweep folder and
  beside its parent (multirun/optuna next to multirun/<date>/<time>).

A study is loaded once per (storage, study name), however many sources name it, and gives one
row per trial. A trial's row is its job folder's row (config and metrics.json) when its folder is
found, with the study's trial number and state; its folder is the one whose metrics.json names
the trial (study name and trial id), else the folder the sweeper recorded on the trial (user
attribute `wdsweep_job_dir`), else, when that path is gone, the same trailing parts
(<sweep>/trial-NNNNN, or <date>/<time>/trial-NNNNN) under the given sweep folders' parents and
the journal's multirun folder. So a folder and its journal given together count each trial once.

The plots are Optuna's own (`optuna.visualization.matplotlib`, on the Agg backend), as PNGs:
optimization history, parameter importances (fANOVA, seeded, so the numbers repeat), slice,
contour of reg.lam x reg.p and parallel coordinates; a multi-objective study gets them per
objective (`target=`). A plot that cannot be drawn is skipped with a one-line reason.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import yaml

from wdsweep.config.urls import UnsafePassword, hide_password, shown_url, split_password
from wdsweep.tracking.trial_link import ENV_STORAGE, ENV_STUDY

RESULTS_FILE = "optimization_results.yaml"  # the sweeper's summary of a sweep folder
JOB_DIR_ATTR = "wdsweep_job_dir"  # the sweeper's record of a trial's folder
# Fewer complete trials than this and a parameter importance is a random forest fitted to a
# handful of points: noise. The importances are then skipped, with this reason.
MIN_TRIALS_FOR_IMPORTANCES = 5
IMPORTANCE_SEED = 0  # fANOVA's forest is random: a fixed seed makes the table repeat
CONTOUR = ("reg.lam", "reg.p")

_STATUS_OF_STATE = {"RUNNING": "incomplete", "WAITING": "incomplete", "PRUNED": "pruned", "FAIL": "failed",
                    "COMPLETE": "completed"}


@dataclass
class StudyRef:
    """Where a study is: `spec` to connect with (a URL may hold a password), `name` (None: every
    study in the storage), and the sweep folders that named it (to find moved job folders)."""
    spec: str
    name: Optional[str]
    sweeps: List[Path] = field(default_factory=list)

    @property
    def shown(self) -> str:
        return shown_url(self.spec)


@dataclass
class LoadedStudy:
    study: Any  # optuna.Study
    shown: str  # the storage, its password masked
    roots: List[Path]  # where moved job folders are looked for (see _job_dir_of)
    job_dirs: Dict[int, Path] = field(default_factory=dict)  # trial number -> its job folder, when found

    @property
    def name(self) -> str:
        return self.study.study_name


def storage_key(spec: str) -> str:
    """One name per storage, whatever way it was given: a journal's resolved path, a URL masked."""
    return hide_password(spec) if "://" in spec else str(Path(spec).resolve())


# ------------------------------------------------------------------ which study a folder holds
def refs_of_folder(root: Path, problems: List[str]) -> List[StudyRef]:
    """The studies of every Optuna sweep folder at or below `root` (a grid sweep has none)."""
    sweeps = sorted({p.parent for name in ("multirun.yaml", RESULTS_FILE) for p in root.rglob(name)})
    refs = []
    for sweep in sweeps:
        ref = _ref_of_sweep(sweep, problems)
        if ref is not None:
            refs.append(ref)
    return refs


def _ref_of_sweep(sweep: Path, problems: List[str]) -> Optional[StudyRef]:
    results = _yaml(sweep / RESULTS_FILE)
    config = _yaml(sweep / "multirun.yaml")
    hydra = config.get("hydra") if isinstance(config.get("hydra"), dict) else {}
    sweeper = hydra.get("sweeper") if isinstance(hydra.get("sweeper"), dict) else {}
    cwd = Path(str((hydra.get("runtime") or {}).get("cwd") or sweep))
    name, spec = results.get("study_name"), results.get("storage")
    if not (name and spec):  # a killed sweep: a trial's link, else the sweeper's settings
        for hydra_yaml in sorted(sweep.glob("trial-*/.hydra/hydra.yaml"))[:1]:
            env = ((_yaml(hydra_yaml).get("hydra") or {}).get("job") or {}).get("env_set") or {}
            name, spec = env.get(ENV_STUDY), env.get(ENV_STORAGE)
    if not (name and spec):
        if "wdsweep_optuna" not in str(sweeper.get("_target_", "")):
            return None  # a grid sweep, or another sweeper's
        name = sweeper.get("study_name")
        spec = sweeper.get("storage") or (
            str(cwd / str(sweeper.get("storage_dir", "multirun/optuna")) / f"{name}.journal") if name else None)
        if not name:
            problems.append(f"{sweep}: an Optuna sweep folder that does not say its study (no {RESULTS_FILE}, "
                            "no trial folder, no hydra.sweeper.study_name); give its storage instead")
            return None
    spec = _locate_storage(str(spec), sweep, cwd)
    if spec is None:
        problems.append(f"{sweep}: its study {name!r} lives in {results.get('storage') or 'a journal'} that is "
                        f"not there (nor in optuna/ beside the sweep folder); its trials are read from their "
                        "folders alone")
        return None
    return StudyRef(spec, str(name), [sweep.resolve()])


def _locate_storage(spec: str, sweep: Path, cwd: Path) -> Optional[str]:
    """The storage as this process can reach it: a relative sqlite path is the sweep's cwd's;
    a journal is looked for beside the sweep folder (multirun/optuna), then where it was written."""
    if spec.startswith("sqlite:///") and not spec.startswith("sqlite:////"):
        return "sqlite:///" + str(cwd / spec[len("sqlite:///"):])
    if "://" in spec:
        return spec
    path = Path(spec) if Path(spec).is_absolute() else cwd / spec
    # Beside the folder first (usually the same file): a copied tree reads its own copy.
    for candidate in (sweep.parent / "optuna" / path.name, sweep.parent.parent / "optuna" / path.name, path):
        if candidate.is_file():
            return str(candidate)
    return None


def _yaml(path: Path) -> Dict[str, Any]:
    """A YAML mapping, or {} for a missing or unreadable file (the caller falls back)."""
    try:
        data = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        data = None
    return data if isinstance(data, dict) else {}


# ------------------------------------------------------------------ loading, once each
def load_studies(refs: Sequence[StudyRef], problems: List[str]) -> List[LoadedStudy]:
    """Each (storage, study name) named by `refs`, loaded once; a storage that cannot be read
    and a study it does not hold are one line each in `problems`."""
    import optuna

    from wdsweep.tracking.trial_link import open_storage

    by_storage: Dict[str, List[StudyRef]] = {}
    for ref in refs:
        by_storage.setdefault(storage_key(ref.spec), []).append(ref)
    loaded: Dict[Tuple[str, str], LoadedStudy] = {}
    for key, group in by_storage.items():
        spec, shown = group[0].spec, group[0].shown
        try:
            _, password = split_password(spec)
        except UnsafePassword as err:  # a line would show what masking missed
            problems.append(f"{shown}: not read: a storage URL whose password can be masked ({err})")
            continue
        try:
            storage = open_storage(spec)
            names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        except Exception as err:  # noqa: BLE001 - a bad storage is a message, not a crash
            err = getattr(err, "orig", None) or err  # SQLAlchemy's wrapper: the driver says it best
            line = hide_password(f"{type(err).__name__}: {' '.join(str(err).split())}", password)
            problems.append(f"{shown}: cannot read the Optuna storage ({line})")
            continue
        if not names:
            problems.append(f"{shown}: no trials found (no study in this storage)")
        for ref in group:
            wanted = names if ref.name is None else [ref.name]
            for name in wanted:
                if name not in names:
                    problems.append(f"{shown}: no study named {name!r} (its sweep folder "
                                    f"{', '.join(map(str, ref.sweeps))} says it is there); studies: "
                                    f"{', '.join(names) or 'none'}")
                    continue
                if (key, name) not in loaded:
                    loaded[key, name] = LoadedStudy(optuna.load_study(study_name=name, storage=storage), shown, [])
                roots = loaded[key, name].roots
                roots += [r for s in ref.sweeps for r in (s.parent, s.parent.parent) if r not in roots]
    for (key, _), study in loaded.items():
        if "://" not in key:  # last: a journal's multirun folder (multirun/optuna/x.journal) holds its sweeps
            study.roots.append(Path(key).parent.parent)
    return _once_per_study(list(loaded.values()))


def _once_per_study(studies: List[LoadedStudy]) -> List[LoadedStudy]:
    """A study reached through two storages (a journal and its copy, one named by a folder and
    one given) is one study: the same name and the same first trial start. The first kept
    (storages given as sources come before those named by folders), with both's roots."""
    kept: Dict[Tuple[str, Any], LoadedStudy] = {}
    for study in studies:
        trials = study.study.get_trials(deepcopy=False)
        identity = (study.name, trials[0].datetime_start if trials else id(study))
        if identity in kept:
            kept[identity].roots += [r for r in study.roots if r not in kept[identity].roots]
        else:
            kept[identity] = study
    return list(kept.values())


# ------------------------------------------------------------------ trials joined with their folders
def join_trials(studies: Sequence[LoadedStudy], folders: Dict[Path, Dict[str, Any]],
                read_job: Callable[[Path], Optional[Dict[str, Any]]], problems: List[str]) -> List[Dict[str, Any]]:
    """One row per trial of each study. A trial's folder row is taken out of `folders` (rows of
    the given sweep folders, by resolved job path), or read with `read_job` when the folder is
    elsewhere; what stays in `folders` belongs to no loaded study."""
    by_link: Dict[Tuple[str, int], Path] = {}  # (study name, trial id) -> folder, from metrics.json
    for path, row in folders.items():
        if row.get("_study") is not None and row.get("_trial_id") is not None and not row.get("role"):
            by_link.setdefault((str(row["_study"]), int(row["_trial_id"])), path)
    names = [s.name for s in studies]
    rows = []
    for loaded in studies:
        unique_name = names.count(loaded.name) == 1  # two storages with one study name: go by path only
        missing = []
        for trial in loaded.study.get_trials(deepcopy=False):
            path = by_link.get((loaded.name, trial._trial_id)) if unique_name else None
            if path is None or path not in folders:
                path = _job_dir_of(trial, loaded.name, loaded.roots, folders)
            row = folders.pop(path, None) if path is not None else None
            if row is None and path is not None and path.is_dir():
                row = read_job(path)
            if row is None and trial.user_attrs.get(JOB_DIR_ATTR) and "wdsweep_seeds" not in trial.user_attrs:
                missing.append(trial.number)  # (a replicated trial's folder holds only its seeds' runs)
            if row is not None:
                loaded.job_dirs[trial.number] = path
                if row.get("status") == "incomplete" and trial.state.name != "RUNNING":
                    # the job left no result, but the study knows how it ended (a stale trial failed)
                    row["status"] = trial.user_attrs.get("wdsweep_status") or _STATUS_OF_STATE[trial.state.name]
            else:
                row = _row_of_trial(trial, loaded)
            row.update(study=loaded.name, trial=trial.number, trial_state=trial.state.name)
            rows.append(row)
        if missing:
            shown = ", ".join(map(str, missing[:8])) + (", ..." if len(missing) > 8 else "")
            problems.append(f"{loaded.shown}: study {loaded.name!r}: the job folders of {len(missing)} trial(s) "
                            f"({shown}) are not where the sweeper recorded them nor beside the given sweep "
                            "folders; their rows hold what the study recorded only")
    return rows


def _job_dir_of(trial: Any, study_name: str, roots: Sequence[Path],
                folders: Dict[Path, Dict[str, Any]]) -> Optional[Path]:
    """The trial's folder: its trailing parts under `roots` (the given sweep folders' parent and
    grandparent, the journal's multirun folder: <sweep>/trial-NNNNN for a named sweep,
    <date>/<time>/trial-NNNNN for a dated one), so a copied or moved tree is read where it was
    given; else where the sweeper recorded it. A folder whose metrics.json names another trial
    is not this one's."""
    recorded = trial.user_attrs.get(JOB_DIR_ATTR)
    if not recorded:
        return None  # it failed before it had a folder (its config could not be composed)
    recorded = Path(recorded)
    candidates = [root.joinpath(*recorded.parts[-parts:]) for root in roots for parts in (2, 3)
                  if len(recorded.parts) >= parts] + [recorded]
    for candidate in candidates:
        try:
            resolved = candidate.resolve()
        except OSError:
            continue
        if resolved in folders:
            if folders[resolved].get("role"):
                continue  # a seed's or a finalist's run, not the trial's own
            link = (folders[resolved].get("_study"), folders[resolved].get("_trial_id"))
        elif (resolved / ".hydra" / "config.yaml").is_file():
            link = _link_of(resolved / "metrics.json")
        else:
            continue
        if link[1] is None or link == (study_name, trial._trial_id):
            return resolved
    return None


def _link_of(metrics: Path) -> Tuple[Any, Any]:
    """(study name, trial id) a job's metrics.json names; (None, None) if it names none."""
    import json

    try:
        link = json.loads(metrics.read_text()).get("optuna") if metrics.is_file() else None
    except (OSError, ValueError, AttributeError):
        link = None
    return (link.get("study"), link.get("trial_id")) if isinstance(link, dict) else (None, None)


def _row_of_trial(trial: Any, loaded: LoadedStudy) -> Dict[str, Any]:
    """A trial with no folder: what the study holds (its parameters, and the metrics the job
    recorded on it as wdsweep_* user attributes)."""
    row: Dict[str, Any] = {"sweep": loaded.shown, "job": f"{loaded.name}/trial-{trial.number:05d}"}
    row.update(trial.params)
    attrs = trial.user_attrs
    row["status"] = attrs.get("wdsweep_status") or _STATUS_OF_STATE[trial.state.name]
    for key in ("test_error", "val_error", "steps", "diverged_at_step", "error"):
        if f"wdsweep_{key}" in attrs:
            row[key] = attrs[f"wdsweep_{key}"]
    # A pruned trial's value is its last intermediate one, not a finished run's.
    if trial.state.name == "COMPLETE" and trial.values is not None:
        row["objective"] = trial.values[0] if len(trial.values) == 1 else list(trial.values)
    return row


def trial_number_of_folder(job: str) -> Optional[int]:
    """trial-00012 -> 12: a trial folder's number, for folders whose study cannot be read."""
    match = re.fullmatch(r"trial-(\d+)", Path(job).name)
    return int(match.group(1)) if match else None


# ------------------------------------------------------------------ the best trial, and the plots
@dataclass
class StudySummary:
    """What report.md says of one study: its best trial and the trials tying with it, the plot
    files, the importances (parameter -> share) per objective, and why anything was skipped."""
    name: str
    shown: str
    directions: List[str]
    n_trials: int
    states: Dict[str, int]
    best: Optional[int] = None  # study.best_trial.number (single objective)
    best_value: Optional[float] = None
    best_params: Dict[str, Any] = field(default_factory=dict)
    ties: List[int] = field(default_factory=list)
    pareto: List[int] = field(default_factory=list)  # study.best_trials (multi-objective)
    plots: Dict[str, Path] = field(default_factory=dict)  # label -> PNG
    importances: Dict[str, Dict[str, float]] = field(default_factory=dict)  # objective -> {param: share}
    skipped: List[str] = field(default_factory=list)
    importance_seed: int = IMPORTANCE_SEED
    mixed: List[str] = field(default_factory=list)  # fixed settings mixed in ("key: before -> now")


def summarize(loaded: LoadedStudy, out: Path) -> StudySummary:
    """The study's own best trial (study.best_trial, its direction) and ties on its value, and
    its plots saved in `out`."""
    from optuna.trial import TrialState

    study = loaded.study
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    summary = StudySummary(loaded.name, loaded.shown, [d.name.lower() for d in study.directions], len(trials),
                           {s.name: sum(t.state == s for t in trials) for s in TrialState})
    from wdsweep.search.study_settings import MIXED_ATTR

    summary.mixed = list(study.user_attrs.get(MIXED_ATTR) or [])  # hydra.sweeper.mix_settings=true
    if complete and len(study.directions) == 1:
        best = study.best_trial
        summary.best, summary.best_value, summary.best_params = best.number, best.value, dict(best.params)
        summary.ties = [t.number for t in complete if t.number != best.number and t.value == best.value]
    elif complete:
        summary.pareto = sorted(t.number for t in study.best_trials)
    draw_plots(loaded, out, summary)
    return summary


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def draw_plots(loaded: LoadedStudy, out: Path, summary: StudySummary) -> None:
    """Optuna's matplotlib plots of one study, per objective, into `out` (PNG); what cannot be
    drawn goes to summary.skipped with its reason."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt
    import optuna
    from optuna.exceptions import ExperimentalWarning
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    study = loaded.study
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        summary.skipped.append("no plots: the study has no complete trial")
        return
    searched = set().union(*(t.params for t in complete))
    names = _objective_names(loaded, len(study.directions))
    objectives: List[Tuple[str, str, Optional[Callable]]] = (
        [("", names[0], None)] if len(names) == 1 else
        [(f"-{i}", name, (lambda t, i=i: t.values[i])) for i, name in enumerate(names)])
    for suffix, name, target in objectives:
        kw = {"target": target, "target_name": name} if target else {"target_name": name}
        plots: List[Tuple[str, str, Callable[[], Any]]] = [
            ("history", "optimization history", lambda: ovm.plot_optimization_history(study, **kw))]
        if len(complete) >= 2:  # one point has no slice, no contour and no lines to compare
            plots += [("slice", "slice", lambda: ovm.plot_slice(study, **kw)),
                      ("parallel", "parallel coordinates", lambda: ovm.plot_parallel_coordinate(study, **kw))]
            if set(CONTOUR) <= searched:
                plots.append(("contour", f"contour of {' x '.join(CONTOUR)}",
                              lambda: ovm.plot_contour(study, params=list(CONTOUR), **kw)))
            else:
                summary.skipped.append(f"contour{suffix}: {' and '.join(CONTOUR)} are not both searched "
                                       f"(searched: {', '.join(sorted(searched))})")
        else:
            summary.skipped.append(f"slice, parallel coordinates, contour{suffix}: one complete trial only")
        if len(complete) >= MIN_TRIALS_FOR_IMPORTANCES:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
            try:
                summary.importances[name] = dict(optuna.importance.get_param_importances(
                    study, evaluator=evaluator, target=target))
                plots.append(("importances", "parameter importances (fANOVA)", lambda: ovm.plot_param_importances(
                    study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED), **kw)))
            except (RuntimeError, ValueError) as err:  # e.g. no parameter common to all trials
                summary.skipped.append(f"importances{suffix}: {' '.join(str(err).split())}")
        else:
            summary.skipped.append(f"importances{suffix}: {len(complete)} complete trial(s), fewer than "
                                   f"{MIN_TRIALS_FOR_IMPORTANCES}: too few to fit their forest")
        for key, label, draw in plots:
            # Optuna's matplotlib plots are experimental (the warning says so on each call; we
            # accept it) and set the ggplot style globally: both stay inside this block.
            with warnings.catch_warnings(), matplotlib.rc_context():
                warnings.simplefilter("ignore", ExperimentalWarning)
                try:
                    axes = draw()
                except Exception as err:  # noqa: BLE001 - one plot left out, the rest drawn
                    summary.skipped.append(f"{key}{suffix}: {type(err).__name__}: {' '.join(str(err).split())}")
                    plt.close("all")
                    continue
                figure = _figure_of(axes)
                figure.suptitle(f"{loaded.name}: {label}" + (f" ({name})" if suffix else ""), fontsize=10, y=1.03)
                path = out / f"optuna_{_slug(loaded.name)}_{key}{suffix}.png"
                out.mkdir(parents=True, exist_ok=True)
                figure.savefig(path, dpi=110, bbox_inches="tight")
                plt.close(figure)
            summary.plots[f"{label}" + (f" ({name})" if suffix else "")] = path


def _figure_of(axes: Any):
    import numpy as np

    return np.ravel(np.asarray(axes, dtype=object))[0].figure


def _objective_names(loaded: LoadedStudy, n: int) -> List[str]:
    """The objectives' metric names (the jobs' `objective` setting), else objective 0, 1, ..."""
    import json

    for path in list(loaded.job_dirs.values())[:5]:
        try:
            record = json.loads((path / "metrics.json").read_text())
        except (OSError, ValueError):
            continue
        name = record.get("objective_name")
        names = name if isinstance(name, list) else [name]
        if len(names) == n and all(isinstance(x, str) for x in names):
            return names
    return ["objective"] if n == 1 else [f"objective {i}" for i in range(n)]
