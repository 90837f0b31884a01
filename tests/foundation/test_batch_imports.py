"""What a ``logwarden batch`` process imports: every start pays for it, and the job's peak memory holds it.

Beam comes without its BigQuery and MongoDB connectors (``pipelines.lean_beam``), which still import whole
afterwards, and without httplib2 and beartype until Beam uses them; the report's libraries and the key
commands load only when they are used, after the job.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.operator.helpers import ACCESS_LOG, env, keys_yaml, logwarden

#: What Beam makes of a gs:// path: GCSFileSystem with apache-beam[gcp] installed, else its ValueError.
GCS = """\
from apache_beam.io.filesystems import FileSystems
try:
    print(type(FileSystems.get_filesystem("gs://bucket/x")).__name__)
except ValueError as problem:
    print(type(problem).__name__)
"""
#: A batch job; what was imported when the pipeline had run and when the command was done; then whether
#: the skipped connectors import, whole, by full name.
PROBE = f"""\
import json, sys
from pipelines.lean_beam import import_beam
import_beam()
import apache_beam as beam
run, during = beam.Pipeline.run, []
def recorded(pipeline, *args, **kwargs):
    result = run(pipeline, *args, **kwargs)
    result.wait_until_finish()
    during.extend(sys.modules)
    return result
beam.Pipeline.run = recorded
from pipelines.cli import main
code = main(sys.argv[1:])
after = list(sys.modules)
{GCS}import apache_beam.io.gcp.bigquery, apache_beam.io.mongodbio
print(json.dumps({{"code": code, "during": during, "after": after,
                  "bigquery": hasattr(apache_beam.io.gcp.bigquery, "ReadFromBigQuery"),
                  "mongo": apache_beam.io.mongodbio.MongoClient is not None}}))
"""


def python(code: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env(), timeout=300)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A batch run whose keyring exists (as on every run but the first)."""
    tmp = tmp_path_factory.mktemp("imports")
    config = tmp / "logwarden.yaml"
    config.write_text(keys_yaml(tmp))
    out = tmp / "out"
    made = logwarden(
        "keys", "init", "--archive", out, "--keyring", tmp / "keyring", "--root-key-file", tmp / "root.key"
    )
    assert made.returncode == 0, made.stderr
    done = python(PROBE, "batch", "-i", str(ACCESS_LOG), "-o", str(out), "-c", str(config), "--direct_num_workers=1")
    assert done.returncode == 0, done.stderr[-3000:]
    gcs, last = done.stdout.splitlines()[-2:]
    return {**json.loads(last), "gcs": gcs, "stderr": done.stderr, "out": out}


def _named(modules: list[str], *prefixes: str) -> list[str]:
    return sorted(m for m in modules if m.startswith(prefixes))


def test_beam_comes_without_bigquery_and_pymongo_which_still_import_afterwards(job):
    assert job["code"] == 0 and "files written     1" in job["stderr"]
    assert _named(job["after"], "pymongo", "bson", "apache_beam.io.gcp.bigquery") == []
    assert job["bigquery"] and job["mongo"]
    assert "bson" not in job["stderr"]  # mongodbio's warning about the refused import stays quiet
    assert job["gcs"] == python(GCS).stdout.strip()  # gs:// as with Beam imported whole


#: After ``import_beam``: Beam's uses of the deferred libraries, each answering as the real library does.
DEFERRED_USES = """\
import json, sys, typing
from pipelines.lean_beam import import_beam
import_beam()
before = sorted(m for m in ("httplib2", "pyparsing", "beartype") if m in sys.modules)
from apache_beam.internal.http_client import get_new_http
from apache_beam.typehints.typehints import is_consistent_with
answers = [is_consistent_with(bool, int, use_beartype=True), is_consistent_with(int, bool, use_beartype=True),
           is_consistent_with(1, int, use_beartype=True)]  # beartype raises on 1: Beam's except makes it False
import beartype.door, httplib2
print(json.dumps({"before": before, "http": type(get_new_http()) is httplib2.Http, "answers": answers,
                  "real": [beartype.door.is_subhint(bool, int), beartype.door.is_subhint(int, bool)]}))
"""


def test_beam_comes_without_httplib2_and_beartype_until_it_uses_them(job):
    assert _named(job["after"], "httplib2", "pyparsing", "beartype") == []  # 0.1 s of CPU and 8 MiB a start
    done = python(DEFERRED_USES)
    assert done.returncode == 0, done.stderr[-3000:]
    uses = json.loads(done.stdout.splitlines()[-1])
    assert uses["before"] == [] and uses["http"]
    assert uses["answers"] == [*uses["real"], False] == [True, False, False]


def test_the_report_and_key_commands_load_after_the_job_and_the_report_is_published(job):
    assert (
        _named(job["during"], "jinja2", "pyarrow.dataset", "pipelines.reports.publish", "pipelines.commands.keys") == []
    )
    assert "jinja2" in job["after"]
    assert list((job["out"] / "reports").glob("report-*.html"))
