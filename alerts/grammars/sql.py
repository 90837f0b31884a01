"""SQL injection by grammar: a libinjection-style tokenizer, then the shapes only injected SQL takes.

A value is read three ways, as libinjection does: as written (a number or bare word spliced into a query), and as
if it sat inside a '...' or "..." literal (prefixing the quote it would close).  Each reading becomes tokens
(strings, numbers, keywords, functions, operators, comments...); the value is SQL injection when a reading
shows a construct that prose, names and slugs do not produce: a closed literal or number followed by a boolean
operator and a comparison (``' or 'a'='a``), ``UNION SELECT``, ``SELECT ... FROM``, a stacked statement after
``;``, a comment cutting off the rest of the query after a breakout, or SQL-only functions and catalogues with
SQL arguments (``sleep(5)``, ``extractvalue(1,...)``, ``information_schema``).  So ``o'brien``, ``rock-and-roll``
and ``/blog/select-from-the-menu`` stay silent while ``1' or '1'='1`` does not.
"""

from __future__ import annotations

import re

# Token kinds.
STRING, NUMBER, WORD, KEYWORD, FUNCTION, LOGIC, OPERATOR, COMMENT, VARIABLE = (
    "s",
    "n",
    "w",
    "k",
    "f",
    "&",
    "o",
    "c",
    "v",
)
LPAREN, RPAREN, COMMA, SEMICOLON = "(", ")", ",", ";"

