"""report.md: the experiment's answer first, then how sure each stated comparison is.

One file of about 650 lines, on purpose: every sentence report.md says is worded here, next to
the numbers it states and the rule that allows it, so that a claim and its evidence are read
and reviewed together (the choosing rule is analysis/choice.py's, shared with the figures; the
statistics are analysis/stats.py's; the finalists' section analysis/finalists.py's).

The rules behind every sentence (the statistics themselves are analysis/stats.py's):
- Every choice is made on validation error; every comparison is made on test error, which no
  choice has seen.
- A configuration is a setting and a λ; a setting is the mode, scope and p, and any other key
  the sweep varied (optimizer.lr, ...). Seeds are averaged over, never these. At λ = 0 the reg.*
  keys change nothing, so "no decay" is one configuration per value of the other keys, and a
  candidate λ of every setting.
- A configuration that diverged or failed on any seed it ran fails there, as a replicated Optuna
  trial and a grid finalist do: it is never chosen, and the report names it with its seeds. Its
  other seeds' mean would flatter it (a λ that diverged on 2 of 10 seeds must not win on its 8
  survivors).
- A setting's best λ has the lowest mean validation error over seeds, λ = 0 included (then it
  says "no decay"), the means taken over the seeds every candidate of the setting completed, so
  that all are judged on the same seeds; a candidate run on no more than half the seeds the others
  ran is not compared (named: analysis/choice.py), and the report says how many seeds the choice
  was made on. λs tied exactly (stats.close) are all named, and
  the smallest is taken: no more decay than the data ask for. Overall, configurations tied at the
  lowest validation error are all named: no row order picks a winner.
- Two configurations are compared on the seeds both ran, pair by pair: the mean difference of
  test error, its 95% t-interval, and the paired t-test's p-value Holm-adjusted over every test
  this report makes. The words follow the adjusted p at 0.05: "lower" or "higher", else
  "within noise"; one seed, or the same difference on every seed, gets no test and says so.
- The power figures take the spread of the paired differences seen as the true one, which is
  itself uncertain with few seeds: they say what the design can see, not what is true.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from analysis import stats
from analysis.chartbase import is_regression
from analysis.choice import GROUP, Best, Config, _best, _candidates, _usable, healthy, judge, settings
from analysis.collect import sweep_commands
from analysis.numbers import number, p_text


@dataclass
class Comparison:
    """a against b on test error, paired over the seeds both ran: a - b."""
    a: Config
    b: Config
    result: Optional[stats.Paired]  # None: no shared seed
    p_holm: float = math.nan
    wilcoxon_holm: float = math.nan

    @property
    def tested(self) -> bool:
        return self.result is not None and not math.isnan(self.result.p)

    def verdict(self, lower: str, higher: str) -> str:
        """What the numbers support, in words: `lower`/`higher` name a below/above b."""
        r = self.result
        if r is None:
            return "no shared seed: not compared"
        if r.identical:
            return "the same on every seed" if r.n > 1 else "the same (one seed: untested)"
        if r.n == 1:
            return "one seed: no interval or test"
        if r.constant:
            return f"{lower if r.mean < 0 else higher} by the same amount on every seed (no spread: untested)"
        if self.p_holm < stats.ALPHA:
            return lower if r.mean < 0 else higher
        return "within noise"


@dataclass
class Comparisons:
    """Every comparison the report states, each pair of configurations tested once (b against a
    is a against b, flipped), for Holm's correction over all the tests made."""
    made: Dict[Tuple, Comparison] = field(default_factory=dict)
    twins: Dict[Tuple, Tuple] = field(default_factory=dict)  # a flipped pair -> the one tested
    # Tests stated elsewhere in the report (the finalists' best against runner-up: None where a
    # file has none), in Holm's family too, and their adjusted p once corrected.
    extra: List[Optional[float]] = field(default_factory=list)
    extra_holm: List[Optional[float]] = field(default_factory=list)

    def add(self, a: Config, b: Config) -> Comparison:
        key, flipped = (a.identity, b.identity), (b.identity, a.identity)
        if key not in self.made:
            shared = a.test.index.intersection(b.test.index)
            result = stats.paired(a.test[shared], b.test[shared]) if len(shared) else None
            self.made[key] = Comparison(a, b, result)
            if flipped in self.made and flipped not in self.twins:
                self.twins[key] = flipped
        return self.made[key]

    def tested_once(self) -> List[Comparison]:
        return [c for key, c in self.made.items() if key not in self.twins]

    def correct(self) -> None:
        once = self.tested_once()
        extra = [p for p in self.extra if p is not None]
        for attr, field_ in (("p", "p_holm"), ("wilcoxon_p", "wilcoxon_holm")):
            raw = [getattr(c.result, attr) if c.result is not None else math.nan for c in once]
            # the t-tests' family holds the other sections' t-tests too; Wilcoxon's its own
            adjusted = stats.holm(raw + extra) if attr == "p" else stats.holm(raw)
            for comparison, value in zip(once, adjusted):
                setattr(comparison, field_, value)
            if attr == "p":
                rest = iter(adjusted[len(once):])
                self.extra_holm = [None if p is None else next(rest) for p in self.extra]
        for key, original in self.twins.items():  # the same test: the same adjusted p
            self.made[key].p_holm = self.made[original].p_holm
            self.made[key].wilcoxon_holm = self.made[original].wilcoxon_holm

    @property
    def wilcoxon(self) -> bool:
        """Whether any comparison had the pairs for a Wilcoxon test (then the tables show it)."""
        return any(not math.isnan(c.wilcoxon_holm) for c in self.made.values())

    @property
    def tests(self) -> int:
        return sum(c.tested for c in self.tested_once()) + sum(p is not None for p in self.extra)


