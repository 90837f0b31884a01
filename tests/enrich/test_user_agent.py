"""User-agent fields on real headers: browsers, phones and tablets, crawlers, HTTP libraries and attack tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from parsers.enrich.user_agent import DEVICE_TYPES, MAX_PARSED_LENGTH, NO_USER_AGENT, UserAgentParser

# (header, family, major version, OS, device type, bot)
TABLE = Path(__file__).with_name("user_agents.tsv")


def _known() -> list[tuple]:
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            header, family, major, os, device_type, bot = (value or None for value in line.split("\t"))
            rows.append((header, family, major, os, device_type, bot == "true"))
    return rows


KNOWN = _known()


@pytest.fixture(scope="module")
def parser() -> UserAgentParser:
    return UserAgentParser()


def test_the_table_covers_enough_real_user_agents():
    assert len(KNOWN) >= 50
    assert {row[4] for row in KNOWN} == set(DEVICE_TYPES)


@pytest.mark.parametrize(("header", "family", "major", "os", "device_type", "is_bot"), KNOWN, ids=lambda v: None)
def test_known_user_agents(parser, header, family, major, os, device_type, is_bot):
    info = parser.parse(header)
    assert (info.name, info.version.split(".")[0] if info.version else None) == (family, major)
    assert (info.os_name, info.device_type, info.is_bot) == (os, device_type, is_bot)


def test_version_is_major_dot_minor(parser):
    info = parser.parse(KNOWN[0][0].replace("Chrome/120.0.0.0", "Chrome/120.3.6099.71"))
    assert info.version == "120.3"
    assert parser.parse(KNOWN[7][0]).os_version == "10.15"  # Mac OS X 10_15_7
    assert parser.parse("curl/7.68.0").version == "7.68"


def test_device_name_is_the_model_when_known(parser):
    assert parser.parse(KNOWN[21][0]).device_name == "Pixel 8 Pro"
    assert parser.parse(KNOWN[15][0]).device_name == "iPhone"
    assert parser.parse(KNOWN[0][0]).device_name is None  # a Windows PC does not say


@pytest.mark.parametrize("header", ["", "-", "   ", " - "])
def test_absent_user_agent_gives_no_fields(parser, header):
    assert parser.parse(header) == NO_USER_AGENT


def test_unknown_user_agent_is_other_and_not_a_bot(parser):
    info = parser.parse("SomethingNobodyHasSeen")
    assert (info.name, info.os_name, info.device_type, info.is_bot) == (None, None, "other", False)


def test_huge_user_agent_is_parsed_from_its_start(parser):
    header = KNOWN[0][0] + " " + "x" * 10_000
    info = parser.parse(header)
    assert (info.name, info.device_type) == ("Chrome", "desktop")
    assert parser.parse("A" * 10_000).device_type == "other"
    assert len(header) > MAX_PARSED_LENGTH


def test_garbage_user_agents_do_not_raise(parser):
    for header in ["\ufffd\ufffd", "\x00\x01\x02", "() ; / ;;;", "Mozilla/5.0 (", "é" * 5000, "${jndi:ldap://x/a}"]:
        info = parser.parse(header)
        assert info.device_type in DEVICE_TYPES


def test_a_parser_takes_the_matchers_prepared_ahead_and_the_next_builds_its_own():
    from parsers.enrich import user_agent

    user_agent.prepare()
    prepared = user_agent._prepared[0][0]
    first, second = user_agent.UserAgentParser(), user_agent.UserAgentParser()
    assert first._resolve is prepared and second._resolve is not prepared
    assert user_agent._prepared == []  # taken, not kept: the matchers go with the parser that took them
    text = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
    assert first.parse(text) == second.parse(text)
