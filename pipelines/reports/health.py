"""Service-health episodes in the capacity report: when availability and performance alerts fired, without keys.

Every run stores its health alert records beside its traffic aggregates
(``health-<transaction>.parquet`` in the aggregate store: a batch run's after
its job, inside its transaction; a stream cut's in the cut's commit), one row
per record, firing or resolved (``schemas.HEALTH_STORE``).  A row says what
happened to the service and nothing about who caused it: rule, category,
severity, host, the top-level path prefix of a per-path rule (generalised like
every report path), the window, the observed value, the baseline and the
threshold.  No client address, no user, no evidence line, not even the
alert's key: a health rule keyed by anything but the host (a custom rule
grouped by ``source_ip``) is about a client, not the service, and stays out.

The report counts these rows as it counts aggregates: only those of completed
transactions (a run killed before its commit point stored nothing that
counts), and each record once.  An episode's id is a hash of rule, host, path
prefix and start, the same whichever reading raised it: a re-run raises no
alert twice (the ledger's alert ids), and if two readings stored the same
episode it is still one.  Firing and resolved records, perhaps stored by
different cuts of a stream, join by that id into one episode.  An alert once
raised stays in the report even when a later ``--reprocess`` reading would not
raise it again: it is what ops were told.

In the report, the host is shown only when it passes the same k-anonymity bar
as the traffic (else "(other hosts)"), and a path prefix only when at least
``min_visitors`` distinct visitors requested pages under it in the period
(else "(other)").
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping

import datasketches
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems

from pipelines.reports.privacy import OTHER, generalise_path, k_anonymous
from pipelines.reports.store import _read, make_dirs, parquet_bytes, write_file
from pipelines.reports.traffic import VALUE_HLL_LG_K
from retention.layout import aggregates_dir
from schemas import HEALTH_EPISODES, HEALTH_STORE, TRAFFIC_STORE

#: Group-by fields a health rule may have for its episodes to reach the report (the service, not a client).
SERVICE_KEYS = frozenset({"url_domain"})
FIRING, RESOLVED = "firing", "resolved"
STREAM_KIND = "stream"


def episode_id(rule_id: str, host: str | None, prefix: str | None, first_seen: dt.datetime) -> str:
    text = f"{rule_id}\x1f{host or ''}\x1f{prefix or ''}\x1f{first_seen.isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _prefix(rule, group_key: str) -> str | None:
    """The path prefix a per-path rule keyed on (``shop.example|/api`` -> ``/api``), generalised."""
    if not rule.health.path_segments:
        return None
    prefix = group_key.split("|", len(rule.groupby))[-1]
    return None if prefix in ("", "-") else generalise_path(prefix)


def health_rows(alerts: Iterable[Mapping], rules, observed_until: dt.datetime | None = None) -> list[dict]:
    """The store rows of the health alerts among ``alerts`` (``schemas.ALERT`` rows) of ``rules`` (a RuleSet)."""
    by_id = {r.id: r for r in (rules.rules if rules is not None else ()) if r.is_health}
    rows = []
    for alert in alerts:
        health, rule = alert.get("health"), by_id.get(alert.get("rule_id"))
        if not health or rule is None or not set(rule.groupby) <= SERVICE_KEYS:
            continue
        host = alert.get("url_domain") if "url_domain" in rule.groupby else None
        prefix = _prefix(rule, alert.get("group_key") or "")
        rows.append(
            {
                "episode_id": episode_id(rule.id, host, prefix, alert["first_seen"]),
                "status": health.get("status", FIRING),
                "rule_id": rule.id,
                "rule_title": rule.title,
                "category": rule.category,
                "severity": rule.severity,
                "url_domain": host,
                "path_prefix": prefix,
                "first_seen": alert["first_seen"],
                "window_start": health.get("window_start"),
                "window_end": health.get("window_end"),
                "measure": health.get("measure"),
                "field": rule.health.field,
                "value": health.get("value"),
                "baseline": health.get("baseline"),
                "threshold": health.get("threshold"),
                "events": health.get("events"),
                "observed_until": observed_until,
            }
        )
    return rows


def run_event_end(output: str, run_id: str) -> dt.datetime | None:
    """Just after the newest request a batch run stored aggregates for: where its event time ended."""
    path = FileSystems.join(aggregates_dir(output), f"traffic-{run_id}.parquet")
    if not FileSystems.exists(path):
        return None
    seconds = pc.list_flatten(_read(path, TRAFFIC_STORE, None)["seconds"])
    if not len(seconds):
        return None
    return dt.datetime.fromtimestamp(pc.max(seconds).as_py() + 1, dt.timezone.utc)


def health_file(output: str, file_id: str) -> str:
    return FileSystems.join(aggregates_dir(output), f"health-{file_id}.parquet")


def health_documents(
    alerts: Iterable[Mapping], rules, output: str, file_id: str, observed_until: dt.datetime | None = None
) -> list[tuple[str, bytes]]:
    """``[(path, bytes)]`` of one run's (or stream cut's) health store file; empty without health alerts."""
    rows = health_rows(alerts, rules, observed_until)
    if not rows:
        return []
    return [(health_file(output, file_id), parquet_bytes(pa.Table.from_pylist(rows, schema=HEALTH_STORE)))]


def write_run_health(
    output: str, run_id: str, alerts: Iterable[Mapping], rules, observed_until: dt.datetime | None = None
) -> list[str]:
    """Store one batch run's health episodes (before its transaction completes: a killed run's do not count)."""
    documents = health_documents(alerts, rules, output, run_id, observed_until)
    if documents:
        make_dirs(aggregates_dir(output))
    for path, data in documents:
        write_file(path, data)
    return [path for path, _ in documents]


def read_health(output: str, records: Mapping[str, dict], host: str | None = None) -> pa.Table:
    """Counted health store rows: of completed transactions only, each (episode, status) once, the earliest
    completed reading's; with a ``kind`` column (``stream`` or ``batch``) from the storing transaction."""
    directory = aggregates_dir(output)
    empty = HEALTH_STORE.append(pa.field("kind", pa.string())).empty_table()
    if not FileSystems.exists(directory):
        return empty
    found = []
    for meta in FileSystems.match([FileSystems.join(directory, "health-*.parquet")])[0].metadata_list:
        txn = meta.path.rsplit("/", 1)[-1][len("health-") : -len(".parquet")]
        record = records.get(txn)
        if record is None:
            continue  # never completed (killed, or still running): counts nothing
        order = (str(record.get("completed", "")), int(record.get("completed_ns", 0)), txn)
        table = _read(meta.path, HEALTH_STORE, None if host is None else pc.field("url_domain") == host)
        kinds = pa.array([record.get("kind", "batch")] * table.num_rows, pa.string())
        found.append((order, table.append_column("kind", kinds)))
    if not found:
        return empty
    table = pa.concat_tables(t for _, t in sorted(found, key=lambda item: item[0]))
    seen, keep = set(), []
    for i, key in enumerate(zip(table["episode_id"].to_pylist(), table["status"].to_pylist())):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return table.take(pa.array(keep, pa.int64()))