# Numbers as far as they are supported: 4 significant digits (analysis.numbers: error rates are
# shares of a few hundred to a few thousand predictions, and a regression's MSE may be 1e-10); a
# p-value to 2 significant digits.
def _p(p: float) -> str:
    return p_text(p)


def _lam(lam: float) -> str:
    return "0 (no decay)" if lam == 0 else f"{lam:g}"


def _p_is(p: float) -> str:
    """p in a sentence: "p = 0.034", "p < 0.001"."""
    text = _p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _wilcoxon(c: Comparison) -> str:
    return _p(c.wilcoxon_holm) if c.result is not None else "–"


def _interval(r: Optional[stats.Paired]) -> str:
    """A paired difference's 95% interval; none where the seeds' differences are all equal (a
    zero-width interval would claim a certainty that two seeds agreeing does not give)."""
    if r is None or r.n < 2 or math.isnan(r.low):
        return "–"
    if r.constant or r.identical:
        return f"all {r.n} seeds equal"
    return f"[{number(r.low, True)}, {number(r.high, True)}]"


def _spread(values: pd.Series, rate: bool = False) -> str:
    """mean ± std [95% interval] of one configuration's error over its seeds. An error is never
    below 0, and an error rate (`rate`: classification) never above 1, so neither is its
    interval's end (it says where it was cut); seeds that all agree get no interval."""
    if len(values) < 2:
        return f"{number(values.mean())} (one seed)"
    if values.nunique() == 1:
        return f"{number(values.mean())} (all {len(values)} seeds equal)"
    low, high = stats.interval(values)
    return f"{number(values.mean())} ± {number(values.std(ddof=1))} {cut_interval(low, high, rate)}"


def cut_interval(low: float, high: float, rate: bool) -> str:
    """"[low, high]" of an error's interval, cut at 0, and at 1 for an error rate, saying so."""
    low_text = number(max(low, 0.0)) + (" (cut at 0)" if low < 0 else "")
    high_text = number(min(high, 1.0)) + (" (cut at 1)" if high > 1 else "") if rate else number(high)
    return f"[{low_text}, {high_text}]"


def _grid_sections(grid: pd.DataFrame, comparisons: Comparisons) -> List[str]:
    """The sections on the grid's runs, the experiment's question first. Corrects `comparisons`
    (with the tests it already holds from other sections) once its own are registered."""
    needed = {"reg.lam", "val_error", "test_error", "status", *GROUP}
    if not len(grid) or not needed <= set(grid.columns):
        return []
    keys = settings(grid)
    candidates = _candidates(_usable(grid), keys)
    bests = _best(candidates)
    if not bests:
        return []
    # Registered in the order stated; the p-values are adjusted once all are known.
    scope_rows = _scope_pairs(bests, keys, comparisons)
    decay_rows = [(b, comparisons.add(b.config, b.no_decay) if b.no_decay and b.config.lam > 0 else None)
                  for b in bests]
    lowest = _lowest(candidates, comparisons)
    comparisons.correct()

    zero = bool((grid["reg.lam"] == 0).any())
    lines = _question(scope_rows, keys, grid, comparisons)
    lines += _against_no_decay(decay_rows, keys, comparisons)
    lines += _lowest_section(lowest)
    lines += _best_table(bests, keys, zero, not is_regression(grid)) + _failing(candidates)
    lines += _power(comparisons)
    return lines


def _scope_pairs(bests: List[Best], keys: List[str], comparisons: Comparisons):
    """Per setting but its scope: weight-only at its best λ against global at its own."""
    rest = [k for k in keys if k != "reg.scope"]
    by = {}
    for b in bests:
        by.setdefault(tuple(str(b.setting[k]) for k in rest), {})[b.setting["reg.scope"]] = b
    pairs = []
    for scopes in by.values():
        if "weights" in scopes and "all" in scopes:
            w, a = scopes["weights"], scopes["all"]
            same = w.config.identity == a.config.identity  # both no decay: the same runs
            pairs.append((w, a, None if same else comparisons.add(w.config, a.config)))
    return pairs


