"""Code injection: what PHP, server-side includes, template engines, Java expression languages, Log4j-style
lookups, Node.js and Python run when it is spliced into them.

Each construct is matched in the shape the interpreter needs, not as a bare word: ``system(`` with a string or
variable argument rather than "the system (2020)", ``{{7*7}}`` or ``{{''.__class__}}`` rather than any pair of
braces, a Log4j lookup ``${prefix:...}`` for every prefix Log4j 2 accepts (not only ``jndi:``).
"""

from __future__ import annotations

import functools
import re

from alerts.wordlists import load_word_list

#: PHP functions whose call alone is the exploit (execution, decoding, file writes); any argument counts.
PHP_DANGEROUS = """
    system exec shell_exec passthru popen proc_open pcntl_exec eval assert create_function
    call_user_func call_user_func_array base64_decode gzinflate gzuncompress str_rot13 phpinfo
    file_get_contents file_put_contents fopen fwrite readfile move_uploaded_file curl_exec fsockopen
    unserialize posix_getpwuid php_uname preg_replace array_map usort ini_set putenv getenv show_source
    highlight_file fputs gzdecode
""".split()  # noqa: SIM905
#: PHP functions OWASP CRS 933160 watches for that are also everyday words of C, prose or file names (``substr``,
#: ``printf``, ``file``): their call counts in the shape injected code has (``ALONE``), not inside a sentence.
PHP_CALLED = """
    assert assert_options chr create_function eval exec exp file filegroup fopen fputs glob imagegif imagejpeg
    imagepng imagewbmp imagexbm intval is_a md5 mkdir opendir ord passthru phpinfo popen prev printf readfile rtrim
    stat strip_tags substr system tmpfile unlink unpack unserialize usort
""".split()  # noqa: SIM905
#: Every lookup prefix Log4j 2 resolves inside ``${...}``, plus the protocols a JNDI lookup names.
LOG4J_LOOKUPS = """
    jndi lower upper env sys date main ctx map sd java marker bundle docker kubernetes k8s spring log4j
    web event base64 jvmrunargs script url dns ldap ldaps rmi nis nds corba iiop hostname
""".split()  # noqa: SIM905

