"""Dates: MM/DD/YYYY text, month names, and moves by days, weeks, months or
years (`Offset`).

Month arithmetic: moving by N months keeps the day of the month and clamps
it to the last day of the target month (01/31 + 1 month = 02/28, or 02/29 in
a leap year); a year is 12 months. Generated problems never hit the clamp.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
MONTH_NUM = {m.lower(): i + 1 for i, m in enumerate(MONTHS)}
MONTH_NUM.update({m[:3].lower(): i + 1 for i, m in enumerate(MONTHS)})
MONTH_NUM["sept"] = 9


def fmt(d: date) -> str:
    return f"{d.month:02d}/{d.day:02d}/{d.year:04d}"


def parse_date(text: str) -> date | None:
    """MM/DD/YYYY (or M/D/YYYY) -> date; None when it is not a calendar date."""
    m = re.fullmatch(r"\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*", text)
    if not m:
        return None
    return mkdate(int(m.group(3)), int(m.group(1)), int(m.group(2)))


def mkdate(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def add_months(d: date, months: int) -> date | None:
    """`d` moved by `months`, the day clamped to the target month's end."""
    total = d.year * 12 + d.month - 1 + months
    y, m0 = divmod(total, 12)
    if not 1 <= y <= 9999:
        return None
    return date(y, m0 + 1, min(d.day, calendar.monthrange(y, m0 + 1)[1]))


@dataclass(frozen=True)
class Offset:
    """A signed move of `n` days, weeks, months or years."""

    n: int
    unit: str  # day | week | month | year
    sign: int  # -1 earlier, +1 later

    def apply(self, d: date) -> date | None:
        try:
            if self.unit == "day":
                return d + timedelta(days=self.sign * self.n)
            if self.unit == "week":
                return d + timedelta(days=7 * self.sign * self.n)
            if self.unit == "month":
                return add_months(d, self.sign * self.n)
            return add_months(d, 12 * self.sign * self.n)
        except (OverflowError, ValueError):
            return None

    def clamps(self, d: date) -> bool:
        """Whether moving `d` hits the month-end clamp (generation avoids it)."""
        if self.unit not in ("month", "year"):
            return False
        out = self.apply(d)
        return out is None or out.day != d.day

    def words(self) -> str:
        return f"{self.n} {self.unit}{'' if self.n == 1 else 's'}"

    def canon(self) -> str:
        """`10 days before`, `1 month after`: reads before a date."""
        return f"{self.words()} {'before' if self.sign < 0 else 'after'}"

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "unit": self.unit, "sign": self.sign}

    @classmethod
    def from_json(cls, d: Any) -> "Offset":
        n, unit, sign = d["n"], d["unit"], d["sign"]
        if not (isinstance(n, int) and 0 <= n <= 100000 and unit in ("day", "week", "month", "year") and sign in (-1, 1)):
            raise ValueError("bad offset")
        return cls(n, unit, sign)


def near(d: date) -> list[date]:
    """Plausible wrong dates near `d`: off by a day, a week, a month, a year,
    a decade, or with month and day swapped."""
    out: list[date | None] = [
        Offset(1, "day", 1).apply(d), Offset(1, "day", -1).apply(d),
        Offset(1, "month", 1).apply(d), Offset(1, "month", -1).apply(d),
        Offset(1, "year", 1).apply(d), Offset(1, "year", -1).apply(d),
        Offset(7, "day", 1).apply(d), Offset(7, "day", -1).apply(d),
        Offset(10, "year", 1).apply(d), Offset(89, "year", 1).apply(d),
        mkdate(d.year, d.day, d.month) if d.day <= 12 else None,
    ]  # fmt: skip
    seen: list[date] = []
    for x in out:
        if x is not None and x != d and x not in seen:
            seen.append(x)
    return seen
