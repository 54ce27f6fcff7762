"""System checks and TASKQ_* settings: what a misconfigured project is told."""

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from taskq.backends import strategy_class
from taskq.checks import (
    check_claim_strategy,
    check_liveness_settings,
    check_settings,
    check_unknown_settings,
)
from taskq.conf import TaskqSettings, settings


@pytest.mark.django_db
def test_check_reports_the_strategy_of_each_alias():
    out = StringIO()
    call_command("check", "--deploy", "--database", "default", stdout=out, stderr=out)
    cls = strategy_class(connection)
    expected = (
        f"(taskq.I001) Database 'default' ({connection.display_name}) claims tasks with "
        f"{cls.family} ({cls.__module__}.{cls.__name__})"
    )
    assert expected in out.getvalue()


@pytest.mark.django_db
def test_check_reports_a_bad_strategy_as_an_error():
    with override_settings(TASKQ_CLAIM_STRATEGY="fastest"):
        (error,) = check_claim_strategy(databases=["default"])
    assert error.id == "taskq.E002"
    assert "TASKQ_CLAIM_STRATEGY='fastest' is not one of" in error.msg


def test_a_dirty_threshold_below_two_heartbeats_is_an_error():
    with override_settings(TASKQ_DIRTY_AFTER=1, TASKQ_HEARTBEAT_INTERVAL=1):
        (error,) = check_liveness_settings()
    assert error.id == "taskq.E003"
    assert error.msg.startswith("TASKQ_DIRTY_AFTER (1s) must be at least twice")


def test_defaults():
    assert settings.CLAIM_STRATEGY is None
    assert settings.DEFAULT_QUEUE == "default"
    assert settings.IMPORTS == ()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "TASKQ_DIRTY_AFTER",
            "10",
            "TASKQ_DIRTY_AFTER must be a positive number of seconds, not '10'",
        ),
        ("TASKQ_HEARTBEAT_INTERVAL", 0, "TASKQ_HEARTBEAT_INTERVAL must be a positive number"),
        ("TASKQ_POLL_INTERVAL", -1, "TASKQ_POLL_INTERVAL must be a positive number"),
        ("TASKQ_RECONNECT_MAX_DELAY", True, "TASKQ_RECONNECT_MAX_DELAY must be a positive number"),
        (
            "TASKQ_IMPORTS",
            "app.tasks",
            "TASKQ_IMPORTS must be a list of module paths, not 'app.tasks'",
        ),
        ("TASKQ_IMPORTS", ["ok", 3], "TASKQ_IMPORTS holds 3, which is not a module path"),
        ("TASKQ_DEFAULT_QUEUE", "", "TASKQ_DEFAULT_QUEUE must be a queue name of 1 to 100"),
        ("TASKQ_CLAIM_STRATEGY", 1.5, "TASKQ_CLAIM_STRATEGY must be None, a short name"),
        ("TASKQ_PREPARED_STATEMENTS", "yes", "TASKQ_PREPARED_STATEMENTS must be True or False"),
    ],
)
def test_a_malformed_setting_names_itself_and_the_value(name, value, message):
    attribute = name.removeprefix("TASKQ_")
    with override_settings(**{name: value}):
        with pytest.raises(ImproperlyConfigured) as error:
            getattr(settings, attribute)
        assert message in str(error.value)
        assert any(message in e.msg and e.id == "taskq.E001" for e in check_settings())


def test_settings_are_read_on_every_access():
    with override_settings(TASKQ_DIRTY_AFTER=42):
        assert settings.DIRTY_AFTER == 42.0
    assert settings.DIRTY_AFTER != 42.0


def test_a_misspelt_setting_is_a_warning_with_a_suggestion():
    with override_settings(TASKQ_POLL_INTERVALL=1):
        (warning,) = check_unknown_settings()
    assert warning.id == "taskq.W002"
    assert warning.msg == "Unknown setting TASKQ_POLL_INTERVALL: did you mean TASKQ_POLL_INTERVAL?"


def test_the_readme_settings_table_is_the_declarations():
    """The README's table under "## Settings" lists every setting, its default and its
    description exactly as ``taskq.conf`` declares them, in the same order."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(TASKQ_\w+)` \| `(.*?)` \| (.*) \|$", section, re.MULTILINE)
    declared = [(s.name, s.default_text, s.doc) for s in TaskqSettings.declared()]
    assert rows == declared
