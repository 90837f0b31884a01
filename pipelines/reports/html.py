"""A self-contained HTML capacity report (inline SVG charts, no scripts, readable offline)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import jinja2

TEMPLATE = Path(__file__).with_name("report.html.j2")
CHART_WIDTH, CHART_HEIGHT = 760, 180


def _human_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return str(value)


def _bars(points: list[tuple[str, float]], height: int = CHART_HEIGHT) -> dict:
    """Geometry of a vertical bar chart for ``(label, value)`` points."""
    top = max((v for _, v in points), default=0) or 1
    width = CHART_WIDTH / max(len(points), 1)
    bars = []
    for i, (label, value) in enumerate(points):
        h = (height - 20) * value / top
        bars.append(
            {"x": i * width, "y": height - 20 - h, "w": max(width - 1, 1), "h": h, "label": label, "value": value}
        )
    return {"bars": bars, "max": top, "width": CHART_WIDTH, "height": height}


def _rank(breakdown: list[dict], dimension: str) -> list[dict]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in breakdown:
        if row["dimension"] == dimension:
            totals[row["value"]][0] += row["requests"]
            totals[row["value"]][1] += row["bytes"]
    ranked = sorted(totals.items(), key=lambda kv: (kv[0] == "(other)", -kv[1][0]))[:15]
    top = max((c[0] for _, c in ranked), default=1) or 1
    return [{"value": v, "requests": c[0], "bytes": _human_bytes(c[1]), "share": c[0] / top} for v, c in ranked]


def render_report(aggregates: list[dict], breakdown: list[dict], title: str = "logwarden traffic report") -> str:
    """The report page for aggregate and breakdown rows (as produced by ``traffic.finalize``)."""
    rows = sorted(aggregates, key=lambda r: (r["bucket_start"], r["url_domain"] or ""))
    by_bucket: dict[dt.datetime, dict] = {}
    for row in rows:
        slot = by_bucket.setdefault(row["bucket_start"], defaultdict(float))
        for key in (
            "requests",
            "bytes",
            "peak_requests_per_second",
            "p95_requests_per_second",
            "peak_bytes_per_second",
        ):
            slot[key] += row[key]
        for c in range(1, 6):
            slot[f"status_{c}xx"] += row[f"status_{c}xx"]
    labels = [start.strftime("%m-%d %H:%M") for start in by_bucket]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["bytes"] = _human_bytes
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    total_requests = sum(r["requests"] for r in rows)
    statuses = {f"{c}xx": sum(r[f"status_{c}xx"] for r in rows) for c in range(1, 6)}
    return template.render(
        title=title,
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        first=rows[0]["bucket_start"] if rows else None,
        last=rows[-1]["bucket_start"] if rows else None,
        bucket=rows[0]["bucket"] if rows else "hour",
        total_requests=total_requests,
        total_bytes=sum(r["bytes"] for r in rows),
        bot_requests=sum(r["bot_requests"] for r in rows),
        peak_rps=max((r["peak_requests_per_second"] for r in rows), default=0),
        peak_bps=max((r["peak_bytes_per_second"] for r in rows), default=0),
        statuses=statuses,
        requests_chart=_bars(list(zip(labels, [b["requests"] for b in by_bucket.values()]))),
        bytes_chart=_bars(list(zip(labels, [b["bytes"] for b in by_bucket.values()]))),
        p95_chart=_bars(list(zip(labels, [b["p95_requests_per_second"] for b in by_bucket.values()]))),
        dimensions=[
            (name, _rank(breakdown, key))
            for name, key in [
                ("Browsers", "browser"),
                ("Operating systems", "os"),
                ("Devices", "device"),
                ("Countries", "country"),
                ("Status codes", "status"),
                ("Top paths", "path"),
                ("Referrers", "referrer"),
            ]
        ],
        rows=rows,
    )
