"""What every chart shares: the Agg backend and theme, the labels, number formatting, the mean
and t-interval over seeds, saving, and FigureProblem (a figure left out, with a one-line reason).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")

FORMATS = ("png", "pdf")
# Figures for a paper: one column (3.5 in) or two (7 in) wide, drawn at that size with every font
# at least MIN_FONT_PT, so that nothing shrinks when the PDF is placed (--width). None: for screens.
PAPER_WIDTHS = {"column": 3.5, "page": 7.0}
MIN_FONT_PT = 7


class Layout:
    """How the charts are laid out: set once per analysis (python -m analysis --width, --sharey)."""
    width: "float | None" = None  # inches
    sharey: bool = False  # one y-range for every panel of a chart


LAYOUT = Layout()


def set_layout(width: "str | None" = None, sharey: bool = False) -> None:
    LAYOUT.width = PAPER_WIDTHS[width] if width else None
    LAYOUT.sharey = sharey
    sns.set_theme(style="whitegrid", context="paper")  # the screen's sizes, then a paper's if asked
    if width:
        plt.rcParams.update({"font.size": 7.5, "axes.titlesize": 8, "axes.labelsize": 7.5, "xtick.labelsize": 7,
                             "ytick.labelsize": 7, "legend.fontsize": 7, "figure.titlesize": 8})


def panel_grid(n: int, screen_width: float, screen_height: float, legend_height: float = 0.0):
    """(rows, columns, figsize) for n panels: one row of screen-sized panels, or, at a paper
    width, as many columns as fit (panels at least 2.3 in wide) and as many rows as needed."""
    import math

    if LAYOUT.width is None:
        return 1, n, (screen_width * n, screen_height)
    cols = max(1, min(n, int(LAYOUT.width // 2.3)))
    rows = math.ceil(n / cols)
    panel = LAYOUT.width / cols
    return rows, cols, (LAYOUT.width, rows * panel * 0.8 + legend_height)


def figure_size(screen_width: float, screen_height: float) -> Tuple[float, float]:
    """A one-panel figure's size: the screen's, or at a paper width that width, same aspect."""
    if LAYOUT.width is None:
        return screen_width, screen_height
    return LAYOUT.width, screen_height * LAYOUT.width / screen_width


def legend_columns(screen: int) -> int:
    """Legend columns: `screen` on a screen, one at a paper width (long labels side by side
    would be wider than a column, and constrained layout cannot shrink a legend)."""
    return 1 if LAYOUT.width else max(1, screen)


def lambda_ticks(ax) -> None:
    """λ tick labels that never overlap on a log axis: labels at the decades only, or, where the
    axis spans less than about two decades, at 1 and 3 times them; no minor labels (a span
    under a decade otherwise labels every minor tick, "2×10⁻⁴" over "3×10⁻⁴")."""
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

    low, high = ax.get_xlim()
    span = np.log10(high / low) if low > 0 and high > low else 0.0
    subs = (1.0, 3.0) if span < 2.2 else (1.0,)  # 1 and 3: about half a decade apart
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    ax.xaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(NullFormatter())
    if span > 4:  # many decades: every other one labelled
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,), numticks=6))


def fit_title(text: str, fontsize: float) -> str:
    """A title wrapped to the paper width (--width), so no line runs off the page: constrained
    layout makes room for a title but does not wrap it. Unchanged on screens."""
    import textwrap

    if LAYOUT.width is None:
        return text
    chars = int(LAYOUT.width * 72 / (0.52 * fontsize))  # a character is about half its size wide
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def fit_labels(labels: Sequence[str], fontsize: float = 7.0) -> List[str]:
    """Legend labels wrapped to the paper width less the legend's handles (--width): a legend
    wider than the figure is cut off at both sides. Unchanged on screens."""
    import textwrap

    if LAYOUT.width is None:
        return list(labels)
    chars = int((LAYOUT.width - 0.7) * 72 / (0.52 * fontsize))
    return ["\n".join(textwrap.fill(line, chars) for line in label.split("\n")) for label in labels]


def title_size(screen: float) -> float:
    return max(MIN_FONT_PT + 1, 8) if LAYOUT.width else screen
Chart = Tuple[pd.DataFrame, List[Path]]  # the data drawn, and the files written
SCOPE_WORDS = {"weights": "weights only", "all": "all parameters (global)"}


class FigureProblem(Exception):
    """A figure that cannot be drawn, or could not show what its title says, from what the
    jobs left (one line; the analysis prints it and draws the others)."""


def decay_label(frame: pd.DataFrame) -> pd.Series:
    """The curve a run belongs to: its scope, with the mode when the sweep has several modes."""
    scope = frame["reg.scope"].map(SCOPE_WORDS).fillna(frame["reg.scope"].astype(str))
    if "reg.mode" in frame and frame["reg.mode"].nunique() > 1:
        return scope + " · " + frame["reg.mode"].astype(str)
    return scope


def is_regression(frame: pd.DataFrame) -> bool:
    """Whether the runs' errors are MSEs: as their metrics.json says (`task`), else (runs made
    before it said) by the data set's name or data.task."""
    if "task" in frame and frame["task"].notna().any():
        return bool(frame["task"].eq("regression").any())
    return bool(frame.get("data.name", pd.Series(dtype=str)).eq("regression1d").any()
                or frame.get("data.task", pd.Series(dtype=str)).eq("regression").any())


