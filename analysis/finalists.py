"""The report's finalists section: a search's (or a grid's) best configurations re-run on fresh
seeds (finalists.yaml, written by the sweepers; see wdsweep.search.finalists), beside what the search
itself said of them, so that the winner's curse is measured rather than hidden."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional

import yaml

from analysis.numbers import number  # report.md's one way of writing an error


def finalist_files(sources: Iterable[str]) -> List[Path]:
    """finalists.yaml of every sweep folder among the sources (a sweep folder holds it at its top)."""
    found = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found += sorted(p for p in [path / "finalists.yaml", *path.glob("*/finalists.yaml")] if p.is_file())
    return list(dict.fromkeys(found))


def _interval(stat: Optional[dict]) -> str:
    if not stat:
        return "no completed seed"
    if stat.get("low") is None:
        return f"{number(stat['mean'])} (n = {stat['n']}, no interval)"
    return f"{number(stat['mean'])} [{number(stat['low'])}, {number(stat['high'])}] (n = {stat['n']})"


def optimism_sentence(entry: dict, direction: str) -> str:
    """Where the search's own value lies against the fresh seeds' 95% interval, in words."""
    fresh, said = entry["fresh"]["objective"], entry["search_value"]
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


def finalists_section(paths: List[Path]) -> List[str]:
    lines: List[str] = []
    for path in paths:
        try:
            data = yaml.safe_load(path.read_text()) or {}
            entries, direction = data["finalists"], data.get("direction", "minimize")
            for entry in entries:  # the keys the section reads, present before anything is written
                entry["name"], entry["search_value"], entry["per_seed"]
                entry["fresh"]["objective"], entry["fresh"]["val_error"], entry["fresh"]["test_error"]
        except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
            lines += [f"`{path}` could not be read ({type(err).__name__}: {err}); its finalists are left out.", ""]
            continue
        lines += [f"## Finalists on fresh seeds (`{path.parent.name}`)", "",
                  f"The {len(entries)} best configurations of the search (seeds {data.get('search_seeds')}) trained "
                  f"again on seeds it never used ({data.get('fresh_seeds')}). Means with 95% t-intervals "
                  "over the fresh seeds; pick on the fresh validation error, and read the test error only as the "
                  "estimate it is.", "",
                  "| finalist | search's value | fresh objective | fresh val error | fresh test error |",
                  "|---|---|---|---|---|"]
        for entry in entries:
            fresh = entry["fresh"]
            lines.append(f"| {entry['name']} | {number(entry['search_value'])} | {_interval(fresh['objective'])} | "
                         f"{_interval(fresh['val_error'])} | {_interval(fresh['test_error'])} |")
        lines += [""] + [f"- {optimism_sentence(e, direction)}" for e in entries] + [""]
        lines += _pick(entries, direction)
    return lines


def _pick(entries: List[dict], direction: str) -> List[str]:
    """The finalist with the best fresh validation error, and whether the runner-up differs from
    it beyond noise: a paired t-test over the fresh seeds both completed (they share them)."""
    from scipy import stats

    scored = [e for e in entries if e["fresh"].get("val_error")]
    if not scored:
        return []
    sign = 1 if direction == "minimize" else -1
    scored.sort(key=lambda e: sign * e["fresh"]["val_error"]["mean"])
    best = scored[0]
    text = f"Best on fresh validation error: **{best['name']}**"
    if len(scored) > 1:
        runner = scored[1]
        mine = {r["seed"]: r["val_error"] for r in best["per_seed"] if r.get("val_error") is not None}
        theirs = {r["seed"]: r["val_error"] for r in runner["per_seed"] if r.get("val_error") is not None}
        shared = sorted(set(mine) & set(theirs))
        diffs = [theirs[s] - mine[s] for s in shared]
        if len(shared) < 2 or all(d == diffs[0] for d in diffs):
            verdict = (f"{len(shared)} shared fresh seed(s), too few to tell it from the runner-up "
                       f"({runner['name']})" if len(shared) < 2 or diffs[0] != 0 else
                       f"it ties exactly with the runner-up ({runner['name']}) on every fresh seed")
        else:
            p = float(stats.ttest_rel([theirs[s] for s in shared], [mine[s] for s in shared]).pvalue)
            mean = sum(diffs) / len(diffs)
            verdict = (f"ahead of the runner-up ({runner['name']}) by {number(abs(mean))} on {len(shared)} paired "
                       f"fresh seeds, paired t-test p = {p:.2g}: "
                       + ("a difference beyond noise at the 5% level" if p < 0.05 else "within noise"))
        text += f"; {verdict}"
    return [text + ".", ""]
