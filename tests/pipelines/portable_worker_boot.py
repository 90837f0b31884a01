"""A Beam SDK worker that installs logwarden from the staged ``--setup_file`` sdist, as a cluster's container does.

The worker pool (``apache_beam.runners.worker.worker_pool_main`` with ``--container_executable``) starts one
of these per worker with the container contract's flags.  Like Beam's ``boot`` in the SDK image it asks the
provision service for the job's options and artifacts, fetches ``workflow.tar.gz`` (the sdist Beam's stager
built from ``setup.py``) from the artifact service, installs it into a directory of its own, and runs the SDK
harness.  Started as ``python -I -S portable_worker_boot.py``: no site-packages (so no editable install of the
source tree) and not the script's own folder on ``sys.path``; it adds only the directories named in
``$LOGWARDEN_WORKER_SITE_PACKAGES`` (Beam and logwarden's dependencies; their ``.pth`` files are not run), and
records in ``$LOGWARDEN_WORKER_REPORTS/<worker id>.json`` that logwarden could not be imported before the
install and from where each package was imported after it.

Installed with ``setup.py build_py`` from the unpacked sdist rather than ``pip install``: offline, pip would
need the ``wheel`` package, which the development venv does not have.  ``build_py`` copies what ``setup.py``
declares (packages and package data), as an install would.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import traceback

PACKAGES = ("schemas", "parsers", "alerts", "retention", "pipelines")
WORKFLOW_TARBALL = "workflow.tar.gz"  # apache_beam.runners.portability.stager.WORKFLOW_TARBALL_FILE


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    for flag in ("id", "logging_endpoint", "artifact_endpoint", "provision_endpoint", "control_endpoint"):
        parser.add_argument(f"--{flag}", required=True)
    parser.add_argument("--semi_persistent_directory")
    return parser.parse_known_args(argv)[0]


def _fetch_artifacts(args, into: str):
    """The provision info, and each staged artifact written to ``into`` under its staged name."""
    import grpc
    from apache_beam.portability.api import (
        beam_artifact_api_pb2,
        beam_artifact_api_pb2_grpc,
        beam_provision_api_pb2,
        beam_provision_api_pb2_grpc,
        beam_runner_api_pb2,
    )

    metadata = (("worker_id", args.id),)
    with grpc.insecure_channel(args.provision_endpoint) as channel:
        stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
        info = stub.GetProvisionInfo(beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=metadata).info
    staged = {}
    with grpc.insecure_channel(args.artifact_endpoint, options=[("grpc.max_receive_message_length", -1)]) as channel:
        stub = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(channel)
        for index, artifact in enumerate(info.dependencies):
            role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(artifact.role_payload)
            name = os.path.basename(role.staged_name) or f"artifact-{index}"
            path = os.path.join(into, name)
            with open(path, "wb") as out:
                request = beam_artifact_api_pb2.GetArtifactRequest(artifact=artifact)
                for chunk in stub.GetArtifact(request, metadata=metadata):
                    out.write(chunk.data)
            staged[name] = path
    return info, staged


def _install_sdist(tarball: str, work: str) -> str:
    """Unpack the sdist and ``setup.py build_py`` it into ``work/site``; return that directory."""
    unpacked = os.path.join(work, "sdist")
    with tarfile.open(tarball) as sdist:
        if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.10/3.11 security releases
            sdist.extractall(unpacked, filter="data")
        else:
            sdist.extractall(unpacked)
    [top] = os.listdir(unpacked)
    source = os.path.join(unpacked, top)
    site = os.path.join(work, "site")
    # -S: the build sees setuptools through the same directories this worker was given, nothing else.
    code = (
        "import os, runpy, sys; sys.path[1:1] = sys.argv[1].split(os.pathsep); "
        "sys.argv = ['setup.py', '-q', 'build_py', '--build-lib', sys.argv[2]]; "
        "runpy.run_path('setup.py', run_name='__main__')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    subprocess.run(
        [sys.executable, "-S", "-c", code, os.environ["LOGWARDEN_WORKER_SITE_PACKAGES"], site],
        cwd=source,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=300,
    )
    return site


def main(argv: list[str]) -> None:
    # The worker pool reads nothing of our stdout; a full pipe would block the harness.
    os.dup2(2, 1)
    args = _arguments(argv)
    try:
        _boot(args)
    except BaseException:
        # The runner waits for this worker forever; the test watches for this file and stops the job.
        failed = os.path.join(os.environ["LOGWARDEN_WORKER_REPORTS"], f"{args.id}.failed")
        with open(failed, "w", encoding="utf-8") as out:
            out.write(traceback.format_exc())
        raise


def _boot(args: argparse.Namespace) -> None:
    work = os.path.abspath(args.semi_persistent_directory or os.path.join("workers", args.id))
    artifacts = os.path.join(work, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    os.chdir(work)
    sys.path.extend(os.environ["LOGWARDEN_WORKER_SITE_PACKAGES"].split(os.pathsep))

    importable_before = {name: importlib.util.find_spec(name) is not None for name in PACKAGES}
    info, staged = _fetch_artifacts(args, artifacts)
    if WORKFLOW_TARBALL not in staged:
        raise SystemExit(f"no {WORKFLOW_TARBALL} among the staged artifacts {sorted(staged)}: run with --setup_file")
    site = _install_sdist(staged[WORKFLOW_TARBALL], work)
    sys.path.insert(0, site)
    modules = {name: importlib.import_module(name) for name in PACKAGES}
    importlib.import_module("pipelines.graph")  # the graph's modules import cleanly from the install
    report = {
        "worker_id": args.id,
        "pid": os.getpid(),
        "site": site,
        "importable_before_install": importable_before,
        "files": {name: module.__file__ for name, module in modules.items()},
        "sys_path": sys.path,
        "artifacts": sorted(staged),
    }
    reports = os.environ["LOGWARDEN_WORKER_REPORTS"]
    with open(os.path.join(reports, f"{args.id}.json.tmp"), "w", encoding="utf-8") as out:
        json.dump(report, out)
    os.replace(os.path.join(reports, f"{args.id}.json.tmp"), os.path.join(reports, f"{args.id}.json"))

    from apache_beam.portability.api import endpoints_pb2
    from apache_beam.runners.worker import sdk_worker_main
    from google.protobuf import json_format, text_format

    def descriptor(url: str) -> str:
        return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))

    os.environ.update(
        {
            "WORKER_ID": args.id,
            "CONTROL_API_SERVICE_DESCRIPTOR": descriptor(args.control_endpoint),
            "LOGGING_API_SERVICE_DESCRIPTOR": descriptor(args.logging_endpoint),
            "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
            "SEMI_PERSISTENT_DIRECTORY": work,
            "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities),
        }
    )
    sdk_worker_main.main([])


if __name__ == "__main__":
    main(sys.argv[1:])
