"""The one YAML configuration file: its shape, its defaults and its validation.

Every section is a frozen dataclass; ``load_config`` checks a YAML document
against them before anything runs, so a mistake is reported as the key path
and what is wrong with it (``archive.row_group_rows: expected an integer >= 1,
got 'many'``), never as a traceback half-way through a job.  With no file at
all, the defaults work.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import types
import typing
import urllib.parse
import zoneinfo
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration value is wrong; ``key`` is its dotted path in the YAML file."""

    def __init__(self, key: str, problem: str, source: str | None = None):
        self.key = key
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key or '<top level>'}: {problem}")


class ConfigErrors(ConfigError):
    """Every problem found in one config, reported together so one edit fixes them all.

    ``key`` and ``problem`` are the first one's, so code that handles a single
    ``ConfigError`` keeps working; ``errors`` holds them all.
    """

    def __init__(self, errors: list[ConfigError], source: str | None = None):
        self.errors = [ConfigError(e.key, e.problem, source or e.source) for e in errors]
        first = self.errors[0]
        super().__init__(first.key, first.problem, first.source)
        if len(self.errors) > 1:
            where = f"{source}: " if source else ""
            lines = [f"  {e.key or '<top level>'}: {e.problem}" for e in self.errors]
            self.args = (f"{where}{len(self.errors)} problems\n" + "\n".join(lines),)


def _positive(value: int) -> str | None:
    return None if value >= 1 else "must be >= 1"


def _non_negative(value: int) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _unset_or_non_negative(value: int | None) -> str | None:
    return None if value is None else _non_negative(value)


def _networks(values: tuple[str, ...]) -> str | None:
    for value in values:
        try:
            ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            return f"{value!r} is not a network like 10.0.0.0/8 or 2001:db8::/32"
    return None


