"""The two tiers of an archive and the segments of the archive tier.

The online tier is what the pipelines write (one partition per day).  The
archive tier holds the same rows compacted per *segment*: an ISO week cut at
month ends, so each segment lies in one month and is encrypted with that
month's keys only.  A segment is named by its first day (a Monday, or the 1st
of a month).
"""

from __future__ import annotations

import calendar
import datetime as dt

ONLINE = "online"
ARCHIVE = "archive"
TIERS = (ONLINE, ARCHIVE)


def month_of(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def segment_start(day: dt.date) -> dt.date:
    """The first day of ``day``'s segment: its ISO week's Monday, or the 1st of its month if that is later."""
    monday = day - dt.timedelta(days=day.weekday())
    return monday if monday.month == day.month else day.replace(day=1)


def segment_days(start: dt.date) -> tuple[dt.date, ...]:
    """Every day of the segment beginning at ``start`` (to Sunday, or to the month's last day if earlier)."""
    if segment_start(start) != start:
        raise ValueError(f"{start} does not begin a segment (expected a Monday or the 1st of a month)")
    last_of_month = start.replace(day=calendar.monthrange(start.year, start.month)[1])
    sunday = start + dt.timedelta(days=6 - start.weekday())
    end = min(sunday, last_of_month)
    return tuple(start + dt.timedelta(days=n) for n in range((end - start).days + 1))
