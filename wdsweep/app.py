"""The Hydra application: `python -m wdsweep [-m] overrides...`.

The task function lives here, in an importable module, rather than in __main__.py, so that
launchers which pickle it to worker processes (joblib, submitit) find it by name.

Before Hydra starts, main() checks the command line the way Hydra is about to read it (the
override grammar, then one compose of the primary config), so that a mistake there ends the
program with one line rather than Hydra's report over several.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from wdsweep.errors import ConfigError


def _config_dir() -> Path:
    """conf/ ships inside the package (wdsweep/conf) in a built install; in a source checkout
    or an editable install it is the top-level conf/ beside the package."""
    packaged = Path(__file__).resolve().parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "conf"


CONFIG_DIR = _config_dir()


def task(cfg: DictConfig) -> float:
    """One job: train and record it, return its objective (see wdsweep.jobs.run)."""
    from wdsweep.jobs.lifeline import watch_parent
    from wdsweep.jobs.resume import trains_one_by_one
    from wdsweep.jobs.run import run  # deferred: torch is not needed to print --help or --cfg
    from wdsweep.jobs.threads import launcher_share
    from wdsweep.tracking.trial_link import TrialLink

    watch_parent()  # a joblib worker ends with its sweep, even one killed with SIGKILL
    hydra_cfg = HydraConfig.get()
    single = hydra_cfg.mode == RunMode.RUN
    # Our grid sweeper skips finished jobs before launching; the job checks again under its
    # folder's lock, for a second sweep process that launched the same job meanwhile. An Optuna
    # finalist's folder (finalists/trial-N/seed-S) is named by what it runs, as a grid job's
    # is: the same command again finds it done rather than train it again.
    link = TrialLink.from_env()
    finalist = link is not None and link.role == "finalist"
    resume = not single and (bool(hydra_cfg.sweeper.get("resume", False)) or finalist)
    try:
        return run(cfg, Path(hydra_cfg.runtime.output_dir), overrides=list(hydra_cfg.overrides.task),
                   progress=single, raise_failures=single, resume=resume,
                   launcher_jobs=launcher_share(hydra_cfg.launcher),
                   one_by_one=trains_one_by_one(hydra_cfg.launcher), wait_for_lock=not single)
    except ConfigError as err:
        err.exit()


_hydra_main = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")(task)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, as Ctrl-C raises KeyboardInterrupt: the same
    clean-up runs (job locks released, temporary files removed, joblib's workers stopped)."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def main() -> None:
    from wdsweep.jobs.lifeline import mark_main_process
    from wdsweep.jobs.threads import start_watching
    from wdsweep.tracking.mlflow_export import mask_command_line

    signal.signal(signal.SIGTERM, _terminate)
    mark_main_process()
    # Before Hydra reads it: a password in logger.tracking_uri goes to the environment, and
    # configs, folder names, files and log lines get the URI masked (wdsweep.mlflow_export).
    sys.argv[1:] = mask_command_line(sys.argv[1:])
    try:
        start_watching()  # the first job's thread decision measures the CPU from here (wdsweep.jobs.threads)
        check_override_syntax(sys.argv[1:])
        check_composition(sys.argv[1:])
        _hydra_main()
    except KeyboardInterrupt as stop:
        # A job writes metrics.json last and atomically: the one interrupted left no result,
        # so the same command trains it again (from its checkpoint, if it wrote one:
        # wdsweep.jobs.checkpoints) and skips the finished ones.
        what = "SIGTERM" if isinstance(stop, Terminated) else "Ctrl-C"
        print(f"wdsweep: stopped by {what}; finished jobs are kept, and the same command again "
              "resumes the sweep (hydra.sweeper.resume=true, the default)", file=sys.stderr)
        sys.exit(143 if isinstance(stop, Terminated) else 130)


def check_override_syntax(argv: list) -> None:
    """A malformed override (`reg.lam=tag(log,interval(1e-5)`) ends the program with one line,
    where Hydra would print its grammar error over several."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from wdsweep.config.urls import hide_password

    args, _ = get_args_parser().parse_known_args(argv)
    for override in args.overrides:
        try:
            OverridesParser.create().parse_override(override)
        except Exception as err:  # noqa: BLE001 - Hydra's grammar errors come in several types
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            # The override may be a URL with a password (hydra.sweeper.storage=...?password=pw):
            # a line that repeats it shows it masked.
            ConfigError(hide_password(f"invalid override {override!r} is not allowed: key=value in Hydra's "
                                      "override syntax, a sweep as key=a,b,c or choice(...), range(...), "
                                      f"interval(...), tag(log, interval(...)) (the parser: {first})")).exit()


