"""Test matrix, lint and type checks for taskq.

``nox`` runs everything: ``tests(database, django)`` over SQLite, PostgreSQL and MariaDB/MySQL
with Django 5.2 LTS and 6.1, then ``lint`` and ``typecheck``. ``nox -l`` lists the sessions;
``nox -s "tests(database='sqlite', django='5.2')" -- -x -k claim`` runs one, passing the
arguments after ``--`` to pytest.

The PostgreSQL and MySQL sessions need running servers; the settings modules in
``test_matrix/`` read their credentials from the environment (PG*/MYSQL_* variables) and
default to the local servers. ``TASKQ_DB_NAME`` (default ``taskq``) names the database;
pytest-django creates and drops ``test_<name>`` next to it. An unreachable server makes
the session fail, it is never skipped.

A missing Python interpreter skips its sessions on a developer's machine and is an error
in CI (``CI`` set in the environment).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.needs_version = ">=2024.4.15"

DATABASES = ["sqlite", "postgresql", "mysql"]
# One interpreter per Django series keeps the matrix short. Django 6 needs Python >= 3.12.
DJANGO_PYTHON = {"5.2": "3.11", "6.1": "3.12"}
# Extras of pyproject.toml that bring the database driver.
DRIVER_EXTRA = {"sqlite": None, "postgresql": "postgres", "mysql": "mysql"}
TYPECHECK_PYTHON = "3.12"
HERE = Path(__file__).resolve().parent


def _pythonpath() -> str:
    """The repository root first, so that ``test_matrix`` imports in pytest, in the worker
    processes the tests start, and in the django-stubs mypy plugin."""
    return os.pathsep.join(p for p in [str(HERE), os.environ.get("PYTHONPATH", "")] if p)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def _add_pyenv_interpreters_to_path() -> None:
    """Put every pyenv-installed Python on PATH so that nox finds ``python3.12`` & co.

    pyenv's shims only answer for the active versions; the real ``bin`` directories
    answer for all of them.
    """
    if shutil.which("pyenv") is None:
        return
    try:
        root = subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return
    if not root:
        return
    path = os.environ.get("PATH", "").split(os.pathsep)
    bins = sorted(str(p) for p in Path(root, "versions").glob("*/bin") if p.is_dir())
    new = [b for b in bins if b not in path]
    if new:
        os.environ["PATH"] = os.pathsep.join([*new, *path])


_add_pyenv_interpreters_to_path()

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"
# Skip sessions whose interpreter is missing locally; in CI that is an error.
nox.options.error_on_missing_interpreters = _truthy(os.environ.get("CI"))
# Never download interpreters (newer nox would try python-build-standalone otherwise).
nox.options.download_python = "never"


@nox.session
@nox.parametrize(
    "python,django",
    [nox.param(py, dj, id=f"django={dj!r}") for dj, py in DJANGO_PYTHON.items()],
)
@nox.parametrize("database", DATABASES)
def tests(session: nox.Session, database: str, django: str) -> None:
    """Run the pytest suite against one database with one Django series."""
    extra = DRIVER_EXTRA[database]
    extras = "dev" if extra is None else f"dev,{extra}"
    session.install("-e", f".[{extras}]", f"Django~={django}.0")

    settings = f"test_matrix.{database}"
    env = {
        "TASKQ_DB_NAME": os.environ.get("TASKQ_DB_NAME") or "taskq",
        # pytest-django's --ds sets this too; worker processes started by the tests inherit it.
        "DJANGO_SETTINGS_MODULE": settings,
        "PYTHONPATH": _pythonpath(),
    }
    session.run("python", "-m", "django", "--version", env=env)
    session.run("pytest", f"--ds={settings}", *session.posargs, env=env)


@nox.session  # ruff does not care which Python runs it: nox's own will do.
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting, without changing files."""
    session.install("ruff==0.17.6")  # pinned: a new release may bring new rules
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=TYPECHECK_PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy with django-stubs; settings from test_matrix.sqlite (see [tool.django-stubs])."""
    session.install("-e", ".[dev]")
    session.run("mypy", *(session.posargs or ["taskq"]), env={"PYTHONPATH": _pythonpath()})


@nox.session(python="3.11")  # not in nox.options.sessions: run it by name
def bench(session: nox.Session) -> None:
    """The benchmark (issue 4): ``nox -s bench -- --quick``; prints a table, writes JSON."""
    session.install("-e", ".[postgres,mysql]")
    session.run("python", "-m", "bench", *session.posargs, env={"PYTHONPATH": _pythonpath()})
