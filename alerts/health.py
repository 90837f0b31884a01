"""Service-health rules: a measure over a window of event time, compared with a threshold or the key's own past.

A ``health`` rule (``kind: health``, or any rule with a ``health:`` block) selects
events with an optional ``filter``, keys them by ``groupby`` (a host, a host and
path prefix) and measures, per key, every ``every`` of event time over the last
``window``:

* ``count`` — the events in the window (traffic; error-log bursts; silence);
* ``ratio`` — the share of them that also meet the ``of`` conditions (5xx share);
* ``p50`` / ``p90`` / ``p95`` / ``p99`` — a percentile of a numeric ``field``
  (``event_duration_us``), read from a mergeable log-bucket sketch
  (``alerts.health_sketch``), never from a sorted list.

The value is compared with absolute bounds (``above``, ``below``) and with the
same key's ``baseline`` — the same measure over the trailing period before the
window (``above_baseline: 2`` = more than twice it; ``below_baseline: 0.1`` =
under a tenth of it; a count's baseline is its average per window).  ``min_events``,
``max_client_share`` (no one client address may make more than this share of the
counted events: one scanner's 404s are no broken link) and ``min_baseline`` say
when there is enough to judge.  The condition must hold
``for`` a while before the alert fires; the alert resolves (a second, "resolved"
record) once the condition has been false for a whole window.  ``alerts.health_fold``
evaluates this on event time, the same in a replay and in the stream.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pyarrow as pa

MEASURES = ("count", "ratio", "p50", "p90", "p95", "p99")
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
KEYS = (
    "measure", "of", "field", "window", "every", "for", "above", "below", "min_events", "baseline",
    "above_baseline", "below_baseline", "min_baseline", "path_segments", "max_client_share",
)  # fmt: skip
#: Measures whose baseline is the average count per window, so it is an amount of traffic.
COUNTS = ("count",)


@dataclasses.dataclass(frozen=True)
class HealthSpec:
    """What a health rule measures per key, over which window, and when the value is a problem."""

    measure: str  # count, ratio or pNN
    window: float  # seconds
    every: float = 60.0  # seconds: the evaluation step and the resolution of event time
    of: tuple = ()  # ratio: conditions the counted share of events meets
    field: str | None = None  # percentiles: the numeric field measured
    hold: float = 0.0  # ``for``: seconds the condition must hold before the alert fires
    above: float | None = None
    below: float | None = None
    min_events: int = 0
    baseline: float = 0.0  # seconds of trailing history before the window (0: none)
    above_baseline: float | None = None
    below_baseline: float | None = None
    min_baseline: float = 0.0
    path_segments: int = 0  # key also by the first N segments of url_path
    max_client_share: float | None = None  # no one client address may make more of the counted events

    @property
    def quantile(self) -> float | None:
        match = _PERCENTILE.match(self.measure)
        return float(match.group(1)) / 100 if match else None

    @property
    def uses_baseline(self) -> bool:
        return self.above_baseline is not None or self.below_baseline is not None or self.min_baseline > 0

    def threshold_text(self) -> str:
        """The condition in words, as an alert shows it: ``ratio > 0.1 with >= 50 events in 5m``."""
        parts = []
        if self.above is not None:
            parts.append(f"{self.measure} > {self.above:g}")
        if self.below is not None:
            parts.append(f"{self.measure} < {self.below:g}")
        if self.above_baseline is not None:
            parts.append(f"{self.measure} > {self.above_baseline:g} x baseline")
        if self.below_baseline is not None:
            parts.append(f"{self.measure} < {self.below_baseline:g} x baseline")
        text = " and ".join(parts)
        text += f" over {_duration_text(self.window)}"
        if self.min_events:
            text += f", at least {self.min_events} events"
        if self.max_client_share is not None:
            text += f", no client over {self.max_client_share:.0%} of them"
        if self.uses_baseline:
            text += f", baseline the {_duration_text(self.baseline)} before"
            if self.min_baseline:
                text += f" (at least {self.min_baseline:g})"
        if self.hold:
            text += f", for {_duration_text(self.hold)}"
        return text


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _number(reader, spec: dict, key: str, minimum: float | None = 0.0) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or (minimum is not None and value < minimum):
        reader.fail(f"health.{key}", f"expected a number >= {minimum:g}, got {value!r}")
    return float(value)


def read_health(reader, value: Any, schema: pa.Schema) -> HealthSpec:
    """The ``health:`` block of a rule; ``reader`` is ``alerts.rules._Reader`` (its ``fail`` names rule and key)."""
    if not isinstance(value, dict):
        reader.fail("health", f"expected a mapping with measure, window and a threshold, got {value!r}")
    for key in value:
        if key not in KEYS:
            reader.fail(f"health.{key}", f"unknown key; health keys are {', '.join(KEYS)}")
    measure = value.get("measure")
    if measure not in MEASURES and not (isinstance(measure, str) and _PERCENTILE.match(measure)):
        reader.fail("health.measure", f"expected one of {', '.join(MEASURES)} (or pNN), got {measure!r}")
    if "window" not in value:
        reader.fail("health.window", "is required: the span of event time the value is measured over")
    window = reader.duration(value["window"], "health.window")
    every = reader.duration(value.get("every", "1m"), "health.every")
    if every <= 0 or window < every or abs(window / every - round(window / every)) > 1e-9:
        reader.fail("health.window", f"must be a whole number of 'every' ({every:g}s), got {window:g}s")
    baseline = reader.duration(value.get("baseline", 0), "health.baseline")
    if abs(baseline / every - round(baseline / every)) > 1e-9:
        reader.fail("health.baseline", f"must be a whole number of 'every' ({every:g}s), got {baseline:g}s")
    hold = reader.duration(value.get("for", 0), "health.for")
    of: tuple = ()
    if measure == "ratio":
        if "of" not in value:
            reader.fail("health.of", "a ratio needs 'of': the conditions of the events whose share is measured")
        of = reader.conditions(value["of"], "health.of", schema)
    elif "of" in value:
        reader.fail("health.of", "only a ratio takes 'of'")
    field = None
    if _PERCENTILE.match(str(measure)):
        field = reader.field(value.get("field"), "health.field", schema)
        if not (pa.types.is_integer(schema.field(field).type) or pa.types.is_floating(schema.field(field).type)):
            reader.fail("health.field", f"a percentile needs a numeric field, {field!r} is {schema.field(field).type}")
    elif "field" in value:
        reader.fail("health.field", "only a percentile (p95, ...) takes 'field'")
    min_events = value.get("min_events", 0)
    if not isinstance(min_events, int) or isinstance(min_events, bool) or min_events < 0:
        reader.fail("health.min_events", f"expected an integer >= 0, got {min_events!r}")
    share = _number(reader, value, "max_client_share")
    if share is not None and share > 1:
        reader.fail("health.max_client_share", f"expected a share from 0 to 1, got {share!r}")
    segments = value.get("path_segments", 0)
    if not isinstance(segments, int) or isinstance(segments, bool) or not 0 <= segments <= 8:
        reader.fail("health.path_segments", f"expected an integer from 0 to 8, got {segments!r}")
    if segments and "url_path" not in schema.names:
        reader.fail("health.path_segments", "only access events have a url_path")
    spec = HealthSpec(
        measure=measure,
        window=window,
        every=every,
        of=of,
        field=field,
        hold=hold,
        above=_number(reader, value, "above", None),
        below=_number(reader, value, "below", None),
        min_events=min_events,
        baseline=baseline,
        above_baseline=_number(reader, value, "above_baseline"),
        below_baseline=_number(reader, value, "below_baseline"),
        min_baseline=_number(reader, value, "min_baseline") or 0.0,
        path_segments=segments,
        max_client_share=share,
    )
    if all(getattr(spec, k) is None for k in ("above", "below", "above_baseline", "below_baseline")):
        reader.fail("health", "needs a threshold: above, below, above_baseline or below_baseline")
    if spec.uses_baseline and baseline <= 0:
        reader.fail("health.baseline", "is required with above_baseline, below_baseline or min_baseline")
    return spec