_LOG4J = re.compile(r"\$\{[^}]{0,80}?(?:" + "|".join(LOG4J_LOOKUPS) + r")\s*:|\$\{[^}]{0,40}?:-[^}]{0,40}\}|\$\{\$\{")
_PHP = re.compile(
    r"<\?(?:\s*php\s|=|xml\s*:|xml\s+[^a-z\s]|$)|<\?\s*(?:echo|print|system|exec|eval|passthru|include|require|\$)"
    r"|\[\\?/?php\]|\{/?php\}|\$\s*\{\s*\w+\s*\}\s*[(\[]|\$_+\s*[\[{(]|\$\{\s*_[_.]*\s*\}\s*\("
    r"|\$\w+\s*(?://[^\n]*\n|#[^\n]*\n|/\*.*?\*/|\s)*\(|[)\]}]\s*(?:/\*.*?\*/\s*)*\(\s*['\"]\w"
    r"|\$\s*\{\s*[$'\"@(]|\$\w+\s*\(|@\$\w+|\(\s*\$\w+\s*\)\s*\(|['\"][a-z]+['\"]\s*\.\s*['\"][a-z]+['\"]"
    r"|\b(?:php|phar|zip|expect|glob|data|compress\.zlib|compress\.bzip2|ogg|rar|ssh2\.\w+)://"
    r"|\bdata:[a-z/+.-]*;base64,|\$_(?:get|post|request|cookie|server|files|env|session)\b|\$globals\b"
    r"|\bo:\d+:\"[a-z_\\][\w\\]*\":\d+:\{|\ba:\d+:\{(?:[is]:\d+)|\bphp://(?:input|filter|stdin|memory|fd)"
    # $ { name }: PHP's variable-variable spaced out as no template engine writes it (a plain ${name} is also what
    # an unrendered template leaves in a link that crawlers then follow: real traffic has those)
    r"|\$(?:\s+\{\s*|\{\s+)[^\s{}][^{}]*\}"
    # a data: URI handed over as the whole value (a wrapper an include or fetch opens)
    r"|^(?:json\.)?data:(?:[a-z*][\w.+*-]*/[\w.+*-]+|\*)"
)
_PHP_CALL = re.compile(r"\b([a-z_][a-z0-9_]*)((?:\s|/\*.*?\*/|//[^\n]*\n|#[^\n]*\n)*)\(\s*([^)]{0,12})", re.DOTALL)
#: Between a name and its '(': a comment, a line break or a vertical tab, which no sentence or file name holds.
_HIDDEN_GAP = re.compile(r"/\*|//|#|[\n\r\x0b\x0c]")
#: A call standing as code stands: where a value, path segment or statement starts...
_CALL_START = re.compile(r"(?:^|[/=;(.{}]|\?>|['\"`])\s*$")
#: ...and ending the value or followed by what follows a call in code.
_CALL_END = re.compile(r"\s*(?:$|;|\?>|\)|,|\|\||&&|\.\s*['\"$\w]+\s*\()")
#: A function named by a string and called: PHP's ``"system"('id')`` and ``(string)"exec"(...)``.
_QUOTED_CALL = re.compile(r"[\"'`]([a-z_][a-z0-9_]*)[\"'`]\s*\)?\s*\(")
_SSI = re.compile(r"<!--\s*#\s*(?:exec|include|echo|config|set|printenv|fsize|flastmod|if|elif)\b")
_TEMPLATE = re.compile(
    r"(?:\{\{|\{%|\$\{|#\{|\*\{|@\{|<%=?|\[\[|\{#)\s*[^}]{0,80}?"
    r"(?:\d+\s*[*+/-]\s*\d+|__\w+__|\.(?:class|getclass|forname|getruntime|exec|getmethod|invoke|newinstance)\b"
    r"|\b(?:config|self|request|lipsum|cycler|joiner|namespace|url_for|get_flashed_messages|settings)\b"
    r"|\bt\s*\(\s*java|\bnew\s+java\.|\b(?:runtime|processbuilder|scriptenginemanager)\b|#_memberaccess|@ognl"
    r"|#context|#request|#response|#application|#session|\bclassloader\b|\bgetclass\s*\(|\bimport\s|\bsystem\b"
    r"|\bfreemarker\.|\?new\s*\(|\bexecute\b)"
)
_JAVA = re.compile(
    r"\bjava\.lang\.(?:runtime|processbuilder|system|class|reflect)|\bgetruntime\s*\(\s*\)\s*\.\s*exec\b"
    r"|\bt\s*\(\s*java\.|\bnew\s+java\.(?:lang|io|net|util)\.|#_memberaccess|\bognlcontext\b|@java\.lang\."
    r"|\bclass\.module\.classloader\b|\bclass\.classloader\b|\bjavax\.script\b|\bscriptenginemanager\b"
    r"|\bjava\.io\.(?:file|inputstream|bufferedreader)|\bprocessbuilder\s*\(|\borg\.apache\.commons\.\w+"
    r"|\bjavax?\.naming\b|\bcom\.sun\.\w+|\bxwork\.methodaccessor|\bdenymethodexecution\b|%\{\s*\(?\s*#"
    r"|\$\{\s*#|\bjava\.util\.scanner\b|@org\.apache\.|\bjdk\.jshell\b|\.getmethod\s*\(|\.invoke\s*\("
)
_SCRIPTING = re.compile(
    r"__proto__|\bconstructor\s*(?:\[|\.\s*prototype|\.\s*constructor|\()|\bchild_process\b"
    r"|\bprocess\s*\.\s*(?:mainmodule|binding|env|kill|exit)\b|\brequire\s*\(\s*['\"`]"
    r"|\bnew\s+function\s*\(|\bfunction\s*\(\s*\)\s*\{|\b(?:settimeout|setinterval|eval)\s*\(\s*['\"`\w]"
    r"|\b__import__\s*\(|\bos\s*\.\s*(?:system|popen|exec\w*|spawn\w*)\s*\(|\bsubprocess\s*\.\s*\w+\s*\("
    r"|\bpickle\s*\.\s*loads\b|\bimportlib\b|\bbuiltins\b|\b(?:exec|compile)\s*\(\s*['\"]"
    r"|\bprocess\s*\.\s*\w+\s*\(|\bmodule\.exports\b|\brequire\s*(?:\.\s*main|\[)|\bconsole\s*(?:\.\s*\w+\s*)+\("
    r"|\b(?:process|console|require|global|globalthis|module)\s*\[|\[\s*(?:constructor|__proto__|prototype)\s*\]"
    r"|_\$\$nd_func\$\$_|__js_function|xyqktkrfrlvoqyqk"
    r"|\bwhile\s*\(\s*(?:!(?!\s*(?:true|1)\s*\))|[+-]|new\b|this\b|string\b|true\b|1\s*\)|infinity|nan|\(|\[)"
    r"[^;]*?\)\s*(?:[;{]|$)"  # an endless loop as a statement ("while (true) loop explained" is a sentence)
    r"|%x\(|\bkernel\s*\.\s*(?:exec|system|spawn)\b|\bio\s*\.\s*popen\b|\bsystem\s*\(\s*['\"`$]"
)


