"""Settings: read from the environment, checked at start with a message naming what is wrong."""

import re
from pathlib import Path

import pytest

from dataservice import config

BASE = {"DATABASE_URL": "postgresql://u@localhost/db"}


def test_defaults():
    values = config.load(environ=BASE)
    assert values["MAX_BODY_BYTES"] == 1024 * 1024
    assert values["DATABASE_STATEMENT_TIMEOUT_MS"] == 5000
    assert values["LOG_LEVEL"] == "INFO"
    assert values["MIGRATION_LOCK_TIMEOUT_MS"] == 5000


def test_values_come_from_the_environment():
    values = config.load(environ={**BASE, "DATABASE_POOL_MAX_SIZE": "9", "LOG_LEVEL": "debug"})
    assert values["DATABASE_POOL_MAX_SIZE"] == 9 and values["LOG_LEVEL"] == "DEBUG"


@pytest.mark.parametrize(
    "env, named",
    [
        ({}, "DATABASE_URL"),
        ({**BASE, "DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL"),
        ({**BASE, "DATABASE_POOL_MAX_SIZE": "zero"}, "DATABASE_POOL_MAX_SIZE"),
        ({**BASE, "DATABASE_POOL_MAX_SIZE": "0"}, "DATABASE_POOL_MAX_SIZE"),
        ({**BASE, "DATABASE_POOL_TIMEOUT": "-1"}, "DATABASE_POOL_TIMEOUT"),
        (
            {**BASE, "DATABASE_POOL_MIN_SIZE": "8", "DATABASE_POOL_MAX_SIZE": "4"},
            "DATABASE_POOL_MIN_SIZE",
        ),
        ({**BASE, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({**BASE, "MAX_BODY_BYTES": "1e6"}, "MAX_BODY_BYTES"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(env, named):
    with pytest.raises(config.ConfigError, match=named):
        config.load(environ=env)


def test_database_url_is_never_echoed():
    secret = "mysql://u:hunter2-secret@h/db"
    with pytest.raises(config.ConfigError) as error:
        config.load(environ={"DATABASE_URL": secret})
    assert "hunter2-secret" not in str(error.value)


def test_every_setting_is_in_the_readme_and_operations_tables():
    root = Path(__file__).parent.parent
    gunicorn_conf = (root / "gunicorn.conf.py").read_text()
    gunicorn_settings = set(re.findall(r"environ\.get\(\"([A-Z_]+)\"", gunicorn_conf))
    gunicorn_settings |= set(re.findall(r"environ\.get\('([A-Z_]+)'", gunicorn_conf))
    tables = {}
    for doc in ("README.md", "docs/operations.md"):
        text = (root / doc).read_text()
        tables[doc] = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", text, re.MULTILINE))
        assert {s.name for s in config.SETTINGS} | gunicorn_settings <= tables[doc], doc
    assert tables["README.md"] == tables["docs/operations.md"]
