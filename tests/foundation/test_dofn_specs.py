"""Beam's DoFn state-and-timer lookup, remembered per DoFn: the same answers, one lookup per DoFn."""

from __future__ import annotations

import collections

import apache_beam as beam
import pytest
from apache_beam.coders import VarIntCoder
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import userstate
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from pipelines import dofn_specs


class RunningTotal(beam.DoFn):
    """A stateful DoFn: each key's running total."""

    TOTAL = ReadModifyWriteStateSpec("total", VarIntCoder())

    def process(self, element, total=beam.DoFn.StateParam(TOTAL)):  # noqa: B008 (Beam's state injection)
        key, value = element
        running = (total.read() or 0) + value
        total.write(running)
        yield key, running


class Twice(beam.DoFn):
    """Two state parameters of the same spec: Beam refuses it."""

    TOTAL = ReadModifyWriteStateSpec("total", VarIntCoder())

    def process(self, element, a=beam.DoFn.StateParam(TOTAL), b=beam.DoFn.StateParam(TOTAL)):  # noqa: B008
        yield element


ASKED: collections.Counter = collections.Counter()


@pytest.fixture
def lookups(monkeypatch):
    """Beam's own lookup counted per DoFn behind the memo, and (``ASKED``) how often Beam asked the memo."""
    counts: collections.Counter = collections.Counter()
    original = getattr(userstate.get_dofn_specs, "original", userstate.get_dofn_specs)

    def counted(dofn):
        counts[type(dofn).__name__] += 1
        return original(dofn)

    remembered = dofn_specs._remembered(counted)

    def asked(dofn):
        ASKED[type(dofn).__name__] += 1
        return remembered(dofn)

    ASKED.clear()
    monkeypatch.setattr(userstate, "get_dofn_specs", asked)
    return counts


def test_a_stateful_pipeline_runs_as_before_with_one_lookup_per_dofn(lookups):
    with TestPipeline() as pipeline:
        totals = (
            pipeline
            | beam.Create([("a", 1), ("b", 5), ("a", 2)])
            | "Total" >> beam.ParDo(RunningTotal())
            | "Stateless" >> beam.Map(lambda kv: kv)
        )
        assert_that(totals, equal_to([("a", 1), ("a", 3), ("b", 5)]))
    state, timers = userstate.get_dofn_specs(RunningTotal())
    assert [spec.name for spec in state] == ["total"] and timers == set()
    # Made, validated, turned into the runner API, unpickled by the runner: Beam asks for each DoFn object
    # several times; it is looked up once per object (the runner's unpickled copies are objects of their own).
    assert ASKED["RunningTotal"] > 2 * lookups["RunningTotal"] >= 2


def test_a_dofn_beam_refuses_is_refused_every_time(lookups):
    dofn = Twice()
    for _ in range(2):
        with pytest.raises(ValueError, match="duplicate"):
            userstate.get_dofn_specs(dofn)
    assert lookups["Twice"] == 2


def test_install_is_idempotent(monkeypatch):
    monkeypatch.setattr(userstate, "get_dofn_specs", userstate.get_dofn_specs)
    dofn_specs.install()
    once = userstate.get_dofn_specs
    dofn_specs.install()
    assert userstate.get_dofn_specs is once and not hasattr(once.original, "original")
