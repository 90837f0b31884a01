"""Pub/Sub and Kafka sources: the graph after the source is the one ``logwarden stream`` runs on files."""

from __future__ import annotations

import dataclasses
import importlib.util

import apache_beam as beam
import pytest

from pipelines import stream_sources
from pipelines.stream import LiveSteps, build_stream
from schemas.config import Config, ConfigError, KafkaSourceConfig, PubSubSourceConfig, StreamConfig


def with_source(config: Config, source: str, **parts) -> Config:
    return dataclasses.replace(config, stream=dataclasses.replace(StreamConfig(), source=source, **parts))


def after_source(pipeline: beam.Pipeline) -> list[tuple[str, str]]:
    """Every transform under ``Live/``: its label and its type (DoFns by class)."""
    found = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            if node.full_label.startswith("Live/"):
                fn = getattr(node.transform, "fn", None)
                found.append((node.full_label, type(getattr(fn, "_inner", fn) or node.transform).__name__))

        enter_composite_transform = visit_transform

    pipeline.visit(Visitor())
    return found


def test_every_step_after_a_kafka_source_is_the_file_stream_graph_object(tmp_path, monkeypatch, archive_config):
    calls = []

    class RecordedReadFromKafka(beam.PTransform):
        def __init__(self, consumer_config, topics, expansion_service=None):
            super().__init__()
            calls.append((consumer_config, topics, expansion_service))

        def expand(self, pbegin):
            return pbegin | beam.Create([(b"k", b'10.0.0.1 - - [01/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5')])

    monkeypatch.setattr(stream_sources, "ReadFromKafka", RecordedReadFromKafka)
    kafka = KafkaSourceConfig(bootstrap_servers="k1:9092,k2:9092", topics=("web",), expansion_service="exp:8097")
    config = with_source(archive_config, "kafka", kafka=kafka)
    live = LiveSteps(str(tmp_path / "out"), config, "run")
    files_pipeline, kafka_pipeline = beam.Pipeline(), beam.Pipeline()
    build_stream(files_pipeline, [str(tmp_path / "*.log")], str(tmp_path / "out"), archive_config, "run", live)
    build_stream(kafka_pipeline, [], str(tmp_path / "out"), config, "run", live)
    assert calls == [
        ({"bootstrap.servers": "k1:9092,k2:9092", "group.id": "logwarden", "auto.offset.reset": "earliest"},
         ["web"], "exp:8097")
    ]  # fmt: skip
    steps = after_source(files_pipeline)
    assert steps == after_source(kafka_pipeline)
    assert {"ParseChunkFn", "EnrichBatchFn", "ObserveFn", "LiveCommitFn"} <= {kind for _, kind in steps}


def test_kafka_stops_at_the_expansion_service_call_with_a_clear_error(tmp_path, archive_config):
    kafka = KafkaSourceConfig(bootstrap_servers="localhost:9092", topics=("web",), expansion_service="localhost:1")
    config = with_source(archive_config, "kafka", kafka=kafka)
    with pytest.raises(stream_sources.SourceError, match=r"kafka: the Java expansion service \(localhost:1\)"):
        build_stream(beam.Pipeline(), [], str(tmp_path / "out"), config, "run")


def test_kafka_and_pubsub_configs_name_the_missing_key(tmp_path, archive_config):
    with pytest.raises(ConfigError, match=r"stream\.kafka\.topics"):
        stream_sources.kafka_consumer_config(
            with_source(archive_config, "kafka", kafka=KafkaSourceConfig(bootstrap_servers="k:9092"))
        )
    with pytest.raises(ConfigError, match=r"stream\.pubsub\.subscription"):
        build_stream(beam.Pipeline(), [], str(tmp_path), with_source(archive_config, "pubsub"), "run")


@pytest.mark.skipif(
    importlib.util.find_spec("google.cloud.pubsub") is None if importlib.util.find_spec("google.cloud") else True,
    reason="apache-beam[gcp] is not installed here; `make test` runs this test in its own venv (make test-pubsub)",
)
def test_pubsub_graph_builds_and_everything_after_the_source_is_the_file_stream_graph(tmp_path, archive_config):
    pubsub = PubSubSourceConfig(subscription="projects/example-project/subscriptions/web-logs")
    config = with_source(archive_config, "pubsub", pubsub=pubsub)
    live = LiveSteps(str(tmp_path / "out"), config, "run")
    files_pipeline, pubsub_pipeline = (
        beam.Pipeline(),
        beam.Pipeline(options=beam.pipeline.PipelineOptions(["--streaming"])),
    )
    build_stream(files_pipeline, [str(tmp_path / "*.log")], str(tmp_path / "out"), archive_config, "run", live)
    build_stream(pubsub_pipeline, [], str(tmp_path / "out"), config, "run", live)
    assert after_source(files_pipeline) == after_source(pubsub_pipeline)
    labels = [node for node in pubsub_pipeline.to_runner_api().components.transforms.values()]
    assert any("ReadFromPubSub" in t.unique_name for t in labels)


def test_message_chunks_carry_their_lines_and_source():
    fn = stream_sources.MessageToChunkFn("kafka://web", "auto", "UTC")
    [(tag, chunk)] = list(fn.process((b"key", b"a line")))
    assert tag == "chunk" and chunk.data == b"a line\n" and chunk.path == "kafka://web" and chunk.format == "combined"
