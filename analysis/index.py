"""report.md for runs that must not be ranked together: which groups there are, and where each
one's own report is.

Runs of several data sets, tasks or error metrics (analysis/groups.py) get a report per group,
each in a folder of its own under the report folder (figures, runs.csv and report.md, made as
for a single group). The top report.md names the groups with their run counts and links, says
how to analyse each group alone where its sweeps hold no other group's runs, and counts every
run; runs.csv beside it holds them all.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Dict, List, Sequence

from analysis.collect import sweep_commands
from analysis.groups import Group, apart
from analysis.report import runs_section


def write_index(groups: Sequence[Group], reports: Sequence[Path], counts: Dict[str, int], out: Path,
                command: str, problems: List[str]) -> Path:
    """report.md in `out`, for `groups` whose reports are `reports` (in subfolders of `out`)."""
    import pandas as pd

    sweeps = sweep_commands(pd.concat([g.runs for g in groups]))
    lines = ["# Regularization sweep report", ""]
    lines += ([f"Sweep{'s' if len(sweeps) > 1 else ''}: " + "; ".join(f"`{c}`" for c in sweeps)] if sweeps else [])
    lines += [f"Report: `{command}`", "",
              f"These runs measure {len(groups)} different things: errors of different data sets, or of different "
              "error metrics (an error rate, a mean squared error), are not ranked against each other. Each group "
              "has a report of its own, with its own figures, comparisons and Holm correction:", "",
              "| data set | task | error | runs | report |", "|---|---|---|---|---|"]
    for group, report in zip(groups, reports):
        link = report.relative_to(report.parent.parent).as_posix()
        lines.append(f"| {group.data} | {group.task or '–'} | {group.metric or '–'} | {len(group.runs)} | "
                     f"[{link}]({link}) |")
    alone = [(g, folders) for g, folders in zip(groups, apart(list(groups))) if folders]
    if alone:
        lines += ["", "To analyse a group alone:", ""]
        lines += [f"- {g.label}: `python -m analysis {' '.join(shlex.quote(f) for f in folders)}`"
                  for g, folders in alone]
    lines += [""] + runs_section(counts, problems)
    lines += ["The table of every run is `runs.csv` beside this report; each group's own is beside its report."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
