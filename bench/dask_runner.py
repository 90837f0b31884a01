"""``python -m bench dask-runner``: does the batch graph run on Beam's DaskRunner (a ``dask.distributed`` LocalCluster)?

Needs ``dask[distributed]`` (``apache-beam[dask]``), which logwarden does not install: run it from a venv of its
own (``docs/runners.md``).  The bundled sample logs plus an nginx error log go through ``run_batch`` on the local
runner and on Dask with the same config; the table shows what each archived, or how the run failed.

``--all-leaves`` computes every branch of the graph: Beam 2.77's DaskRunner computes only the bag of the last
transform applied, so the other outputs are silently never produced.  Beam's DaskRunner has no metrics
(``metrics()`` raises ``NotImplementedError``); the run's counts are then taken as zero and the archive read back.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASK = "apache_beam.runners.dask.dask_runner.DaskRunner"
DATASETS = ("events", "errors", "dead_letters", "alerts")


def _compute_every_leaf() -> None:
    """Patch Beam's DaskRunner to compute every bag, not only the last one (its run_pipeline, otherwise as is)."""
    import dask
    import dask.distributed as ddist
    from apache_beam.runners.dask import dask_runner
    from apache_beam.runners.dask.overrides import dask_overrides

    def run_pipeline(self, pipeline, options):
        dask_options = options.view_as(dask_runner.DaskOptions).get_all_options(drop_default=True, current_only=True)
        bag_kwargs = dask_runner.DaskOptions._extract_bag_kwargs(dask_options)
        client = ddist.Client(**dask_options)
        pipeline.replace_all(dask_overrides())
        visitor = self.to_dask_bag_visitor(bag_kwargs)
        pipeline.visit(visitor)
        return dask_runner.DaskRunnerResult(client, client.compute(list(dask.optimize(*visitor.bags.values()))))

    dask_runner.DaskRunner.run_pipeline = run_pipeline


def _counts_without_metrics() -> None:
    from pipelines.metrics import RunCounts

    original = RunCounts.from_result.__func__

    def from_result(cls, result):
        try:
            return original(cls, result)
        except NotImplementedError as problem:
            print(f"  (the runner has no metrics: {problem})", file=sys.stderr)
            return cls()

    RunCounts.from_result = classmethod(from_result)


def _run(runner: str, inputs: list[str], output: Path, config) -> dict:
    from pipelines.batch import run_batch
    from pipelines.options import pipeline_options
    from retention.archive_reader import open_archive
    from retention.keyring import reader_keys

    outcome: dict = {"runner": runner.rsplit(".", 1)[-1]}
    try:
        run_batch(inputs, str(output), config, pipeline_options([f"--runner={runner}"], config.runner))
    except Exception as problem:  # the finding is the failure
        lines = str(problem).strip().splitlines() or [traceback.extract_tb(problem.__traceback__)[-1].line or ""]
        outcome["failed"] = f"{type(problem).__name__}: {lines[-1][:200]}"
        traceback.print_exc()
    reader = reader_keys(config.keys.keyring, config.keys.root_key_file, environ={})
    for name in DATASETS:
        try:
            outcome[name] = open_archive(output, reader, name).count_rows()
        except Exception:
            outcome[name] = "-"
    try:
        table = open_archive(output, reader, "alerts").to_table(columns=["alert_id"])
        outcome["alert_ids"] = sorted(table["alert_id"].to_pylist())
    except Exception:
        outcome["alert_ids"] = []
    return outcome


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dask-runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--all-leaves", action="store_true", help="compute every branch, not only the last one")
    parser.add_argument("--no-alerts", action="store_true", help="alerts off (detection is a stateful DoFn)")
    args = parser.parse_args(argv)
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        print("needs dask[distributed]: run it from a venv of its own (docs/runners.md)", file=sys.stderr)
        return 2

    from retention.keyring import init_keyring
    from schemas.config import AlertsConfig, Config, EnrichConfig, KeysConfig

    _counts_without_metrics()
    if args.all_leaves:
        _compute_every_leaf()
    work = Path(tempfile.mkdtemp(prefix="logwarden-dask-"))
    try:
        os.environ["LOGWARDEN_HOME"] = str(work / "home")
        logs = work / "logs"
        shutil.copytree(ROOT / "examples" / "logs", logs)
        shutil.copy(ROOT / "tests/parsers/fixtures/filebeat-nginx-error/error.log", logs / "error.log")
        keys = KeysConfig(keyring=str(work / "keyring"), root_key_file=str(work / "root.key"))
        init_keyring(keys.keyring, keys.root_key_file, environ={})
        geoip = [str(ROOT / "examples/geoip" / n) for n in ("GeoLite2-City-Test.mmdb", "GeoLite2-ASN-Test.mmdb")]
        config = Config(keys=keys, enrich=dataclasses.replace(EnrichConfig(), geoip_databases=geoip))
        if args.no_alerts:
            config = dataclasses.replace(config, alerts=dataclasses.replace(AlertsConfig(), enabled=False))
        inputs = sorted(str(p) for p in logs.iterdir())
        results = [_run(r, inputs, work / r.rsplit(".", 1)[-1], config) for r in ("FnApiRunner", DASK)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'runner':12} " + " ".join(f"{n:>12}" for n in DATASETS) + "  outcome")
    for r in results:
        cells = " ".join(f"{r[n]!s:>12}" for n in DATASETS)
        print(f"{r['runner']:12} {cells}  {r.get('failed', 'ran')}")
    same = results[0]["alert_ids"] == results[1]["alert_ids"]
    print(f"same alert ids: {same} ({len(results[0]['alert_ids'])} vs {len(results[1]['alert_ids'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
