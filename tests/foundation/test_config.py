"""The YAML config: defaults that work, and errors that name the key and the problem."""

import pytest

from schemas.config import Config, ConfigError, load_config, parse_config


def test_no_config_means_working_defaults():
    config = load_config(None)
    assert config == Config()
    assert config.input.format == "auto"
    assert config.retention.online_days >= 90 and config.retention.archive_days >= 365
    assert config.runner.name == "FnApiRunner"


def test_example_config_is_valid(examples):
    assert load_config(examples / "logwarden.yaml") == Config()


@pytest.mark.parametrize(
    ("document", "key", "words"),
    [
        ({"archive": {"row_group_rows": "many"}}, "archive.row_group_rows", "expected an integer, got 'many'"),
        ({"archive": {"row_group_rows": 0}}, "archive.row_group_rows", "must be >= 1"),
        ({"archiv": {}}, "archiv", "did you mean 'archive'"),
        ({"input": {"formatt": "combined"}}, "input.formatt", "did you mean 'format'"),
        ({"retention": {"online_days": 30}}, "retention.online_days", "at least 90 days"),
        ({"retention": {"archive_days": 100}}, "retention.archive_days", "at least one year"),
        ({"enrich": {"enabled": "yes please"}}, "enrich.enabled", "expected true or false"),
        ({"archive": {"compression": "rar"}}, "archive.compression", "unknown codec 'rar'"),
        ({"input": "combined"}, "input", "expected a mapping"),
    ],
)
def test_bad_values_name_the_key_and_what_is_wrong(document, key, words):
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "site.yaml")
    assert caught.value.key == key
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"site.yaml: {key}: ")


def test_a_single_path_is_accepted_where_a_list_is_expected():
    config = parse_config({"enrich": {"geoip_databases": "/data/City.mmdb"}})
    assert config.enrich.geoip_databases == ("/data/City.mmdb",)


def test_unreadable_or_invalid_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("input:\n  format: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == Config()