def _timezone(value: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(value)
        return None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown time zone; {hint}use an IANA name such as UTC, Europe/Berlin or America/New_York"


def _url(value: str) -> str | None:
    if not value:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http:// or https:// URL such as https://hooks.example.com/logwarden"
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return "the port in the URL is not a number 1-65535"
    return None


def _check(fn):
    """Attach a value check to a dataclass field (returns an error text or None)."""
    return {"check": fn}


#: Field metadata for file paths: relative ones are taken relative to the config file's folder,
#: so a config works from whatever directory the job is started in.
PATHS = {"paths": True}


@dataclasses.dataclass(frozen=True)
class InputConfig:
    #: ``auto`` (detect per file), a format name (``combined``) or a LogFormat / log_format string.
    format: str = "auto"
    #: Bytes of whole lines per pipeline element; larger chunks amortise per-element overhead.
    chunk_bytes: int = dataclasses.field(default=4 * 1024 * 1024, metadata=_check(_positive))
    #: Uncompressed files larger than this are split into line-aligned ranges read in parallel.
    range_bytes: int = dataclasses.field(default=64 * 1024 * 1024, metadata=_check(_positive))
    #: Zone for logs whose timestamps carry none (error logs), as an IANA name.
    timezone: str = dataclasses.field(default="UTC", metadata=_check(_timezone))
    #: Longest line kept whole, in bytes; a longer line is kept cut at this length as a dead letter (and counted).
    max_line_bytes: int = dataclasses.field(default=1024 * 1024, metadata=_check(_positive))


def _codec(value: str) -> str | None:
    codecs = ("zstd", "snappy", "gzip", "lz4", "brotli", "none")
    return None if value in codecs else f"unknown codec {value!r}; use {', '.join(codecs[:-1])} or none"


@dataclasses.dataclass(frozen=True)
class ArchiveConfig:
    #: Target rows per Parquet row group.
    row_group_rows: int = dataclasses.field(default=128 * 1024, metadata=_check(_positive))
    #: A row group is written once this many bytes of rows are pending, short of ``row_group_rows``: what an open
    #: file holds in memory (the batch job keeps one open per day and dataset).
    row_group_bytes: int = dataclasses.field(default=16 * 1024 * 1024, metadata=_check(_positive))
    #: A file is closed and a new one started past this many rows.
    max_file_rows: int = dataclasses.field(default=4 * 1024 * 1024, metadata=_check(_positive))
    #: Parquet compression codec.
    compression: str = dataclasses.field(default="zstd", metadata=_check(_codec))


#: Overrides where the keyring and root key live by default (a deployment sets it, or names them in the config).
HOME_ENV = "LOGWARDEN_HOME"


def user_data_dir() -> Path:
    """Where keys live unless the config says: ``$LOGWARDEN_HOME``, else ``$XDG_DATA_HOME/logwarden``
    (``~/.local/share/logwarden``).  Never the working directory: a job started elsewhere must find the
    same keyring, not silently make a second one with a second root key."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
    return Path(base).expanduser() / "logwarden"


@dataclasses.dataclass(frozen=True)
class KeysConfig:
    #: Keyring directory: public halves of the archive's master keys and their private halves sealed to the root key.
    #: Default: ``keyring`` in ``user_data_dir()``.
    keyring: str = dataclasses.field(default_factory=lambda: str(user_data_dir() / "keyring"), metadata=PATHS)
    #: Root key file (owner-only, mode 600); $LOGWARDEN_ROOT_KEY takes precedence.  Keep it off ingest hosts.
    root_key_file: str = dataclasses.field(default_factory=lambda: str(user_data_dir() / "root.key"), metadata=PATHS)
    #: Create a keyring (and a root key, unless $LOGWARDEN_ROOT_KEY is set) on the first batch run when none exists.
    auto_init: bool = True
    #: This writer's Ed25519 signing key (owner-only); empty: ``signing.key`` beside the keyring directory.
    #: Its manifests are read only once the keyring's custodian trusts it (``logwarden keys trust``).
    signing_key_file: str = dataclasses.field(default="", metadata=PATHS)


@dataclasses.dataclass(frozen=True)
class EnrichConfig:
    #: Add user-agent and geolocation fields.
    enabled: bool = True
    #: Paths to MaxMind-format databases (City or Country, and ASN); missing ones leave fields empty.
    geoip_databases: tuple[str, ...] = dataclasses.field(default=(), metadata=PATHS)
    #: Networks (CIDR) of proxies whose X-Forwarded-For is trusted.
    trusted_proxies: tuple[str, ...] = dataclasses.field(default=(), metadata=_check(_networks))
    #: Distinct user-agent strings kept parsed in memory per worker.
    user_agent_cache_size: int = dataclasses.field(default=100_000, metadata=_check(_positive))
    #: Distinct client addresses kept geolocated per worker (Arrow columns, about 100 bytes each).
    ip_cache_size: int = dataclasses.field(default=250_000, metadata=_check(_positive))


def _kinds(values: tuple[str, ...]) -> str | None:
    wrong = [v for v in values if v not in ("health", "security")]
    return f"must list health and/or security, got {wrong[0]!r}" if wrong else None


def _severity(value: str) -> str | None:
    return (
        None
        if value in ("info", "low", "medium", "high", "critical")
        else "must be info, low, medium, high or critical"
    )


@dataclasses.dataclass(frozen=True)
class WebhookConfig:
    #: Where alerts are POSTed as JSON (empty: no webhook).
    url: str = dataclasses.field(default="", metadata=_check(_url))
    #: Seconds to wait for the receiver on each attempt.
    timeout_seconds: int = dataclasses.field(default=5, metadata=_check(_positive))
    #: Further attempts after a failed one, with exponential backoff.
    retries: int = dataclasses.field(default=3, metadata=_check(_non_negative))
    #: Seconds before the first retry; doubled on each further one.
    backoff_seconds: int = dataclasses.field(default=1, metadata=_check(_non_negative))
    #: ``json`` (the alert record) or ``slack`` (a Slack-compatible ``{"text": ...}`` message).
    format: str = dataclasses.field(
        default="json", metadata=_check(lambda v: None if v in {"json", "slack"} else "must be json or slack")
    )
    #: True only when the receiver is inside the company: then it gets whole alerts (addresses, users,
    #: evidence lines); otherwise only rule, severity, counts, times, a keyed hash of the key and the alert id.
    internal: bool = False
    #: Only these kinds of alert: health (service-health rules) and/or security (empty: both).
    kinds: tuple[str, ...] = dataclasses.field(default=(), metadata=_check(_kinds))
    #: Only alerts of these categories (empty: every one), e.g. [availability, performance].
    categories: tuple[str, ...] = ()
    #: Only alerts at or above this severity: info, low, medium, high or critical.
    min_severity: str = dataclasses.field(default="info", metadata=_check(_severity))


@dataclasses.dataclass(frozen=True)
class SyslogConfig:
    #: Syslog receiver host (empty: no syslog).
    host: str = ""
    port: int = dataclasses.field(
        default=514, metadata=_check(lambda v: None if 1 <= v <= 65535 else "must be a port number 1-65535")
    )
    #: ``udp`` or ``tcp`` (RFC 5424 messages; TCP uses octet-counting framing, RFC 6587).
    protocol: str = dataclasses.field(
        default="udp", metadata=_check(lambda v: None if v in {"udp", "tcp"} else "must be udp or tcp")
    )
    #: Syslog facility number (10 = authpriv, 13 = log audit, 4 = auth).
    facility: int = dataclasses.field(default=10, metadata=_check(lambda v: None if 0 <= v <= 23 else "must be 0-23"))
    app_name: str = "logwarden"
    #: As for the webhook: whole alerts only to a receiver marked internal.
    internal: bool = False
    #: Only these kinds of alert: health (service-health rules) and/or security (empty: both).
    kinds: tuple[str, ...] = dataclasses.field(default=(), metadata=_check(_kinds))
    #: Only alerts of these categories (empty: every one), e.g. [availability, performance].
    categories: tuple[str, ...] = ()
    #: Only alerts at or above this severity: info, low, medium, high or critical.
    min_severity: str = dataclasses.field(default="info", metadata=_check(_severity))


@dataclasses.dataclass(frozen=True)
class AlertSinksConfig:
    #: A PLAINTEXT JSON-lines file alerts are appended to (mode 600); alerts are otherwise kept encrypted only.
    jsonl: str = dataclasses.field(default="", metadata=PATHS)
    #: Print each alert as one JSON line on standard output.
    stdout: bool = False
    webhook: WebhookConfig = WebhookConfig()
    syslog: SyslogConfig = SyslogConfig()
    #: Seconds a run may spend delivering alerts to all sinks together; what is left is retried next run.
    deadline_seconds: int = dataclasses.field(default=60, metadata=_check(_positive))
    #: Alerts waiting per sink; in a stream, alerts past a full queue wait for the next run's retry.
    queue_size: int = dataclasses.field(default=10_000, metadata=_check(_positive))
    #: Private key (owner-only, mode 600; $LOGWARDEN_OUTBOX_KEY wins) sealing alerts that wait for delivery;
    #: empty: outbox.key beside the keyring directory.
    outbox_key_file: str = dataclasses.field(default="", metadata=PATHS)


def _cooldowns(values: tuple[str, ...]) -> str | None:
    for item in values:
        rule_id, sep, duration = item.partition("=")
        if not sep or not rule_id.strip() or not duration.strip():
            return f"expected 'RULE_ID=DURATION' items such as 'http-sqli=30m', got {item!r}"
    return None


@dataclasses.dataclass(frozen=True)
class AlertsConfig:
    #: Evaluate detection rules.
    enabled: bool = True
    #: Rule files or directories to load in addition to (or instead of) the default pack.
    rules: tuple[str, ...] = dataclasses.field(default=(), metadata=PATHS)
    #: Load the rule pack shipped with logwarden.
    default_rules: bool = True
    #: Evidence lines per alert (0: each rule's own setting).
    evidence_lines: int = dataclasses.field(default=0, metadata=_check(_non_negative))
    #: Cool-down overrides, ``RULE_ID=DURATION`` (``http-sqli=30m``).
    cooldowns: tuple[str, ...] = dataclasses.field(default=(), metadata=_check(_cooldowns))
    #: Rule ids not to run (shipped or your own), e.g. ``[http-request-flood]``.
    disable: tuple[str, ...] = ()
    #: Keys are spread over this many state shards (more: more parallelism, more timers).
    shards: int = dataclasses.field(default=16, metadata=_check(_positive))
    sinks: AlertSinksConfig = AlertSinksConfig()


def _bucket(value: str) -> str | None:
    return None if value in {"minute", "hour", "day"} else "must be minute, hour or day"


@dataclasses.dataclass(frozen=True)
class ReportsConfig:
    #: Write capacity reports (aggregates without personal data) with every batch run.
    enabled: bool = True
    #: Time bucket of the stored aggregates (reports can roll them up to coarser buckets, week included).
    bucket: str = dataclasses.field(default="hour", metadata=_check(_bucket))
    #: A path, referrer or other breakdown value is shown only when this many distinct visitors share it.
    min_visitors: int = dataclasses.field(default=10, metadata=_check(_positive))


def _online_days(value: int) -> str | None:
    return None if value >= 90 else "must be >= 90 (the published policy keeps logs online at least 90 days)"


def _archive_days(value: int) -> str | None:
    return None if value >= 365 else "must be >= 365 (the published policy archives logs at least one year)"


@dataclasses.dataclass(frozen=True)
class RetentionConfig:
    #: Days a partition stays in the online, searchable tier (the public promise: at least 90).
    online_days: int = dataclasses.field(default=90, metadata=_check(_online_days))
    #: Days a partition is kept in the archive tier before deletion (at least 365).
    archive_days: int = dataclasses.field(default=365, metadata=_check(_archive_days))
    #: zstd level of archive-tier files (1-22; higher: smaller and slower to write, as fast to read).
    archive_zstd_level: int = dataclasses.field(
        default=9, metadata=_check(lambda v: None if 1 <= v <= 22 else "must be 1-22")
    )


#: What a role may do.  Reading actions need the archive's keys sealed to the role (``logwarden keys grant``).
ACCESS_ACTIONS = {
    "ingest": "run batch and stream jobs (writes the archive with public keys only)",
    "retention": "apply retention and manage legal holds (reads the archive to compact it)",
    "verify": "check the archive deeply (decrypts every file)",
    "search": "search events and alerts",
    "subject": "export, correct or erase one person's records",
    "reports": "read the capacity reports (no personal data)",
    "audit": "show and verify the audit trail",
    "keys": "manage keys and roles (holds the root key)",
}
READ_ACTIONS = frozenset({"retention", "verify", "search", "subject"})
DEFAULT_ROLES = {
    "ops": ("ingest", "retention", "verify"),
    "security": ("search",),
    "planner": ("reports",),
    "privacy": ("subject", "search"),
    "custodian": ("keys", "audit", "verify"),
}


def _roles(roles: dict) -> str | None:
    for name, actions in roles.items():
        if not str(name).replace("-", "").replace("_", "").isalnum() or not str(name)[:1].isalpha():
            return f"bad role name {name!r} (letters, digits, '-' or '_')"
        unknown = sorted(set(actions) - set(ACCESS_ACTIONS))
        if unknown:
            return f"role {name!r}: unknown action(s) {', '.join(unknown)}; known: {', '.join(ACCESS_ACTIONS)}"
    return None


@dataclasses.dataclass(frozen=True)
class AccessConfig:
    #: Role name -> the actions it may take (see ``ACCESS_ACTIONS``); replaces the defaults when given.
    roles: dict[str, tuple[str, ...]] = dataclasses.field(
        default_factory=lambda: dict(DEFAULT_ROLES), metadata=_check(_roles)
    )
    #: Folder of the roles' secret files (``<role>.key``, owner-only); ``$LOGWARDEN_ROLE_KEY_<ROLE>`` wins.
    #: The custodian's secret is the root key (keys.root_key_file).  Default: ``roles`` in ``user_data_dir()``.
    role_keys_dir: str = dataclasses.field(default_factory=lambda: str(user_data_dir() / "roles"), metadata=PATHS)


@dataclasses.dataclass(frozen=True)
class AuditConfig:
    #: The audit trail (JSON lines, append-only); empty: ``<archive>/_audit/audit.jsonl`` of the archive worked on.
    log: str = dataclasses.field(default="", metadata=PATHS)
    #: HMAC key of the audit trail (owner-only, mode 600), created with the trail's first entry;
    #: $LOGWARDEN_AUDIT_KEY takes precedence.  Every host that runs audited commands needs the same key.
    #: Default: ``audit.key`` in ``user_data_dir()`` (never the working directory: a second key would fail the HMACs).
    key_file: str = dataclasses.field(default_factory=lambda: str(user_data_dir() / "audit.key"), metadata=PATHS)


@dataclasses.dataclass(frozen=True)
class RunnerConfig:
    #: Beam runner used when --runner is not given; never one that downloads binaries at run time.
    name: str = "FnApiRunner"
    #: Worker processes for the local runner (0: one per core; 1: none, the job runs in the command's process).
    #: Unset: ``logwarden batch`` picks (``pipelines.options.default_local_workers``), everything else runs in 1.
    direct_num_workers: int | None = dataclasses.field(default=None, metadata=_check(_unset_or_non_negative))


def _start_at(value: str) -> str | None:
    return None if value in {"beginning", "end"} else "must be beginning or end"


def _positive_seconds(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def _non_negative_seconds(value: float) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _source(value: str) -> str | None:
    return None if value in {"files", "pubsub", "kafka"} else "must be files, pubsub or kafka"


@dataclasses.dataclass(frozen=True)
class PubSubSourceConfig:
    #: ``projects/P/subscriptions/S`` to read (or give ``topic`` and Beam creates a subscription).
    subscription: str = ""
    topic: str = ""
    #: Message attribute that names the log file a line came from (kept as ``log_file_path``).
    path_attribute: str = "path"


@dataclasses.dataclass(frozen=True)
class KafkaSourceConfig:
    #: ``host:port,host:port`` of the Kafka brokers.
    bootstrap_servers: str = ""
    topics: tuple[str, ...] = ()
    group_id: str = "logwarden"
    #: ``host:port`` of a running Beam Java expansion service; empty: Beam downloads and starts its jar.
    expansion_service: str = ""


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    #: Where lines come from: followed ``files`` (``--input``), ``pubsub`` or ``kafka`` (Dataflow / Flink).
    source: str = dataclasses.field(default="files", metadata=_check(_source))
    pubsub: PubSubSourceConfig = PubSubSourceConfig()
    kafka: KafkaSourceConfig = KafkaSourceConfig()
    #: Seconds between two looks at the followed files.
    poll_seconds: float = dataclasses.field(default=0.05, metadata=_check(_positive_seconds))
    #: Seconds between archive cuts (files, alerts and the checkpoint published together).
    cut_seconds: float = dataclasses.field(default=300.0, metadata=_check(_positive_seconds))
    #: A cut also comes when one open archive file reaches this many bytes.
    cut_bytes: int = dataclasses.field(default=256 * 1024 * 1024, metadata=_check(_positive))
    #: A last line without newline is handed out as a truncated line (dead letter) after this long.
    partial_line_seconds: float = dataclasses.field(default=5.0, metadata=_check(_positive_seconds))
    #: A file renamed out of the --input globs is still read this long for late writes, then let go.
    rotate_grace_seconds: float = dataclasses.field(default=5.0, metadata=_check(_non_negative_seconds))
    #: How far behind the newest line behaviour rules wait for out-of-order lines while inputs are busy.
    lateness_seconds: float = dataclasses.field(default=0.0, metadata=_check(_non_negative_seconds))
    #: Inputs quiet this long let the event-time watermark reach the newest line.
    idle_seconds: float = dataclasses.field(default=2.0, metadata=_check(_positive_seconds))
    #: Seconds between two progress lines on stderr.
    progress_seconds: float = dataclasses.field(default=5.0, metadata=_check(_positive_seconds))
    #: Files found on the very first start: read from the ``beginning`` or only what is appended (``end``).
    start_at: str = dataclasses.field(default="beginning", metadata=_check(_start_at))
    #: The key that encrypts the job's checkpoint (created on first start, mode 0600).
    #: Default: ``stream-state.key`` in ``user_data_dir()``, so a restart from another folder resumes.
    state_key_file: str = dataclasses.field(
        default_factory=lambda: str(user_data_dir() / "stream-state.key"), metadata=PATHS
    )


@dataclasses.dataclass(frozen=True)
class Config:
    input: InputConfig = InputConfig()
    archive: ArchiveConfig = ArchiveConfig()
    keys: KeysConfig = dataclasses.field(default_factory=KeysConfig)  # follows $LOGWARDEN_HOME when made
    enrich: EnrichConfig = EnrichConfig()
    alerts: AlertsConfig = AlertsConfig()
    reports: ReportsConfig = ReportsConfig()
    retention: RetentionConfig = RetentionConfig()
    runner: RunnerConfig = RunnerConfig()
    access: AccessConfig = dataclasses.field(default_factory=AccessConfig)
    audit: AuditConfig = dataclasses.field(default_factory=AuditConfig)  # key paths follow $LOGWARDEN_HOME
    stream: StreamConfig = dataclasses.field(default_factory=StreamConfig)


def _type_name(tp: Any) -> str:
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if typing.get_origin(tp) is tuple:
        return "a list"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str, base_dir: Path | None, errors: list[ConfigError]) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, base_dir, errors)
    origin = typing.get_origin(tp)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {value!r}")
        _key_type, item_type = typing.get_args(tp)
        return {str(k): _convert(v, item_type, f"{key}.{k}") for k, v in value.items()}
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(tp)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_convert(item, item_type, f"{key}[{i}]", None, errors) for i, item in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], key, None, errors)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(key, f"expected {_type_name(tp)}, got {value!r}")


def _resolve(value: Any, base_dir: Path | None) -> Any:
    if base_dir is None:
        return value
    if isinstance(value, tuple):
        return tuple(_resolve(item, base_dir) for item in value)
    if isinstance(value, str) and value and "://" not in value and not Path(value).expanduser().is_absolute():
        return str(base_dir / value)
    return value


def _build(cls: type, data: Any, prefix: str, base_dir: Path | None, errors: list[ConfigError]) -> Any:
    """``cls`` from ``data``; each bad key is added to ``errors`` (and left at its default) so all are reported."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errors.append(ConfigError(prefix, f"expected a mapping of keys, got {data!r}"))
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for raw_key, value in data.items():
        key = str(raw_key)
        path = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(fields))}"
            errors.append(ConfigError(path, f"unknown key{hint}"))
            continue
        try:
            converted = _convert(value, hints[key], path, base_dir, errors)
        except ConfigError as error:
            errors.append(error)
            continue
        if fields[key].metadata.get("paths"):
            converted = _resolve(converted, base_dir)
        check = fields[key].metadata.get("check")
        problem = check(converted) if check is not None else None
        if problem:
            errors.append(ConfigError(path, f"{problem}, got {value!r}"))
            continue
        values[key] = converted
    return cls(**values)


