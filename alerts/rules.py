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
from alerts.health import HealthSpec, read_health
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
#: An ATT&CK technique as people write it: T1190, t1190, 1190, T1110.004 or T1110/004.
_TECHNIQUE = re.compile(r"^\s*[Tt]?(\d{4})(?:[./](\d{3}))?\s*$")
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class RuleError(ValueError):
    """A rule file or rule is wrong; the message names the file, the rule id and the key."""

    def __init__(self, problem: str, source: str | None = None, rule_id: str | None = None, key: str | None = None):
        self.problem, self.source, self.rule_id, self.key = problem, source, rule_id, key
        where = [part for part in (source, f"rule {rule_id}" if rule_id else None, key) if part]
        super().__init__(f"{': '.join(where)}: {problem}" if where else problem)

    @property
    def errors(self) -> list[RuleError]:
        return [self]


class RuleErrors(RuleError):
    """Every mistake found in the rules at once (one line each), so one edit fixes them all."""

    def __init__(self, errors: list[RuleError]):
        self._errors = [one for error in errors for one in error.errors]
        first = self._errors[0]
        super().__init__(first.problem, first.source, first.rule_id, first.key)
        if len(self._errors) > 1:
            self.args = (f"{len(self._errors)} problems\n" + "\n".join(f"  {e}" for e in self._errors),)

    @property
    def errors(self) -> list[RuleError]:
        return self._errors


