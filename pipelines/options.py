"""Beam pipeline options with logwarden's defaults: a named local runner, never a downloaded one."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions, _BeamArgumentParser

from schemas.config import RunnerConfig

# Beam's plain "DirectRunner" first tries to download the Prism runner binary at run
# time; offline that fails slowly.  These local runners run in-process instead.
LOCAL_RUNNERS = {"FnApiRunner", "BundleBasedDirectRunner"}
#: Flags that say how to run: with any of them ``pipeline_options`` adds no default workers of its own.
_RUN_FLAGS = ("--runner", "--direct_num_workers", "--direct_running_mode")
#: At most this many local workers by default: measured here with 2; each holds its share of the job in memory.
MAX_DEFAULT_WORKERS = 2


class _Options(PipelineOptions):
    """``PipelineOptions`` that make each view once: Beam asks for a view (``view_as``) ~220 times while it
    builds our graph (type checks per applied transform), and each new view parses every flag with argparse
    again (~0.12 s of CPU per run).  A view reads and writes the options' one shared dict, so a kept one
    stays current."""

    def view_as(self, cls):
        views = self.__dict__.setdefault("_views", {})
        view = views.get(cls)
        if view is None or view._all_options is not self._all_options:
            view = views[cls] = super().view_as(cls)
        return view

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_views", None)  # copies and pickles make their own
        return state


def _given(beam_args: list[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in beam_args)


def pipeline_options(beam_args: list[str], runner: RunnerConfig, default_workers: int = 1) -> PipelineOptions:
    """Options from ordinary Beam flags (``--runner``, ``--project``…), the config filling the gaps.

    ``default_workers``: the local runner's worker processes when neither the config
    (``runner.direct_num_workers``) nor a ``--runner`` / ``--direct_*`` flag says how to run.
    """
    args = list(beam_args)
    workers = runner.direct_num_workers
    if workers is None and not any(_given(args, flag) for flag in _RUN_FLAGS):
        workers = default_workers
    if not _given(args, "--runner"):
        args.append(f"--runner={runner.name}")
    options = _Options(args)
    local = options.view_as(StandardOptions).runner in LOCAL_RUNNERS
    if local and workers not in (None, 1) and not _given(args, "--direct_num_workers"):
        args += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
        options = _Options(args)
    return options


def usable_cores() -> int:
    """The cores this process may run on (what ``taskset`` or a container allows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_local_workers() -> int:
    """``logwarden batch``'s local workers when nobody says: one per usable core, at most
    ``MAX_DEFAULT_WORKERS``, where they are forked ready (``pipelines.local_workers``); else 1, in-process.

    Two forked workers beat one on the 2-core machine when the second core is free (docs/runners.md);
    fresh interpreters (off Linux) cost ~1.5 s of CPU each and were not measured to pay off.
    """
    import threading

    from pipelines.local_workers import can_fork

    if not can_fork() or threading.active_count() > 1:  # a process with threads cannot fork them
        return 1
    return min(usable_cores(), MAX_DEFAULT_WORKERS)


def _runs_local_processes(options: PipelineOptions) -> bool:
    """The local runner in ``multi_processing`` mode.  Read from views, which ``_Options`` keeps: the graph asks
    this several times, and each ``get_all_options`` parses every flag of every Beam option class again."""
    runner, direct = options.view_as(StandardOptions).runner, options.view_as(DirectOptions)
    return runner in LOCAL_RUNNERS and direct.direct_running_mode == "multi_processing"


def local_worker_processes(options: PipelineOptions) -> int:
    """How many worker processes the local runner starts (0: it runs the job in its own process)."""
    if not _runs_local_processes(options):
        return 0
    return options.view_as(DirectOptions).direct_num_workers or os.cpu_count() or 1


class _FlagParser(_BeamArgumentParser):
    """Beam's own option parser, raising instead of exiting on a bad value."""

    def error(self, message):
        raise ValueError(message)


def _beam_parser() -> _FlagParser:
    return _parser_of(tuple(PipelineOptions.__subclasses__()))  # as Beam's get_all_options collects them


@functools.cache
def _parser_of(classes: tuple[type, ...]) -> _FlagParser:
    """Made once per set of option classes: the command line's check asks twice, ~4 ms each."""
    parser = _FlagParser(allow_abbrev=False, add_help=False)
    seen: dict[str, type] = {}
    for cls in classes:
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
    if verbose >= 2 or not _runs_local_processes(options) or "PIPELINE_OPTIONS_FILE" in os.environ:
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
