"""The job's pipeline options keep each view: Beam asks for views hundreds of times while building a graph."""

from __future__ import annotations

import argparse
import copy
import pickle

import apache_beam as beam
from apache_beam.options.pipeline_options import DebugOptions, StandardOptions, TypeOptions

from pipelines.options import pipeline_options
from schemas.config import RunnerConfig


def _options():
    return pipeline_options(["--direct_num_workers=1"], RunnerConfig())


def test_a_view_is_made_once_and_stays_current():
    options = _options()
    view = options.view_as(DebugOptions)
    assert options.view_as(DebugOptions) is view
    view.experiments = ["one"]
    options.view_as(StandardOptions).streaming = True
    assert options.get_all_options()["experiments"] == ["one"]
    assert options.view_as(StandardOptions).streaming and options.get_all_options()["streaming"]
    assert options.view_as(TypeOptions).pipeline_type_check  # Beam's own defaults still parsed


def test_copies_and_pickles_carry_the_options_not_the_views():
    options = _options()
    options.view_as(DebugOptions).experiments = ["two"]
    for other in (copy.deepcopy(options), pickle.loads(pickle.dumps(options))):
        assert other.view_as(DebugOptions).experiments == ["two"]
        other.view_as(DebugOptions).experiments = ["three"]
        assert options.view_as(DebugOptions).experiments == ["two"]  # its own views, of its own options


def test_building_a_graph_parses_the_flags_a_few_times(monkeypatch):
    """Guard on a Beam internal: each new view parses every flag again (~0.5 ms each, ~220 views a job)."""
    parses = []
    original = argparse.ArgumentParser.parse_known_args
    monkeypatch.setattr(
        argparse.ArgumentParser, "parse_known_args", lambda self, *a, **k: parses.append(1) or original(self, *a, **k)
    )
    pipeline = beam.Pipeline(options=_options())
    values = pipeline | beam.Create([1, 2, 3])
    for i in range(20):
        values = values | f"Step{i}" >> beam.Map(lambda v: v + 1).with_output_types(int)
    assert len(parses) < 20
