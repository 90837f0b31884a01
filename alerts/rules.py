"""Detection rules: their model, and loading them from YAML with errors that name the rule and the key.

Three kinds of rule share one shape of header (id, title, severity, category,
ATT&CK technique, description, known false positives):

* ``signature`` — conditions on one event (``match``); the first matching
  request alerts, then the rule cools down per ``groupby`` key;
* ``behaviour`` — a ``filter`` selects events, ``groupby`` keys them, an
  optional ``distinct`` field counts only new values, and either a leaky
  ``bucket`` (capacity, leak interval) or a sliding ``window`` (count within a
  period) decides when the key has done too much; ``cooldown`` keeps it to one
  alert per key per period;
* ``sequence`` — ordered ``steps``, each a ``match`` and (after the first) a
  ``within`` time limit since the previous step, completed per ``groupby`` key in
  event-time order (GET of a form, then a POST to it within 3 s); ``same: FIELD``
  makes the steps agree on a field (the same form); an optional ``window``
  (count, period) asks for several completed sequences before alerting.

Conditions (a list means "all of"): ``{field, <op>: value}`` with ``op`` one of
``equals``, ``in``, ``contains``, ``contains_any``, ``words_any`` (whole words), ``startswith_any``,
``endswith_any``, ``regex``, ``regex_any``, ``gt``/``gte``/``lt``/``lte``,
``class`` (``4xx``), ``exists``, ``grammar`` (an injection grammar of ``alerts.grammars`` reading the raw
field: ``sqli``, ``command``, ``code``, ``xss``, ``rfi``); ``list: NAME`` takes the values of a list op
from the word list ``NAME.txt``; ``{any: [...]}`` and ``{none: [...]}`` combine.
Text fields that carry a request are matched after ``normalize_request`` (``normalize: false`` opts
out); other text fields are matched as written unless the condition says ``normalize: true``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from alerts.grammars import GRAMMARS
from alerts.wordlists import WordListError, load_word_list
from schemas import ACCESS_EVENT, ERROR_EVENT

DEFAULT_RULES_DIR = Path(__file__).with_name("rules")
#: libyaml's loader when PyYAML has it: the pure-Python one took 0.1 s for the default pack on every run.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SEVERITIES = ("info", "low", "medium", "high", "critical")
DATASETS = {"access": ACCESS_EVENT, "error": ERROR_EVENT}

#: Fields holding attacker-controlled request text: matched normalised unless a condition says ``normalize: false``.
REQUEST_FIELDS = frozenset(
    {"url_original", "url_path", "url_query", "http_request_line", "http_request_referrer", "user_agent_original"}
)

LIST_OPS = ("in", "contains_any", "words_any", "startswith_any", "endswith_any", "regex_any")
TEXT_OPS = ("equals", "contains", "regex", *LIST_OPS)
NUMBER_OPS = ("gt", "gte", "lt", "lte")
OPS = (*TEXT_OPS, *NUMBER_OPS, "class", "exists", "grammar")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class RuleError(ValueError):
    """A rule file or rule is wrong; the message names the file, the rule id and the key."""

    def __init__(self, problem: str, source: str | None = None, rule_id: str | None = None, key: str | None = None):
        self.problem, self.source, self.rule_id, self.key = problem, source, rule_id, key
        where = [part for part in (source, f"rule {rule_id}" if rule_id else None, key) if part]
        super().__init__(f"{': '.join(where)}: {problem}" if where else problem)


def parse_duration(value: Any, key: str = "duration") -> float:
    """``"10s"``, ``"5m"``, ``"1h"``, ``"1d"``, ``"250ms"`` or a number of seconds, as seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise RuleError(f"expected a duration such as 30s, 5m, 1h or 1d, got {value!r}", key=key)
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclasses.dataclass(frozen=True)
class Condition:
    """One test on one field; ``values`` holds the operand (a list for list ops, a scalar otherwise)."""

    field: str
    op: str
    values: Any
    normalize: bool = True
    negate: bool = False


@dataclasses.dataclass(frozen=True)
class Group:
    """Conditions combined by ``mode``: ``any`` (at least one), ``all`` (every one) or ``none`` (not one)."""

    mode: str
    conditions: tuple


