"""`python -m analysis [SWEEP_DIR_OR_STORAGE...] [--out DIR]`: the runs table, charts and report.

With no source, the newest sweep under ./multirun (multirun/<date>/<time> or multirun/<name>). With no --out the
report lands in
<first sweep>/analysis. Problems with single files (a corrupt
metrics.json, a folder with no runs) are one-line messages, and the rest of the report is made;
the exit status is non-zero only when nothing at all could be read.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from analysis.collect import collect, status_counts
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
    from analysis.finalists import finalist_files
    from analysis.report import write_report
    from analysis.study import summarize

    first = Path(args.sources[0])
    default = first / "analysis" if first.is_dir() else (
        first.parent / "analysis" if first.is_file() else Path("analysis-report"))  # a storage URL
    out = args.out or default
    out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "runs.csv", index=False)
    try:
        runs.to_parquet(out / "runs.parquet", index=False)
    except ImportError:
        pass  # pyarrow is optional

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
                print(f"analysis: {line}", file=sys.stderr)
                collection.problems.append(line)
    # Each study's own best trial and plots (Optuna's), for the report's Optuna section.
    studies = [summarize(study, out) for study in collection.studies]
    # The report names its command; a storage URL's password stays out of it.
    command = " ".join(["python -m analysis", *(shlex.quote(hide_password(a)) for a in (argv or sys.argv[1:]))])
    report = write_report(compared, status_counts(runs), figures, out, command, collection.problems, studies,
                          finalist_files(args.sources))
    print(f"analysis: {len(runs)} runs -> {report} ({time.perf_counter() - tic:.1f} s)")
    return 0


def command() -> None:
    """The `wdsweep-analysis` console script: `python -m analysis` under a name of its own."""
    sys.exit(main())


if __name__ == "__main__":
    command()