#: Statement keywords: what follows a ';' in a stacked query.
STATEMENTS = frozenset(
    """
    select insert update delete drop exec execute declare shutdown waitfor create alter truncate replace
    merge call grant revoke load handler rename begin set use
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
LOGICAL = frozenset({"and", "or", "xor", "&&", "||", "not"})
#: Words that act as comparison operators.
WORD_OPERATORS = frozenset(
    """
    like rlike regexp sounds between is in div mod glob match collate escape
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
KEYWORDS = frozenset(
    """
    union select from where group order by having limit offset into outfile dumpfile values table
    database schema null true false as case when then else end distinct all top procedure analyse delay
    join on exists asc desc information_schema procedure inner outer left right cross natural using any
    some char varchar nvarchar int integer binary unsigned signed
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
#: Functions that only SQL has (or that injections lean on); with SQL arguments they are an alert.
SQL_FUNCTIONS = frozenset(
    """
    sleep benchmark pg_sleep waitfor load_file extractvalue updatexml group_concat concat concat_ws char
    chr nchar ascii ord substring substr mid if ifnull isnull nullif coalesce version database user
    current_user system_user session_user schema name_const exp floor rand json_keys utl_inaddr utl_http
    dbms_pipe dbms_lock ctxsys xmltype cast convert unhex hex length len count row_number md5 sha1 elt
    make_set export_set polygon geometrycollection multipoint linestring multilinestring multipolygon
    gtid_subset st_latfromgeohash st_longfromgeohash st_pointfromgeohash pg_read_file lo_import
    randomblob sqlite_version dbms_xmlgen xp_cmdshell xp_dirtree openrowset opendatasource bin_to_num
    to_char instr locate position left right reverse lpad rpad trim strcmp least greatest regexp_substr
    json_extract json_search json_array current_database pg_user getpgusername uuid last_insert_id
    connection_id found_rows row_count charset collation coercibility degrees radians sin cos atan pi
        div lo_get lo_import unistr starts_with jsonb_pretty json_build_object jsonb_build_object current_setting
    query_to_xml string_agg array_agg
""".split()  # noqa: SIM905 (a word list reads better as text)
)
#: Functions whose empty argument list is already a probe (``version()``).
INFO_FUNCTIONS = frozenset(
    """
    version database user current_user system_user session_user schema sqlite_version current_database
    pg_user getpgusername uuid last_insert_id connection_id found_rows row_count
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
#: Names that only exist in a database: catalogues, system tables, stored procedures.
CATALOGUES = re.compile(
    r"information_schema|@@(?:version|datadir|hostname|basedir|servername|spid|tmpdir)|\bsysobjects\b|"
    r"\bsyscolumns\b|\bmysql\.user\b|\bpg_catalog\b|\bpg_shadow\b|\bsqlite_master\b|\bxp_cmdshell\b|"
    r"\bsp_executesql\b|\bsp_oacreate\b|\bsp_password\b|\bdbms_\w+\.|\butl_(?:inaddr|http)\.|\ball_tables\b|"
    r"\buser_tables\b|\bmsysobjects\b|\bmsysaccessobjects\b|\bsys\.(?:objects|tables|columns|databases)\b|"
    r"\binto\s+(?:out|dump)file\b|\bwaitfor\s+(?:delay|time)\b|\bprocedure\s+analyse\b"
    # PostgreSQL casts and JSON operators between literals ('{"a":1}'::jsonb @> '{...}'), MongoDB operators in a
    # parameter name (u_id[$ne]=), and the magic numbers of integer and float overflow probes.
    r"|(?:\)|'|\w)\s*::\s*(?:int[248]?|integer|bigint|smallint|text|varchar|char|bool|boolean|jsonb?|numeric|float[48]?|"
    r"double\s+precision|real|regclass|oid|bytea|date|timestamp|inet|xml)\b"
    r"|'\s*(?:::\s*jsonb?\s*)?(?:@>|<@|->>?|#>>?|#-|\?[|&]?|@[?@])\s*(?:'|\d|array\s*\[|/\*)"
    r"|'\s*::\s*jsonb?\s*(?:\|\||-)\s*(?:'|\d)"
    r"|\[\s*\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|or|and|not|nor|expr|elemmatch|size|type|all)\s*\]"
    r"|^(?:-?0000023456|4294967295|4294967296|2147483648|2147483647|0000012345|-2147483648|-2147483649|"
    r"2\.2250738585072007e-308|2\.2250738585072011e-308|1e309)$"
)

_VERSION_COMMENT = re.compile(r"/\*!\d*")
_TOKEN = re.compile(
    r"""
    (?P<space>[\s\x00\x0b]+)
  | (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|$))
  | (?P<number>0x[0-9a-f]+|0b[01]+|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)
  | (?P<variable>@@?[a-z_][\w.$]*|@`[^`]*`?)
  | (?P<word>[a-z_$][\w$]*(?:\.[a-z_$][\w$]*)*(?:-[a-z][\w$]*)*)
  | (?P<operator>::|<=>|<>|!=|<=|>=|\|\||&&|<<|>>|[=<>!+\-*/%^|&~:])
  | (?P<punct>[(),;.\[\]{}?\\])
  """,
    re.VERBOSE | re.DOTALL,
)


def tokens(text: str, quote: str = "") -> list[tuple[str, str]]:
    """``(kind, text)`` tokens of ``text`` read as if it continued a ``quote``-delimited literal ('' = not)."""
    found: list[tuple[str, str]] = []
    i, n = 0, len(text)
    if quote:  # the literal the value would close: up to its first ``quote``
        end = text.find(quote)
        if end < 0:
            return [(STRING, text)]
        found.append((STRING, text[:end]))
        i = end + 1
    while i < n:
        char = text[i]
        if char in "'\"`":
            end = i + 1
            while True:
                end = text.find(char, end)
                if end < 0 or end + 1 >= n or text[end + 1] != char:
                    break
                end += 2  # a doubled quote inside the literal
            found.append((STRING, text[i + 1 : end]) if end >= 0 else ("u", char + text[i + 1 :]))
            i = n if end < 0 else end + 1
            continue
        match = _TOKEN.match(text, i)
        if not match:
            found.append(("?", char))
            i += 1
            continue
        i = match.end()
        kind, value = match.lastgroup, match.group()
        if kind == "space":
            continue
        if kind == "comment":
            found.append((COMMENT, value))
        elif kind == "number":
            found.append((NUMBER, value))
        elif kind == "variable":
            found.append((VARIABLE, value))
        elif kind == "word":
            if value in LOGICAL:
                found.append((LOGIC, value))
            elif value in WORD_OPERATORS:
                found.append((OPERATOR, value))
            elif value in STATEMENTS or value in KEYWORDS:
                rest = text[i:].lstrip()
                is_call = rest.startswith("(") and value in SQL_FUNCTIONS
                found.append((FUNCTION if is_call else KEYWORD, value))
            elif text[i:].lstrip(" \t\n\x0b").startswith("("):
                found.append((FUNCTION, value))
            else:
                found.append((WORD, value))
        elif kind == "operator":
            found.append((LOGIC if value in ("||", "&&") else OPERATOR, value))
        else:
            found.append((value, value))
    return found


_OPERANDS = frozenset({STRING, NUMBER, WORD, VARIABLE, FUNCTION, "u"})
_LITERALS = frozenset({STRING, NUMBER, VARIABLE, "u"})
_COMPARISONS = frozenset({"=", "<", ">", "<=", ">=", "<>", "!=", "<=>", "like", "rlike", "regexp", "sounds", "is",
                          "in", "between", "glob", "match"})  # fmt: skip
_ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^", "|", "&", "div", "mod", "<<", ">>", "::"})


def _function_args_are_sql(toks: list[tuple[str, str]], at: int) -> bool:
    """Whether the call at ``at`` has SQL-looking arguments: literals, nested calls, SELECT, column lists."""
    name = toks[at][1]
    if at + 1 >= len(toks) or toks[at + 1][0] != LPAREN:
        return False
    if at + 2 < len(toks) and toks[at + 2][0] == RPAREN:
        return name in INFO_FUNCTIONS
    depth, saw_literal = 0, False
    for kind, value in toks[at + 1 :]:
        if kind == LPAREN:
            depth += 1
        elif kind == RPAREN:
            depth -= 1
            if depth == 0:
                return saw_literal
        elif (
            kind in (NUMBER, STRING, VARIABLE, FUNCTION, COMMA, "u")
            or value in ("select", "null", "~", "-")
            or (kind in (LOGIC, OPERATOR) and depth == 1)
        ):
            saw_literal = True
    return saw_literal and depth > 0 and len(toks) - at > 3


def _expression_after(toks: list[tuple[str, str]], at: int, word_logic: bool = True) -> bool:
    """After a boolean operator at ``at - 1``: a comparison, a call, a sub-select, or a literal that ends the value."""
    rest = toks[at:]
    if not rest:
        return False
    while rest and rest[0][1] in ("not", "(", "!", "~", "-", "+"):
        rest = rest[1:]
    if not rest:
        return False
    kind, value = rest[0]
    if kind == FUNCTION:
        return value in SQL_FUNCTIONS or value in ("select", "exists")
    if value in ("select", "exists", "true", "false", "null"):
        return len(rest) == 1 or rest[1][0] in (COMMENT, RPAREN, SEMICOLON, OPERATOR, LOGIC) or value == "select"
    if kind not in _OPERANDS:
        return False
    if len(rest) == 1:
        return kind == VARIABLE or (kind == "u" and len(value) > 1 and " " not in toks[0][1].strip())
    nxt_kind, nxt = rest[1]
    if nxt in _ARITHMETIC:  # 1 and 2-1=1: arithmetic counts only on the way to a comparison
        ahead = [v for _, v in rest[2:7]]
        return any(v in _COMPARISONS for v in ahead) and kind != WORD
    if nxt in _COMPARISONS:
        if len(rest) < 3:
            return kind in _LITERALS and nxt != "in"
        third_kind, third = rest[2]
        if kind == WORD and (not word_logic or third_kind not in _LITERALS):
            return False
        if kind == WORD and len(rest) > 3 and rest[3][0] not in (COMMENT, LOGIC, RPAREN, SEMICOLON):
            return False  # x=1 and y=2 equations: a comparison that the sentence goes on after
        return third_kind in _OPERANDS or third in ("(", "null", "true", "false", "select", "not", "-", "binary")
    if nxt_kind in (COMMENT, SEMICOLON) or nxt_kind == RPAREN:
        return kind in _LITERALS
    if nxt_kind == LOGIC:
        return kind in _LITERALS and _expression_after(rest, 2, word_logic)
    return False


def _injected(toks: list[tuple[str, str]], broke_out: bool, quote: str = "") -> str | None:
    """Why one reading of a value is SQL; ``broke_out``: it starts by closing a literal (or is a number)."""
    count = len(toks)
    for i, (kind, value) in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < count else ("", "")
        if value == "union":
            rest = [t for t in toks[i + 1 : i + 5] if t[1] not in ("all", "distinct", "(")]
            if rest and rest[0][1] == "select" and _selects(rest[1:]):
                return "union select"
            if broke_out and (i + 1 == count or toks[i + 1][0] == COMMENT):
                return "union then comment"
        elif value == "select" and kind in (KEYWORD, FUNCTION):
            after = toks[i + 1 : i + 12]
            columns = [t for t in after if t[1] != "from"]
            listed = any(k in (FUNCTION, COMMA, NUMBER, VARIABLE) or v in ("*", "null") for k, v in columns)
            has_from = any(v == "from" for _, v in after) and i + 1 < count and toks[i + 1][1] != "from"
            if has_from and (broke_out or listed):
                return "select from"
            if broke_out and after and (after[0][0] in (NUMBER, FUNCTION, VARIABLE) or after[0][1] in ("*", "null")):
                return "select after breakout"
            calls = after and after[0][1] in SQL_FUNCTIONS and ("_" in after[0][1] or after[0][0] == FUNCTION)
            if calls and (i == 0 or broke_out):
                return "select a function"
            opened = i and toks[i - 1][0] == LPAREN and after and after[0][0] in (NUMBER, FUNCTION, VARIABLE, WORD)
            if opened and ((i == 1 and after[0][0] != WORD) or any(v in ("from", ")") for _, v in after)):
                return "sub-select"
        elif kind == LOGIC and value != "not" and i and (broke_out or i == 1 or toks[i - 1][0] in _LITERALS | {RPAREN}):
            if _expression_after(toks, i + 1, value.isalpha()) and (i == 1 or broke_out or toks[i - 1][0] != WORD):
                return "boolean after breakout"
        elif (kind == SEMICOLON and nxt[1] in STATEMENTS) or (i == 0 and value in STATEMENTS and value != "select"):
            rest = [v for k, v in toks[i + (kind == SEMICOLON) :] if k != COMMENT][:5]
            if _stacked(rest) and (kind == SEMICOLON or _whole_statement(rest)):
                return "stacked statement"
        elif kind == COMMENT and i and broke_out and i == count - 1 and len(value.strip("-#/* ")) <= 2:
            shape = "".join(k for k, _ in toks[:i])
            if (
                shape in ("s", "n", "s)", "s))", "n)", "n))", "w)", "s;", "n;")
                and toks[0][1]
                and " " not in toks[0][1].strip()
            ):
                return "comment after breakout"
        elif value == "if" and kind == FUNCTION and i + 3 < count and toks[i + 3][1] in _COMPARISONS:
            return "conditional if"
        elif value == "div" and i == 0 and nxt[0] == LPAREN:
            return "sql function"
        elif kind == FUNCTION and value in SQL_FUNCTIONS and _function_args_are_sql(toks, i):
            if broke_out or value not in ("if", "left", "right", "count", "length", "len", "md5", "position"):
                return "sql function"
        elif value == "case" and nxt[1] == "when" and any(v == "then" for _, v in toks[i + 2 : i + 12]):
            return "case when"
        elif value in ("order", "group") and nxt[1] == "by" and i + 2 < count:
            column = toks[i + 2][0] in (NUMBER, WORD) and (broke_out or toks[i + 2][0] == NUMBER)
            if column and (broke_out or i + 3 >= count or toks[i + 3][0] == COMMENT):
                return "order/group by"
        elif kind == RPAREN and nxt[1] in ("like", "rlike", "regexp") and i + 2 < count and toks[i + 2][0] == LPAREN:
            return "conditional like"
        elif (
            value == "having"
            and _expression_after(toks, i + 1)
            and (broke_out or i == 0 or any(v == "group" for _, v in toks[:i]))
        ):
            return "having"
        elif kind in (OPERATOR,) and value in _COMPARISONS and broke_out and i == 1 and toks[0][0] == STRING:
            if (
                nxt[0] in (FUNCTION, VARIABLE)
                or nxt[1] in ("select", "(")
                or (nxt[0] == NUMBER and _tail_sql(toks, i + 2))
            ):
                return "comparison after breakout"
        elif kind == OPERATOR and i == 1 and toks[0][0] == STRING and _reopens(toks, quote) and value in _REOPENING:
            return "reopened literal"
        elif kind == OPERATOR and value in ("-", "+", "*", "/", "|", "^", "div") and i == 1 and broke_out:  # noqa: SIM102
            if (nxt[0] == FUNCTION and nxt[1] in SQL_FUNCTIONS) or nxt[1] in ("select", "("):
                return "arithmetic after breakout"
    return None


_REOPENING = frozenset("/ << >> div - + || | ^ & % :: < > = <= >= <> !=".split())  # noqa: SIM905


def _selects(after: list[tuple[str, str]]) -> bool:
    """What follows SELECT is a column list (``1,2``, ``*``, ``null``, ``version()``), not a sentence."""
    if not after:
        return True
    kind, value = after[0]
    if kind in (NUMBER, STRING, FUNCTION, VARIABLE, "u") or value in ("*", "null", "(", "from", "-", "@"):
        return True
    return kind == WORD and (len(after) == 1 or after[1][1] in (",", "from", "."))


def _reopens(toks: list[tuple[str, str]], quote: str) -> bool:
    """``' / '``, ``a' << 'b``, ``x' / y != '1``: an operator after the breakout, then a literal of the same quote
    left open for the application's own closing quote."""
    last_kind, last = toks[-1]
    if not quote or last_kind != "u" or not last.startswith(quote):
        return False
    return len(toks) == 3 or (len(toks) == 5 and toks[3][1] in _COMPARISONS)


def _tail_sql(toks: list[tuple[str, str]], at: int) -> bool:
    return at < len(toks) and toks[at][0] in (COMMENT, LOGIC)


def _whole_statement(rest: list[str]) -> bool:
    """A value that is one statement by itself must show more of its grammar than a sentence would."""
    first = rest[0]
    if first in ("exec", "execute"):  # a procedure or a string to run must follow ("exec (" alone runs nothing)
        return len(rest) > 2 or (len(rest) == 2 and rest[1] != "(")
    if first in ("declare", "waitfor", "call", "truncate"):
        return True
    if first == "insert":
        return len(rest) > 3 and rest[3] in ("values", "select", "(", "set")
    if first in ("delete", "update", "drop", "truncate", "alter", "create"):
        return any(v in ("where", ";", "set", "--", "#", "if", "cascade") for v in rest[2:]) or rest[-1:] == [";"]
    return first == "shutdown"


def _stacked(rest: list[str]) -> bool:
    if not rest:
        return False
    first, second = rest[0], rest[1] if len(rest) > 1 else ""
    if first == "truncate":
        return bool(second)
    if first in ("drop", "create", "alter"):
        return second in ("table", "database", "procedure", "function", "user", "view", "index", "schema", "trigger")
    if first == "insert":
        return second == "into"
    if first == "delete":
        return second in ("from", "quick", "low_priority", "ignore")
    if first in ("exec", "execute"):
        return bool(re.match(r"(?:xp|sp)_|master\.|\(|@|immediate$", second))
    if first == "call":
        return len(rest) > 2 and rest[2] == "("
    if first == "declare":
        return second.startswith("@")
    if first == "shutdown":
        return second in ("", "with", "--", "#")
    if first == "begin":
        return second in ("declare", "exec", "execute", "transaction", "tran")
    if first == "waitfor":
        return second in ("delay", "time")
    if first == "select":
        return bool(second)
    if first == "update":
        return len(rest) > 2 and rest[2] == "set"
    if first == "set":
        return second.startswith("@")
    return False


def is_sql_injection(value: str) -> bool:
    """Whether one decoded, case-folded value carries injected SQL."""
    if CATALOGUES.search(value):
        return True
    if "/*!" in value:  # MySQL runs what its version comments hold: read them as code
        value = _VERSION_COMMENT.sub(" ", value).replace("*/", " ")
    readings = [("", value[:1] in "0123456789-.(" or value[:1] in "'\"`")]
    for quote in ("'", '"', "`"):
        if quote in value:
            readings.append((quote, True))
    for quote, broke_out in readings:
        toks = tokens(value, quote)
        if len(toks) > 1:  # a comment inside a statement is only a space (union/**/select); a last one cuts it off
            toks = [t for t in toks[:-1] if t[0] != COMMENT] + toks[-1:]
        lead = next((k for k, v in toks if v not in ("-", "+", "(")), "")
        if not quote and lead != NUMBER:
            broke_out = bool(toks) and toks[0][0] == STRING and len(toks) > 1
        if quote and toks and toks[0][0] == "u":
            continue
        if quote:  # a breakout closes a token (an id, a name), not a sentence
            broke_out = not any(c.isspace() for c in toks[0][1])
        if _injected(toks, broke_out, quote):
            return True
    return False


def explain(value: str) -> list:
    """Per reading, the tokens and which construct matched (for debugging a rule)."""
    out = []
    for quote in ("", "'", '"', "`"):
        toks = tokens(value, quote)
        out.append((quote, _injected(toks, True, quote), "".join(k for k, _ in toks)))
    return out
