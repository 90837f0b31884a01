"""Replaying files through the rules without Beam (``logwarden detect``, tests, benchmarks).

Uses the very ``Observer`` and ``Detector`` the pipeline runs, folded once at
the end of the input, so its alerts are the ones ``logwarden batch`` raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from alerts.engine import Detector
from alerts.observe import Observer
from alerts.rules import RuleSet
from parsers.files import FileParse, parse_file
from parsers.result import ParseResult


def detect_files(
    rules: RuleSet,
    paths: Iterable[str],
    open_raw: Callable[[str], BinaryIO],
    format_spec: str = "auto",
    reports: list[FileParse] | None = None,
) -> list[dict[str, Any]]:
    """Alerts for the given files, parsed with ``format_spec`` (``auto`` detects per file), not enriched."""

    def results():
        for path in paths:
            report = FileParse(path)
            if reports is not None:
                reports.append(report)
            yield from parse_file(open_raw, path, format_spec, report=report)

    return detect_results(rules, results())


def detect_results(rules: RuleSet, results: Iterable[ParseResult]) -> list[dict[str, Any]]:
    """Alerts for parsed (and, as in the pipeline, enriched) results: observed per batch, folded once at the end."""
    observers = {dataset: Observer(rules, dataset) for dataset in ("access", "error")}
    detector = Detector(rules)
    for result in results:
        if result.events.num_rows:
            detector.add(observers[result.kind].observe(result.events))
    return detector.finish()
