"""Beam's introspection of DoFns, done once per DoFn or function instead of again for every copy and check.

``apache_beam.transforms.userstate.get_dofn_specs`` takes ``inspect.signature`` of every method a DoFn has
(~30, most of them inherited) and is called for the same DoFn when the ParDo is made, validated, turned into
the runner API, and again for each copy a runner unpickles: 238 calls, 0.15 s of CPU in a batch job on any
input.  Its answer depends only on the DoFn's methods, which do not change, so it is remembered per DoFn
object (weakly: a DoFn that is gone leaves nothing behind).  A DoFn whose specs are invalid raises each time,
as before.

Below it, Beam's ``get_signature`` (``inspect.signature``) is asked ~1,400 times while a batch graph is built,
mostly for the same few dozen methods, and every ParDo reads its DoFn's ``process`` source again to warn about
``yield`` mixed with ``return``.  A function's signature and source do not change, so each is remembered per
function (per code object for the source check): ~0.05 s less CPU building the graph, and less in each
worker that builds its stages.

Beam also infers the output type of every DoFn that declares none by interpreting the bytecode of its
``process`` (``trivial_inference``): ~0.07 s of CPU per batch graph, and for every logwarden DoFn the answer
is ``Any``.  Logwarden's own DoFns (and functions given to ``Map``/``FlatMap``) are taken to give ``Any``
without it; ``tests/foundation/test_dofn_specs.py`` builds the batch graph both ways and checks that every
PCollection's type, and so every coder, is the same.

Relies on apache-beam 2.77's callers looking these up on their modules at call time
(``tests/foundation/test_dofn_specs.py`` checks).
"""

from __future__ import annotations

import types
import weakref

from apache_beam import typehints
from apache_beam.transforms import core, ptransform, userstate, util
from apache_beam.typehints import decorators

_specs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: The modules of Beam 2.77 that call ``get_signature`` by the name they imported.
SIGNATURE_CALLERS = (decorators, core, ptransform, util)


def _remembered(original):
    def get_dofn_specs(dofn):
        try:
            known = _specs.get(dofn)
        except TypeError:  # a DoFn that cannot be a weak key (unhashable, or with __slots__)
            return original(dofn)
        if known is None:
            state, timers = original(dofn)
            known = _specs[dofn] = (frozenset(state), frozenset(timers))
        return set(known[0]), set(known[1])

    get_dofn_specs.original = original
    get_dofn_specs.__doc__ = original.__doc__
    return get_dofn_specs


def _once_per_key(original, key_of):
    """``original`` remembered per weakly held ``key_of(argument)`` (``None``: asked every time, as Beam does)."""
    answers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def remembered(argument):
        key = key_of(argument)
        if key is None:
            return original(argument)
        known = answers.get(key)
        if known is None:
            known = answers[key] = original(argument)
        return known

    remembered.original = original
    remembered.__doc__ = original.__doc__
    return remembered


def _plain_function(func):
    return func if type(func) is types.FunctionType else None


def _bound_function(method):
    return method.__func__ if type(method.__func__) is types.FunctionType else None


def _signature_once(original):
    """``get_signature`` remembered per plain function, and per function for methods bound to any object (a
    bound method's signature is its function's without the first parameter, whatever it is bound to)."""
    plain, bound = _once_per_key(original, _plain_function), _once_per_key(original, _bound_function)

    def get_signature(func):
        return bound(func) if type(func) is types.MethodType else plain(func)

    get_signature.original = original
    get_signature.__doc__ = original.__doc__
    return get_signature


def _code_of(fn):
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return code if isinstance(code, types.CodeType) else None


def _source_checked_once(original):
    """Beam's warning check of a ``process`` method's source, remembered per code object (same code, same
    source lines)."""
    return _once_per_key(original, _code_of)


#: The packages whose DoFns and functions are logwarden's.
OWN_PACKAGES = ("alerts", "parsers", "pipelines", "retention", "schemas")


def _logwardens(dofn) -> bool:
    code = dofn._fn if isinstance(dofn, core.CallableWrapperDoFn) else dofn
    module = getattr(code, "__module__", None) or type(code).__module__
    return module.split(".", 1)[0] in OWN_PACKAGES


def _any_for_logwardens(original):
    """``infer_output_type`` of a DoFn class that answers ``Any`` for logwarden's DoFns without inferring."""

    def infer_output_type(self, input_type):
        return typehints.Any if _logwardens(self) else original(self, input_type)

    infer_output_type.original = original
    infer_output_type.__doc__ = original.__doc__
    return infer_output_type


def install() -> None:
    """Remember these answers in this process (idempotent)."""
    if not hasattr(userstate.get_dofn_specs, "original"):
        userstate.get_dofn_specs = _remembered(userstate.get_dofn_specs)
    if not hasattr(decorators.get_signature, "original"):
        remembered = _signature_once(decorators.get_signature)
        for module in SIGNATURE_CALLERS:
            module.get_signature = remembered
    for cls in (core.DoFn, core.CallableWrapperDoFn):
        if not hasattr(cls.infer_output_type, "original"):
            cls.infer_output_type = _any_for_logwardens(cls.__dict__["infer_output_type"])
    if not hasattr(core._check_fn_use_yield_and_return, "original"):
        core._check_fn_use_yield_and_return = _source_checked_once(core._check_fn_use_yield_and_return)
