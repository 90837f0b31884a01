"""Timestamps from log text to UTC microseconds, vectorised.

The Common Log Format time (``10/Oct/2000:13:55:36 -0700``) is fixed-width, so
it is decoded straight from the Arrow buffer with numpy (about ten times faster
than ``strptime``); any row that is not exactly that shape falls back to
``pyarrow.compute.strptime``, which then decides.  Other layouts (strftime
strings from ``%{...}t``, ISO 8601, epoch seconds) have converters here too, so
every format turns time into the same ``timestamp`` column.

Every converter returns null, never an exception or a silently shifted time,
for a time that is not real (``29/Feb/2025``, which ``strptime`` would turn into
1 March) or outside ``MIN_YEAR``..``MAX_YEAR``: microseconds since 1970 must stay
exact as float64 (Beam timestamps, day partitioning), and a log line from year
1 or 9999 is a hostile or broken line, not an event.  The line then goes to the
dead letters with its reason.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.fields import TIMESTAMP_TYPE

CLF_FORMAT = "%d/%b/%Y:%H:%M:%S %z"
_CLF_WIDTH = len("10/Oct/2000:13:55:36 -0700")
_MONTHS = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"]
_MONTH_CODES = np.array([m[0] << 16 | m[1] << 8 | m[2] for m in _MONTHS], dtype=np.int64)
_MONTH_ORDER = np.argsort(_MONTH_CODES)
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
#: Event times logwarden stores: from 1970 up to the end of MAX_YEAR.
MIN_YEAR, MAX_YEAR = 1970, 2199
_MIN_US = 0
_MAX_US = int((dt.datetime(MAX_YEAR + 1, 1, 1) - dt.datetime(1970, 1, 1)).total_seconds()) * 1_000_000
#: How a converter's dead-letter reason describes an acceptable time.
VALID_TIME = f"a real date and time between {MIN_YEAR} and {MAX_YEAR}"


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def bounded(ts: pa.Array) -> pa.Array:
    """``ts`` with null wherever the time is outside ``MIN_YEAR``..``MAX_YEAR``."""
    micros = ts.cast(pa.int64())
    inside = pc.and_(pc.greater_equal(micros, _MIN_US), pc.less(micros, _MAX_US))
    return pc.if_else(inside, ts, pa.scalar(None, ts.type))


def _real_dates(text: pa.Array, parsed: pa.Array, layout: str) -> pa.Array:
    """``parsed`` with null where ``strptime`` accepted a day the month does not have.

    Arrow's ``strptime`` rolls ``29/Feb/2025`` over to 1 March.  Writing the time back
    with the same layout gives the text again for every canonical time; only rows that
    differ (another zone offset, unpadded digits, or a rolled-over day) are checked again
    with Python's ``strptime``, which refuses a day past the end of its month.
    """
    if "%z" in layout or "%Z" in layout or not len(text):
        candidates = pc.is_valid(parsed)
    else:
        written = pc.strftime(parsed.cast(pa.timestamp("s")), format=layout)
        candidates = pc.and_(pc.is_valid(parsed), pc.invert(pc.fill_null(pc.equal(written, text), False)))
    rows = np.flatnonzero(candidates.to_numpy(zero_copy_only=False))
    if not len(rows):
        return parsed
    python_layout = layout.replace("%e", "%d")
    impossible = np.zeros(len(parsed), dtype=bool)
    values = text.to_pylist() if len(rows) > 32 else None
    for row in rows:
        value = values[row] if values is not None else text[int(row)].as_py()
        impossible[row] = _day_out_of_range(value, python_layout)
    if not impossible.any():
        return parsed
    return pc.if_else(pa.array(impossible), pa.scalar(None, parsed.type), parsed)


def _day_out_of_range(value: str, layout: str) -> bool:
    try:
        dt.datetime.strptime(value.strip(), layout)
    except ValueError as problem:
        return "out of range for month" in str(problem)
    return False


def _string_parts(text: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets (start, length) of each value and the data buffer of a string array, zero-copy."""
    text = text.cast(pa.string()) if text.type != pa.string() else text
    n = len(text)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32, count=n + 1, offset=text.offset * 4)
    data_buffer = text.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return offsets[:-1].astype(np.int64), np.diff(offsets).astype(np.int64), data


