"""Which runs may be ranked together: one group per data set, task and error metric.

An error rate on digits, an error rate on moons and a mean squared error on regression1d are
three different quantities: no mean, best λ, paired test or chart may put them side by side.
Runs of several groups (sweeps given together, `python -m analysis multirun/a multirun/b`, or
one sweep over `data=digits,moons`) are analysed apart, a report per group
(analysis/__main__.py).

A run's data set is its `data.name`, with its file (`data.path` or `data.root`) for data read
from one; its task and error metric are its metrics.json's `task` and `error_metric` (runs made
before metrics.json held them: `data.task`, or regression for regression1d). Other data.* keys
(n_train, noise, label_noise, seed) do not split: they are the same data set drawn otherwise,
and stay settings within the group, like any other swept key. A row that names no data set (an
Optuna trial whose job folder is gone) joins its study's other trials; a row that still has no
group joins the only one, or, among several, makes a group of its own ("unknown data set").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pandas as pd

UNKNOWN = "unknown data set"


@dataclass
class Group:
    data: str  # "digits", "npz (cifar10.npz)", or UNKNOWN
    task: Optional[str]  # classification / regression, or None where no run said
    metric: Optional[str]  # metrics.json's error_metric, or None where no run said
    runs: pd.DataFrame
    slug: str = ""  # its folder's name, unique among the groups

    @property
    def label(self) -> str:
        return f"{self.data} · {self.metric or self.task or 'unknown error metric'}"


def groups_of(runs: pd.DataFrame) -> List[Group]:
    """The runs split by (data set, task, error metric), in the order first met; one group for
    runs that are all of one."""
    data = _filled_by(_data_sets(runs), runs[["study"]] if "study" in runs else runs.iloc[:, :0])
    task = _column(runs, "task")
    if "data.task" in runs:  # csv / npz runs from before metrics.json said
        task = task.fillna(runs["data.task"].where(runs["data.task"].map(lambda v: isinstance(v, str))))
    if "data.name" in runs:
        task = task.mask(task.isna() & runs["data.name"].eq("regression1d"), "regression")
    task = _filled_by(task, data.to_frame())
    metric = _filled_by(_column(runs, "error_metric"), pd.DataFrame({"d": data, "t": task}))
    keys = pd.DataFrame({"data": data, "task": task, "metric": metric}, index=runs.index)
    known = keys[keys["data"].notna()].drop_duplicates()
    if len(known) == 1:  # rows naming no data set go with the only group there is
        keys.loc[keys["data"].isna(), list(keys)] = known.iloc[0].values
    keys["data"] = keys["data"].fillna(UNKNOWN)
    text = _joined(keys.fillna(""))
    groups: List[Group] = []
    for value in dict.fromkeys(text):
        rows = keys[text == value]
        first = rows.iloc[0]
        groups.append(Group(first["data"], _or_none(first["task"]), _or_none(first["metric"]), runs.loc[rows.index]))
    _name_folders(groups)
    return groups


def _joined(frame: pd.DataFrame) -> pd.Series:
    """Each row's values as one text, to group and match rows by."""
    return pd.Series(["\x1f".join(map(str, row)) for row in frame.itertuples(index=False)], index=frame.index,
                     dtype=object)


def _or_none(value):
    return value if isinstance(value, str) else None


def _column(runs: pd.DataFrame, key: str) -> pd.Series:
    return runs[key].astype(object) if key in runs else pd.Series(None, index=runs.index, dtype=object)


def _data_sets(runs: pd.DataFrame) -> pd.Series:
    """Each run's data set: data.name, and its file's name for data read from a file or folder."""
    names = _column(runs, "data.name")
    files = pd.Series(None, index=runs.index, dtype=object)
    for key in ("data.path", "data.root"):
        if key in runs:
            files = files.fillna(runs[key].map(lambda v: Path(str(v)).name if isinstance(v, str) else None))
    return names.map(lambda n: None if not isinstance(n, str) else n).where(
        files.isna(), names + " (" + files.astype(str) + ")")


def _filled_by(values: pd.Series, keys: pd.DataFrame) -> pd.Series:
    """`values` with a missing one taken from the rows equal to its own on every column of
    `keys` (none of them missing), where those rows hold exactly one known value."""
    if values.notna().all() or keys.shape[1] == 0:
        return values
    key = _joined(keys).where(keys.notna().all(axis=1))
    known = pd.DataFrame({"k": key, "v": values}).dropna()
    unique = known.groupby("k")["v"].agg(lambda v: v.iloc[0] if v.nunique() == 1 else None)
    return values.where(values.notna(), key.map(unique))


def _name_folders(groups: List[Group]) -> None:
    """Each group's folder name: its data set and task (or metric), made unique."""
    seen: set = set()
    for group in groups:
        base = _slug(f"{group.data}-{group.task or group.metric or 'unknown'}")
        slug, n = base, 2
        while slug in seen:
            slug, n = f"{base}-{n}", n + 1
        seen.add(slug)
        group.slug = slug


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-.").lower() or "group"


def apart(groups: List[Group]) -> List[List[str]]:
    """Per group, the sweep folders its runs come from, when none of them holds a run of another
    group (then `python -m analysis` on them analyses that group alone); else []."""
    sweeps = [list(dict.fromkeys(g.runs["sweep"].dropna().map(str))) if "sweep" in g.runs else [] for g in groups]
    return [mine if not any(set(mine) & set(other) for j, other in enumerate(sweeps) if j != i) else []
            for i, mine in enumerate(sweeps)]
