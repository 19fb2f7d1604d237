"""Numbers for the report and the figures: RI (a fraction) as signed percent, to the precision of its CI.

The CI half-width sets the last digit shown: `ri_decimals` gives the decimal places (of the value in %)
that show the half-width to two significant digits, so RI 0.046 % with CI 0.010 … 0.080 % prints as
+0.046 % and RI 35.2 % with CI 10 … 60 % as +35 %. Without a usable CI, two significant digits.
"""
from __future__ import annotations

import math
from typing import Any

#: Most decimal places ever shown (of a value in %).
MAX_DECIMALS = 6
DASH = "–"


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def ri_decimals(low: Any, high: Any, digits: int = 2) -> int | None:
    """Decimal places of RI in % that show the CI half-width to `digits` significant digits (0 … 6);
    None without a finite CI of positive width."""
    if not (_finite(low) and _finite(high)) or float(high) <= float(low):
        return None
    half = 50.0 * (float(high) - float(low)) * (1 + 1e-9)   # 0.36 - 0.34 is a hair under 0.02
    return min(MAX_DECIMALS, max(0, digits - 1 - math.floor(math.log10(half))))


def pct(x: Any, decimals: int | None = None, sig: int = 2) -> str:
    """Fraction `x` as signed percent ('+0.046 %'): `decimals` places, else `sig` significant digits.
    A value that rounds to zero has no sign; a missing or non-finite one is '–'."""
    if not _finite(x):
        return DASH
    v = 100.0 * float(x)
    if decimals is None:
        decimals = 0 if v == 0 else min(MAX_DECIMALS, max(0, sig - 1 - math.floor(math.log10(abs(v)))))
    text = f"{v:+.{decimals}f}"
    if float(text) == 0:
        text = text[1:]
    return f"{text} %"


def fmt_ri(ri: Any, low: Any = None, high: Any = None) -> str:
    """RI to the precision of its CI (two significant digits without one)."""
    return pct(ri, ri_decimals(low, high))


def fmt_ci(low: Any, high: Any, sep: str = " … ") -> str:
    """The CI bounds at the precision `fmt_ri` gives the RI; '–' without a finite CI."""
    if not (_finite(low) and _finite(high)):
        return DASH
    d = ri_decimals(low, high)
    return f"{pct(low, d)}{sep}{pct(high, d)}"


def fmt_ri_ci(ri: Any, low: Any, high: Any) -> str:
    """'+0.046 % (CI +0.010 … +0.080 %)', or just the RI without a finite CI."""
    if not (_finite(low) and _finite(high)):
        return fmt_ri(ri)
    d = ri_decimals(low, high)
    return f"{pct(ri, d)} (CI {pct(low, d)[:-2]} … {pct(high, d)})"