def _setting_cells(setting: pd.Series, keys: List[str]) -> str:
    return "".join(f"{setting[k]:g} | " if k == "reg.p" else f"{setting[k]} | " for k in keys)


def _question(pairs, keys: List[str], grid: pd.DataFrame, comparisons: Comparisons) -> List[str]:
    lines = ["## Weight-only against global decay", ""]
    if not pairs:
        ran = sorted(set(grid.loc[grid["reg.lam"] > 0, "reg.scope"].dropna().map(str)))
        return lines + [f"Not answered by this sweep: its decayed runs have scope {', '.join(ran) or 'none'}, "
                        "and the question needs both reg.scope=weights and reg.scope=all.", ""]
    rest = [k for k in keys if k != "reg.scope"]
    lines += [
        "Each scope at its own best λ (chosen on mean validation error"
        + (", λ = 0 included" if (grid["reg.lam"] == 0).any() else ", no λ = 0 run") + "), compared on test "
        "error, paired over seeds: difference = weight-only − global (negative: weight-only is lower). "
        f"p: paired t-test, Holm-adjusted over the {comparisons.tests} tests of this report"
        + (WILCOXON_NOTE if comparisons.wilcoxon else "") + ". The verdict follows the adjusted p at 0.05; "
        "\"within noise\" says these seeds cannot tell the two apart, not that they are equal. "
        + INTERVAL_NOTE, "",
        "| " + "".join(f"{_short(k)} | " for k in rest)
        + "weight-only λ | global λ | weight-only test | global test | difference | 95% interval (unadjusted) | "
        + "p (Holm) | "
        + ("Wilcoxon p (Holm) | " if comparisons.wilcoxon else "") + "seeds | verdict |",
        "|" + "---|" * (len(rest) + 9 + comparisons.wilcoxon)]
    w_cell = (lambda c: f"{_wilcoxon(c)} | ") if comparisons.wilcoxon else (lambda c: "")
    said = []
    for w, a, c in pairs:
        cells = "| " + _setting_cells(w.setting, rest) + f"{_lam(w.config.lam)} | {_lam(a.config.lam)} | "
        if c is None:
            lines.append(cells + f"{number(w.config.test.mean())} | {number(a.config.test.mean())} | 0 | – | – | "
                         + ("– | " if comparisons.wilcoxon else "")
                         + f"{len(w.config.test)} | both choose no decay: the same runs |")
            said.append("both choose no decay")
            continue
        r = c.result
        verdict = c.verdict("weight-only lower", "weight-only higher")
        said.append(verdict)
        lines.append(cells + f"{number(c.a.test[r_index(c)].mean())} | {number(c.b.test[r_index(c)].mean())} | "
                     f"{number(r.mean, True) if r else '–'} | {_interval(r)} | {_p(c.p_holm)} | {w_cell(c)}"
                     f"{r.n if r else 0} | {verdict} |")
    lines += ["", _question_summary(said), ""] + _scope_sizes(grid)
    tested = [(_label(w.setting, rest), c) for w, _, c in pairs
              if c is not None and c.result is not None and c.result.n > 1]
    if tested:
        lines += [_power_line(tested, comparisons.tests), ""]
    return lines


def _scope_sizes(grid: pd.DataFrame) -> List[str]:
    """How many parameters each scope decays on this sweep's model(s), from the runs' metrics.json:
    a verdict on scope is about these extra parameters (biases, norm gains), not about scope in
    general."""
    if not {"decayed_params", "kept_params"} <= set(grid.columns):
        return []
    decayed = grid[grid["reg.lam"] > 0].dropna(subset=["decayed_params"])
    # what an optimizer step in fact decayed (a tensor no step reached, an unused layer, is in
    # scope and never decayed), where the record says it; older records: the tensors in scope
    if "stepped_params" in decayed:
        decayed = decayed.assign(decayed_params=decayed["stepped_params"].fillna(decayed["decayed_params"]))
    sizes = {scope: sorted(set(decayed.loc[decayed["reg.scope"] == scope, "decayed_params"].astype(int)))
             for scope in ("weights", "all")}
    if not sizes["weights"] or not sizes["all"] or len(sizes["weights"]) > 1 or len(sizes["all"]) > 1:
        return []  # several models: their sizes are in runs.csv
    weights, everything = sizes["weights"][0], sizes["all"][0]
    extra = everything - weights
    share = f"{100 * extra / everything:.2g}%" if everything else "0%"
    return [f"What scope changes here: weight-only decay decays {weights:,} parameters (the tensors of dim ≥ 2), "
            f"global decay {everything:,}, adding {extra:,} (biases and norm gains: {share} of the decayed). "
            "A verdict on scope is a finding about these parameters of this model, not about scope in general.", ""]


def r_index(c: Comparison) -> pd.Index:
    """The seeds a comparison is made on."""
    return c.a.test.index.intersection(c.b.test.index)


