"""OS command injection by grammar: a way out of the argument, then a real Unix or Windows command.

The way out is a shell metacharacter (``;``, ``|``, ``&``, a newline, a backtick, ``$(``, ``$((``), possibly
after a quote that closes the argument; the command comes from OWASP CRS's Unix list and Windows/PowerShell list
(``unix_commands.txt``, ``windows_commands.txt``), under any spelling a shell still runs: ``w'h'o''ami``,
``w\\hoami``, ``/usr/bin/id``, ``/???/c?t``, ``$IFS``/``${IFS}``/``$IFS$9``/tabs for spaces, ``{cat,/etc/passwd}``.
Commands that are also English words (``more``, ``date``, ``find``...) count only with a shell-shaped argument
(a flag, a path, a URL, a variable) or inside ``$(...)``/backticks, so "salt & pepper" and "terms; more info"
stay silent.
"""

from __future__ import annotations

import functools
import re

from alerts.wordlists import load_word_list

#: Commands that are everyday words: they need a shell-shaped argument (or substitution) to count.
PROSE_WORDS = frozenset(
    """
    at as ar cat cut date dir done echo env es ex expand expect export fd fi file find fish fold
    function go group hash hd head help history host install join jobs kill la last less links local
    look make man master more mount mail nice null patch paste pax perms pf pg pic pr print red rename
    repeat replace run script self service set shadow shells sort source split start stdin stdout task
    tail time top touch trap type up view wall watch where who wish yes zero call query copy move del
    net sc type ver start assoc tree time date chdir fg compress crash column command comm shutdown dash
    ip ll ld nl od rc sg ss tac tic ul vi w id ps du df lp nm su tee wc
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
_WHITESPACE_SUBSTITUTES = re.compile(
    r"\$\{ifs(?:[^}]*)\}|\$ifs(?:\$\d|\b)|\$'\\[tn ]'|\$\{[a-z_]*:?-? ?\}|\$@|\$\*|\$\d|[\t\x0b\x0c\r]|\\ "
)
_INNER_QUOTES = re.compile(r"(?<=[a-z0-9/])(?:''|\"\"|['\"\\^])(?=[a-z0-9/.])")
_BRACES = re.compile(r"([a-z0-9_./-]*)\{([^{}\s]*,[^{}\s]*)\}([a-z0-9_./-]*)")
#: A glob or character class inside a system path (``/etc/pas[s]wd``, ``/usr/bin/[u]name``, ``/???/c?t``).
_PATH_GLOB = re.compile(
    r"/(?:etc|bin|sbin|usr|proc|dev|\[[^\]]*\]|\?+|\*)/?\S*[?*\[]|/\[[a-z/!^-]+\][a-z]|/[a-z]*\[[a-z/]+\][a-z]*/"
)
_SEPARATOR = re.compile(r"(?:^|;|\|\|?|&&?|\n|`|\$\(\(?|\(|\{|<\(|>\(|^['\"])\s*")
_PREFIX = re.compile(
    r"(?:(?:sudo|nohup|exec|env|command|builtin|time|nice|eval|doas)\s+)*"
    r"(?:[a-z_]+=\S*\s+)*(?:\$\w+\s+)*"
    r"(?:(?:/usr(?:/local)?|/usr/s?bin|/s?bin|/bin|(?:usr/)?(?:local/)?s?bin|c:/windows/system32|c:/windows|"
    r"%systemroot%/system32)[/\\])?"
)
_WORD = re.compile(r"[a-z0-9_.?*\[\]+-]+")
_ARGUMENT = re.compile(
    r"\s+(?:-{1,2}[a-z0-9]|/[a-z0-9.~?*]|\.{1,2}/|~|\$|https?://|ftp://|\d{1,3}\.\d{1,3}\.|[<>|;&`])"
)
#: A host address alone after the command: a value such as "ping 10.0.0.1" is what a network tool's form takes.
_HOST_ARGUMENT = re.compile(r"\s+\d{1,3}(?:\.\d{1,3}){3}\s*$")
_STRONG = re.compile(
    r"/dev/(?:tcp|udp)/|\bbash\s+-[ic]\b|\b(?:nc|ncat|netcat)\b[^;|&]*\s-[elc]\b|\bcmd(?:\.exe)?\s*/[ck]\b|"
    r"\bpowershell(?:\.exe)?\s+-|\bpwsh\s+-|\(\s*\)\s*\{\s*:?\s*;?\s*\}\s*;|\bmkfifo\s+/tmp/|"
    r"\b(?:wget|curl)\s+\S*(?:https?|ftp)://\S+\s*(?:\||;|&|-o\b)|"
    r"\b(?:invoke-expression|invoke-webrequest|downloadstring|downloadfile|new-object\s+net\.webclient)\b|"
    r"\$\{?\w+\}?\s+-c\s|^\s*\(\s*\)\s*\{"
    # shell-only syntax: $[..] and $((..)) arithmetic, ${var#..} expansions, ~+ / ~- tilde and !-1 history expansion,
    # an alias defined inline
    r"|\$\[[^\]]*\]|\$\(\(|\$\{\w+[#%/^,][^}]*\}|^~[+-]\d*$|(?:^|\s)!-?\d+(?:!|$)"
    r"|^\s*alias\s+(?:[+-]\w\s+)*[\w.-]+="
)
#: cmd.exe's own control flow: ``if [/i] [not] exist|defined|errorlevel ...``, comparisons, ``for ... in (...) do``.
_BATCH = re.compile(
    r"(?:^|&)\s*(?:if(?:\s|/|\()\s*(?:/i\s*)?(?:not\s+)?(?:(?:exist|defined|errorlevel|cmdextversion)\s+\S|\S.{0,60}?"
    r"(?:==|\s(?:equ|neq|lss|leq|gtr|geq)\s))|for\s+(?:/[dflr]\s+)*(?:\S+\s+)?(?:\"[^\"]*\"\s+)?%%?~?\S+\s+in\s*\(.*\)\s*do\b)"
)
#: An absolute path into the system: what a command spliced in at the start of a value reaches for.
_SYSTEM_PATH_ARG = re.compile(r"\s+(?:/(?:etc|bin|sbin|usr|proc|dev|tmp|var|root|home|sys|boot)\b|c:/|%\w+%)")
_GLOB_PATH = re.compile(r"(?:^|[;|&`(\s])/(?:[a-z?*\[\]]{1,4}/)*[a-z?*\[\]]*[?*\[][a-z?*\[\]]*(?:\s|$|<|/)")


_QUOTED_IN_PROSE = re.compile(r"[a-z]+\s+[a-z]+\s+`[^`]+`\s+[a-z]+")


@functools.lru_cache(maxsize=1)
def commands() -> frozenset[str]:
    from alerts.rules import DEFAULT_RULES_DIR

    return frozenset(load_word_list("unix_commands", [DEFAULT_RULES_DIR])) | frozenset(
        load_word_list("windows_commands", [DEFAULT_RULES_DIR])
    )


def _unobfuscate(value: str) -> str:
    """The line as the shell will run it: separator substitutes as spaces, quotes and escapes inside words gone."""
    value = _WHITESPACE_SUBSTITUTES.sub(" ", value)
    value = _INNER_QUOTES.sub("", value)
    return value.replace("\\", "/") if "\\" in value else value


def _brace_expanded_command(value: str) -> bool:
    """``c{a,oun}t``, ``{,ip,a}``, ``{id,}``: one level of brace expansion, as the shell does it, gives a command."""
    for match in _BRACES.finditer(value):
        words = [w for w in (match.group(1) + alt + match.group(3) for alt in match.group(2).split(",")) if w]
        if words and _is_command(words[0]):
            return True
    return False


def _is_command(word: str) -> bool:
    base = word.rsplit("/", 1)[-1]
    if base.endswith(".exe"):
        base = base[:-4]
    return base in commands()


def is_command_injection(value: str, strict: bool = False) -> bool:
    """Whether one decoded, case-folded value breaks out into a shell command; ``strict`` (for headers such as a
    user agent, where ';' and '(' are ordinary punctuation) treats every command like an English word."""
    if _STRONG.search(value) or _BATCH.search(value):
        return True
    line = _unobfuscate(value)
    if line != value and _STRONG.search(line):
        return True
    if "{" in line and "," in line and _brace_expanded_command(line):
        return True
    for separator in _SEPARATOR.finditer(line):
        start, marker = separator.end(), separator.group().strip()
        prefix = _PREFIX.match(line, start)
        word_match = _WORD.match(line, prefix.end())
        if not word_match:
            continue
        word = word_match.group()
        after = line[word_match.end() :]
        substituted = marker in ("`", "$(", "$((", "<(", ">(")
        if marker == "`" and _QUOTED_IN_PROSE.search(line):
            continue  # why does `ls -la` show hidden files: a sentence quoting a command
        if not _is_command(word):
            if ("?" in word or "*" in word) and prefix.end() > start and marker:  # /???/c?t
                return True
            continue
        ends = not after.strip() or after.lstrip()[:1] in (";", "|", "&", "`", ")", "}", ">", "<")
        shaped = bool(_ARGUMENT.match(after)) or after[:1] in ("<", ">")
        prose = (strict or word.rsplit("/", 1)[-1] in PROSE_WORDS) and prefix.end() == start
        if not marker and prefix.group().rstrip().endswith("bin/"):  # bin/visudo: a binary's path
            return True
        if not marker:  # the whole value as a command line: only with a shell-shaped argument
            if _HOST_ARGUMENT.match(after):
                continue
            if (shaped and not prose) or _SYSTEM_PATH_ARG.match(after) or (ends and after.strip() and not prose):
                return True
            continue
        if prose and not substituted:
            attached = separator.group() == marker  # ';env', '|id': no space, as no sentence writes it
            if shaped or (attached and ends and marker in (";", "|", "||", "&&", "\n")):
                return True
            continue
        if ends or shaped or after[:1] == " " or substituted:
            return True
    if _PATH_GLOB.search(line):
        return True
    return bool(_GLOB_PATH.search(line)) and any(c in line for c in ";|&`$")