def check_composition(argv: list) -> None:
    """Compose the primary config once, with Hydra's own machinery, as Hydra is about to: an
    error there (`model=resnet999`, `reg.p=abc`) ends the program with one line, where Hydra
    would print it over several, with its config search path. Per-job errors of a sweep are
    the sweepers' (see validation.composition_error_line). HYDRA_FULL_ERROR=1 keeps Hydra's
    own report, traceback and all."""
    from hydra._internal.utils import get_args_parser

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return
    args, _ = get_args_parser().parse_known_args(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion or args.experimental_rerun:
        return  # these compose nothing to run, or not from the command line
    _check_commands(args)
    _compose_primary(args)


def _check_commands(args) -> None:
    """Hydra raises these as a bare ValueError, with a traceback."""
    commands = [name for name, given in (("--run", args.run), ("--multirun", args.multirun),
                                         ("--cfg", args.cfg is not None)) if given]
    if len(commands) > 1:
        ConfigError(f"invalid command line: {' with '.join(commands)} is not allowed: one of "
                    "--run, --multirun, --cfg, --info, --shell-completion at a time").exit()
    if args.resolve and args.cfg is None:
        ConfigError("invalid command line: --resolve is not allowed: only with --cfg or --help").exit()


def _compose_primary(args) -> None:
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import (
        create_automatic_config_search_path,
        detect_calling_file_or_module_from_task_function,
        detect_task_name,
    )
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from wdsweep.config.urls import hide_password
    from wdsweep.config.validation import composition_error_line

    # As hydra.main's _run_hydra builds them, so that this compose is Hydra's own.
    calling_file, calling_module = detect_calling_file_or_module_from_task_function(task)
    search_path = create_automatic_config_search_path(
        calling_file, calling_module, args.config_path or str(CONFIG_DIR))
    if args.config_dir is not None:
        config_dir = Path(args.config_dir).absolute()
        if not config_dir.is_dir():
            ConfigError(f"invalid command line: --config-dir={str(config_dir)!r} is not allowed: "
                        "an existing folder (not found)").exit()
        search_path.prepend(provider="command-line", path=f"file://{config_dir}",
                            anchor=SearchPathQuery(provider="schema"))
    config_name = args.config_name or "config"
    try:
        hydra_ = Hydra.create_main_hydra2(task_name=detect_task_name(calling_file, calling_module),
                                          config_search_path=search_path)
    except Exception:  # noqa: BLE001 - Hydra will meet and report the same problem itself
        GlobalHydra.instance().clear()
        return
    try:
        _compose(hydra_, config_name, list(args.overrides), multirun=args.multirun, show_cfg=args.cfg is not None)
    except (HydraException, OmegaConfBaseException) as err:
        ConfigError(hide_password(composition_error_line(err))).exit()
    except Exception:  # noqa: BLE001 - not a config error: Hydra will report it its own way
        return
    finally:
        GlobalHydra.instance().clear()  # hydra.main initializes it again


def _compose(hydra_, config_name: str, overrides: list, multirun: bool, show_cfg: bool) -> None:
    try:
        hydra_.compose_config(config_name, overrides, run_mode=RunMode.MULTIRUN if multirun else RunMode.RUN)
    except Exception:
        # A config may set hydra.mode=MULTIRUN, a multirun without -m (Hydra's get_mode); that
        # costs a second compose, so it is asked only when the first one failed.
        if multirun or show_cfg or hydra_.get_mode(config_name, overrides) != RunMode.MULTIRUN:
            raise
        hydra_.compose_config(config_name, overrides, run_mode=RunMode.MULTIRUN)
