"""How report.md writes a number: one way for the report and its finalists section."""
from __future__ import annotations

import math


def number(x: float, signed: bool = False) -> str:
    """Four decimals (a sign with `signed`), "–" for none or NaN, and never -0.0000."""
    if x is None or math.isnan(x):
        return "–"
    text = f"{x:+.4f}" if signed else f"{x:.4f}"
    return "0" if float(text) == 0 else text
