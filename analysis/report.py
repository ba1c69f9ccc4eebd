"""report.md: which regularizer won, at which lambda, by how much, and how sure we are.

Every choice is made on validation error; test error is only reported. The winner is the
(mode, scope, p, lambda) with the lowest mean validation error over seeds; the gain is its mean
test error below the lambda = 0 baseline's, with a 95% interval from the per-seed differences
when both were run on the same seeds.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pandas as pd

from analysis.collect import matching, varying_keys

GROUP = ["reg.mode", "reg.scope", "reg.p"]


def settings(runs: pd.DataFrame) -> List[str]:
    """The keys one regularizer setting is told apart by: mode, scope, p, and any other config key
    the sweep varied (optimizer.lr, model.width, ...); seeds are averaged over, never these."""
    return GROUP + [k for k in varying_keys(runs) if k not in GROUP]


def best_lambdas(runs: pd.DataFrame) -> pd.DataFrame:
    """Per setting: the lambda with the lowest mean validation error, and its test error."""
    done = runs[(runs["status"] == "completed") & (runs["reg.lam"] > 0)]
    keys = settings(runs)
    rows = []
    for key, group in done.groupby(keys, dropna=False):
        by_lam = group.groupby("reg.lam")
        best_lam = by_lam["val_error"].mean().idxmin()
        chosen = group[group["reg.lam"] == best_lam]
        rows.append(dict(zip(keys, key), **{
            "reg.lam": best_lam,
            "val_error": chosen["val_error"].mean(),
            "test_error": chosen["test_error"].mean(),
            "test_error_std": chosen["test_error"].std(ddof=1) if len(chosen) > 1 else float("nan"),
            "seeds": chosen["seed"].nunique() if "seed" in chosen else len(chosen),
        }))
    table = pd.DataFrame(rows)
    return table.sort_values("val_error").reset_index(drop=True) if len(table) else table


def paired_gain(runs: pd.DataFrame, winner: pd.Series) -> Optional[Dict[str, float]]:
    """Baseline minus winner test error per shared seed: mean and 95% t-interval."""
    from scipy import stats

    done = runs[runs["status"] == "completed"]
    others = [k for k in settings(runs) if not k.startswith("reg.")]  # at lam = 0, reg.* is moot
    base = done[matching(done, winner, others) & (done["reg.lam"] == 0)].groupby("seed")["test_error"].mean()
    win = done[matching(done, winner, settings(runs) + ["reg.lam"])].groupby("seed")["test_error"].mean()
    shared = base.index.intersection(win.index)
    if len(shared) == 0:
        return None
    diff = base[shared] - win[shared]
    half = float(stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff))) \
        if len(diff) > 1 else float("nan")
    return {"mean": float(diff.mean()), "low": float(diff.mean() - half), "high": float(diff.mean() + half),
            "seeds": len(diff), "baseline": float(base[shared].mean())}


def write_report(runs: pd.DataFrame, counts: Dict[str, int], figures: List[Path], out: Path,
                 command: str, problems: List[str], studies: Sequence[Any] = ()) -> Path:
    lines = ["# Regularization sweep report", "", f"Made by: `{command}`", ""]
    trials = runs[runs["trial"].notna()] if "trial" in runs else runs.iloc[0:0]
    grid = runs[runs["trial"].isna()] if "trial" in runs else runs
    needed = {"reg.lam", "val_error", "test_error", *GROUP}
    table = best_lambdas(grid) if len(grid) and needed <= set(grid.columns) else pd.DataFrame()
    if len(table):
        winner = table.iloc[0]
        lines += ["## The answer", "", _winner_sentence(grid, winner), ""]
        extra = [k for k in settings(grid) if k not in GROUP]
        lines += ["## Best λ per regularizer (chosen on validation error)", "",
                  "| mode | scope | p | " + "".join(f"{k} | " for k in extra)
                  + "best λ | val error | test error (mean ± std) | seeds |",
                  "|---|---|---|" + "---|" * len(extra) + "---|---|---|---|"]
        for _, row in table.iterrows():
            std = "" if math.isnan(row["test_error_std"]) else f" ± {row['test_error_std']:.4f}"
            lines.append(f"| {row['reg.mode']} | {row['reg.scope']} | {row['reg.p']:g} | "
                         + "".join(f"{row[k]} | " for k in extra)
                         + f"{row['reg.lam']:g} | {row['val_error']:.4f} | {row['test_error']:.4f}{std} | "
                         f"{row['seeds']} |")
        lines.append("")
    elif trials.empty:
        lines += ["No completed run with λ > 0 and a validation error: nothing to compare.", ""]
    if not trials.empty:
        lines += _optuna_section(trials, studies)
    lines += ["## Runs", "", "| " + " | ".join(counts) + " |", "|" + "---|" * len(counts),
              "| " + " | ".join(str(v) for v in counts.values()) + " |", ""]
    if problems:
        lines += ["Problems met while collecting:", ""] + [f"- {p}" for p in problems] + [""]
    if figures:
        lines += ["## Figures", ""]
        for path in figures:
            if path.suffix == ".png":
                lines += [f"![{path.stem}]({path.name})", f"([PDF]({path.with_suffix('.pdf').name}))", ""]
    lines += ["The table of every run is `runs.csv` beside this report."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _winner_sentence(runs: pd.DataFrame, winner: pd.Series) -> str:
    scope = {"weights": "weights only", "all": "all parameters"}.get(winner["reg.scope"], winner["reg.scope"])
    name = f"{winner['reg.mode']} L{winner['reg.p']:g} decay on {scope} at λ = {winner['reg.lam']:g}"
    name += "".join(f", {k}={winner[k]}" for k in settings(runs) if k not in GROUP)
    text = (f"**{name}** has the lowest validation error ({winner['val_error']:.4f}); its test error is "
            f"{winner['test_error']:.4f} over {winner['seeds']} seed(s).")
    gain = paired_gain(runs, winner)
    if gain is None:
        return text + " No λ = 0 run shares its seeds, so there is no baseline to compare with."
    text += f" Without decay the test error is {gain['baseline']:.4f}: a gain of {gain['mean']:+.4f}"
    if math.isnan(gain["low"]):
        return text + " on a single seed, so there is no interval: run more seeds to know how sure this is."
    verdict = ("lower than" if gain["low"] > 0 else "higher than" if gain["high"] < 0
               else "not distinguishable from")
    return (text + f", 95% interval [{gain['low']:+.4f}, {gain['high']:+.4f}] over {gain['seeds']} paired "
            f"seeds, so the winner's test error is {verdict} the baseline's.")


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
            params = {k: best[k] for k in ("reg.lam", "reg.p", "reg.mode", "reg.scope") if k in best and pd.notna(best[k])}
        else:
            lines.append(f"| {study} | {len(group)} | no complete trial | | | |")
            continue
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
        test = f"{float(best['test_error']):.4f}" if pd.notna(best.get("test_error")) else ""
        lines.append(f"| {study} | {len(group)} | {label} | {float(value):.4f} | {test} | {shown} |")
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
