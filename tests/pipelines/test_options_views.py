"""The job's options make one view per options class, however many transforms Beam applies."""

from __future__ import annotations

import pickle

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions, TypeOptions

from pipelines.options import pipeline_options
from schemas.config import RunnerConfig


def test_building_a_job_parses_the_flags_once_per_options_class_not_once_per_transform(monkeypatch):
    made = []
    view_as = PipelineOptions.view_as
    monkeypatch.setattr(PipelineOptions, "view_as", lambda self, cls: made.append(cls) or view_as(self, cls))
    options = pipeline_options(["--direct_num_workers=2"], RunnerConfig())
    pipeline = beam.Pipeline(options=options)
    numbers = pipeline | beam.Create([1, 2, 3])
    for step in range(40):
        numbers = numbers | f"Add{step}" >> beam.Map(lambda n: n + 1)
    assert len(made) < 20  # was a new view (every flag parsed again) at each of 40 steps: 100 and more


def test_every_view_reads_and_sets_the_same_values():
    options = pipeline_options(["--direct_num_workers=2", "--direct_running_mode=multi_processing"], RunnerConfig())
    assert options.view_as(DirectOptions) is options.view_as(DirectOptions)
    options.view_as(DirectOptions).direct_num_workers = 3
    assert options.get_all_options()["direct_num_workers"] == 3
    options.view_as(TypeOptions).pipeline_type_check = False
    assert not options.get_all_options()["pipeline_type_check"]


def test_the_options_pickle_without_their_views():
    options = pipeline_options([], RunnerConfig())
    options.view_as(StandardOptions)
    copy = pickle.loads(pickle.dumps(options))
    assert "_views" not in copy.__dict__
    assert copy.view_as(StandardOptions).runner == options.view_as(StandardOptions).runner
