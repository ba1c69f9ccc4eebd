"""How the analysis writes a number: one way for report.md, its finalists section and the charts'
labels."""
from __future__ import annotations

import math

DIGITS = 4  # significant digits of every error, difference, spread and interval end


def number(x: float, signed: bool = False, digits: int = DIGITS) -> str:
    """`digits` significant digits (a sign with `signed`), scientific below 1e-4 and from 1e6
    ("1.260e-10", never "0" for a value that is not 0: a regression in small units has MSEs
    of 1e-10, and four decimals would print them all as 0); "–" for none or NaN; 0 as "0"."""
    if x is None or math.isnan(x):
        return "–"
    if x == 0:
        return "0"
    if math.isinf(x):
        return ("+" if signed and x > 0 else "") + ("∞" if x > 0 else "−∞")
    sign = "+" if signed else ""
    if 10 ** digits <= abs(x) < 1e6:  # 12346, not 1.235e4: whole numbers while they are short
        return f"{x:{sign}.0f}"
    text = f"{x:{sign}#.{digits}g}"
    if "e" in text:  # 1.260e-10, 3.100e-9: no "+" or leading zero in the exponent
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text.rstrip(".") if text.endswith(".") else text


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
