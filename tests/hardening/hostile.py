"""A file of hostile lines: what attackers, broken clients and bad disks put into logs.

Built in code (deterministic, seeded) rather than kept as a binary fixture, so each
kind of line says what it is.  ``hostile_log()`` returns the bytes and the number of
lines in it (lines end at ``\\n`` only).
"""

from __future__ import annotations

import random

from tests.hardening.samples import CLF_TIME, TEMPLATES, render

_OK = render(TEMPLATES["combined"])


def _kinds(rng: random.Random) -> list[bytes]:
    tls_client_hello = bytes.fromhex("16030100a5010000a10303") + rng.randbytes(32) + b"\x00\x00\x20\xc0\x2b\xc0\x2f"
    return [
        rng.randbytes(200).replace(b"\n", b"."),  # random bytes
        b"\x00" * 64,  # NUL
        b"\x00" + _OK.encode()[1:],  # NUL at the start of a good line
        b"\xff\xfe\xfa invalid utf-8 \xc3\x28 \xa0\xa1 " + _OK.encode(),  # invalid UTF-8
        b"line one\rline two\rline three",  # CR-only "lines": one line here
        tls_client_hello.replace(b"\n", b"\x0b"),  # a TLS handshake sent to a plain HTTP port
        b"198.51.100.7 - - " + CLF_TIME.encode() + b' "\x16\x03\x01\x00\xa5\x01" 400 0 "-" "-"',
        b'"' * 100_000,  # 100k quotes
        b"\\" * 50_000 + b'"',  # escapes without end
        (_OK[:-1] + "A" * 300_000 + '"').encode(),  # a very long user agent
        b"{" * 5000 + b"}" * 5000,  # deep JSON-looking text
        b'{"time":"2026-11-01T10:00:00Z","uri":"/a","x":' + b"[" * 5000 + b"]" * 5000 + b"}",
        _OK.replace(CLF_TIME, "[01/Jan/0001:00:00:00 +0000]").encode(),
        _OK.replace(CLF_TIME, "[31/Dec/9999:23:59:59 -1200]").encode(),
        _OK.replace(CLF_TIME, "[29/Feb/2025:10:00:00 +0000]").encode(),
        _OK.replace("200 12", "99999999999999999999 99999999999999999999999").encode(),
        _OK.replace("GET", "G" * 10_000).encode(),
        "\u2028\u2029\x85\x1c\x1d\x1e\x0b\x0c".encode() + _OK.encode(),
        b"",  # empty line
        b"   \t  ",  # whitespace only
        b"\r",  # a lone CR before the newline: an empty line
        _OK.encode(),  # and a good one among them
    ]


def hostile_log(seed: int = 18, repeat: int = 3) -> tuple[bytes, int]:
    rng = random.Random(seed)
    lines = [line for _ in range(repeat) for line in _kinds(rng)]
    return b"\n".join(lines) + b"\n" + b"X" * 2_000_000, len(lines) + 1  # ends with a 2 MB unterminated line
