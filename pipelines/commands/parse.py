"""``logwarden parse``: log files to one JSON event per line, without running a pipeline."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys

from parsers.enrich import Enricher
from parsers.registry import FORMATS, get_format
from pipelines.commands.common import EXIT_OK, add_command, add_config_argument, check_output_file, load_or_report
from pipelines.core import parse_files
from pipelines.enrich import check_enrich_config
from pipelines.inputs import list_files
from pipelines.read import open_raw
from schemas.config import EnrichConfig
from schemas.json_rows import batch_to_json_lines

EPILOG = """\
examples:
  logwarden parse access.log                      # detect the format, JSON to stdout
  logwarden parse access.log.gz --format combined --output events.jsonl --dead-letter bad.jsonl
  logwarden parse 'logs/*.log' --output - | jq -r .url_path | sort | uniq -c
  logwarden parse access.log --format 'LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" timed'
  logwarden parse access.log --format '$remote_addr - $remote_user [$time_local] "$request" $status $bytes_sent'
  logwarden parse error.log --format nginx_error -c logwarden.yaml   # input.timezone: zone of error-log times
  logwarden parse access.log --enrich --geoip-db GeoLite2-City.mmdb --geoip-db GeoLite2-ASN.mmdb

Every line read is either printed as an event or written as a dead letter (to
--dead-letter, or to stderr when that is not given); the summary on stderr says
how many of each.  Exit status: 0 when the files were read (dead letters are not
an error), 2 on a usage or config error.
"""


@contextlib.contextmanager
def _open_text_output(path: str | None):
    if path in (None, "-"):
        yield sys.stdout
    else:
        with open(path, "w", encoding="utf-8") as handle:
            yield handle


def _enricher(args, config: EnrichConfig) -> Enricher | None:
    """An Enricher when --enrich or --geoip-db asks for one; the databases are the config's plus the flags'."""
    if not (args.enrich or args.geoip_db):
        return None
    config = dataclasses.replace(config, geoip_databases=(*config.geoip_databases, *args.geoip_db))
    check_enrich_config(config)
    return Enricher.from_config(config)


def run(args) -> int:
    config = load_or_report(args.config)
    format_spec = args.format or config.input.format
    if format_spec != "auto":
        get_format(format_spec)
    check_output_file(args.output)
    check_output_file(args.dead_letter, "--dead-letter")
    files = list_files(args.files, args.follow_symlinks)
    enricher = _enricher(args, config.enrich)
    reports = []
    with _open_text_output(args.output) as out, _open_text_output(args.dead_letter or None) as dead_out:
        dead_out = dead_out if args.dead_letter else sys.stderr
        for path in files:
            opener = functools.partial(open_raw, follow_symlinks=args.follow_symlinks)
            for result in parse_files([path], opener, format_spec, config, enricher, reports):
                for line in batch_to_json_lines(result.events):
                    out.write(line + "\n")
                for line in batch_to_json_lines(result.dead_letters):
                    dead_out.write(line + "\n")
            report = reports[-1]
            print(f"logwarden: {path}: {report.how}", file=sys.stderr)
            if report.stats.truncated:
                print(f"logwarden: warning: {path}: {report.stats.problem}", file=sys.stderr)
    read = sum(r.lines_read for r in reports)
    parsed = sum(r.parsed for r in reports)
    dead = sum(r.dead_lettered for r in reports)
    skipped = sum(r.skipped for r in reports)
    where = f" (in {args.dead_letter})" if args.dead_letter and dead else ""
    also = f" + {skipped} skipped (blank lines, W3C directives)" if skipped else ""
    print(
        f"logwarden: {len(files)} file(s), {read} lines read = {parsed} parsed + {dead} dead-lettered{where}{also}",
        file=sys.stderr,
    )
    return EXIT_OK


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "parse",
        "parse log files to JSON lines",
        "Parse access and error logs into events named after the Elastic Common Schema.",
        EPILOG,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="log files, globs or directories (.gz/.bz2/.zst too)")
    parser.add_argument(
        "--format",
        "-f",
        help="'auto' (default: detect per file), your server's own LogFormat / log_format line (quotes and all), "
        f"or a format name: {', '.join(sorted(FORMATS))}",
    )
    parser.add_argument("--output", "-o", default="-", metavar="PATH", help="where events go ('-' = stdout, default)")
    parser.add_argument("--dead-letter", metavar="PATH", help="where unparsable lines go (default: stderr)")
    parser.add_argument(
        "--enrich", action="store_true", help="add browser, OS, device, bot and (with a database) geo fields"
    )
    parser.add_argument(
        "--geoip-db",
        action="append",
        default=[],
        metavar="PATH",
        help="MaxMind City/Country/ASN .mmdb file, repeatable, added to the config's; implies --enrich",
    )
    parser.add_argument("--follow-symlinks", action="store_true", help="read inputs that are symbolic links")
    add_config_argument(parser)
    parser.set_defaults(run=run)
