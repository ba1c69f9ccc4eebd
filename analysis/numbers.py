"""How report.md writes a number: one way for the report and its finalists section."""
from __future__ import annotations

import math


def number(x: float, signed: bool = False) -> str:
    """Four decimals (a sign with `signed`), "–" for none or NaN, and never -0.0000."""
    if x is None or math.isnan(x):
        return "–"
    text = f"{x:+.4f}" if signed else f"{x:.4f}"
    return "0" if float(text) == 0 else text


def p_text(p: float, alpha: float = 0.05) -> str:
    """A p-value to 2 significant digits, more where 2 would cross α (0.0498 is not "0.05")."""
    if math.isnan(p):
        return "–"
    if p < 0.001:
        return "< 0.001"
    for digits in (2, 3, 4, 6):
        text = f"{p:.{digits}g}"
        if (float(text) < alpha) == (p < alpha):
            return text
    return repr(p)