@dataclasses.dataclass(frozen=True)
class Bucket:
    """Leaky bucket: overflows when more than ``capacity`` events are in it; one leaks out every ``leak`` seconds."""

    capacity: int
    leak: float


@dataclasses.dataclass(frozen=True)
class Window:
    """Sliding window: ``count`` events (or distinct values) within ``period`` seconds."""

    count: int
    period: float


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a sequence rule: its conditions, and how soon after the previous step it must come."""

    conditions: tuple
    within: float = 0.0  # seconds; the first step has no limit


@dataclasses.dataclass(frozen=True)
class Rule:
    id: str
    kind: str  # "signature" or "behaviour"
    title: str
    severity: str
    category: str
    technique: str
    description: str
    false_positives: str
    dataset: str
    conditions: tuple  # all must hold (signature match / behaviour filter)
    groupby: tuple[str, ...]
    cooldown: float
    distinct: str | None = None
    threshold: Bucket | Window = Window(1, 1.0)
    evidence: int = 5
    tags: tuple[str, ...] = ()
    source: str = ""
    steps: tuple[Step, ...] = ()  # sequence rules only
    same: str | None = None  # sequence rules: the field every step must share

    @property
    def is_signature(self) -> bool:
        return self.kind == "signature"

    @property
    def is_sequence(self) -> bool:
        return self.kind == "sequence"

    @property
    def counts_plainly(self) -> bool:
        """A sliding count of rows (no distinct values): folded for all its keys at once (request floods)."""
        return (
            isinstance(self.threshold, Window)
            and self.threshold.count > 1
            and self.distinct is None
            and not self.is_sequence
        )

    def fields(self) -> set[str]:
        """Every event field this rule reads."""
        names = set(self.groupby)
        for extra in (self.distinct, self.same):
            if extra:
                names.add(extra)

        def walk(items):
            for item in items:
                if isinstance(item, Group):
                    walk(item.conditions)
                else:
                    names.add(item.field)

        walk(self.conditions)
        return names


@dataclasses.dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]

    def __post_init__(self):
        seen: dict[str, str] = {}
        for rule in self.rules:
            if rule.id in seen:
                raise RuleError(f"duplicate rule id (also defined in {seen[rule.id]})", rule.source, rule.id, "id")
            seen[rule.id] = rule.source

    def for_dataset(self, dataset: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.dataset == dataset)

    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    def with_cooldowns(self, overrides: dict[str, float]) -> RuleSet:
        """The same rules with some cool-downs replaced (from the config); unknown ids are an error."""
        known = self.by_id()
        for rule_id in overrides:
            if rule_id not in known:
                raise RuleError(f"cooldown override for unknown rule {rule_id!r}", key="alerts.cooldowns")
        return RuleSet(tuple(dataclasses.replace(r, cooldown=overrides.get(r.id, r.cooldown)) for r in self.rules))


# ---------------------------------------------------------------- loading


class _Reader:
    """Reads one rule mapping, raising ``RuleError`` that names the rule and key."""

    def __init__(self, data: dict, source: str, list_dirs: list[Path]):
        self.data, self.source, self.list_dirs = data, source, list_dirs
        self.rule_id = str(data.get("id")) if data.get("id") is not None else None

    def fail(self, key: str, problem: str):
        raise RuleError(problem, self.source, self.rule_id, key)

    def text(self, key: str, required: bool = True, default: str = "") -> str:
        value = self.data.get(key)
        if value is None:
            if required:
                self.fail(key, "is required")
            return default
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            self.fail(key, f"expected text, got {value!r}")
        return str(value).strip()

    def duration(self, value: Any, key: str) -> float:
        try:
            return parse_duration(value, key)
        except RuleError as error:
            self.fail(key, error.problem)

    def positive_int(self, value: Any, key: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            self.fail(key, f"expected an integer >= 1, got {value!r}")
        return value

    def field(self, value: Any, key: str, schema: pa.Schema) -> str:
        if not isinstance(value, str) or value not in schema.names:
            close = difflib.get_close_matches(str(value), schema.names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.fail(key, f"unknown field {value!r} for {self.data.get('dataset', 'access')} events{hint}")
        return value

    def word_list(self, name: Any, key: str) -> tuple[str, ...]:
        if not isinstance(name, str):
            self.fail(key, f"expected a word list name, got {name!r}")
        try:
            return load_word_list(name, self.list_dirs)
        except WordListError as error:
            self.fail(key, str(error))

    def regex(self, pattern: Any, key: str) -> str:
        if not isinstance(pattern, str) or not pattern:
            self.fail(key, f"expected a regular expression, got {pattern!r}")
        try:
            pc.match_substring_regex(pa.array([""]), pattern)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            self.fail(key, f"invalid regular expression (RE2 syntax): {error}")
        return pattern

    def conditions(self, items: Any, key: str, schema: pa.Schema) -> tuple:
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list) or not items:
            self.fail(key, "expected a non-empty list of conditions")
        return tuple(self.condition(item, f"{key}[{i}]", schema) for i, item in enumerate(items))

    def condition(self, item: Any, key: str, schema: pa.Schema):
        if not isinstance(item, dict):
            self.fail(key, f"expected a condition mapping, got {item!r}")
        if set(item) in ({"any"}, {"none"}, {"all"}):
            (mode,) = item
            return Group(mode, self.conditions(item[mode], f"{key}.{mode}", schema))
        unknown = set(item) - {"field", "list", "normalize", "not", *OPS}
        if unknown:
            self.fail(f"{key}.{sorted(unknown)[0]}", f"unknown condition key; operators are {', '.join(OPS)}")
        field = self.field(item.get("field"), f"{key}.field", schema)
        ops = [op for op in OPS if op in item]
        if "list" in item and not ops:
            ops = ["contains_any"]
        if len(ops) != 1:
            self.fail(key, f"expected exactly one operator ({', '.join(OPS)}), got {ops or 'none'}")
        op = ops[0]
        value = item.get(op)
        if op in LIST_OPS:
            if "list" in item:
                values = self.word_list(item["list"], f"{key}.list")
            elif isinstance(value, list) and value:
                values = tuple(str(v) for v in value)
            else:
                self.fail(f"{key}.{op}", "expected a non-empty list of values or 'list: NAME'")
            if op == "regex_any":
                for i, pattern in enumerate(values):
                    self.regex(pattern, f"{key}.{op}[{i}]")
        elif op in NUMBER_OPS:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                self.fail(f"{key}.{op}", f"expected a number, got {value!r}")
            values = value
        elif op == "class":
            classes = value if isinstance(value, list) else [value]
            for c in classes:
                if not (isinstance(c, str) and re.fullmatch(r"[1-5]xx", c)):
                    self.fail(f"{key}.class", f"expected status classes such as 4xx, got {c!r}")
            values = tuple(int(c[0]) for c in classes)
        elif op == "exists":
            if not isinstance(value, bool):
                self.fail(f"{key}.exists", f"expected true or false, got {value!r}")
            values = value
        elif op == "regex":
            values = self.regex(value, f"{key}.regex")
        elif op == "grammar":
            if value not in GRAMMARS:
                self.fail(f"{key}.grammar", f"unknown grammar {value!r}; grammars are {', '.join(sorted(GRAMMARS))}")
            values = value
        else:
            if value is None or isinstance(value, (list, dict)):
                self.fail(f"{key}.{op}", f"expected one value, got {value!r}")
            values = value if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
        normalize = item.get("normalize", True)
        if not isinstance(normalize, bool):
            self.fail(f"{key}.normalize", f"expected true or false, got {normalize!r}")
        negate = item.get("not", False)
        if not isinstance(negate, bool):
            self.fail(f"{key}.not", f"expected true or false, got {negate!r}")
        if "normalize" not in item:  # request text by default; other text (an error message quoting a path) on request
            normalize = field in REQUEST_FIELDS
        if op == "grammar":
            normalize = False  # a grammar decodes the raw text itself, part by part
        return Condition(field, op, values, normalize, negate)

    def rule(self) -> Rule:
        data = self.data
        known = {
            "id", "kind", "title", "severity", "category", "technique", "description", "false_positives", "dataset",
            "match", "filter", "groupby", "distinct", "bucket", "window", "cooldown", "evidence", "tags", "enabled",
            "steps", "same",
        }  # fmt: skip
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                self.fail(str(key), "unknown key" + (f"; did you mean {close[0]!r}?" if close else ""))
        rule_id = self.text("id")
        if not _RULE_ID.match(rule_id):
            self.fail("id", f"expected lowercase letters, digits, '-', '_' or '.', got {rule_id!r}")
        kind = self.text("kind")
        if kind not in ("signature", "behaviour", "sequence"):
            self.fail("kind", f"expected signature, behaviour or sequence, got {kind!r}")
        severity = self.text("severity")
        if severity not in SEVERITIES:
            self.fail("severity", f"expected one of {', '.join(SEVERITIES)}, got {severity!r}")
        technique = self.text("technique")
        if not _TECHNIQUE.match(technique):
            self.fail("technique", f"expected a MITRE ATT&CK technique id such as T1190, got {technique!r}")
        dataset = self.text("dataset", required=False, default="access")
        if dataset not in DATASETS:
            self.fail("dataset", f"expected access or error, got {dataset!r}")
        schema = DATASETS[dataset]
        steps: tuple[Step, ...] = ()
        if kind == "sequence":
            for key in ("match", "filter", "bucket", "distinct"):
                if key in data:
                    self.fail(key, "a sequence rule takes 'steps' (each with 'match' and 'within'), not " + repr(key))
            steps = self.steps(schema)
            conditions = (Group("any", tuple(Group("all", step.conditions) for step in steps)),)
        else:
            if "steps" in data or "same" in data:
                self.fail("steps" if "steps" in data else "same", f"only a sequence rule takes it, not a {kind} rule")
            condition_key = "match" if kind == "signature" else "filter"
            other = "filter" if kind == "signature" else "match"
            if other in data:
                self.fail(other, f"a {kind} rule takes '{condition_key}', not '{other}'")
            conditions = self.conditions(data.get(condition_key), condition_key, schema)
        groupby = data.get("groupby", ["source_ip"])
        groupby = [groupby] if isinstance(groupby, str) else groupby
        if not isinstance(groupby, list) or not groupby:
            self.fail("groupby", f"expected a list of fields, got {groupby!r}")
        groupby = tuple(self.field(f, f"groupby[{i}]", schema) for i, f in enumerate(groupby))
        distinct = data.get("distinct")
        if distinct is not None:
            distinct = self.field(distinct, "distinct", schema)
        same = self.field(data["same"], "same", schema) if data.get("same") is not None else None
        if kind == "signature":
            for key in ("bucket", "window", "distinct"):
                if key in data:
                    self.fail(key, "a signature rule alerts on the first match; use a behaviour rule for thresholds")
            threshold: Bucket | Window = Window(1, 1.0)
        elif kind == "sequence":  # how many completed sequences, within how long (default: the first one alerts)
            threshold = self.threshold() if "window" in data else Window(1, 1.0)
        else:
            threshold = self.threshold()
        cooldown = self.duration(data.get("cooldown", "10m"), "cooldown")
        evidence = self.positive_int(data.get("evidence", 5), "evidence")
        tags = data.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            self.fail("tags", f"expected a list of words, got {tags!r}")
        return Rule(
            id=rule_id,
            kind=kind,
            title=self.text("title"),
            severity=severity,
            category=self.text("category"),
            technique=technique,
            description=self.text("description"),
            false_positives=self.text("false_positives"),
            dataset=dataset,
            conditions=conditions,
            groupby=groupby,
            cooldown=cooldown,
            distinct=distinct,
            threshold=threshold,
            evidence=evidence,
            tags=tuple(tags),
            source=self.source,
            steps=steps,
            same=same,
        )

    def steps(self, schema: pa.Schema) -> tuple[Step, ...]:
        items = self.data.get("steps")
        if not isinstance(items, list) or len(items) < 2:
            self.fail("steps", f"expected a list of at least two steps, got {items!r}")
        steps = []
        for i, item in enumerate(items):
            key = f"steps[{i}]"
            if not isinstance(item, dict) or "match" not in item or set(item) - {"match", "within"}:
                self.fail(key, f"expected {{match: [conditions], within: DURATION}}, got {item!r}")
            if i == 0 and "within" in item:
                self.fail(f"{key}.within", "the first step starts the sequence: it has no time limit")
            if i and "within" not in item:
                self.fail(f"{key}.within", "is required: how soon after the previous step this one must come")
            within = self.duration(item["within"], f"{key}.within") if i else 0.0
            if i and within <= 0:
                self.fail(f"{key}.within", "must be longer than zero")
            steps.append(Step(self.conditions(item["match"], f"{key}.match", schema), within))
        return tuple(steps)

    def threshold(self) -> Bucket | Window:
        has = [key for key in ("bucket", "window") if key in self.data]
        if len(has) != 1:
            self.fail(
                "bucket", "a behaviour rule needs exactly one of 'bucket' {capacity, leak} or 'window' {count, period}"
            )
        key = has[0]
        spec = self.data[key]
        names = ("capacity", "leak") if key == "bucket" else ("count", "period")
        if not isinstance(spec, dict) or set(spec) != set(names):
            self.fail(key, f"expected {{{names[0]}: N, {names[1]}: DURATION}}, got {spec!r}")
        number = self.positive_int(spec[names[0]], f"{key}.{names[0]}")
        seconds = self.duration(spec[names[1]], f"{key}.{names[1]}")
        if seconds <= 0:
            self.fail(f"{key}.{names[1]}", "must be longer than zero")
        return Bucket(number, seconds) if key == "bucket" else Window(number, seconds)


def _rule_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    return [path]


def load_rule_file(path: Path, list_dirs: Iterable[Path] = ()) -> list[Rule]:
    """The enabled rules of one YAML file (a list of rules, or a mapping with a ``rules`` list)."""
    source = str(path)
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except FileNotFoundError:
        raise RuleError("rule file not found", source) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise RuleError(f"not valid YAML{where}: {getattr(error, 'problem', error)}", source) from None
    if isinstance(document, dict) and "rules" in document:
        document = document["rules"]
    if document is None:
        return []
    if not isinstance(document, list):
        raise RuleError("expected a list of rules (or a mapping with a 'rules' list)", source)
    dirs = [path.parent, *list_dirs, DEFAULT_RULES_DIR]
    rules = []
    for index, item in enumerate(document):
        if not isinstance(item, dict):
            raise RuleError(f"expected a rule mapping, got {item!r}", source, key=f"[{index}]")
        if item.get("enabled", True) is False:
            continue
        rules.append(_Reader(item, source, dirs).rule())
    return rules


def load_rules(paths: Iterable[str | Path] = (), default_rules: bool = True) -> RuleSet:
    """The default pack (unless turned off) plus the rules in ``paths`` (files or directories)."""
    rules: list[Rule] = []
    sources = ([DEFAULT_RULES_DIR] if default_rules else []) + [Path(p) for p in paths]
    for source in sources:
        if not source.exists():
            raise RuleError("rule file or directory not found", str(source))
        for path in _rule_files(source):
            rules.extend(load_rule_file(path))
    return RuleSet(tuple(rules))


def load_configured_rules(config) -> RuleSet:
    """The rules an ``AlertsConfig`` asks for, with its cool-down and evidence overrides applied."""
    rules = load_rules(config.rules, config.default_rules)
    overrides = {}
    for index, item in enumerate(config.cooldowns):
        rule_id, _, duration = item.partition("=")
        try:
            overrides[rule_id.strip()] = parse_duration(duration.strip(), f"alerts.cooldowns[{index}]")
        except RuleError as error:
            raise RuleError(error.problem, key=f"alerts.cooldowns[{index}]") from None
    rules = rules.with_cooldowns(overrides)
    if config.evidence_lines:
        rules = RuleSet(tuple(dataclasses.replace(r, evidence=config.evidence_lines) for r in rules.rules))
    return rules
