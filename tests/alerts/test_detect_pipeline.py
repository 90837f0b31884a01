"""The Beam shell: batch replay and a live stream (TestStream) raise the alerts the pure replay raises."""

from __future__ import annotations

import json
import pickle

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.coders import PickleCoder
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from alerts.engine import replay
from alerts.observe import Observer
from pipelines.batch import run_batch
from pipelines.detect import END_OF_INPUT_US, Detect
from pipelines.options import pipeline_options
from retention.alert_store import read_alerts
from tests.alerts.events import access, batch, error, error_batch

ATTACKER, BRUTE, SCANNER, FORMBOT = "192.0.2.66", "192.0.2.77", "192.0.2.88", "192.0.2.99"


def traffic() -> list[list[dict]]:
    """Four batches over ten minutes: a slow SQLi probe, a brute force across batch edges, a 404 scan, a bot
    fetching forms and posting them back within a second (a sequence across a batch edge)."""
    rows = []
    for i in range(600):
        rows.append(access(i, ip=f"198.51.100.{i % 50}", url=f"/page/{i % 17}"))
        if i % 45 == 0:
            rows.append(access(i, ip=ATTACKER, url=f"/item?id={i}%27%20UNION%20SELECT%20secret%20FROM%20t--"))
        if 140 <= i < 160:
            rows.append(access(i, ip=BRUTE, url="/wp-login.php", method="POST"))
        if 300 <= i < 340:
            rows.append(access(i, ip=SCANNER, url=f"/old/{i}.php", status=404))
        if i in (326, 333):
            rows.append(access(i, ip=FORMBOT, url="/signup"))
        if i in (327, 334):
            rows.append(access(i - 0.5, ip=FORMBOT, url="/signup", method="POST", status=302))
    return [rows[k : k + 200] for k in range(0, len(rows), 200)]


def comparable(alerts) -> list[str]:
    return sorted(
        json.dumps({k: str(v) for k, v in a.items() if k not in ("detected_at", "evidence")}, sort_keys=True)
        for a in alerts
    )


def batches_with_offsets(pieces):
    out, line = [], 0
    for piece in pieces:
        b = batch(piece)
        offsets = pa.array([100 * (line + i) for i in range(len(piece))], pa.int64())
        out.append(b.set_column(b.schema.get_field_index("log_offset"), "log_offset", offsets))
        line += len(piece)
    return out


def expected(rules, batches):
    observer = Observer(rules, "access")
    return replay(rules, [h for b in batches for h in observer.observe(b)])


@pytest.mark.parametrize("bounded", [True, False])
def test_batch_replay_in_beam_matches_the_pure_replay(default_rules, bounded):
    batches = batches_with_offsets(traffic())
    want = expected(default_rules, batches)
    assert {a["source_ip"] for a in want} >= {ATTACKER, BRUTE, SCANNER, FORMBOT}
    assert ("http-form-posted-at-machine-speed", FORMBOT) in {(a["rule_id"], a["source_ip"]) for a in want}
    with beam.Pipeline(runner="FnApiRunner") as p:
        detect = Detect(default_rules, shards=4, bounded=bounded)
        alerts = p | beam.Create(batches) | detect | beam.Map(lambda a: comparable([a])[0])
        assert_that(alerts, equal_to(comparable(want)))


def test_live_stream_raises_the_same_alerts_with_the_same_ids_and_times(default_rules):
    batches = batches_with_offsets(traffic())
    want = expected(default_rules, batches)
    stream = TestStream(coder=PickleCoder())
    for b in batches:  # each batch arrives, then the watermark passes its last event
        last = b.column("timestamp")[-1].as_py().timestamp()
        stream = stream.add_elements([window.TimestampedValue(b, last)]).advance_watermark_to(last + 1)
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    # FnApiRunner cannot run TestStream; the bundle-based direct runner runs it with state and timers.
    with beam.Pipeline(runner="BundleBasedDirectRunner", options=options) as p:
        alerts = p | stream | Detect(default_rules, shards=4) | beam.Map(lambda a: comparable([a])[0])
        assert_that(alerts, equal_to(comparable(want)))


def test_error_events_are_detected_alongside_access_events(default_rules):
    errors = error_batch([error(i, 'limiting requests, excess: 3.1 by zone "one"') for i in range(6)])
    with beam.Pipeline(runner="FnApiRunner") as p:
        events = {"access": p | "Access" >> beam.Create(batches_with_offsets(traffic())[:1]),
                  "error": p | "Errors" >> beam.Create([errors])}  # fmt: skip
        rules = events | Detect(default_rules, shards=2) | beam.Map(lambda a: (a["rule_id"], a["source_ip"]))
        assert_that(
            rules,
            equal_to(
                [
                    ("error-rate-limited", "198.51.100.7"),
                    ("http-sqli", ATTACKER),
                    ("http-login-bruteforce", BRUTE),
                    ("http-form-bot", BRUTE),
                    ("http-wordpress-bf", BRUTE),  # the brute force posts to wp-login.php (CrowdSec's scenario)
                    ("http-form-post-rate", BRUTE),
                ]
            ),
        )


