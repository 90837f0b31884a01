"""Beam's state-and-timer lookup of a DoFn, done once per DoFn instead of about eight times.

``apache_beam.transforms.userstate.get_dofn_specs`` takes ``inspect.signature`` of every method a DoFn has
(~30, most of them inherited) and is called for the same DoFn when the ParDo is made, validated, turned into
the runner API, and again for each copy a runner unpickles: 238 calls, 0.15 s of CPU in a batch job on any
input.  Its answer depends only on the DoFn's methods, which do not change, so it is remembered per DoFn
object (weakly: a DoFn that is gone leaves nothing behind).  A DoFn whose specs are invalid raises each time,
as before.  Relies on apache-beam 2.77's callers looking it up on ``userstate`` at call time
(``tests/foundation/test_dofn_specs.py`` checks).
"""

from __future__ import annotations

import weakref

from apache_beam.transforms import userstate

_specs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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


def install() -> None:
    """Remember ``get_dofn_specs``'s answers in this process (idempotent)."""
    if not hasattr(userstate.get_dofn_specs, "original"):
        userstate.get_dofn_specs = _remembered(userstate.get_dofn_specs)
