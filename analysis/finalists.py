"""The report's finalists section: a search's (or a grid's) best configurations re-run on fresh
seeds (finalists.yaml, written by the sweepers; see wdsweep.search.finalists), beside what the search
itself said of them, so that the winner's curse is measured rather than hidden.

The rules (the grid's, analysis/choice.py, applied to the finalists):
- A finalist that diverged or failed on a fresh seed fails there: it is never picked, its row
  and its optimism line say so, and the mean of its other seeds is no verdict on anything.
- The pick is on fresh validation error (lower is better, whatever the search's direction), the
  finalists ranked by their means over the fresh seeds all compared ones completed, and the best
  paired with the runner-up on those same seeds; the difference is signed (runner-up − best, so
  a positive one is the best ahead). A finalist that completed no more than half of the fresh
  seeds the others did is not compared (named), as in the grid.
- An interval whose seeds all agree has no width to judge by: no optimism verdict from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

import yaml

from analysis import stats as report_stats
from analysis.numbers import number, p_text  # report.md's one way of writing an error and a p

ALPHA = report_stats.ALPHA  # the report's level
FAILING = ("diverged", "failed")  # as analysis.choice.FAILING: the finalist fails there


def finalist_files(sources: Iterable[str]) -> List[Path]:
    """finalists.yaml of every sweep folder among the sources (a sweep folder holds it at its top)."""
    found = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found += sorted(p for p in [path / "finalists.yaml", *path.glob("*/finalists.yaml")] if p.is_file())
    return list(dict.fromkeys(found))


def _interval(stat: Optional[dict], rate: bool = False) -> str:
    """An error's mean and 95% interval over fresh seeds: the interval is cut at 0 (an error is
    never below it), and at 1 for an error rate (`rate`), and seeds that all agree get none."""
    if not stat:
        return "no completed seed"
    if stat.get("low") is None:
        return f"{number(stat['mean'])} (n = {stat['n']}, no interval)"
    if _equal(stat):
        return f"{number(stat['mean'])} (all {stat['n']} seeds equal)"
    low = f"{number(max(stat['low'], 0.0))}" + (" (cut at 0)" if stat["low"] < 0 else "")
    high = number(min(stat["high"], 1.0)) + (" (cut at 1)" if stat["high"] > 1 else "") if rate \
        else number(stat["high"])
    return f"{number(stat['mean'])} [{low}, {high}] (n = {stat['n']})"


def _equal(stat: dict) -> bool:
    """Every seed gave the same value (within float32 rounding): a zero-width interval."""
    return stat.get("std") is not None and stat["std"] <= report_stats.tolerance(abs(stat["mean"]))


def failing(entry: dict) -> str:
    """What failed among a finalist's fresh seeds, in words ("diverged on seed 7 (1 of its 3
    fresh seeds)"), or "" if nothing did."""
    rows = entry.get("per_seed") or []
    by_status: dict = {}
    for row in rows:
        if row.get("status") in FAILING:
            by_status.setdefault(row["status"], []).append(row["seed"])
    if not by_status:
        return ""
    bad = sum(len(seeds) for seeds in by_status.values())
    return " and ".join(f"{status} on seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
                        for status, seeds in by_status.items()) + f" ({bad} of its {len(rows)} fresh seeds)"


def objective_is_error(entry: dict) -> bool:
    """Whether the finalist's objective is its validation error (the grid's, and a search's on
    val_error): then an error rate's cut at 1 applies to it too."""
    rows = [r for r in entry.get("per_seed") or [] if r.get("status") == "completed"]
    return bool(rows) and all(r.get("objective") is not None and r.get("val_error") is not None
                              and report_stats.close(r["objective"], r["val_error"]) for r in rows)