def raise_all(errors: list[RuleError]) -> None:
    if errors:
        raise RuleErrors(errors)


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
    health: HealthSpec | None = None  # health rules (alerts.health): the measure, window and threshold

    @property
    def is_health(self) -> bool:
        return self.health is not None

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
        for step in self.steps:
            walk(step.conditions)
        if self.health is not None:
            walk(self.health.of)
            names.update(["url_path"] if self.health.path_segments else [])
            names.update([self.health.field] if self.health.field else [])
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
        self.errors: list[RuleError] = []

    def fail(self, key: str, problem: str):
        raise RuleError(problem, self.source, self.rule_id, key)

    def attempt(self, read, *args, default=None):
        """``read(*args)``, or ``default`` with the mistake kept, so the rest of the rule is still checked."""
        try:
            return read(*args)
        except RuleError as error:
            self.errors.append(error)
            return default

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

    def technique(self) -> str:
        """Optional; normalised to ``T1190`` / ``T1110.004`` from the ways people write it."""
        value = self.text("technique", required=False)
        if not value:
            return ""
        match = _TECHNIQUE.match(value)
        if not match:
            self.fail("technique", f"expected a MITRE ATT&CK technique id such as T1190 or T1110.004, got {value!r}")
        return "T" + match.group(1) + (f".{match.group(2)}" if match.group(2) else "")

    def kind(self) -> str:
        """``signature``, ``behaviour`` or ``sequence``; without ``kind``, the rule's shape says which."""
        data = self.data
        shapes = [key for key in ("match", "filter", "steps") if key in data]
        if data.get("kind") is None and "health" in data:
            return "health"
        if data.get("kind") is None and len(shapes) == 1:
            return {"match": "signature", "filter": "behaviour", "steps": "sequence"}[shapes[0]]
        kind = self.text("kind")
        if kind not in ("signature", "behaviour", "sequence", "health"):
            self.fail("kind", f"expected signature, behaviour, sequence or health, got {kind!r}")
        return kind

    def choice(self, key: str, allowed: tuple[str, ...], default: str | None = None) -> str:
        value = self.text(key, required=default is None, default=default or "")
        if value not in allowed:
            self.fail(key, f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    def groupby(self, schema: pa.Schema) -> tuple[str, ...]:
        groupby = self.data.get("groupby", ["source_ip"])
        groupby = [groupby] if isinstance(groupby, str) else groupby
        if not isinstance(groupby, list) or not groupby:
            self.fail("groupby", f"expected a list of fields, got {groupby!r}")
        return tuple(self.field(f, f"groupby[{i}]", schema) for i, f in enumerate(groupby))

    def tags(self) -> tuple[str, ...]:
        tags = self.data.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            self.fail("tags", f"expected a list of words, got {tags!r}")
        return tuple(tags)

    def rule_id_text(self) -> str:
        rule_id = self.text("id")
        if not _RULE_ID.match(rule_id):
            self.fail("id", f"expected lowercase letters, digits, '-', '_' or '.', got {rule_id!r}")
        return rule_id

    def rule(self) -> Rule:
        """The rule, or ``RuleErrors`` naming every mistake in it (each key is checked even after one fails)."""
        data = self.data
        known = {
            "id", "kind", "title", "severity", "category", "technique", "description", "false_positives", "dataset",
            "match", "filter", "groupby", "distinct", "bucket", "window", "cooldown", "evidence", "tags", "enabled",
            "steps", "same", "health",
        }  # fmt: skip
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; rule keys are {', '.join(sorted(known))}"
                self.attempt(self.fail, str(key), "unknown key" + hint)
        rule_id = self.attempt(self.rule_id_text, default="")
        kind = self.attempt(self.kind)
        severity = self.attempt(self.choice, "severity", SEVERITIES)
        technique = self.attempt(self.technique, default="")
        dataset = self.attempt(self.choice, "dataset", tuple(DATASETS), "access") or "access"
        schema = DATASETS[dataset]
        conditions: tuple = ()
        steps: tuple[Step, ...] = ()
        health = None
        if kind == "health":
            for key in ("match", "bucket", "window", "distinct", "steps", "same"):
                if key in data:
                    self.attempt(self.fail, key, "a health rule takes 'filter' and 'health' (its window is in it)")
            if data.get("filter") is not None:
                conditions = self.attempt(self.conditions, data["filter"], "filter", schema, default=())
            health = self.attempt(read_health, self, data.get("health"), schema)
        elif kind == "sequence":
            for key in ("match", "filter", "bucket", "distinct"):
                if key in data:
                    self.attempt(
                        self.fail,
                        key,
                        "a sequence rule takes 'steps' (each with 'match' and 'within'), not " + repr(key),
                    )
            steps = self.attempt(self.steps, schema, default=())
            if steps:
                conditions = (Group("any", tuple(Group("all", step.conditions) for step in steps)),)
        elif kind is not None:
            if "steps" in data or "same" in data:
                key = "steps" if "steps" in data else "same"
                self.attempt(self.fail, key, f"only a sequence rule takes it, not a {kind} rule")
            condition_key = "match" if kind == "signature" else "filter"
            other = "filter" if kind == "signature" else "match"
            if other in data:
                self.attempt(self.fail, other, f"a {kind} rule takes '{condition_key}', not '{other}'")
            conditions = self.attempt(self.conditions, data.get(condition_key), condition_key, schema, default=())
        groupby = self.attempt(self.groupby, schema, default=("source_ip",))
        distinct = data.get("distinct")
        if distinct is not None:
            distinct = self.attempt(self.field, distinct, "distinct", schema)
        same = self.attempt(self.field, data["same"], "same", schema) if data.get("same") is not None else None
        threshold: Bucket | Window = Window(1, 1.0)
        if kind == "signature":
            for key in ("bucket", "window", "distinct"):
                if key in data:
                    self.attempt(
                        self.fail,
                        key,
                        "a signature rule alerts on the first match; use a behaviour rule for thresholds",
                    )
        elif kind == "behaviour" or (kind == "sequence" and "window" in data):
            threshold = self.attempt(self.threshold, default=threshold)
        cooldown = self.attempt(self.duration, data.get("cooldown", "10m"), "cooldown", default=600.0)
        evidence = self.attempt(self.positive_int, data.get("evidence", 5), "evidence", default=5)
        tags = self.attempt(self.tags, default=())
        title = self.attempt(self.text, "title", default="")
        category = self.attempt(self.text, "category", False, "other", default="other")
        description = self.attempt(self.text, "description", False, default="")
        false_positives = self.attempt(self.text, "false_positives", False, "none known", default="")
        raise_all(self.errors)
        return Rule(
            id=rule_id,
            kind=kind,
            title=title,
            severity=severity,
            category=category,
            technique=technique,
            description=description or title,
            false_positives=false_positives,
            dataset=dataset,
            conditions=conditions,
            groupby=groupby,
            cooldown=cooldown,
            distinct=distinct,
            threshold=threshold,
            evidence=evidence,
            tags=tags,
            source=self.source,
            steps=steps,
            same=same,
            health=health,
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
    """The enabled rules of one YAML file (a list of rules, or a mapping with a ``rules`` list).

    Raises ``RuleErrors`` naming every mistake in the file, not only the first.
    """
    source, list_dirs = str(path), tuple(list_dirs)
    try:
        text = path.read_text(encoding="utf-8")
        cached = _LOADED.get((source, text, list_dirs))
        if cached is not None:
            return list(cached)
        document = yaml.load(text, Loader=SAFE_LOADER)
    except FileNotFoundError:
        raise RuleError("rule file not found", source) from None
    except IsADirectoryError:
        raise RuleError("is a directory, not a rule file", source) from None
    except UnicodeDecodeError:
        raise RuleError("not a text (UTF-8) file", source) from None
    except OSError as error:
        raise RuleError(f"cannot read rule file: {error.strerror}", source) from None
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
    rules, errors = [], []
    for index, item in enumerate(document):
        if not isinstance(item, dict):
            errors.append(RuleError(f"expected a rule mapping, got {item!r}", source, key=f"[{index}]"))
            continue
        if item.get("enabled", True) is False:
            continue
        try:
            rules.append(_Reader(item, source, dirs).rule())
        except RuleError as error:
            errors.append(error)
    raise_all(errors)
    if len(_LOADED) >= _LOADED_MAX:
        _LOADED.clear()
    _LOADED[(source, text, list_dirs)] = tuple(rules)
    return rules


#: Rule files read before, by path, text and list directories: a batch run checks its config's rules and then
#: builds its graph with them (and the YAML reader costs a tenth of a second for the shipped pack).  Rules are
#: frozen; word lists are cached by path already (``alerts.wordlists``).
_LOADED: dict[tuple[str, str, tuple], tuple[Rule, ...]] = {}
_LOADED_MAX = 64


def _duplicate_ids(rules: Iterable[Rule]) -> list[RuleError]:
    seen: dict[str, str] = {}
    errors = []
    for rule in rules:
        if rule.id in seen:
            shipped = " (the shipped pack's)" if seen[rule.id].startswith(str(DEFAULT_RULES_DIR)) else ""
            errors.append(
                RuleError(
                    f"duplicate rule id: also defined in {seen[rule.id]}{shipped}; rename one, or turn the other off "
                    "with alerts.disable",
                    rule.source,
                    rule.id,
                    "id",
                )
            )
        seen.setdefault(rule.id, rule.source)
    return errors


def load_rules(paths: Iterable[str | Path] = (), default_rules: bool = True, disable: Iterable[str] = ()) -> RuleSet:
    """The default pack (unless turned off) plus the rules in ``paths`` (files or directories).

    Ids in ``disable`` are left out (each must name a loaded rule).  Every mistake in
    every file is raised together as ``RuleErrors``.
    """
    rules: list[Rule] = []
    errors: list[RuleError] = []
    sources = ([DEFAULT_RULES_DIR] if default_rules else []) + [Path(p) for p in paths]
    for source in sources:
        if not source.exists():
            errors.append(RuleError("rule file or directory not found", str(source)))
            continue
        for path in _rule_files(source):
            try:
                rules.extend(load_rule_file(path))
            except RuleError as error:
                errors.append(error)
    errors += _duplicate_ids(rules)
    known = {r.id for r in rules}
    for index, rule_id in enumerate(disable):
        if rule_id not in known:
            close = difflib.get_close_matches(rule_id, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; 'logwarden rules list' shows the ids"
            errors.append(RuleError(f"no rule has the id {rule_id!r}{hint}", key=f"alerts.disable[{index}]"))
    raise_all(errors)
    disabled = set(disable)
    return RuleSet(tuple(r for r in rules if r.id not in disabled))


def cooldown_overrides(cooldowns: Iterable[str], rules: RuleSet | None = None) -> dict[str, float]:
    """``alerts.cooldowns`` (``RULE_ID=DURATION`` items) as seconds by rule id; every bad item is an error."""
    overrides, errors = {}, []
    known = rules.by_id() if rules is not None else None
    for index, item in enumerate(cooldowns):
        rule_id, _, duration = item.partition("=")
        rule_id = rule_id.strip()
        key = f"alerts.cooldowns[{index}]"
        try:
            overrides[rule_id] = parse_duration(duration.strip(), key)
        except RuleError as error:
            errors.append(RuleError(error.problem, key=key))
        if known is not None and rule_id not in known:
            close = difflib.get_close_matches(rule_id, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; 'logwarden rules list' shows the ids"
            errors.append(RuleError(f"cooldown override for unknown rule {rule_id!r}{hint}", key=key))
    raise_all(errors)
    return overrides


def load_configured_rules(config) -> RuleSet:
    """The rules an ``AlertsConfig`` asks for, with its disable list, cool-down and evidence overrides applied."""
    errors: list[RuleError] = []
    rules = None
    try:
        rules = load_rules(config.rules, config.default_rules, getattr(config, "disable", ()))
    except RuleError as error:
        errors += error.errors
    try:
        overrides = cooldown_overrides(config.cooldowns, rules)
    except RuleError as error:
        errors += error.errors
    raise_all(errors)
    rules = rules.with_cooldowns(overrides)
    if config.evidence_lines:
        rules = RuleSet(tuple(dataclasses.replace(r, evidence=config.evidence_lines) for r in rules.rules))
    return rules