def error_label(frame: pd.DataFrame) -> str:
    return "mean squared error" if is_regression(frame) else "error (1 − accuracy)"


def title_of(frame: pd.DataFrame) -> str:
    """data · model · optimizer, each the set of values the runs have."""
    parts = []
    frame = frame.copy()
    if "model._target_" in frame:  # a user's model may have no name: its target's last name
        # (an Optuna trial's row holds no config: its target is empty)
        label = frame["model._target_"].map(lambda v: v.rsplit(".", 1)[-1].lower() if isinstance(v, str) else None)
        frame["model.name"] = frame["model.name"].fillna(label) if "model.name" in frame else label
    for key in ("data.name", "model.name", "optimizer.name"):
        if key in frame and frame[key].notna().any():
            names = sorted(frame[key].dropna().astype(str).unique())
            if key == "data.name":  # a file's data set is named by its file: npz (cifar10.npz)
                files = sorted({Path(str(v)).name for k in ("data.path", "data.root") if k in frame
                                for v in frame[k].dropna()})
                names = [n + (f" ({', '.join(files)})" if files else "") for n in names]
            parts.append("/".join(names))
    return " · ".join(parts)


def num(value: float, digits: int = 2) -> str:
    """`value` to `digits` significant digits, as report.md writes numbers (analysis.numbers):
    scientific where small, so that a chart label of a small-unit MSE is not "0.00"."""
    from analysis.numbers import number

    return number(value, digits=digits)


def mean_and_ci(values: pd.Series) -> Tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (0 for a single value)."""
    from scipy import stats

    n = len(values)
    mean = float(values.mean())
    if n < 2:
        return mean, 0.0
    return mean, float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))


def seeds_phrase(ns: Sequence[int]) -> str:
    """"3 seeds", or "2–3 seeds" when points rest on different numbers of seeds ("no seed": none)."""
    ns = list(ns)
    if not ns:
        return "no seed"
    low, high = int(min(ns)), int(max(ns))
    return f"{high} seeds" if low == high else f"{low}–{high} seeds"


def save(fig: plt.Figure, out: Path, name: str, formats: Sequence[str] = FORMATS) -> List[Path]:
    """The figure as out/name.png and .pdf. At a paper width (--width) exactly that wide: its
    layout is constrained, and a "tight" bounding box would change the size the fonts were set
    for (a 3.5 in column chart came out 6 in wide); on screens the tight box trims the margins."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            fig.savefig(path, dpi=150, **({} if LAYOUT.width else {"bbox_inches": "tight"}))
            paths.append(path)
    finally:  # a failed write (a full disk) must not leave the figure open for the rest of the run
        plt.close(fig)
    return paths
