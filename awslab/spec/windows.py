"""RDS's weekly maintenance window (``ddd:hh24:mi-ddd:hh24:mi``, UTC): AWS's rules and their
error texts, and when a window next starts. Pure: the lab's validation (``database.maintenance_window``)
and the local AWS (its CreateDBInstance/ModifyDBInstance and its window's arrival) use it alike.

AWS's constraints (RDS API Reference, ModifyDBInstance ``PreferredMaintenanceWindow``): the format
``ddd:hh24:mi-ddd:hh24:mi``; days ``mon | tue | wed | thu | fri | sat | sun``; UTC; not in conflict
with the daily backup window; at least 30 minutes. A window may run across midnight and across the
week's end (``Sun:23:45-Mon:00:15`` is AWS's own example). The error texts are RDS's
``InvalidParameterValue`` messages, as moto copied them.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MIN = 24 * 60
WEEK_MIN = 7 * DAY_MIN
MIN_WINDOW_MIN = 30
MAX_WINDOW_MIN = DAY_MIN
DEFAULT_WINDOW = "wed:06:38-wed:07:08"   # what the local AWS gives an instance made without one
_FORMAT = re.compile(r"^[a-z]{3}:\d{2}:\d{2}-[a-z]{3}:\d{2}:\d{2}$")
_DAILY = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def _format_error(window: str) -> str:
    return (f"Invalid maintenance window format: {window}. Should be specified as a range ddd:hh24:mi-ddd:hh24:mi "
            "(24H Clock UTC). Example: Sun:23:45-Mon:00:15")


def _minute_of_week(part: str) -> int | None:
    day, hh, mm = part.split(":")
    if day not in DAYS or int(hh) > 23 or int(mm) > 59:
        return None
    return DAYS.index(day) * DAY_MIN + int(hh) * 60 + int(mm)


def span(window: str) -> tuple[int, int]:
    """(start, length) in minutes of the week (Monday 00:00 = 0) of a valid window."""
    start, end = (_minute_of_week(p) for p in window.lower().split("-"))
    assert start is not None and end is not None, window
    return start, (end - start) % WEEK_MIN


def error(window: str, backup_window: str | None = None) -> str | None:
    """AWS's InvalidParameterValue message for ``window`` (None: AWS takes it)."""
    text = str(window).lower()
    if not _FORMAT.match(text):
        return _format_error(window)
    start, end = (_minute_of_week(p) for p in text.split("-"))
    if start is None or end is None:
        return f"Invalid day:hour:minute value: {window}"
    length = (end - start) % WEEK_MIN
    if length < MIN_WINDOW_MIN:
        return "The maintenance window must be at least 30 minutes."
    if length > MAX_WINDOW_MIN:
        return "Maintenance window must be less than 24 hours."
    if backup_window and _overlaps_daily(start, length, backup_window):
        return "The backup window and maintenance window must not overlap."
    return None


def _overlaps_daily(start: int, length: int, backup_window: str) -> bool:
    """Whether the weekly window meets the daily ``hh24:mi-hh24:mi`` backup window on any day."""
    m = _DAILY.match(backup_window or "")
    if not m:
        return False
    b_start = int(m[1]) * 60 + int(m[2])
    b_len = (int(m[3]) * 60 + int(m[4]) - b_start) % DAY_MIN
    for day in range(-1, 8):
        lo = day * DAY_MIN + b_start
        for shift in (-WEEK_MIN, 0, WEEK_MIN):
            if lo < start + shift + length and start + shift < lo + b_len:
                return True
    return False


def next_start(window: str, now: datetime | None = None) -> datetime:
    """When the window next starts (UTC); ``now`` itself while it is open (what is due in it runs now)."""
    now = now or datetime.now(timezone.utc)
    start, length = span(window)
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    at = monday + timedelta(minutes=start)
    for candidate in (at - timedelta(days=7), at, at + timedelta(days=7)):
        if candidate <= now < candidate + timedelta(minutes=length):
            return now
        if candidate > now:
            return candidate
    return at + timedelta(days=14)   # not reached: one of the three is ahead of now
