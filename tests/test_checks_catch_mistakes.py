"""Mistakes of configuration are caught by ``manage.py check`` or at enqueue time, with
a message that names the mistake and its fix, before a worker trips over them."""

import importlib
import logging
import os
import subprocess
import sys
import textwrap
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test import override_settings

from taskq import registry
from taskq.backends import strategy_class
from taskq.celery import shared_task
from taskq.checks import check_claim_strategy_setting, check_imports
from taskq.enqueue import Call, enqueue
from taskq.worker import Worker
from test_matrix.testapp.tasks import noop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_check(*args):
    out = StringIO()
    try:
        call_command("check", *args, stdout=out, stderr=out)
    except SystemCheckError as error:
        return f"{out.getvalue()}{error}"
    return out.getvalue()


# TASKQ_CLAIM_STRATEGY ---------------------------------------------------------------
# These tests have no database access: pytest-django would refuse any query.


def test_plain_check_refuses_a_misspelt_strategy_and_suggests_the_family():
    with override_settings(TASKQ_CLAIM_STRATEGY="skiplocked"):
        output = run_check()
    assert (
        "(taskq.E004) TASKQ_CLAIM_STRATEGY='skiplocked' is not one of None, 'skip_locked', "
        "'optimistic', a dotted path; did you mean 'skip_locked'?"
    ) in output


def test_plain_check_refuses_a_dotted_path_that_names_no_class():
    with override_settings(TASKQ_CLAIM_STRATEGY="taskq.backends.nothing.Fastest"):
        (error,) = check_claim_strategy_setting()
    assert error.id == "taskq.E004"
    assert "TASKQ_CLAIM_STRATEGY='taskq.backends.nothing.Fastest' is neither one of" in error.msg


@pytest.mark.parametrize("value", [None, "skip_locked", "optimistic"])
def test_plain_check_accepts_auto_and_the_families(value):
    with override_settings(TASKQ_CLAIM_STRATEGY=value):
        assert check_claim_strategy_setting() == []


def test_the_worker_refusing_a_misspelt_strategy_suggests_the_family_too():
    with pytest.raises(ImproperlyConfigured, match="did you mean 'optimistic'\\?$"):
        strategy_class(connection, "optimistc")


