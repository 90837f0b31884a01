"""Import Apache Beam without what no logwarden command uses: BigQuery and MongoDB, and, until first used,
httplib2 and beartype.

``import apache_beam`` imports every IO connector ``apache_beam.io`` re-exports, BigQuery (with requests,
urllib3, the GCE metadata client…) and pymongo among them: ~0.3 s of CPU and ~10 MiB on every start.
Beam imports both inside ``try/except ImportError`` because it works without them, so refusing them while
Beam's package is imported leaves them out.  Nothing else changes: Beam's runners and filesystems import
what they need by full name (the GCS filesystem, Pub/Sub, Dataflow's client), and afterwards the
connectors import again by full name too; only ``apache_beam.io``'s re-exported names of them
(``beam.io.ReadFromBigQuery``, ``beam.io.ReadFromPubSub``…) are missing in this process.  Workers that
start an interpreter of their own (portable runner, Dataflow) import Beam whole.

Two more libraries Beam imports at start only to call later, on paths a logwarden job does not take:
httplib2 (with pyparsing; the stager's artifact downloads) and beartype (``is_consistent_with`` on plain
classes).  Beam gets stand-ins for them (``DEFERRED``) that import the real library on first use and hand
every call on: 0.1 s of CPU and 8 MiB less on every start.
"""

from __future__ import annotations

import importlib
import importlib.abc
import logging
import sys
import types

#: What ``import apache_beam`` is refused: the first name in the GCP try-block of ``apache_beam/io/__init__.py``
#: (the rest of that block is skipped with it) and what ``apache_beam.io.mongodbio`` tries to import.
SKIPPED = ("apache_beam.io.gcp.bigquery", "bson", "pymongo")
#: Imported without pymongo, it keeps stubs (``MongoClient = None``); forgotten so a later import is whole.
_DEGRADED = "apache_beam.io.mongodbio"
#: Modules Beam 2.77 imports at start but only uses in functions: ``apache_beam.internal.http_client``
#: (``import httplib2``) and ``apache_beam.typehints.typehints`` (``from beartype.door import is_subhint``,
#: ``from beartype.roar import BeartypeDoorException``).  Each maps to the names Beam takes from it by
#: ``from … import``, which its stand-in must have before the real module is loaded.
DEFERRED = {"httplib2": (), "beartype": (), "beartype.door": ("is_subhint",), "beartype.roar": ()}


class _Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in SKIPPED or name.startswith(tuple(f"{skipped}." for skipped in SKIPPED)):
            raise ImportError(f"{name} is not imported by logwarden (pipelines.lean_beam)", name=name)
        return None


def _real(name: str) -> types.ModuleType:
    """The real module ``name``, imported now if it was not yet (the stand-ins leave ``sys.modules`` first)."""
    for deferred in DEFERRED:
        if isinstance(sys.modules.get(deferred), _StandIn):
            del sys.modules[deferred]
    return importlib.import_module(name)


class _StandIn(types.ModuleType):
    """Where Beam keeps a deferred module: any attribute it asks for imports the real module and is that one's."""

    def __getattr__(self, attribute: str):
        if attribute.startswith("__") and attribute.endswith("__"):
            raise AttributeError(attribute)  # the import system's questions (``__path__``…): no load for those
        return getattr(_real(self.__name__), attribute)


class DeferredBeartypeDoorException(Exception):
    """Stands for ``beartype.roar.BeartypeDoorException`` in Beam's ``except``: raised when beartype raises that."""


def _is_subhint(subhint, superhint) -> bool:
    roar = _real("beartype.roar")
    try:
        return _real("beartype.door").is_subhint(subhint, superhint)
    except roar.BeartypeDoorException as problem:
        raise DeferredBeartypeDoorException(str(problem)) from problem


def _stand_ins() -> dict[str, _StandIn]:
    stand_ins = {name: _StandIn(name) for name in DEFERRED if name not in sys.modules}
    if "beartype.door" in stand_ins:
        stand_ins["beartype.door"].is_subhint = _is_subhint
    if "beartype.roar" in stand_ins:
        stand_ins["beartype.roar"].BeartypeDoorException = DeferredBeartypeDoorException
    return stand_ins


def import_beam() -> None:
    """Import ``apache_beam`` without BigQuery and pymongo and with httplib2 and beartype deferred, unless
    something imported Beam already."""
    if "apache_beam" in sys.modules:
        return
    refuse = _Refuse()
    sys.meta_path.insert(0, refuse)
    mongodbio_log = logging.getLogger(_DEGRADED)
    level = mongodbio_log.level
    mongodbio_log.setLevel(logging.ERROR)  # its "Could not find a compatible bson package" is about this
    stand_ins = _stand_ins()
    sys.modules.update(stand_ins)
    try:
        import apache_beam  # noqa: F401
    finally:
        sys.meta_path.remove(refuse)
        mongodbio_log.setLevel(level)
        sys.modules.pop(_DEGRADED, None)
        for name, stand_in in stand_ins.items():  # whoever imports them from now on gets the real modules
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