@functools.lru_cache(maxsize=1)
def php_functions() -> frozenset[str]:
    from alerts.rules import DEFAULT_RULES_DIR

    return frozenset(load_word_list("php_functions", [DEFAULT_RULES_DIR]))


#: PHP functions named like English words: their call counts only with a code-shaped argument.
PROSE_NAMES = frozenset(
    """
    system exec assert eval include require file link mail print list each end key next reset current
    count date time sort extract compact range array chr ord
    """.split()  # noqa: SIM905 (a word list reads better as text)
)  # fmt: skip


def _listed_suffix(name: str, listed: frozenset[str]) -> str | None:
    """``foocall_user_func`` calls ``call_user_func`` as far as a filter matching whole words is concerned."""
    for start in range(1, len(name) - 5):
        tail = name[start:]
        if tail in listed and ("_" in tail or tail in PHP_DANGEROUS) and tail not in PROSE_NAMES:
            return tail
    return None


def _closing(value: str, start: int) -> int:
    """Index just past the ')' closing the '(' at ``start`` (-1 when the value ends first)."""
    depth = 0
    for i in range(start, len(value)):
        if value[i] == "(":
            depth += 1
        elif value[i] == ")":
            depth -= 1
            if not depth:
                return i + 1
    return -1


def _alone(value: str, match: re.Match) -> bool:
    """Whether the call stands on its own (``?x=printf(foo)``, ``/get/substr()``), not inside a sentence."""
    end = _closing(value, match.end(2))
    return end > 0 and bool(_CALL_START.search(value, 0, match.start())) and bool(_CALL_END.match(value, end))


def _php_call(value: str) -> bool:
    listed = php_functions()
    for match in _PHP_CALL.finditer(value):
        name, gap, argument = match.groups()
        if name not in listed and name not in PHP_DANGEROUS:
            if _listed_suffix(name, listed):
                return True
            if name in PHP_CALLED and (_HIDDEN_GAP.search(gap) or _alone(value, match)):
                return True
            continue
        if name not in PROSE_NAMES or _HIDDEN_GAP.search(gap) or _alone(value, match):
            return True
        if argument[:1] in ("'", '"', "$", "`", "_", ")") or "(" in argument:
            return True
        if re.match(r"[a-z_]+\s*\(", argument):
            return True
    for match in _QUOTED_CALL.finditer(value):
        name = match.group(1)
        if name in listed or name in PHP_DANGEROUS or name in PHP_CALLED:
            return True
    return False


#: ``NAME = value`` at the start of a value or line, NAME spelled as php.ini names are.
_INI_LINE = re.compile(r"(?:^|[\n;])\s*([a-z][a-z0-9_.]*)\s*=\s*[^=\s]")


@functools.lru_cache(maxsize=1)
def php_ini_directives() -> frozenset[str]:
    from alerts.rules import DEFAULT_RULES_DIR

    return frozenset(load_word_list("crs_php_ini_directives", [DEFAULT_RULES_DIR]))


def _php_ini(value: str) -> bool:
    """``memory_limit = 512M``: a php.ini directive being set (what an injected ini_set or .user.ini line does)."""
    return any(m.group(1) in php_ini_directives() for m in _INI_LINE.finditer(value))


def is_code_injection(value: str) -> bool:
    """Whether one decoded, case-folded value carries code for an interpreter on the server."""
    if "${" in value and _LOG4J.search(value):
        return True
    return bool(
        _PHP.search(value)
        or ("<!--" in value and _SSI.search(value))
        or (("{" in value or "<%" in value or "[[" in value) and _TEMPLATE.search(value))
        or _JAVA.search(value)
        or _SCRIPTING.search(value)
        or ("(" in value and _php_call(value))
        or ("=" in value and _php_ini(value))
    )
