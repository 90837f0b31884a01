"""Message sources for the stream on a cluster: Pub/Sub (Dataflow) and Kafka (Flink, Dataflow).

Each message holds one or more log lines; it becomes the same ``("chunk", LineChunk)``
envelope the file follower sends, and a ``PeriodicImpulse`` sends the ticks that
fold detection and cut the archive, so ``LiveSteps`` after the source is the very
graph of ``logwarden stream`` on files.  Positions in the messages are the
broker's business (acknowledgement, committed offsets), not the checkpoint's.

``ReadFromPubSub`` needs ``apache-beam[gcp]`` (``pip install 'logwarden[pubsub]'``).
``ReadFromKafka`` is a Java transform: building the graph calls a Beam expansion
service (``stream.kafka.expansion_service``, or a jar Beam downloads), so it cannot
even be built offline without one.
"""

from __future__ import annotations

import time

import apache_beam as beam
from apache_beam.io.kafka import ReadFromKafka
from apache_beam.transforms.periodicsequence import PeriodicImpulse

from parsers.lines import LineChunk
from pipelines.live import Tick
from schemas.config import Config, ConfigError

CHUNK, TICK = "chunk", "tick"


class SourceError(RuntimeError):
    """A configured message source cannot be built (missing extra, unreachable expansion service)."""


def _as_lines(payload: bytes) -> bytes:
    return payload if payload.endswith(b"\n") else payload + b"\n"


class MessageToChunkFn(beam.DoFn):
    """A Pub/Sub message or Kafka record to a chunk envelope of its lines."""

    def __init__(self, default_path: str, format_spec: str, timezone: str, path_attribute: str = ""):
        self._default_path = default_path
        self._format = format_spec if format_spec != "auto" else "combined"
        self._timezone = timezone
        self._path_attribute = path_attribute

    def process(self, message):
        path = self._default_path
        if isinstance(message, tuple):  # Kafka: (key, value)
            payload = message[1]
        elif hasattr(message, "data"):  # PubsubMessage
            payload = message.data
            path = (message.attributes or {}).get(self._path_attribute, path)
        else:
            payload = message
        if payload:
            yield CHUNK, LineChunk(path, 0, 1, _as_lines(bytes(payload)), self._format, self._timezone)


def _ticks(pipeline: beam.Pipeline, config: Config):
    return (
        pipeline
        | "Clock" >> PeriodicImpulse(fire_interval=max(config.stream.poll_seconds, 0.1))
        | "Ticks" >> beam.Map(lambda _: (TICK, Tick((), 0, False, time.time())))
    )


def pubsub_envelopes(pipeline: beam.Pipeline, config: Config):
    pubsub = config.stream.pubsub
    if not (pubsub.subscription or pubsub.topic):
        raise ConfigError("stream.pubsub.subscription", "name a subscription (or a topic) for the pubsub source")
    try:
        from apache_beam.io.gcp.pubsub import ReadFromPubSub
    except ImportError:
        raise SourceError("the pubsub source needs apache-beam[gcp]: pip install 'logwarden[pubsub]'") from None
    read = ReadFromPubSub(
        subscription=pubsub.subscription or None, topic=None if pubsub.subscription else pubsub.topic,
        with_attributes=True,
    )  # fmt: skip
    name = pubsub.subscription or pubsub.topic
    messages = pipeline | "ReadFromPubSub" >> read
    chunks = messages | "ToChunks" >> beam.ParDo(
        MessageToChunkFn(f"pubsub://{name}", config.input.format, config.input.timezone, pubsub.path_attribute)
    )
    return (chunks, _ticks(pipeline, config)) | "WithTicks" >> beam.Flatten()


def kafka_consumer_config(config: Config) -> dict[str, str]:
    kafka = config.stream.kafka
    if not kafka.bootstrap_servers:
        raise ConfigError("stream.kafka.bootstrap_servers", "name the brokers (host:port,...) for the kafka source")
    if not kafka.topics:
        raise ConfigError("stream.kafka.topics", "name at least one topic for the kafka source")
    return {"bootstrap.servers": kafka.bootstrap_servers, "group.id": kafka.group_id, "auto.offset.reset": "earliest"}


def kafka_envelopes(pipeline: beam.Pipeline, config: Config):
    kafka = config.stream.kafka
    consumer = kafka_consumer_config(config)
    try:
        records = pipeline | "ReadFromKafka" >> ReadFromKafka(
            consumer_config=consumer, topics=list(kafka.topics), expansion_service=kafka.expansion_service or None
        )
    except Exception as problem:  # gRPC or download errors from the Java expansion service
        where = kafka.expansion_service or "the jar Beam downloads"
        first = str(problem).strip().splitlines()[0] if str(problem).strip() else type(problem).__name__
        raise SourceError(
            f"kafka: the Java expansion service ({where}) could not expand ReadFromKafka: {first}"
        ) from None
    chunks = records | "ToChunks" >> beam.ParDo(
        MessageToChunkFn(f"kafka://{','.join(kafka.topics)}", config.input.format, config.input.timezone)
    )
    return (chunks, _ticks(pipeline, config)) | "WithTicks" >> beam.Flatten()