def optimism_sentence(entry: dict, direction: str, rate: bool = False) -> str:
    """Where the search's own estimate (its plain mean over its seeds: `search_mean`, not a
    mean + k * SE ranking score) lies against the fresh seeds' 95% interval, in words. `rate`:
    the errors are error rates (then an objective that is the validation error is cut at 1)."""
    rate = rate and objective_is_error(entry)
    fresh, said = entry["fresh"]["objective"], entry.get("search_mean", entry["search_value"])
    failed = failing(entry)
    if failed:
        return (f"{entry['name']}: {failed}: it fails there, so the mean of its other seeds is no verdict on the "
                f"search's value {number(said)}.")
    if not fresh:
        return f"{entry['name']}: no fresh seed completed, so the search's value {number(said)} is unchecked."
    if fresh.get("low") is None:
        return (f"{entry['name']}: one fresh seed ({number(fresh['mean'])} against the search's {number(said)}); "
                "no interval, so no verdict on the search's optimism.")
    if _equal(fresh):
        return (f"{entry['name']}: the search said {number(said)}; fresh seeds give {_interval(fresh, rate)}: no "
                "spread, so no interval and no verdict on the search's optimism.")
    flattering = said < fresh["low"] if direction == "minimize" else said > fresh["high"]
    unflattering = said > fresh["high"] if direction == "minimize" else said < fresh["low"]
    gap = fresh["mean"] - said
    if flattering:
        return (f"{entry['name']}: the search said {number(said)}; fresh seeds give {_interval(fresh, rate)}. The "
                f"search's value lies outside the interval on the good side: it was optimistic by about "
                f"{number(abs(gap))} (the winner's curse).")
    if unflattering:
        return (f"{entry['name']}: the search said {number(said)}; fresh seeds give {_interval(fresh, rate)}, better "
                "than the search's own value.")
    return (f"{entry['name']}: the search said {number(said)}; fresh seeds give {_interval(fresh, rate)}, which holds "
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
                      tests: int = 0, data_seeds: Sequence[str] = (), rate: bool = False) -> List[str]:
    """`adjusted`: per file, its test's p Holm-adjusted with the report's `tests` tests (by
    default the raw p, adjusted over nothing). `data_seeds`: the data.seed values the runs fixed
    (then the fresh seeds reuse the data split the selection was made on, which is said). `rate`:
    the errors are error rates (classification): their intervals are cut at 1 too."""
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
            failed = failing(entry)
            name = entry["name"] + (f" ({failed}: fails, never picked; means of its other seeds)" if failed else "")
            lines.append(f"| {name} | {said} | {_interval(fresh['objective'], rate and objective_is_error(entry))} | "
                         f"{_interval(fresh['val_error'], rate)} | {_interval(fresh['test_error'], rate)} |")
        lines += [""] + [f"- {optimism_sentence(e, direction, rate)}" for e in entries] + [""]
        if data_seeds:
            lines += [f"data.seed is fixed ({', '.join(data_seeds)}): the fresh seeds draw new initial weights and "
                      "batch orders, but train and validate on the same data split the search selected on, so "
                      "their validation error is not independent of the selection. Unset data.seed for fresh "
                      "splits too.", ""]
        pick = _pick_of(entries, direction)
        failed = [f"{e['name']} ({failing(e)})" for e in entries if failing(e)]
        if failed:
            lines += [f"Never picked, because a fresh seed of theirs diverged or failed: {', '.join(failed)}.", ""]
        if pick is not None and pick.sparse:
            lines += ["Not compared, too few fresh seeds beside the others: "
                      + "; ".join(f"{e['name']} completed {n} of the {pick.most}" for e, n in pick.sparse) + ".", ""]
        if pick is not None:
            p_holm = adjusted[i] if adjusted is not None and i < len(adjusted) else pick.p
            lines += [_pick_sentence(pick, p_holm, tests), ""]
    return lines


@dataclass
class _Pick:
    """The finalist with the best fresh validation error against the runner-up, both ranked and
    paired over the same fresh seeds (`shared` of them: those every compared finalist completed)."""
    best: dict
    runner: Optional[dict]
    tied: bool  # equal fresh validation means on the shared seeds: no best
    shared: int
    diffs: List[float]  # runner-up − best, per shared seed
    p: Optional[float]  # the paired t-test's, where there is one
    means: dict = field(default_factory=dict)  # name -> mean over the shared seeds
    sparse: list = field(default_factory=list)  # (entry, seeds completed) not compared
    most: int = 0
    alone: bool = True  # the only finalist of the file with a completed seed
    tied_names: list = field(default_factory=list)  # every one tied with the best (when `tied`)
    runner_names: list = field(default_factory=list)  # every one tied for runner-up


def _fresh_val(entry: dict) -> dict:
    """seed -> fresh validation error, over the seeds the finalist completed."""
    return {r["seed"]: r["val_error"] for r in entry.get("per_seed") or []
            if r.get("status") == "completed" and r.get("val_error") is not None}