def _short(key: str) -> str:
    return {"reg.mode": "mode", "reg.scope": "scope", "reg.p": "p"}.get(key, key)


def _question_summary(said: List[str]) -> str:
    total = len(said)
    lower = sum(s == "weight-only lower" for s in said)
    higher = sum(s == "weight-only higher" for s in said)
    if lower + higher == 0:
        return (f"In none of the {total} setting(s) does the test error of weight-only and global decay differ "
                "beyond noise: this sweep does not tell them apart.")
    parts = []
    if lower:
        parts.append(f"weight-only decay has the lower test error in {lower}")
    if higher:
        parts.append(f"global decay has the lower test error in {higher}")
    rest = total - lower - higher
    tail = f"; the other {rest} are within noise, untested or the same runs" if rest else ""
    return f"Of {total} setting(s), {' and '.join(parts)} (after Holm's correction){tail}."


def _label(setting: pd.Series, keys: List[str]) -> str:
    return ", ".join(f"{_short(k)}={setting[k]:g}" if k == "reg.p" else f"{_short(k)}={setting[k]}" for k in keys)


def _power_line(tested: List[Tuple[str, Comparison]], tests: int = 1) -> str:
    """What the seeds can see, for the question's comparisons."""
    parts = []
    for label, c in tested:
        r = c.result
        detect = stats.detectable_difference(r.n, r.sd)
        if r.identical:
            parts.append(f"{label}: the same on every seed")
        elif math.isnan(detect):
            parts.append(f"{label}: no spread to judge by")
        else:
            parts.append(f"{label}: {number(detect)} (seen {number(abs(r.mean))}; {_needed(r, tests)})")
    n = sorted({c.result.n for _, c in tested})
    return (f"Power: with {'/'.join(map(str, n))} seeds and the paired spread seen, the smallest difference "
            f"a paired t-test detects (α = 0.05 two-sided, power 0.8, before Holm's correction, which asks for "
            f"more) is {'; '.join(parts)}.")


def _needed(r: stats.Paired, tests: int = 1) -> str:
    """Seeds to detect the difference seen, at the level its verdict is judged at: with `tests`
    tests in the report, Holm's strictest step (α / tests), so that "suffice" never stands
    beside a "within noise" the correction gave."""
    if r.n < 2:
        return "one seed: no spread to judge by"
    if r.mean == 0:  # stats.paired zeroes a difference within rounding
        return "no difference seen, so no number of seeds to suggest"
    if not r.sd > 0:
        return "no spread to judge by"
    alpha = stats.ALPHA / max(tests, 1)
    level = f" at α = {alpha:.3g} (Holm's strictest step over {tests} tests)" if tests > 1 else ""
    if stats.power(r.n, abs(r.mean) / r.sd, alpha=alpha) >= stats.POWER:
        return f"{r.n} seeds suffice to detect it{level}"
    n = stats.seeds_needed(r.mean, r.sd, alpha=alpha, cap=CAP)
    return f"about {n} seeds to detect it{level}" if n else f"not reachable within {CAP} seeds{level}"


CAP = 100  # the most seeds a suggestion goes up to
INTERVAL_NOTE = ("The 95% interval is each comparison's own, not adjusted for the report's other tests, while "
                 "the verdict is (Holm): an interval that excludes 0 beside \"within noise\" is a difference that "
                 "would count alone but not among all the tests made.")
WILCOXON_NOTE = ("; beside it, where 6 or more seeds differ, Wilcoxon's signed-rank p, Holm-adjusted the same way, "
                 "as a check that needs no normal differences")


def _against_no_decay(rows, keys: List[str], comparisons: Comparisons) -> List[str]:
    lines = ["## Against no decay", ""]
    if not any(b.no_decay for b, _ in rows):
        return lines + ["No λ = 0 run shares the other keys of a decayed setting: there is no baseline.", ""]
    lines += ["Each setting at its best λ against no decay (λ = 0, the same seeds), on test error: "
              "difference = decay − no decay (negative: decay is lower). " + INTERVAL_NOTE, "",
              "| " + "".join(f"{_short(k)} | " for k in keys)
              + "best λ | test error | no decay | difference | 95% interval (unadjusted) | p (Holm) | "
              + ("Wilcoxon p (Holm) | " if comparisons.wilcoxon else "") + "seeds | verdict |",
              "|" + "---|" * (len(keys) + 8 + comparisons.wilcoxon)]
    none = "– | " if comparisons.wilcoxon else ""
    for b, c in rows:
        cells = "| " + _setting_cells(b.setting, keys) + f"{_lam(b.config.lam)} | "
        if b.no_decay is None:
            lines.append(cells + f"{number(b.config.test.mean())} | – | – | – | – | {none}{len(b.config.test)} | "
                         "no baseline run |")
        elif c is None:
            lines.append(cells + f"{number(b.config.test.mean())} | {number(b.no_decay.test.mean())} | 0 | – | – | "
                         f"{none}{len(b.config.test)} | chooses no decay |")
        else:
            r, seeds = c.result, r_index(c)
            lines.append(cells + f"{number(c.a.test[seeds].mean())} | {number(c.b.test[seeds].mean())} | "
                         f"{number(r.mean, True) if r else '–'} | {_interval(r)} | {_p(c.p_holm)} | "
                         + (f"{_wilcoxon(c)} | " if comparisons.wilcoxon else "") + f"{r.n if r else 0} | "
                         f"{c.verdict('decay lower', 'decay higher')} |")
    return lines + [""]


