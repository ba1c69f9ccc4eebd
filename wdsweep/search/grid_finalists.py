"""The grid sweeper's finalists (hydra.sweeper.finalists=m): its m best configurations, ranked by
their mean objective over their seeds, trained again on fresh seeds, and finalists.yaml
(wdsweep.search.finalists, shared with the Optuna search).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from omegaconf import OmegaConf

from wdsweep.search.grid_plan import GridJob

log = logging.getLogger(__name__)

# `sweeper` below is the grid sweeper (hydra_plugins/wdsweep_sweeper): its settings (finalists,
# finalist_seeds), config and hydra_context, and its _checked_job, _batches and _launch, which
# compose, validate and launch jobs as it does for the grid's own.


def check_finalist_settings(sweeper: Any) -> None:
    """hydra.sweeper.finalists and finalist_seeds, checked before any job is composed."""
    from wdsweep.errors import ConfigError
    from wdsweep.search.finalists import fresh_seeds

    if isinstance(sweeper.finalists, bool) or not isinstance(sweeper.finalists, int) or sweeper.finalists < 0:
        ConfigError(f"invalid config: hydra.sweeper.finalists={sweeper.finalists!r} is not allowed: "
                    "an integer >= 0").exit()
    if sweeper.finalists and OmegaConf.is_list(sweeper.config.objective):
        ConfigError(f"invalid config: hydra.sweeper.finalists={sweeper.finalists} is not allowed: 0 with a "
                    "list of objectives (the grid's configurations then have no single ranking)").exit()
    try:
        fresh_seeds(sweeper.finalist_seeds, [])
    except ValueError:
        ConfigError(f"invalid config: hydra.sweeper.finalist_seeds={sweeper.finalist_seeds!r} is not allowed: "
                    "a count >= 1 or a list of distinct seeds >= 0").exit()


def check_finalist_seeds_unused(sweeper: Any, jobs: List[GridJob]) -> None:
    """A list of finalist seeds must miss every seed the grid's jobs train with (the config's
    seed where a job keeps it, not where every job overrides it): checked once the jobs are
    composed, before any is launched, not after the grid trained. (A count needs no check: it
    takes the smallest seeds the grid does not use.)"""
    from wdsweep.errors import ConfigError
    from wdsweep.search.finalists import seed_list

    if not sweeper.finalists or isinstance(sweeper.finalist_seeds, int):
        return
    used = {int(job.seed) for job in jobs if isinstance(job.seed, int)}
    overlap = sorted(set(seed_list(sweeper.finalist_seeds, "finalist_seeds")) & used)
    if overlap:
        ConfigError(f"invalid config: hydra.sweeper.finalist_seeds={sweeper.finalist_seeds!r} is not allowed: "
                    f"seeds the grid does not use (its jobs use {overlap}), or a count n: the n smallest "
                    "seeds the grid does not use").exit()


def run_finalists(sweeper: Any, jobs: List[GridJob], done) -> Tuple[List[GridJob], List[GridJob]]:
    """Train the grid's best configurations again on fresh seeds (see ValidatingSweeperConf)
    and write finalists.yaml. A configuration is the grid's overrides without `seed`; it
    ranks by its mean objective over its seeds, and only if every seed completed. Returns
    the finalist jobs and those of them it ran (the others were done by an earlier run of
    the same command)."""
    from wdsweep.errors import ConfigError
    from wdsweep.jobs.resume import read_record
    from wdsweep.search import finalists

    groups: Dict[Tuple[str, ...], List[Tuple[GridJob, Optional[dict]]]] = {}
    for job in jobs:
        rest = tuple(o for o in job.overrides if not o.split("=", 1)[0].lstrip("+") == "seed")
        groups.setdefault(rest, []).append((job, read_record(job.folder)))
    # the jobs' seeds, as check_finalist_seeds_unused read them, and those their records name
    used = sorted({int(r["seed"]) for members in groups.values() for _, r in members if r and "seed" in r}
                  | {int(job.seed) for job in jobs if isinstance(job.seed, int)})
    try:
        seeds = finalists.fresh_seeds(sweeper.finalist_seeds, used)
    except ValueError as err:
        ConfigError(f"invalid config: hydra.sweeper.finalist_seeds={sweeper.finalist_seeds!r} is not allowed: "
                    f"seeds the grid did not use ({err})").exit()
    ranked = []
    for rest, members in groups.items():
        records = [r for _, r in members]
        values = [r.get("objective") if r else None for r in records]
        if not all(r and r.get("status") == "completed" and isinstance(v, (int, float)) and math.isfinite(v)
                   for r, v in zip(records, values)):
            continue
        if all(r.get("same_as") for r in records):
            continue  # a record of another configuration's result (reg.lam=0 twins)
        ranked.append((sum(values) / len(values), rest, members))
    ranked.sort(key=lambda item: (item[0], item[1]))
    chosen = finalists.cut_with_ties(ranked, sweeper.finalists, lambda item: item[0])
    if len(chosen) > sweeper.finalists:
        log.info("finalists: %d configurations tie exactly at the cut of %d: all of them run",
                 len(chosen), sweeper.finalists)
    start = max((j.index for j in jobs), default=-1) + 1
    planned: List[Tuple[float, Tuple[str, ...], int, str, List[Tuple[int, GridJob]]]] = []
    finalist_jobs: List[GridJob] = []
    for value, rest, members in chosen:
        name = ",".join(p for p in members[0][0].folder.name.split(",") if not p.startswith("seed=")) or "default"
        seed_jobs = []
        for s in seeds:
            folder = f"{finalists.FINALISTS_DIR}/{name}/seed-{s}".replace("\\", "\\\\").replace("'", "\\'")
            overrides = list(rest) + [f"seed={s}", f"hydra.sweep.subdir='{folder}'"]  # quoted: = and ,
            job = sweeper._checked_job(start + len(finalist_jobs), overrides)
            seed_jobs.append((s, job))
            finalist_jobs.append(job)
        planned.append((value, rest, len(members), name, seed_jobs))
    log.info("finalists: the %d best of %d configurations on fresh seeds %s", len(chosen), len(ranked), seeds)
    todo = [job for job in finalist_jobs if not done(job)]
    for job in todo:  # run from the configs just validated, as the grid's own jobs
        if job.index in sweeper._configs:
            sweeper.hydra_context.config_loader.keep(sweeper.config, job.overrides, sweeper._configs[job.index])
    sweeper._configs.clear()
    for batch_start, batch in sweeper._batches(todo):
        sweeper._launch(batch, batch_start)
    entries = []
    for value, rest, n_seeds, name, seed_jobs in planned:
        records = [(s, read_record(job.folder)) for s, job in seed_jobs]
        rows = [finalists.seed_row(s, record, (record or {}).get("objective"), None) for s, record in records]
        entries.append(finalists.summary(name, {"overrides": list(rest)}, value, rows, search_seeds=n_seeds))
    finalists.write(Path(sweeper.config.hydra.sweep.dir), "minimize", used, seeds, entries,
                    objective=str(sweeper.config.objective))
    for entry in entries:
        log.info("%s", finalists.log_line(entry))
    return finalist_jobs, todo