def _pick_of(entries: List[dict], direction: str) -> Optional[_Pick]:
    """The rule of the module docstring. `direction` is the search objective's and does not
    matter here: a validation error is lower-is-better whatever the objective was."""
    from scipy import stats

    values = {e["name"]: _fresh_val(e) for e in entries}
    healthy = [e for e in entries if not failing(e) and values[e["name"]]]
    if not healthy:
        return None
    most = max(len(values[e["name"]]) for e in healthy)
    sparse = [(e, len(values[e["name"]])) for e in healthy if 2 * len(values[e["name"]]) <= most]
    scored = [e for e in healthy if 2 * len(values[e["name"]]) > most]
    shared = sorted(set.intersection(*(set(values[e["name"]]) for e in scored)))
    if not shared:  # no seed in common: each on its own (said: 0 shared seeds)
        means = {e["name"]: sum(values[e["name"]].values()) / len(values[e["name"]]) for e in scored}
    else:
        means = {e["name"]: sum(values[e["name"]][s] for s in shared) / len(shared) for e in scored}
    scored.sort(key=lambda e: means[e["name"]])  # stable: equal ones keep the file's order
    best = scored[0]
    if len(scored) < 2:
        alone = sum(bool(values[e["name"]]) for e in entries) == 1
        return _Pick(best, None, False, len(shared), [], None, means, sparse, most, alone)
    runner = scored[1]
    tied = report_stats.close(means[runner["name"]], means[best["name"]])
    mine, theirs = values[best["name"]], values[runner["name"]]
    diffs = [theirs[s] - mine[s] for s in shared]
    p = None
    if len(shared) >= 2 and not all(report_stats.close(d, diffs[0]) for d in diffs):
        p = float(stats.ttest_rel([theirs[s] for s in shared], [mine[s] for s in shared]).pvalue)
    close_to = lambda e, other: report_stats.close(means[e["name"]], means[other["name"]])  # noqa: E731
    return _Pick(best, runner, tied, len(shared), diffs, p, means, sparse, most, False,
                 [e["name"] for e in scored if close_to(e, best)],
                 [e["name"] for e in scored[1:] if close_to(e, runner)])


def _and(names: List[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def _pick_sentence(pick: _Pick, p_holm: Optional[float], tests: int) -> str:
    """The best finalist in words: bold only where it is ahead of the runner-up beyond noise."""
    best, runner = pick.best, pick.runner
    if runner is None:
        return (f"Best on fresh validation error: {best['name']} (the only finalist "
                + ("with a completed seed)." if pick.alone else "compared: the others failed or ran too few seeds)."))
    if pick.tied:
        return (f"No single best on fresh validation error: {_and(pick.tied_names)} tie exactly "
                f"({number(pick.means[best['name']])} over {pick.shared} shared fresh seeds).")
    if not pick.shared:
        return (f"Best on fresh validation error: {best['name']} ({number(pick.means[best['name']])}); it shares no "
                f"fresh seed with the runner-up ({runner['name']}, {number(pick.means[runner['name']])}), so they "
                "are not compared.")
    if pick.p is None:
        why = (f"it ties exactly with the runner-up ({runner['name']}) on every fresh seed"
               if pick.shared >= 2 and report_stats.close(pick.diffs[0], 0.0) else
               f"{pick.shared} shared fresh seed(s) and no spread between them, too few to tell it from the "
               f"runner-up ({runner['name']})")
        return f"Best on fresh validation error: {best['name']}; {why}."
    mean = sum(pick.diffs) / len(pick.diffs)
    holm = f", Holm-adjusted over the report's {tests} tests" if tests > 1 else ""
    beyond = p_holm is not None and p_holm < ALPHA
    # Several tied for runner-up: all named; the test is against the first, so nothing is bold.
    also = len(pick.runner_names) > 1
    against = (f"{_and(pick.runner_names)}, tied for runner-up at {number(pick.means[runner['name']])} (the test is "
               f"against {runner['name']})" if also else f"the runner-up ({runner['name']})")
    name = f"**{best['name']}**" if beyond and not also else best["name"]
    shown = p_text(p_holm)
    p_is = f"p {shown}" if shown.startswith("<") else f"p = {shown}"
    return (f"Best on fresh validation error: {name}; ahead of {against} by "
            f"{number(mean, True)} (runner-up − best) on the {pick.shared} paired fresh seeds it was ranked on, "
            f"paired t-test {p_is}{holm}: "
            + ("a difference beyond noise at the 5% level." if beyond else "within noise."))