#: A check that needs more than this module knows (formats, rules, runners): the problems it finds.
Checker = typing.Callable[[Config], list[ConfigError]]


def parse_config(
    data: Any, source: str | None = None, check: Checker | None = None, errors: list[ConfigError] | None = None
) -> Config:
    """Validate an already-loaded YAML document and return the configuration.

    Relative file paths in it are resolved against the folder of ``source`` when given.
    Every problem is collected (``errors`` found earlier, then each key's, then ``check``'s
    on the rest, bad keys left at their defaults) and raised together as ``ConfigErrors``.
    """
    base_dir = Path(source).resolve().parent if source else None
    errors = list(errors or ())
    config = _build(Config, data, "", base_dir, errors)
    if check is not None:
        errors += check(config)
    if errors:
        raise ConfigErrors(errors, source)
    return config


def duplicate_keys(node: yaml.Node, prefix: str = "") -> list[ConfigError]:
    """Keys given twice in one mapping: YAML silently keeps the last, so the first would be ignored unseen."""
    found: list[ConfigError] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{prefix}.{key}" if prefix else key
            line = key_node.start_mark.line + 1
            if key in seen:
                found.append(
                    ConfigError(
                        path, f"given twice (lines {seen[key]} and {line}); YAML would keep only the last: delete one"
                    )
                )
            seen.setdefault(key, line)
            found += duplicate_keys(value_node, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found += duplicate_keys(item, f"{prefix}[{index}]")
    return found


def load_config(path: str | Path | None, check: Checker | None = None) -> Config:
    """Read and validate a YAML config file (``check`` adds its own problems); ``None`` gives the defaults."""
    if path is None:
        return parse_config({}, None, check)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", "config file not found", str(path)) from None
    except IsADirectoryError:
        raise ConfigError("", "is a directory, not a config file", str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("", "not a text (UTF-8) file", str(path)) from None
    except OSError as error:
        raise ConfigError("", f"cannot read config file: {error.strerror}", str(path)) from None
    try:
        data = yaml.safe_load(text)
        duplicates = duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("", f"not valid YAML{where}: {getattr(error, 'problem', error)}", str(path)) from None
    return parse_config(data, str(path), check, duplicates)


def config_to_dict(config: Config) -> dict:
    """The configuration as plain data (for ``config show`` and for shipping to workers)."""
    return dataclasses.asdict(config)