def _clf_fixed_width(text: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Microseconds since the epoch, a mask of rows decoded, and a mask of rows shaped like a CLF time.

    A row of the right shape that is not decoded (30 February, year 0001) is not a time at all;
    rows of another shape are left to strptime.
    """
    n = len(text)
    starts, lengths, data = _string_parts(text)
    ok = lengths == _CLF_WIDTH
    if text.null_count:
        ok &= text.is_valid().to_numpy(zero_copy_only=False)
    if len(data) < _CLF_WIDTH or not ok.any():
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    base = np.where(ok, starts, 0)
    base = np.minimum(base, len(data) - _CLF_WIDTH)

    def byte(i: int) -> np.ndarray:
        return data[base + i].astype(np.int64)

    def number(i: int, width: int) -> np.ndarray:
        nonlocal ok
        value = np.zeros(n, dtype=np.int64)
        for k in range(width):
            digit = byte(i + k) - 48
            ok &= (digit >= 0) & (digit <= 9)
            value = value * 10 + digit
        return value

    for position, char in ((2, "/"), (6, "/"), (11, ":"), (14, ":"), (17, ":"), (20, " ")):
        ok &= byte(position) == ord(char)
    day, year = number(0, 2), number(7, 4)
    hour, minute, second = number(12, 2), number(15, 2), number(18, 2)
    zone_hours, zone_minutes = number(22, 2), number(24, 2)
    sign_byte = byte(21)
    ok &= (sign_byte == ord("+")) | (sign_byte == ord("-"))
    code = byte(3) << 16 | byte(4) << 8 | byte(5)
    found = np.searchsorted(_MONTH_CODES[_MONTH_ORDER], code)
    found = np.minimum(found, 11)
    month_index = _MONTH_ORDER[found]
    ok &= _MONTH_CODES[month_index] == code
    month = month_index + 1
    shaped = ok.copy()
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_days = _DAYS_IN_MONTH[month_index] + ((month == 2) & leap)
    ok &= (day >= 1) & (day <= month_days) & (hour < 24) & (minute < 60) & (second < 60)
    ok &= (zone_hours < 24) & (zone_minutes < 60)
    sign = np.where(sign_byte == ord("-"), -1, 1)
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    seconds -= sign * (zone_hours * 3600 + zone_minutes * 60)
    micros = seconds * 1_000_000
    ok &= (micros >= _MIN_US) & (micros < _MAX_US)
    return np.where(ok, micros, 0), ok, shaped


def parse_clf(text: pa.Array) -> pa.Array:
    """``10/Oct/2000:13:55:36 -0700`` to UTC; null where the text is not such a time."""
    micros, ok, shaped = _clf_fixed_width(text)
    fast = pa.array(micros, pa.int64(), mask=~ok).cast(TIMESTAMP_TYPE)
    if shaped.all():
        return fast
    rest = pc.if_else(pa.array(shaped), pa.scalar(None, pa.string()), text)
    slow = pc.strptime(rest, format=CLF_FORMAT, unit="us", error_is_null=True).cast(TIMESTAMP_TYPE)
    slow = _real_dates(rest, slow, CLF_FORMAT)
    return pc.if_else(pa.array(shaped), fast, bounded(slow))


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> dt.tzinfo:
    return dt.timezone.utc if name.upper() == "UTC" else zoneinfo.ZoneInfo(name)


def localize(naive: pa.Array, zone: str) -> pa.Array:
    """Naive local times in ``zone`` (an IANA name) to UTC; ambiguous/missing wall times resolve earliest."""
    if zone.upper() == "UTC":
        return naive.cast(pa.timestamp("us")).cast(TIMESTAMP_TYPE)
    return pc.assume_timezone(naive.cast(pa.timestamp("us")), zone, ambiguous="earliest", nonexistent="earliest").cast(
        TIMESTAMP_TYPE
    )


def _naive_in_range(naive: pa.Array) -> pa.Array:
    """Null for naive times far outside the stored range, so moving them to UTC cannot overflow."""
    margin = 2 * 86_400_000_000  # more than any zone offset
    micros = naive.cast(pa.timestamp("us")).cast(pa.int64())
    inside = pc.and_(pc.greater_equal(micros, _MIN_US - margin), pc.less(micros, _MAX_US + margin))
    return pc.if_else(inside, naive, pa.scalar(None, naive.type))


def parse_strftime(text: pa.Array, layout: str, zone: str = "UTC") -> pa.Array:
    """Times written with a strftime ``layout``; a layout without ``%z`` is read in ``zone``."""
    layout = layout.replace("%T", "%H:%M:%S").replace("%D", "%m/%d/%y").replace("%F", "%Y-%m-%d")
    parsed = _real_dates(text, pc.strptime(text, format=layout, unit="us", error_is_null=True), layout)
    if "%z" in layout:
        return bounded(parsed.cast(TIMESTAMP_TYPE))
    return bounded(localize(_naive_in_range(parsed), zone))


def parse_iso8601(text: pa.Array, zone: str = "UTC") -> pa.Array:
    """``2016-12-07T10:05:07+01:00`` (nginx ``$time_iso8601``, JSON logs), fractions and ``Z`` allowed."""
    text = pc.utf8_trim_whitespace(text)
    parts = pc.extract_regex(
        text,
        r"^(?P<base>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ](?P<clock>[0-9]{2}:[0-9]{2}:[0-9]{2})(?P<frac>[.,][0-9]+)?"
        r"(?P<zone>Z|[+-][0-9]{2}:?[0-9]{2})?$",
    )
    base = pc.binary_join_element_wise(pc.struct_field(parts, [0]), pc.struct_field(parts, [1]), "T")
    naive = pc.strptime(base, format="%Y-%m-%dT%H:%M:%S", unit="us", error_is_null=True)
    day_written = pc.cast(pc.utf8_slice_codeunits(pc.struct_field(parts, [0]), 8, 10), pa.int64())
    naive = _naive_in_range(pc.if_else(pc.equal(pc.day(naive), day_written), naive, pa.scalar(None, naive.type)))
    digits = pc.utf8_slice_codeunits(pc.struct_field(parts, [2]), 1, 7)
    frac_us = pc.cast(pc.utf8_rpad(digits, 6, "0"), pa.int64())
    zone_text = pc.struct_field(parts, [3])
    zone_clean = pc.replace_substring(zone_text, ":", "")
    has_offset = pc.and_(pc.not_equal(zone_text, ""), pc.not_equal(zone_text, "Z"))
    sign = pc.if_else(pc.starts_with(zone_clean, "-"), -1, 1)
    hours = pc.cast(pc.if_else(has_offset, pc.utf8_slice_codeunits(zone_clean, 1, 3), "0"), pa.int64())
    minutes = pc.cast(pc.if_else(has_offset, pc.utf8_slice_codeunits(zone_clean, 3, 5), "0"), pa.int64())
    offset_us = pc.multiply(pc.multiply(sign, pc.add(pc.multiply(hours, 3600), pc.multiply(minutes, 60))), 1_000_000)
    has_zone = pc.not_equal(zone_text, "")
    local = localize(naive, zone)
    as_utc = naive.cast(pa.timestamp("us")).cast(pa.int64())
    zoned = pc.subtract(as_utc, offset_us).cast(pa.timestamp("us")).cast(TIMESTAMP_TYPE)
    whole = pc.if_else(has_zone, zoned, local)
    micros = pc.add(whole.cast(pa.int64()), frac_us)
    return bounded(micros.cast(TIMESTAMP_TYPE))


def parse_epoch(text: pa.Array, unit_per_second: int) -> pa.Array:
    """Epoch numbers (``1480503956.123`` seconds, or whole ms / µs) to UTC timestamps."""
    number = pc.cast(text, pa.float64()) if text.type == pa.string() else text
    micros = pc.round(pc.multiply(pc.cast(number, pa.float64()), 1_000_000 / unit_per_second))
    inside = pc.and_(pc.greater_equal(micros, float(_MIN_US)), pc.less(micros, float(_MAX_US)))
    micros = pc.if_else(inside, micros, pa.scalar(None, pa.float64()))
    return pc.cast(micros, pa.int64()).cast(TIMESTAMP_TYPE)


#: A time written somewhere in a line, in the two shapes web logs use: ``[10/Oct/2000:13:55:36 -0700]``, ISO 8601.
_CLF_ANYWHERE = r"(?P<t>[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4})"
_ISO_ANYWHERE = (
    r"(?P<t>[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)"
)


def recover_times(text: pa.Array, zone: str = "UTC") -> pa.Array:
    """The first time each line names (CLF or ISO 8601), null where it names none that is a real, storable time.

    For lines that could not be parsed: what month they belong to, so they are kept and shredded with it.
    """
    clf = pc.struct_field(pc.extract_regex(text, _CLF_ANYWHERE), [0])
    found = parse_clf(clf)
    if found.null_count:
        iso = pc.struct_field(pc.extract_regex(text, _ISO_ANYWHERE), [0])
        found = pc.coalesce(found, parse_iso8601(iso, zone))
    return found
