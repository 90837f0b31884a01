"""Large elements never fall back to pickle: Beam samples element sizes by encoding them, so a record batch
or traffic partial without its own coder was pickled whole (megabytes) at every sample of every step."""

from __future__ import annotations

import collections
import pickle

import pyarrow as pa
from apache_beam.coders import coder_impl, coders

from pipelines.batch import run_batch
from pipelines.options import pipeline_options
from pipelines.reports.traffic import TrafficPartial

LARGE = (pa.RecordBatch, pa.Table, TrafficPartial)


def test_a_batch_run_pickles_no_record_batch_or_traffic_partial(examples, tmp_path, archive_config, monkeypatch):
    pickled: collections.Counter = collections.Counter()

    def recording_impl(self):
        def dumps(value):
            if isinstance(value, LARGE) or (isinstance(value, tuple) and any(isinstance(v, LARGE) for v in value)):
                pickled[type(value).__name__] += 1
            return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

        return coder_impl.CallbackCoderImpl(dumps, pickle.loads)

    monkeypatch.setattr(coders.PickleCoder, "_create_impl", recording_impl)
    options = pipeline_options(["--runner=FnApiRunner"], archive_config.runner)
    run = run_batch([str(examples / "logs" / "access.log")], str(tmp_path / "out"), archive_config, options)
    assert run.counts.lines_read > 0
    assert not pickled, f"pickled by Beam's fallback coder: {dict(pickled)}"
