"""Health rules in the Beam shell: the batch replay and a live stream (TestStream) raise what the pure replay raises."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.coders import PickleCoder
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window

from alerts.engine import replay
from alerts.observe import Observer
from alerts.rules import RuleSet, load_rules
from parsers.files import parse_file
from pipelines.detect import Detect
from pipelines.read import open_raw
from tests.alerts.health_logs import LOG_FORMAT, write_logs


@pytest.fixture(scope="module")
def outage(tmp_path_factory):
    """The generated three-host log with its outages, parsed into the batches a run would see."""
    access, error = write_logs(tmp_path_factory.mktemp("outage"), incidents=True)
    events = {
        "access": [r.events for r in parse_file(open_raw, str(access), LOG_FORMAT, chunk_bytes=256 * 1024)],
        "error": [r.events for r in parse_file(open_raw, str(error), "nginx_error")],
    }
    assert len(events["access"]) > 3, "several batches, so the fold meets cells of one minute in pieces"
    return events


def health_rules() -> RuleSet:
    return RuleSet(tuple(r for r in load_rules().rules if r.is_health))


def expected(rules, events) -> list[tuple]:
    hits = [h for dataset, batches in events.items() for b in batches for h in Observer(rules, dataset).observe(b)]
    return comparable(replay(rules, hits))


def comparable(alerts) -> list[tuple]:
    return sorted(
        (a["alert_id"], a["rule_id"], a["group_key"], str(a["first_seen"]), a["count"], str(a["health"]))
        for a in alerts
    )


def as_row(alert) -> tuple:
    return comparable([alert])[0]


def test_batch_detect_transform_raises_the_replay_health_alerts(outage):
    rules = health_rules()
    want = expected(rules, outage)
    assert {(w[1], w[2]) for w in want} == {
        ("health-5xx-surge", "shop.example"),
        ("health-host-silent", "blog.example"),
        ("health-latency-regression", "api.example"),
        ("health-upstream-errors", "shop.example"),
    }
    assert len(want) == 8  # each fired and resolved once
    with beam.Pipeline(runner="FnApiRunner") as p:
        events = {name: p | f"Create{name}" >> beam.Create(batches) for name, batches in outage.items()}
        alerts = events | Detect(rules, shards=4, bounded=True) | beam.Map(as_row)
        assert_that(alerts, equal_to(want))


def test_streaming_detect_on_watermarks_raises_the_same_health_alerts(outage):
    rules = health_rules()
    access = {"access": outage["access"]}
    want = expected(rules, access)
    stream = TestStream(coder=PickleCoder())
    for b in outage["access"]:  # each batch arrives, then the watermark passes its last event
        last = b.column("timestamp")[-1].as_py().timestamp()
        stream = stream.add_elements([window.TimestampedValue(b, last)]).advance_watermark_to(last + 1)
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(runner="BundleBasedDirectRunner", options=options) as p:
        alerts = p | stream | Detect(rules, shards=4) | beam.Map(as_row)
        assert_that(alerts, equal_to(want))
