"""`python -m analysis [SWEEP_DIR_OR_STORAGE...] [--out DIR]`: the runs table, charts and report.

With no source, the newest sweep under ./multirun (multirun/<date>/<time> or multirun/<name>). With no --out the
report lands in <first sweep>/analysis. Problems with single files (a corrupt metrics.json, a
folder with no runs) are one-line messages, and the rest of the report is made; the exit status
is non-zero only when nothing at all could be read, or when the report folder cannot take the
report (a full disk, a read-only folder: one line, and the folder is left as it was,
analysis/output.py). Runs of different data sets or error metrics are never ranked together: each
group gets a report of its own (analysis/groups.py, analysis/index.py).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import List, Tuple

from analysis.collect import collect, status_counts
from analysis.output import OutputError, staged
from wdsweep.config.urls import hide_password


def newest_sweep(root: Path):
    """The sweep folder under `root` whose multirun.yaml is newest: Hydra's dated folders
    (multirun/<date>/<time>) and named ones (hydra.sweep.dir=multirun/mine) alike; None if none."""
    sweeps = [*root.glob("*/*/multirun.yaml"), *root.glob("*/multirun.yaml")]
    return max(sweeps, key=lambda p: p.stat().st_mtime).parent if sweeps else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*",
                        help="sweep folders (multirun/<date>/<time>), journal files or storage URLs; an "
                             "Optuna study's folder or storage gives the whole study, every invocation, once; "
                             "default: the newest sweep under ./multirun, dated or named")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: <first sweep>/analysis)")
    parser.add_argument("--width", choices=("column", "page"), default=None,
                        help="draw the figures for a paper: one column (3.5 in) or a page (7 in) wide, fonts at "
                             "least 7 pt at that size (default: for screens)")
    parser.add_argument("--sharey", action="store_true", help="one y-range for every panel of a chart")
    args = parser.parse_args(argv)
    from analysis.chartbase import set_layout

    set_layout(args.width, args.sharey)
    tic = time.perf_counter()
    if not args.sources:
        newest = newest_sweep(Path("multirun"))
        if newest is None:
            print("analysis: no sweep under ./multirun; name one: python -m analysis multirun/<date>/<time>",
                  file=sys.stderr)
            return 1
        args.sources = [str(newest)]

    collection = collect(args.sources)
    for problem in collection.problems:
        print(f"analysis: {problem}", file=sys.stderr)
    runs = collection.runs
    if runs.empty:
        if not collection.problems:  # else the lines above already say why, one per source
            print("analysis: no runs to analyse", file=sys.stderr)
        return 1
    first = Path(args.sources[0])
    default = first / "analysis" if first.is_dir() else (
        first.parent / "analysis" if first.is_file() else Path("analysis-report"))  # a storage URL
    out = args.out or default
    # The report names its command; a storage URL's password stays out of it.
    command = " ".join(["python -m analysis", *(shlex.quote(hide_password(a)) for a in (argv or sys.argv[1:]))])
    try:
        with staged(out) as staging:  # every file whole, or none replaced (analysis/output.py)
            report, groups = write_all(collection, args.sources, staging, command)
    except OutputError as err:
        hint = "" if args.out else " (name another folder with --out DIR)"  # a read-only sweep folder
        print(f"analysis: {err}{hint}", file=sys.stderr)
        return 1
    apart = f" of {groups} data sets or error metrics, each with a report of its own," if groups > 1 else ""
    print(f"analysis: {len(runs)} runs{apart} -> {out / report.relative_to(staging)} "
          f"({time.perf_counter() - tic:.1f} s)")
    return 0


def write_all(collection, sources: List[str], out: Path, command: str) -> Tuple[Path, int]:
    """runs.csv and, per group of runs that may be ranked together (analysis/groups.py), the
    figures and the report, into `out`: the report itself for one group; for several, a
    report per group in its own folder and, in `out`, report.md naming them. Returns the top
    report.md and the number of groups."""
    from analysis.finalists import finalist_files
    from analysis.groups import groups_of

    runs = collection.runs
    write_table(runs, out)
    groups = groups_of(runs)
    finalists = finalist_files(sources)
    if len(groups) == 1:
        return analyse(runs, out, collection.studies, finalists, command, collection.problems), 1
    reports = []
    for i, group in enumerate(groups):
        sweeps = set(group.runs["sweep"].dropna().map(str)) if "sweep" in group.runs else set()
        studies = set(group.runs["study"].dropna().map(str)) if "study" in group.runs else set()
        if i == 0:  # a study with no trial (no row) is still reported, once, with the first group
            named = set(runs["study"].dropna().map(str)) if "study" in runs else set()
            studies |= {s.name for s in collection.studies} - named
        folder = out / group.slug
        write_table(group.runs, folder)
        reports.append(analyse(group.runs, folder, [s for s in collection.studies if s.name in studies],
                               [f for f in finalists if any(Path(s) in f.parents for s in sweeps)],
                               command, [], f"{group.label}: "))
    from analysis.index import write_index

    return write_index(groups, reports, status_counts(runs), out, command, collection.problems), len(groups)


def write_table(runs, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "runs.csv", index=False)
    try:
        runs.to_parquet(out / "runs.parquet", index=False)
    except ImportError:
        pass  # pyarrow is optional


def analyse(runs, out: Path, studies, finalists: List[Path], command: str, problems: List[str],
            prefix: str = "") -> Path:
    """The figures and report.md of runs that may be ranked together, into `out`; `prefix`
    names their group in the lines printed."""
    # Imported once there is something to draw: matplotlib and seaborn take seconds to load,
    # and a wrong folder should be said at once.
    from analysis.figures import (
        FigureProblem,
        gap_chart,
        headline_chart,
        lr_lambda_heatmap,
        regression_fits,
        weight_histograms,
    )
    from analysis.report import write_report
    from analysis.study import summarize

    # The seeds of replicated trials and the finalists' fresh-seed runs are in runs.csv (column
    # `role`), but not among the runs compared: a replicated trial's row holds its seeds' means,
    # and finalists have a section of their own (finalists.yaml).
    compared = runs[runs["role"].isna()] if "role" in runs else runs
    figures = []
    if {"reg.lam", "reg.p", "reg.scope", "test_error", "train_error"} <= set(compared.columns):
        for chart in (headline_chart, gap_chart, weight_histograms, regression_fits, lr_lambda_heatmap):
            try:
                figures += chart(compared, out)[1]
            except FigureProblem as problem:  # that figure is left out; the report goes on
                line = f"{problem}; {chart.__name__} not drawn"
                print(f"analysis: {prefix}{line}", file=sys.stderr)
                problems.append(line)
    # Each study's own best trial and plots (Optuna's), for the report's Optuna section.
    summaries = [summarize(study, out) for study in studies]
    return write_report(compared, status_counts(runs), figures, out, command, problems, summaries, finalists)


def command() -> None:
    """The `wdsweep-analysis` console script: `python -m analysis` under a name of its own."""
    sys.exit(main())


if __name__ == "__main__":
    command()
