"""The job's pipeline options keep each view: Beam asks for views hundreds of times while building a graph, and
so does logwarden, to know how the job runs."""

from __future__ import annotations

import argparse
import copy
import pickle

import apache_beam as beam
from apache_beam.options.pipeline_options import DebugOptions, DirectOptions, StandardOptions, TypeOptions

from pipelines.options import (
    _beam_parser,
    beam_flags,
    local_worker_processes,
    pipeline_options,
    quiet_local_workers,
    unknown_beam_args,
)
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


def test_the_job_asking_how_it_runs_parses_no_flags_again(monkeypatch):
    """The command, the read and the detect steps each ask how many local workers run: from the kept views."""
    options = pipeline_options(["--direct_num_workers=2", "--direct_running_mode=multi_processing"], RunnerConfig())
    assert local_worker_processes(options) == 2
    parses = []
    original = argparse.ArgumentParser.parse_known_args
    monkeypatch.setattr(
        argparse.ArgumentParser, "parse_known_args", lambda self, *a, **k: parses.append(1) or original(self, *a, **k)
    )
    assert [local_worker_processes(options) for _ in range(5)] == [2] * 5
    with quiet_local_workers(options):
        pass
    assert parses == []
    options.view_as(DirectOptions).direct_num_workers = 3  # a view reads the options' one dict: still current
    assert local_worker_processes(options) == 3


def test_the_command_lines_beam_flags_come_from_one_parser():
    assert "--direct_num_workers" in beam_flags() and unknown_beam_args(["--direct_num_wrkers=2"]) == [
        "--direct_num_wrkers=2"
    ]
    assert _beam_parser() is _beam_parser()