def _prefix_visitors(breakdown: pa.Table, host: str | None, prefix: str) -> float:
    """Distinct visitors (a sketch union) of the period's paths under ``prefix`` on ``host``."""
    if breakdown.num_rows == 0:
        return 0.0
    paths = breakdown.filter(pc.field("dimension") == "path")
    hosts = paths["url_domain"]
    same_host = pc.is_null(hosts) if host is None else pc.fill_null(pc.equal(hosts, host), False)
    under = pc.or_(pc.equal(paths["value"], prefix), pc.starts_with(paths["value"], prefix.rstrip("/") + "/"))
    sketches = paths.filter(pc.and_(same_host, under))["visitors_hll"].to_pylist()
    present = [s for s in sketches if s is not None]
    if not present:
        return 0.0
    union = datasketches.hll_union(VALUE_HLL_LG_K)
    for sketch in present:
        union.update(datasketches.hll_sketch.deserialize(sketch))
    return union.get_estimate()


def episodes(
    stored: pa.Table,
    host_labels: Mapping[str | None, str],
    breakdown: pa.Table,
    min_visitors: int,
    period_start: dt.datetime,
    period_end: dt.datetime,
    data_end: dt.datetime | None,
    other_hosts: str,
    no_host: str,
) -> list[dict]:
    """One row per episode overlapping ``[period_start, period_end)`` (``schemas.HEALTH_EPISODES`` and ``kind``).

    The band an episode draws runs from when the problem began to its resolved notice; without one (the
    episode was still open when its run's input ended) to where its run's event time had reached, or, for a
    stream (still open now), to the end of the report's data.
    """
    firing, resolved = {}, {}
    for row in stored.to_pylist():
        (firing if row["status"] == FIRING else resolved)[row["episode_id"]] = row
    prefix_shown: dict[tuple, bool] = {}
    out = []
    for eid, fired in firing.items():
        closed = resolved.get(eid)
        if closed is not None:
            until = closed["window_end"]
        elif fired["kind"] == STREAM_KIND:
            until = data_end or fired["window_end"]
        else:
            until = fired["observed_until"] or fired["window_end"]
        until = max(until, fired["window_end"] or until)
        if not (fired["first_seen"] < period_end and until > period_start):
            continue
        host = fired["url_domain"]
        label = host_labels.get(host, other_hosts)
        prefix = fired["path_prefix"]
        if prefix is not None:
            key = (host, prefix)
            if key not in prefix_shown:
                prefix_shown[key] = label != other_hosts and k_anonymous(
                    _prefix_visitors(breakdown, host, prefix), min_visitors
                )
            prefix = prefix if prefix_shown[key] else OTHER
        out.append(
            {
                "episode_id": eid,
                "rule_id": fired["rule_id"],
                "rule_title": fired["rule_title"],
                "category": fired["category"],
                "severity": fired["severity"],
                "url_domain": label if label not in (no_host,) else None,
                "host_label": label,
                "path_prefix": prefix,
                "started": fired["first_seen"],
                "fired_at": fired["window_end"],
                "resolved_at": closed["window_end"] if closed is not None else None,
                "shown_until": until,
                "window_start": fired["window_start"],
                "window_end": fired["window_end"],
                "measure": fired["measure"],
                "field": fired["field"],
                "value": fired["value"],
                "baseline": fired["baseline"],
                "threshold": fired["threshold"],
                "events": fired["events"],
            }
        )
    return sorted(out, key=lambda e: (e["started"], e["rule_id"], e["host_label"], e["path_prefix"] or ""))


def episodes_table(rows: list[dict]) -> pa.Table:
    names = HEALTH_EPISODES.names
    return pa.Table.from_pylist([{n: r[n] for n in names} for r in rows], schema=HEALTH_EPISODES)


def value_text(measure: str | None, field: str | None, value: float | None) -> str:
    """A measured value as ops read it: a share in %, a time in ms, a count as a whole number."""
    if value is None:
        return "–"
    if measure == "ratio":
        return f"{100 * value:.1f} %"
    if measure == "count":
        return f"{value:,.0f}"
    if field and field.endswith("_us"):
        return f"{value / 1000:,.0f} ms"
    return f"{value:,.4g}"