@dataclass
class Lowest:
    tied: List[Config]  # more than one: an exact tie, no winner
    runner_up: Optional[Config]
    comparison: Optional[Comparison]
    judged: Any = None  # analysis.choice.Judged: the seeds compared on, and who was not compared
    runners_up: List[Config] = field(default_factory=list)  # every one tied for runner-up
    others: List[Comparison] = field(default_factory=list)  # the winner against each of the rest


def _lowest(candidates, comparisons: Comparisons) -> Lowest:
    """The configuration with the lowest mean validation error of all (every setting at every λ,
    and no decay), against the next lowest, which may be the same setting at another λ;
    configurations that are the same runs (no decay) count once."""
    distinct: Dict[Tuple, Config] = {}
    for _, configs in candidates:
        for c in healthy(configs.values()):
            distinct.setdefault(c.identity, c)
    judged = judge(list(distinct.values()))
    means = judged.means
    ranked = sorted((c for c in distinct.values() if c.identity in means),
                    key=lambda c: means[c.identity])  # stable: ties keep their order
    low = means[ranked[0].identity]
    tied = [c for c in ranked if stats.close(means[c.identity], low)]
    if len(tied) > 1 or len(ranked) == 1:
        return Lowest(tied, None, None, judged)
    # Several tied for runner-up: each is named and compared (no row order picks one).
    second = means[ranked[1].identity]
    runners = [c for c in ranked[1:] if stats.close(means[c.identity], second)]
    return Lowest(tied, runners[0], comparisons.add(ranked[0], runners[0]), judged, runners,
                  [comparisons.add(ranked[0], r) for r in runners[1:]])


def _lowest_section(lowest: Lowest) -> List[str]:
    lines = ["## Lowest validation error", ""]
    first, judged = lowest.tied[0], lowest.judged
    means = judged.means
    val = f"{number(means[first.identity])} over {judged.seeds_words()}"
    sparse = judged.sparse_words()
    lines += ([f"Compared on validation error over {judged.seeds_words()}, the seeds all compared configurations "
               "completed. " + "; ".join(_cap(w) for w in sparse) + ".", ""] if sparse else [])
    if len(lowest.tied) > 1:
        names = _and(c.name for c in lowest.tied)
        tests = ", ".join(number(c.test.mean()) for c in lowest.tied)
        return lines + [f"No single winner: {names} tie exactly on mean validation error "
                        f"({number(means[first.identity])}, over {judged.seeds_words()}); their test errors are "
                        f"{tests}.", ""]
    if lowest.runner_up is None:
        return lines + [f"{_cap(first.name)} is the only configuration: validation error {val}.", ""]
    c, r = lowest.comparison, lowest.comparison.result
    second = lowest.runner_up
    if len(lowest.runners_up) > 1:
        tied_names = _and(x.name for x in lowest.runners_up)
        head = (f"{_cap(first.name)} has the lowest mean validation error ({val}); {tied_names}"
                f" tie for runner-up ({number(means[second.identity])}). Against {second.name}:")
        rest = [f"- against {o.b.name}: {_against(o)}" for o in lowest.others]
    else:
        head = (f"{_cap(first.name)} has the lowest mean validation error ({val}); the runner-up is {second.name} "
                f"({number(means[second.identity])}).")
        rest = []
    bold = all(o.verdict("lower", "higher") == "lower" for o in lowest.others)
    return lines + [_runner_up_sentence(first, head, c, r, bold)] + ([""] + rest if rest else []) + [""]


