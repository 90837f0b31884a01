"""Beam pipeline options with logwarden's defaults: a named local runner, never a downloaded one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from schemas.config import RunnerConfig

# Beam's plain "DirectRunner" first tries to download the Prism runner binary at run
# time; offline that fails slowly.  These local runners run in-process instead.
LOCAL_RUNNERS = {"FnApiRunner", "BundleBasedDirectRunner"}


def _given(beam_args: list[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in beam_args)


def pipeline_options(beam_args: list[str], runner: RunnerConfig) -> PipelineOptions:
    """Options from ordinary Beam flags (``--runner``, ``--project``…), the config filling the gaps."""
    args = list(beam_args)
    if not _given(args, "--runner"):
        args.append(f"--runner={runner.name}")
    options = PipelineOptions(args)
    local = options.get_all_options()["runner"] in LOCAL_RUNNERS
    if local and runner.direct_num_workers != 1 and not _given(args, "--direct_num_workers"):
        args += [f"--direct_num_workers={runner.direct_num_workers}", "--direct_running_mode=multi_processing"]
        options = PipelineOptions(args)
    return options


def local_worker_processes(options: PipelineOptions) -> int:
    """How many worker processes the local runner starts (0: it runs the job in its own process)."""
    values = options.get_all_options()
    if values.get("runner") not in LOCAL_RUNNERS or values.get("direct_running_mode") != "multi_processing":
        return 0
    return values.get("direct_num_workers") or os.cpu_count() or 1


class _FlagParser(_BeamArgumentParser):
    """Beam's own option parser, raising instead of exiting on a bad value."""

    def error(self, message):
        raise ValueError(message)


def _beam_parser() -> _FlagParser:
    parser = _FlagParser(allow_abbrev=False, add_help=False)
    seen: dict[str, type] = {}
    for cls in PipelineOptions.__subclasses__():  # as Beam's get_all_options collects them
        seen.setdefault(str(cls), cls)
    for cls in seen.values():
        cls._add_argparse_args(parser)
    return parser


def beam_flags() -> list[str]:
    """Every ``--flag`` some Beam PipelineOptions class defines."""
    return [flag for flag in _beam_parser()._option_string_actions if flag.startswith("--")]


def unknown_beam_args(beam_args: list[str]) -> list[str]:
    """The arguments no Beam option takes (a mistyped ``--formt`` must not be silently ignored)."""
    _known, unknown = _beam_parser().parse_known_args(beam_args)
    return unknown


@contextlib.contextmanager
def quiet_local_workers(options: PipelineOptions, verbose: int = 0):
    """In ``multi_processing`` mode, worker processes log at INFO to our stderr (about 30 lines each).

    FnApiRunner hands its workers no pipeline options, so their log level cannot be set
    the ordinary way; ``PIPELINE_OPTIONS_FILE``, which Beam's worker reads first, gives
    them one (warnings and errors still show).  ``-vv`` keeps Beam's own logging.
    """
    values = options.get_all_options()
    local_processes = values.get("runner") in LOCAL_RUNNERS and values.get("direct_running_mode") == "multi_processing"
    if verbose >= 2 or not local_processes or "PIPELINE_OPTIONS_FILE" in os.environ:
        yield
        return
    quiet = {
        "options": {
            "default_sdk_harness_log_level": "WARNING",
            "sdk_harness_log_level_overrides": {"__main__": "ERROR", "apache_beam": "ERROR"},
        }
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="logwarden-worker-options-") as handle:
        json.dump(quiet, handle)
        handle.flush()
        os.environ["PIPELINE_OPTIONS_FILE"] = handle.name
        try:
            yield
        finally:
            os.environ.pop("PIPELINE_OPTIONS_FILE", None)
