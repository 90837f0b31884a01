"""Import Apache Beam without the BigQuery and MongoDB connectors, which no logwarden command uses.

``import apache_beam`` imports every IO connector ``apache_beam.io`` re-exports, BigQuery (with requests,
urllib3, the GCE metadata client…) and pymongo among them: ~0.3 s of CPU and ~10 MiB on every start.
Beam imports both inside ``try/except ImportError`` because it works without them, so refusing them while
Beam's package is imported leaves them out.  Nothing else changes: Beam's runners and filesystems import
what they need by full name (the GCS filesystem, Pub/Sub, Dataflow's client), and afterwards the
connectors import again by full name too; only ``apache_beam.io``'s re-exported names of them
(``beam.io.ReadFromBigQuery``, ``beam.io.ReadFromPubSub``…) are missing in this process.  Workers that
start an interpreter of their own (portable runner, Dataflow) import Beam whole.
"""

from __future__ import annotations

import importlib.abc
import logging
import sys

#: What ``import apache_beam`` is refused: the first name in the GCP try-block of ``apache_beam/io/__init__.py``
#: (the rest of that block is skipped with it) and what ``apache_beam.io.mongodbio`` tries to import.
SKIPPED = ("apache_beam.io.gcp.bigquery", "bson", "pymongo")
#: Imported without pymongo, it keeps stubs (``MongoClient = None``); forgotten so a later import is whole.
_DEGRADED = "apache_beam.io.mongodbio"


class _Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in SKIPPED or name.startswith(tuple(f"{skipped}." for skipped in SKIPPED)):
            raise ImportError(f"{name} is not imported by logwarden (pipelines.lean_beam)", name=name)
        return None


def import_beam() -> None:
    """Import ``apache_beam`` without BigQuery and pymongo, unless something imported Beam already."""
    if "apache_beam" in sys.modules:
        return
    refuse = _Refuse()
    sys.meta_path.insert(0, refuse)
    mongodbio_log = logging.getLogger(_DEGRADED)
    level = mongodbio_log.level
    mongodbio_log.setLevel(logging.ERROR)  # its "Could not find a compatible bson package" is about this
    try:
        import apache_beam  # noqa: F401
    finally:
        sys.meta_path.remove(refuse)
        mongodbio_log.setLevel(level)
        sys.modules.pop(_DEGRADED, None)