def _and(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def _against(c: Comparison) -> str:
    """A short verdict of the lowest against one more runner-up tied with the first."""
    r = c.result
    if r is None:
        return "no shared seed: not compared"
    return (f"test error {number(c.a.test[r_index(c)].mean())} against {number(c.b.test[r_index(c)].mean())}, "
            f"difference {number(r.mean, True)}, {_interval(r)}, {_p_is(c.p_holm)} (Holm), {r.n} paired seeds: "
            f"{c.verdict('lower', 'higher')}")


def _runner_up_sentence(first: Config, head: str, c: Comparison, r, bold: bool = True) -> str:
    """The lowest against its runner-up; bold only where lower beyond noise (than every tied runner-up)."""
    if r is None:
        return head + " They share no seed, so their test errors are not compared."
    numbers = (f"test error {number(c.a.test[r_index(c)].mean())} against {number(c.b.test[r_index(c)].mean())}, "
               f"difference {number(r.mean, True)}")
    verdict = c.verdict("lower", "higher")
    if verdict == "lower":
        if bold:
            head = f"**{_cap(first.name)}**" + head[len(first.name):]
        return (head + f" Its test error is lower than the runner-up's: {numbers}, 95% interval (unadjusted) "
                f"{_interval(r)}, {_p_is(c.p_holm)} (Holm), {r.n} paired seeds.")
    if verdict == "higher":
        return (head + f" Yet its test error is higher than the runner-up's: {numbers}, 95% interval "
                f"(unadjusted) {_interval(r)}, {_p_is(c.p_holm)} (Holm), {r.n} paired seeds: no winner.")
    if r.n == 1:
        why = "on one seed, with no interval or test: run more seeds to know"
    elif r.identical:
        why = "the same test error on every seed"
    elif r.constant:
        why = f"the same difference on every seed, with no spread to test it by ({numbers})"
    else:
        why = f"{numbers}, 95% interval (unadjusted) {_interval(r)}, {_p_is(c.p_holm)} (Holm), {r.n} paired seeds"
    return head + f" Its test error is not distinguishable from the runner-up's: {why}."


def _cap(text: str) -> str:
    """A name that opens a sentence ("No decay has ...")."""
    return text[:1].upper() + text[1:]


def _best_table(bests: List[Best], keys: List[str], zero: bool = True, rate: bool = False) -> List[str]:
    """`zero`: a λ = 0 run is among the grid's (else the table says none is); `rate`: the errors
    are error rates (intervals cut at 1 too)."""
    extra = [k for k in keys if k not in GROUP]
    ties = any(b.tied for b in bests)
    lines = ["## Best λ per regularizer (chosen on validation error)", "",
             "Mean ± std over seeds [95% t-interval of the mean]. "
             + ("λ = 0 is a candidate: a best λ of 0 means no decay does best on validation." if zero
                else "No λ = 0 ran: the best λ is the best of the λs > 0 swept, not compared with no decay.")
             + (" Exactly tied λs are named; the smallest is taken." if ties else "")
             + " \"Chosen on\": the seeds every compared candidate of the setting completed, which the choice was "
             "made on.",
             "",
             "| mode | scope | p | " + "".join(f"{k} | " for k in extra)
             + "best λ | val error | test error | seeds | chosen on |" + (" tied on validation with |" if ties else ""),
             "|---|---|---|" + "---|" * len(extra) + "---|---|---|---|---|" + ("---|" if ties else "")]
    edges, sparse = [], []
    for b in sorted(bests, key=lambda b: b.config.val.mean()):  # stable: equal ones keep key order
        c = b.config
        lines.append(f"| {_setting_cells(b.setting, GROUP + extra)}{_lam(c.lam)} | {_spread(c.val, rate)} | "
                     f"{_spread(c.test, rate)} | {len(c.val)} | {b.judged.seeds_words()} |"
                     + (f" {', '.join(_lam(t) for t in b.tied) or '–'} |" if ties else ""))
        edge = _at_edge(b)
        if edge:
            edges.append(f"- {_label(b.setting, GROUP + extra)}: {edge}")
        sparse += [f"- {w}" for w in b.judged.sparse_words() if f"- {w}" not in sparse]
    if sparse:
        lines += ["", "Not compared, never chosen: too few seeds beside the others (a candidate run on no more "
                  "than half the seeds would shrink the comparison to its own seeds):", "", *sparse]
    if edges:
        lines += ["", "Best λs at the edge of the grid (the best may lie beyond what was swept):", "", *edges]
    return lines + [""]


# A best λ of 0 beside a smallest λ > 0 at least this large leaves the usual range of weight decay
# (SGD's 1e-4 to 5e-4, below AdamW's 1e-2) untried between them: the report says "try smaller λ".
LARGE_SMALLEST_LAM = 1e-3


def _at_edge(b: "Best") -> str:
    """Where a setting's best λ sits at the edge of its swept λs, in words ("" inside)."""
    lams = sorted(b.lams)
    positive = [lam for lam in lams if lam > 0]
    if positive and b.config.lam == 0 and positive[0] >= LARGE_SMALLEST_LAM:
        return (f"the best is no decay, and the smallest λ > 0 swept is {positive[0]:g}: nothing between 0 and "
                f"{positive[0]:g} was tried: try smaller λ")
    if not positive or b.config.lam == 0:
        return ""
    if b.config.lam == positive[-1] and len(positive) > 1:
        return f"λ = {b.config.lam:g} is the largest swept: try larger λ"
    if b.config.lam == positive[0] and 0.0 not in lams and len(positive) > 1:
        return f"λ = {b.config.lam:g} is the smallest swept, and no λ = 0 ran: try smaller λ, and λ = 0"
    if len(positive) == 1:
        return f"λ = {b.config.lam:g} is the only λ > 0 swept: sweep around it"
    return ""


def _failing(candidates) -> List[str]:
    """The configurations never chosen because a seed of theirs diverged or failed."""
    failing: Dict[Tuple, Config] = {}
    for _, configs in candidates:
        for c in configs.values():
            if c.failed:
                failing.setdefault(c.identity, c)
    if not failing:
        return []
    return (["Never chosen, because they diverged or failed on a seed (a configuration is judged on every "
             "seed it ran; the mean of its other seeds would flatter it):", ""]
            + [f"- {c.name}: {c.failing()}" for c in failing.values()] + [""])


def _power(comparisons: Comparisons) -> List[str]:
    made = [c for c in comparisons.tested_once() if c.result is not None]
    lines = ["## What the seeds can detect", ""]
    if not made:
        return lines + ["No two configurations were compared on shared seeds: nothing to detect.", ""]
    if max(c.result.n for c in made) < 2:
        return lines + ["One seed per configuration: no comparison has an interval or a test, and no difference "
                        "can be told from noise. Run more seeds (seed=0,1,2,... in the sweep).", ""]
    lines += [f"Paired t-test, α = 0.05 two-sided, power 0.8 (before Holm's correction, which asks for more), "
              "taking the spread of the paired differences seen as the true one. \"Detectable\" is the smallest "
              f"true difference the seeds run would find; \"seeds needed\" is for the difference seen (up to {CAP}).",
              "", "| comparison | seeds | std of differences | detectable | difference seen | seeds needed |",
              "|---|---|---|---|---|---|"]
    for c in made:
        r = c.result
        detect = stats.detectable_difference(r.n, r.sd)
        lines.append(f"| {c.a.name} − {c.b.name} | {r.n} | {number(r.sd)} | {number(detect)} | "
                     f"{number(r.mean, True)} | "
                     f"{_needed(r, comparisons.tests)} |")
    return lines + [""]


def write_report(runs: pd.DataFrame, counts: Dict[str, int], figures: List[Path], out: Path,
                 command: str, problems: List[str], studies: Sequence[Any] = (),
                 finalist_files: Sequence[Path] = ()) -> Path:
    """`finalist_files`: finalists.yaml of the sweeps, for their section (analysis.finalists)."""
    from analysis.finalists import finalist_tests, finalists_section

    sweeps = sweep_commands(runs)
    lines = ["# Regularization sweep report", ""]
    lines += ([f"Sweep{'s' if len(sweeps) > 1 else ''}: " + "; ".join(f"`{c}`" for c in sweeps)] if sweeps else [])
    lines += [f"Report: `{command}`", "", _metric_line(runs), ""]
    lines += _training_kinds(runs)
    trials = runs[runs["trial"].notna()] if "trial" in runs else runs.iloc[0:0]
    grid = runs[runs["trial"].isna()] if "trial" in runs else runs
    comparisons = Comparisons(extra=finalist_tests(list(finalist_files)))
    sections = _grid_sections(grid, comparisons)
    if not sections:
        comparisons.correct()  # the finalists' tests alone
    if sections:
        lines += sections
    elif trials.empty:
        lines += ["No completed run with λ > 0 and a validation and test error: nothing to compare.", ""]
    if not trials.empty:
        lines += _optuna_section(trials, studies)
    fixed = sorted(set(runs["data.seed"].dropna().map(str))) if "data.seed" in runs else []
    lines += finalists_section(list(finalist_files), comparisons.extra_holm, comparisons.tests, fixed,
                               rate=not is_regression(runs))
    lines += runs_section(counts, problems)
    if figures:
        lines += ["## Figures", ""]
        for path in figures:
            if path.suffix == ".png":
                lines += [f"![{path.stem}]({path.name})", f"([PDF]({path.with_suffix('.pdf').name}))", ""]
    lines += ["The table of every run is `runs.csv` beside this report."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def runs_section(counts: Dict[str, int], problems: List[str]) -> List[str]:
    """The run counts per status, and the problems met, one line each."""
    lines = ["## Runs", "", "| " + " | ".join(counts) + " |", "|" + "---|" * len(counts),
             "| " + " | ".join(str(v) for v in counts.values()) + " |", ""]
    if problems:
        lines += ["Problems met while collecting:", ""] + [f"- {p}" for p in problems] + [""]
    return lines


def _training_kinds(runs: pd.DataFrame) -> List[str]:
    """A line when the runs were trained two ways, as members of vectorized batches and alone
    (metrics.json's `batched`; a record without it was trained alone): their numbers are not
    bit-equal, and the reader must know the table mixes them."""
    if "batched" not in runs or "status" not in runs:
        return []
    done = runs[runs["status"].isin(["completed", "diverged"])]
    batched = int((done["batched"] == True).sum())  # noqa: E712 - NaN (older records) is alone
    alone = len(done) - batched
    if not batched or not alone:
        return []
    return [f"Trained two ways: {batched} runs as members of vectorized batches, {alone} alone (the vectorized "
            "launcher runs alone what it cannot batch; a sweep resumed under another launcher adds the other "
            "kind). The two agree to float rounding at first and drift apart over long runs, as a change of "
            "thread count would make them: a small difference between runs of different kinds is not a "
            "finding.", ""]


def _metric_line(runs: pd.DataFrame) -> str:
    """What "error" means in this report: each *_error is the error rate of a classification and
    the mean squared error of a regression (metrics.json's `task`)."""
    tasks = sorted(set(runs["task"].dropna())) if "task" in runs else []
    words = {"classification": "the error rate (1 − accuracy) of a classification",
             "regression": "the mean squared error of a regression"}
    if not tasks:
        return "Error: the error rate (1 − accuracy) for classification, the mean squared error for regression."
    return "Error: " + "; and, for other runs, ".join(words.get(t, t) for t in tasks) + "."


def _optuna_section(trials: pd.DataFrame, studies: Sequence[Any] = ()) -> List[str]:
    """Per study: its own best trial (study.best_trial, in the study's direction) and the trials
    tying with it, with the best trial's test error; then, per study read from its storage
    (analysis.study.StudySummary), its plots, its parameter importances and what was skipped."""
    summaries = {s.name: s for s in studies}
    lines = ["## Optuna studies", "", "| study | trials | best trial | objective | test error | parameters |",
             "|---|---|---|---|---|---|"]
    for study, group in trials.groupby("study"):
        summary = summaries.get(study)
        done = group[group["objective"].notna()] if "objective" in group else group.iloc[0:0]
        if summary is not None and summary.pareto or (
                summary is None and done.empty and "objectives" in group and group["objectives"].notna().any()):
            front = f": trials {', '.join(map(str, summary.pareto))}" if summary is not None else ""
            lines.append(f"| {study} | {len(group)} | multi-objective: no single best (its Pareto front"
                         f"{front}; also in optimization_results.yaml) | | | |")
            continue
        if summary is not None and summary.best is not None:
            chosen = group[group["trial"] == summary.best]
            best = chosen.iloc[0] if len(chosen) else pd.Series({"trial": summary.best})
            value, params = summary.best_value, summary.best_params
            label = str(summary.best) + (f" (ties: {', '.join(map(str, summary.ties))})" if summary.ties else "")
        elif summary is None and not done.empty:  # its storage could not be read: the folders' objective
            best = done.loc[done["objective"].astype(float).idxmin()]
            value, label = float(best["objective"]), f"{int(best['trial'])} (lowest objective of its folders)"
            params = {k: best[k] for k in ("reg.lam", "reg.p", "reg.mode", "reg.scope")
                      if k in best and pd.notna(best[k])}
        else:
            lines.append(f"| {study} | {len(group)} | no complete trial | | | |")
            continue
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        test = number(float(best["test_error"])) if pd.notna(best.get("test_error")) else ""
        lines.append(f"| {study} | {len(group)} | {label} | {number(float(value))} | {test} | {shown} |")
    lines += ["", "(Best = the study's own best trial, `study.best_trial`, in its direction; trials with the "
              "same objective value tie with it. The test error is reported, never used to pick.)", ""]
    for summary in studies:
        lines += _study_details(summary)
    return lines


def _study_details(summary: Any) -> List[str]:
    """One study's states, plots (Optuna's own, linked and shown), importances and skipped plots."""
    states = ", ".join(f"{n} {state.lower()}" for state, n in summary.states.items() if n)
    lines = [f"### Study {summary.name}", "",
             f"In `{summary.shown}`, {' / '.join(summary.directions)}: {summary.n_trials} trials ({states}).", ""]
    if summary.mixed:
        lines += [f"Its trials were made with different fixed settings ({'; '.join(summary.mixed)}), mixed on "
                  "purpose (hydra.sweeper.mix_settings=true): their values are not comparable as if alike, and "
                  "its best trial is best among unlike trials.", ""]
    if summary.plots:
        lines += ["Plots: " + " · ".join(f"[{label}]({path.name})" for label, path in summary.plots.items()), ""]
        lines += [f"![{label}]({path.name})" for label, path in summary.plots.items()] + [""]
    for objective, shares in summary.importances.items():
        lines += [f"Parameter importances for {objective} (fANOVA, seed {summary.importance_seed}; "
                  "shares summing to 1):", "", "| parameter | importance |", "|---|---|"]
        lines += [f"| {param} | {share:.3f} |" for param, share in shares.items()] + [""]
    if summary.skipped:
        lines += ["Not drawn:", ""] + [f"- {reason}" for reason in summary.skipped] + [""]
    return lines
