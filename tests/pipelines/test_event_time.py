"""Every event batch carries its event time from parse on: the Beam timestamp of a batch is its newest event."""

from __future__ import annotations

import datetime as dt

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from parsers.lines import LineChunk
from pipelines.parse import ACCESS, ParseChunks

LINE = '198.51.100.{n} - - [0{d}/Nov/2026:23:59:5{n} +0000] "GET /page/{n} HTTP/1.1" 200 {n}0 "-" "agent/{n}"'


def test_parsed_batches_are_stamped_with_their_newest_event_time():
    chunks = [
        LineChunk("/a.log", 0, 1, (LINE.format(n=1, d=1) + "\n" + LINE.format(n=3, d=1) + "\n").encode(), "combined"),
        LineChunk("/a.log", 500, 3, (LINE.format(n=2, d=2) + "\n").encode(), "combined"),
    ]

    def stamp(batch, timestamp=beam.DoFn.TimestampParam):
        return timestamp.to_utc_datetime(has_tz=True)

    with TestPipeline(runner="FnApiRunner") as p:
        parsed = p | beam.Create(chunks) | ParseChunks()
        assert_that(
            parsed[ACCESS] | "EventTimes" >> beam.Map(stamp),
            equal_to(
                [
                    dt.datetime(2026, 11, 1, 23, 59, 53, tzinfo=dt.timezone.utc),
                    dt.datetime(2026, 11, 2, 23, 59, 52, tzinfo=dt.timezone.utc),
                ]
            ),
        )
