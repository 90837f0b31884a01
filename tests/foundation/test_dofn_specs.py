"""Beam's DoFn introspection, remembered: the same answers, one lookup per DoFn or function."""

from __future__ import annotations

import collections
import inspect
import logging
import sys

import apache_beam as beam
import pytest
from apache_beam.coders import VarIntCoder
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import core, userstate
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.typehints import decorators

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


class AddOne(beam.DoFn):
    def process(self, element):
        yield element + 1


class Mixed(beam.DoFn):
    """Yields and returns a value: Beam warns about it when a ParDo is made of it."""

    def process(self, element):
        if element:
            return [element]
        yield element


def _counted(monkeypatch, module, name, memo):
    """Beam's ``module.name`` counted per call behind a fresh ``memo`` of it, installed as Beam looks it up."""
    calls: list = []
    original = getattr(getattr(module, name), "original", getattr(module, name))

    def counted(*args):
        calls.append(args)
        return original(*args)

    return calls, memo(counted)


def test_each_function_signature_is_taken_once_and_is_beams(monkeypatch):
    calls, remembered = _counted(monkeypatch, decorators, "get_signature", dofn_specs._signature_once)
    for module in dofn_specs.SIGNATURE_CALLERS:
        monkeypatch.setattr(module, "get_signature", remembered)
    with TestPipeline() as pipeline:
        values = pipeline | beam.Create([1, 2, 3])
        for step in range(3):
            values = values | f"AddOne{step}" >> beam.ParDo(AddOne())
        assert_that(values, equal_to([4, 5, 6]))
    processes = [args for args in calls if getattr(args[0], "__name__", "") == "process"]
    assert len(processes) == len({getattr(f, "__func__", f) for (f,) in processes})  # one per function
    one, other = RunningTotal(), RunningTotal()
    assert remembered(one.process) is remembered(other.process) == decorators.get_signature.original(one.process)
    assert remembered(RunningTotal.process) == inspect.signature(RunningTotal.process)  # with its self
    assert remembered(str.upper) == decorators.get_signature.original(str.upper)  # builtins as Beam does


def test_a_dofn_mixing_yield_and_return_is_still_warned_about_with_its_source_read_once(monkeypatch, caplog):
    calls, remembered = _counted(monkeypatch, core, "_check_fn_use_yield_and_return", dofn_specs._source_checked_once)
    monkeypatch.setattr(core, "_check_fn_use_yield_and_return", remembered)
    with caplog.at_level(logging.WARNING, logger=core.__name__):  # whatever an earlier command set for Beam
        beam.ParDo(Mixed()), beam.ParDo(Mixed()), beam.ParDo(RunningTotal())
    assert sum("Using yield and return" in r.getMessage() for r in caplog.records) == 2
    assert len(calls) == 2  # Mixed.process and RunningTotal.process, each read once


def test_every_beam_module_calling_get_signature_gets_the_remembered_one():
    """Guard on Beam 2.77: a module that imported ``get_signature`` by name and is not patched would miss out."""
    import apache_beam.runners.common  # noqa: F401  (imported by any job: must be covered too)

    dofn_specs.install()
    original = decorators.get_signature.original
    holders = [
        name
        for name, module in list(sys.modules.items())
        if name.startswith("apache_beam") and getattr(module, "get_signature", None) is original
    ]
    assert holders == []
    assert all(module.get_signature is decorators.get_signature for module in dofn_specs.SIGNATURE_CALLERS)
