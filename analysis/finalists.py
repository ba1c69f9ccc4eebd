"""The report's finalists section: a search's (or a grid's) best configurations re-run on fresh
seeds (finalists.yaml, written by the sweepers; see wdsweep.search.finalists), beside what the search
itself said of them, so that the winner's curse is measured rather than hidden."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

import yaml

from analysis.numbers import number, p_text  # report.md's one way of writing an error and a p

ALPHA = 0.05  # as analysis.stats.ALPHA (the report's level)
TIE = 1e-7  # as analysis.stats.TOL: means closer than this are an exact tie


def finalist_files(sources: Iterable[str]) -> List[Path]:
    """finalists.yaml of every sweep folder among the sources (a sweep folder holds it at its top)."""
    found = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found += sorted(p for p in [path / "finalists.yaml", *path.glob("*/finalists.yaml")] if p.is_file())
    return list(dict.fromkeys(found))


def _interval(stat: Optional[dict]) -> str:
    """An error's mean and 95% interval over fresh seeds: the interval is cut at 0 (an error is
    never below it), and seeds that all agree get none."""
    if not stat:
        return "no completed seed"
    if stat.get("low") is None:
        return f"{number(stat['mean'])} (n = {stat['n']}, no interval)"
    if stat.get("std") == 0:
        return f"{number(stat['mean'])} (all {stat['n']} seeds equal)"
    low = f"{number(max(stat['low'], 0.0))}" + (" (cut at 0)" if stat["low"] < 0 else "")
    return f"{number(stat['mean'])} [{low}, {number(stat['high'])}] (n = {stat['n']})"


def optimism_sentence(entry: dict, direction: str) -> str:
    """Where the search's own estimate (its plain mean over its seeds: `search_mean`, not a
    mean + k * SE ranking score) lies against the fresh seeds' 95% interval, in words."""
    fresh, said = entry["fresh"]["objective"], entry.get("search_mean", entry["search_value"])
    if not fresh:
        return f"{entry['name']}: no fresh seed completed, so the search's value {number(said)} is unchecked."
    if fresh.get("low") is None:
        return (f"{entry['name']}: one fresh seed ({number(fresh['mean'])} against the search's {number(said)}); "
                "no interval, so no verdict on the search's optimism.")
    flattering = said < fresh["low"] if direction == "minimize" else said > fresh["high"]
    unflattering = said > fresh["high"] if direction == "minimize" else said < fresh["low"]
    gap = fresh["mean"] - said
    if flattering:
        return (f"{entry['name']}: the search said {number(said)}; fresh seeds give {_interval(fresh)}. The "
                f"search's value lies outside the interval on the good side: it was optimistic by about "
                f"{number(abs(gap))} (the winner's curse).")
    if unflattering:
        return (f"{entry['name']}: the search said {number(said)}; fresh seeds give {_interval(fresh)}, better than "
                "the search's own value.")
    return (f"{entry['name']}: the search said {number(said)}; fresh seeds give {_interval(fresh)}, which holds "
            "the search's value: no optimism measurable with these seeds.")


def _read(path: Path):
    """(entries, direction, data) of a finalists.yaml; raises what an unreadable file raises."""
    data = yaml.safe_load(path.read_text()) or {}
    entries, direction = data["finalists"], data.get("direction", "minimize")
    for entry in entries:  # the keys the section reads, present before anything is written
        entry["name"], entry["search_value"], entry["per_seed"]
        entry["fresh"]["objective"], entry["fresh"]["val_error"], entry["fresh"]["test_error"]
    return entries, direction, data


UNREADABLE = (OSError, yaml.YAMLError, KeyError, TypeError)


def finalist_tests(paths: List[Path]) -> List[Optional[float]]:
    """Per file, the raw p of its best-against-runner-up test (None: no test), for the report to
    adjust with its own tests (Holm over all of them)."""
    out = []
    for path in paths:
        try:
            entries, direction, _ = _read(path)
        except UNREADABLE:
            out.append(None)
            continue
        pick = _pick_of(entries, direction)
        out.append(pick.p if pick is not None else None)
    return out