# TASKQ_IMPORTS ----------------------------------------------------------------------


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """A folder on sys.path to write modules into; they are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)

    def write(name, source):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))

    yield write
    for name in set(sys.modules) - before:
        del sys.modules[name]
    importlib.invalidate_caches()


def test_plain_check_names_a_module_of_taskq_imports_that_cannot_be_imported():
    with override_settings(TASKQ_IMPORTS=["test_matrix.testapp.tasks", "shop.jbos", "shop_x"]):
        output = run_check()
    assert "(taskq.E005) TASKQ_IMPORTS names 'shop.jbos', which cannot be imported: No module" in (
        output
    )
    assert "(taskq.E005) TASKQ_IMPORTS names 'shop_x', which cannot be imported" in output
    assert "test_matrix.testapp.tasks" not in output


def test_a_worker_started_without_checks_names_the_module_instead_of_a_raw_traceback(modules):
    modules("imports_a_missing_library", "import no_such_library_here\n")
    with override_settings(TASKQ_IMPORTS=["shop.jbos"]):
        with pytest.raises(ImproperlyConfigured, match="TASKQ_IMPORTS names 'shop.jbos'"):
            registry.autodiscover()
    # A module that exists but fails to import keeps its own error and traceback.
    with override_settings(TASKQ_IMPORTS=["imports_a_missing_library"]):
        assert check_imports() == []
        with pytest.raises(ModuleNotFoundError, match="no_such_library_here"):
            registry.autodiscover()


def test_the_worker_command_stops_on_the_check_naming_the_module(workers, tmp_path):
    (tmp_path / "with_imports.py").write_text(
        f"from {django_settings.SETTINGS_MODULE} import *  # noqa\nTASKQ_IMPORTS = ['shop.jbos']\n"
    )
    path = os.pathsep.join([str(tmp_path), workers.env()["PYTHONPATH"]])
    done = workers.run("--burst", DJANGO_SETTINGS_MODULE="with_imports", PYTHONPATH=path)
    assert done.returncode == 1
    assert "(taskq.E005) TASKQ_IMPORTS names 'shop.jbos', which cannot be imported" in done.stderr
    assert "Traceback" not in done.stderr


# The strategy report ------------------------------------------------------------------


@pytest.mark.django_db
def test_migrate_does_not_print_the_strategy_report_and_check_deploy_does():
    migrate = StringIO()
    call_command("migrate", skip_checks=False, stdout=migrate, stderr=migrate)
    assert "taskq.I001" not in migrate.getvalue()
    assert "System check identified" not in migrate.getvalue()
    assert "taskq.I001" not in run_check("--database", "default")
    assert "(taskq.I001) Database 'default'" in run_check("--deploy")
    assert "(taskq.I001) Database 'default'" in run_check("--deploy", "--database", "default")


@pytest.mark.django_db
def test_a_strategy_the_database_refuses_is_still_an_error_on_migrate():
    with override_settings(TASKQ_CLAIM_STRATEGY="skiplocked"):
        output = run_check("--database", "default")
        assert "(taskq.E002) TASKQ_CLAIM_STRATEGY='skiplocked'" in output
        with pytest.raises(SystemCheckError, match="taskq.E002"):
            call_command("migrate", skip_checks=False, stdout=StringIO(), stderr=StringIO())


# A task the worker will not find -------------------------------------------------------


@shared_task(name="tests.checks.outside")
def defined_outside_the_tasks_modules():
    pass


@pytest.mark.django_db
def test_queueing_a_task_the_worker_will_not_import_warns_once(caplog):
    with caplog.at_level(logging.WARNING, logger="taskq.discovery"):
        defined_outside_the_tasks_modules.delay()
        defined_outside_the_tasks_modules.delay()
        noop.delay()
    (warning,) = caplog.messages
    module = defined_outside_the_tasks_modules.__module__
    assert warning == (
        f"Task tests.checks.outside is defined in {module}, which a worker does not import, "
        "so a worker will fail it as 'unregistered task'; a worker imports only every "
        "installed app's tasks module and the modules of TASKQ_IMPORTS: define the task in "
        f"an app's tasks.py, or add {module!r} to TASKQ_IMPORTS"
    )


@pytest.mark.django_db
def test_a_module_imported_by_a_discovered_one_is_found_and_one_left_out_is_not(modules, caplog):
    modules("listed_tasks", "import listed_jobs\n")
    source = """
        from taskq.celery import shared_task

        @shared_task(name="{name}")
        def job():
            pass
    """
    modules("listed_jobs", source.format(name="tests.checks.imported_by_listed"))
    modules("unlisted_jobs", source.format(name="tests.checks.unlisted"))
    with override_settings(TASKQ_IMPORTS=["listed_tasks"]):
        importlib.import_module("listed_tasks")
        importlib.import_module("unlisted_jobs")
        with caplog.at_level(logging.WARNING, logger="taskq.discovery"):
            enqueue(Call("tests.checks.imported_by_listed"))
            enqueue(Call("tests.checks.unlisted"))
    (warning,) = caplog.messages
    assert warning.startswith("Task tests.checks.unlisted is defined in unlisted_jobs,")
    assert warning.endswith("or add 'unlisted_jobs' to TASKQ_IMPORTS")


@pytest.mark.django_db(transaction=True)
def test_the_worker_s_unregistered_task_line_says_where_tasks_are_found(caplog):
    enqueue(Call("shop.jobs.send_invoice"))
    with caplog.at_level(logging.ERROR, logger="taskq.worker"):
        Worker(["default"], burst=True).run(handle_signals=False)
    (line,) = caplog.messages
    assert line.startswith("Task shop.jobs.send_invoice[")
    assert (
        "failed: unregistered task 'shop.jobs.send_invoice'; if it is defined in 'shop.jobs', "
        "a worker imports only every installed app's tasks module and the modules of "
        "TASKQ_IMPORTS: define the task in an app's tasks.py, or add 'shop.jobs' to "
        "TASKQ_IMPORTS (attempt 1 of 1)"
    ) in line


# INSTALLED_APPS ---------------------------------------------------------------------


def test_forgetting_taskq_in_installed_apps_says_so():
    program = textwrap.dedent(
        """
        import django
        from django.conf import settings
        settings.configure(
            INSTALLED_APPS=["django.contrib.contenttypes"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        )
        django.setup()
        from taskq.celery import shared_task
        """
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        'django.core.exceptions.ImproperlyConfigured: "taskq" is not in INSTALLED_APPS: add it, '
        'then run "manage.py migrate taskq". Its task table, delay() and the worker all need '
        "the app installed."
    )