def test_logwarden_batch_archives_its_alerts_encrypted(corpora, tmp_path, archive_config, reader):
    run = run_batch(
        [str(corpora / "elastic-examples/apache_logs/apache_logs")],
        str(tmp_path),
        archive_config,
        pipeline_options([], archive_config.runner),
    )
    alerts = read_alerts(tmp_path, reader)
    from tests.alerts.test_corpus_false_positives import EXPECTED  # the justified alerts of this log

    assert len(alerts) == sum(run.counts.alerts_by_rule.values()) == len(EXPECTED)
    assert run.counts.alerts_by_rule["http-probe-paths"] == 7
    assert all(a["evidence"] and a["evidence"][0]["log_offset"] >= 0 for a in alerts)
    assert not list((tmp_path / "alerts").glob("*.jsonl")), "no plaintext alerts file unless a sink names one"
    assert not list((tmp_path / ".tmp").glob("*/alerts")), "no staging left behind"


class _FireAtEndOfInput(beam.DoFn):
    END = TimerSpec("end", TimeDomain.WATERMARK)

    def process(self, element, end=beam.DoFn.TimerParam(END)):  # noqa: B008 (Beam's timer injection)
        end.set(Timestamp(micros=END_OF_INPUT_US))

    @on_timer(END)
    def on_end(self, fired_at=beam.DoFn.TimestampParam):
        yield fired_at.micros >= END_OF_INPUT_US


def test_a_bounded_replay_knows_its_last_fold():
    """Timers fire at millisecond precision: the end-of-input timer must still be recognised as the end,
    or the last fold keeps (and pickles) every key's state for a future that never comes."""
    with beam.Pipeline(runner="FnApiRunner") as p:
        seen = p | beam.Create([(0, "x")]) | beam.ParDo(_FireAtEndOfInput())
        assert_that(seen, equal_to([True]))


def test_a_bounded_replay_sends_each_shard_one_element_per_bundle(default_rules):
    """The stateful step costs per element (state, pickling, Beam's state cache): a bundle of batches leaves a
    bounded replay's observing step as at most one element per shard, all of its hits in it."""
    from apache_beam.transforms.window import GlobalWindow

    from pipelines.detect import BundledObserveFn, ObserveFn

    batches = batches_with_offsets(traffic())
    apart = ObserveFn(default_rules, "access", 4)
    apart.setup()
    one_by_one = [element for b in batches for element in apart.process(b)]
    bundled = BundledObserveFn(default_rules, "access", 4)
    bundled.setup()
    bundled.start_bundle()
    for b in batches:
        assert bundled.process(b, Timestamp(micros=1), GlobalWindow()) is None  # held until the bundle ends
    out = list(bundled.finish_bundle())
    shards = [value.value[0] for value in out]
    assert len(shards) == len(set(shards)) < len(one_by_one)
    assert {value.timestamp for value in out} == {Timestamp(micros=1)}

    def rows(elements):
        return sorted((h.rule_id, int(t), int(o)) for _, (_, b) in elements for h in pickle.loads(b)
                      if hasattr(h, "offsets") for t, o in zip(h.ts, h.offsets))  # fmt: skip

    assert rows(value.value for value in out) == rows(one_by_one)
    # ...each rule whole on one shard: it is folded once, not once per shard
    shard_of_rule = {}
    for value in out:
        shard, (_, pickled) = value.value
        for hits in pickle.loads(pickled):
            assert shard_of_rule.setdefault(hits.rule_id, shard) == shard


def test_detect_dofns_carry_their_rule_set_packed_once_and_unpack_it_once_per_process(monkeypatch):
    """Beam pickles each DoFn when its ParDo is made and again into the graph, and each worker unpickles it: the
    rule set inside is packed once for all the DoFns, and a process unpacks it once (the building one never)."""
    from apache_beam.internal import pickler

    from alerts.rules import load_configured_rules
    from pipelines import detect
    from schemas.config import AlertsConfig

    rules = load_configured_rules(AlertsConfig())
    fns = [
        detect.SpillHitsFn(rules, "access", 4, "out", "run", b"k" * 32),
        detect.SpillHitsFn(rules, "error", 4, "out", "run", b"k" * 32),
        detect.FoldShardFn(rules, b"k" * 32),
        detect.EvaluateOverTimeFn(rules, bounded=True),
    ]
    pickled = [pickler.dumps(fn) for fn in fns]
    assert {detect.PackedRules.of(rules)} == {fn.__getstate__()["_rules"] for fn in fns}
    assert all(pickler.loads(data)._rules is rules for data in pickled), "the building process unpacks nothing"

    monkeypatch.setattr(detect, "_RULES_BY_DIGEST", {})  # as in a worker process of its own
    copies = [pickler.loads(data) for data in pickled]
    assert copies[0]._rules == rules and all(copy._rules is copies[0]._rules for copy in copies)


def test_a_bounded_run_hands_the_heaps_free_pages_back_before_each_observing(default_rules, tmp_path, monkeypatch):
    """Observing held rows is the main stage's peak (the joined rows, the rules' temporaries): it must not come on
    top of free heap pages glibc kept resident (20-30 MiB of them at the 1M-line bench's peak)."""
    from pipelines import detect

    order = []
    monkeypatch.setattr(detect, "trim_heap", lambda: order.append("trim"))
    observe = Observer.observe
    monkeypatch.setattr(Observer, "observe", lambda self, *a, **k: order.append("observe") or observe(self, *a, **k))
    monkeypatch.setattr(detect, "JOINED_ROWS", 200)
    fn = detect.SpillHitsFn(default_rules, "access", 4, str(tmp_path), "run", b"k" * 32)
    fn.setup()
    fn.start_bundle()
    for b in batches_with_offsets(traffic()):
        fn.process(b)
    spilled = list(fn.finish_bundle())
    assert spilled and order.count("observe") > 1
    assert order == ["trim", "observe"] * order.count("observe")