def finalists_section(paths: List[Path], adjusted: Optional[List[Optional[float]]] = None,
                      tests: int = 0, data_seeds: Sequence[str] = ()) -> List[str]:
    """`adjusted`: per file, its test's p Holm-adjusted with the report's `tests` tests (by
    default the raw p, adjusted over nothing). `data_seeds`: the data.seed values the runs fixed
    (then the fresh seeds reuse the data split the selection was made on, which is said)."""
    lines: List[str] = []
    for i, path in enumerate(paths):
        try:
            entries, direction, data = _read(path)
        except UNREADABLE as err:
            lines += [f"`{path}` could not be read ({type(err).__name__}: {err}); its finalists are left out.", ""]
            continue
        lines += [f"## Finalists on fresh seeds (`{path.parent.name}`)", "",
                  f"The {len(entries)} best configurations of the search (seeds {data.get('search_seeds')}) trained "
                  f"again on seeds it never used ({data.get('fresh_seeds')}). Means with 95% t-intervals "
                  "over the fresh seeds; pick on the fresh validation error, and read the test error only as the "
                  "estimate it is.", "",
                  "| finalist | search's mean | fresh objective | fresh val error | fresh test error |",
                  "|---|---|---|---|---|"]
        for entry in entries:
            fresh = entry["fresh"]
            mean, ranked = entry.get("search_mean", entry["search_value"]), entry["search_value"]
            said = number(mean) + (f" (ranked by {number(ranked)})" if ranked != mean else "")
            lines.append(f"| {entry['name']} | {said} | {_interval(fresh['objective'])} | "
                         f"{_interval(fresh['val_error'])} | {_interval(fresh['test_error'])} |")
        lines += [""] + [f"- {optimism_sentence(e, direction)}" for e in entries] + [""]
        if data_seeds:
            lines += [f"data.seed is fixed ({', '.join(data_seeds)}): the fresh seeds draw new initial weights and "
                      "batch orders, but train and validate on the same data split the search selected on, so "
                      "their validation error is not independent of the selection. Unset data.seed for fresh "
                      "splits too.", ""]
        pick = _pick_of(entries, direction)
        if pick is not None:
            p_holm = adjusted[i] if adjusted is not None and i < len(adjusted) else pick.p
            lines += [_pick_sentence(pick, p_holm, tests), ""]
    return lines


@dataclass
class _Pick:
    """The finalist with the best fresh validation error against the runner-up, paired over the
    fresh seeds both completed."""
    best: dict
    runner: Optional[dict]
    tied: bool  # equal fresh validation means: no best
    shared: int
    diffs: List[float]
    p: Optional[float]  # the paired t-test's, where there is one


def _pick_of(entries: List[dict], direction: str) -> Optional[_Pick]:
    from scipy import stats

    scored = [e for e in entries if e["fresh"].get("val_error")]
    if not scored:
        return None
    sign = 1 if direction == "minimize" else -1
    scored.sort(key=lambda e: sign * e["fresh"]["val_error"]["mean"])
    best = scored[0]
    if len(scored) < 2:
        return _Pick(best, None, False, 0, [], None)
    runner = scored[1]
    tied = abs(runner["fresh"]["val_error"]["mean"] - best["fresh"]["val_error"]["mean"]) <= TIE
    mine = {r["seed"]: r["val_error"] for r in best["per_seed"] if r.get("val_error") is not None}
    theirs = {r["seed"]: r["val_error"] for r in runner["per_seed"] if r.get("val_error") is not None}
    shared = sorted(set(mine) & set(theirs))
    diffs = [theirs[s] - mine[s] for s in shared]
    p = None
    if len(shared) >= 2 and not all(d == diffs[0] for d in diffs):
        p = float(stats.ttest_rel([theirs[s] for s in shared], [mine[s] for s in shared]).pvalue)
    return _Pick(best, runner, tied, len(shared), diffs, p)


def _pick_sentence(pick: _Pick, p_holm: Optional[float], tests: int) -> str:
    """The best finalist in words: bold only where it is ahead of the runner-up beyond noise."""
    best, runner = pick.best, pick.runner
    if runner is None:
        return f"Best on fresh validation error: {best['name']} (the only finalist with a completed seed)."
    if pick.tied:
        return (f"No single best on fresh validation error: {best['name']} and {runner['name']} tie exactly "
                f"({number(best['fresh']['val_error']['mean'])}).")
    if pick.p is None:
        why = (f"it ties exactly with the runner-up ({runner['name']}) on every fresh seed"
               if pick.shared >= 2 and pick.diffs[0] == 0 else
               f"{pick.shared} shared fresh seed(s) and no spread between them, too few to tell it from the "
               f"runner-up ({runner['name']})")
        return f"Best on fresh validation error: {best['name']}; {why}."
    mean = sum(pick.diffs) / len(pick.diffs)
    holm = f", Holm-adjusted over the report's {tests} tests" if tests > 1 else ""
    beyond = p_holm is not None and p_holm < ALPHA
    name = f"**{best['name']}**" if beyond else best["name"]
    shown = p_text(p_holm)
    p_is = f"p {shown}" if shown.startswith("<") else f"p = {shown}"
    return (f"Best on fresh validation error: {name}; ahead of the runner-up ({runner['name']}) by "
            f"{number(abs(mean))} on {pick.shared} paired fresh seeds, paired t-test {p_is}{holm}: "
            + ("a difference beyond noise at the 5% level." if beyond else "within noise."))
