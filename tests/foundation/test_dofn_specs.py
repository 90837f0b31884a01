"""Beam's DoFn introspection, remembered: the same answers, one lookup per DoFn or function."""

from __future__ import annotations

import collections
import inspect
import sys

import apache_beam as beam
import pytest
from apache_beam.coders import VarIntCoder
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import core, userstate
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.typehints import decorators, trivial_inference

from pipelines import dofn_specs
from tests.conftest import EXAMPLES


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


def test_a_dofn_mixing_yield_and_return_is_still_found_with_its_source_read_once(monkeypatch):
    calls, remembered = _counted(monkeypatch, core, "_check_fn_use_yield_and_return", dofn_specs._source_checked_once)
    monkeypatch.setattr(core, "_check_fn_use_yield_and_return", remembered)  # what ParDo asks, to warn
    beam.ParDo(Mixed()), beam.ParDo(Mixed()), beam.ParDo(RunningTotal())
    assert len(calls) == 2  # Mixed.process and RunningTotal.process, each read once
    assert [remembered(Mixed().process), remembered(RunningTotal().process)] == [True, False]
    assert core._check_fn_use_yield_and_return.original(Mixed().process) is True  # Beam's own answer


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


def _batch_graph_types(config, tmp_path, name) -> dict[str, str]:
    """Every PCollection of the batch graph over the example logs, by its producer's label: its element type."""
    from pipelines.batch import build_batch_pipeline
    from pipelines.options import pipeline_options
    from schemas.config import RunnerConfig

    pipeline = beam.Pipeline(options=pipeline_options(["--direct_num_workers=1"], RunnerConfig()))
    build_batch_pipeline(pipeline, [str(EXAMPLES / "logs")], str(tmp_path / name), config, "20261202T000000Z-abcdef")
    types: dict[str, str] = {}

    class Collect(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            for tag, pcoll in node.outputs.items():
                types[f"{node.full_label}[{tag}]"] = repr(pcoll.element_type)

        enter_composite_transform = visit_transform

    pipeline.visit(Collect())
    return types


def test_logwardens_dofns_are_typed_any_without_inference_as_beam_infers_them(archive_config, tmp_path, monkeypatch):
    """If a DoFn of ours ever gets a type Beam can infer, this fails: then it must declare it (or be left out)."""
    inferences: list = []
    infer = trivial_inference.infer_return_type
    monkeypatch.setattr(trivial_inference, "infer_return_type", lambda *a, **k: inferences.append(a) or infer(*a, **k))
    dofn_specs.install()
    skipped, asked = _batch_graph_types(archive_config, tmp_path, "skipped"), len(inferences)
    for cls in (core.DoFn, core.CallableWrapperDoFn):
        monkeypatch.setattr(cls, "infer_output_type", cls.infer_output_type.original)
    inferred = _batch_graph_types(archive_config, tmp_path, "inferred")
    assert skipped == inferred and len(inferred) > 50
    assert len(inferences) - asked > 5 * asked  # most of the interpreting was of our DoFns'
    assert dofn_specs._logwardens(beam.Map(len).fn) is False  # Beam's and other code's are inferred as before
