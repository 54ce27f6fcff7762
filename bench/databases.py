"""Where the benchmark's databases live, and plain driver connections to them.

The benchmark uses database names of its own (``taskq_bench`` for taskq,
``taskq_bench_orig`` for the original django-taskq, whose table is also called
``taskq_task``), so it can run while other engineers' tests use theirs. Credentials come
from the same environment variables as ``test_matrix/`` with the same defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

VENDORS = ("sqlite", "postgresql", "mysql")
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}
TASKQ_NAME = os.environ.get("BENCH_DB_NAME", "taskq_bench")
ORIGINAL_NAME = "taskq_bench_orig"
SQLITE_DIR = Path(os.environ.get("BENCH_SQLITE_DIR", "/tmp/taskq_bench"))

PG = {
    "HOST": os.environ.get("PGHOST", "127.0.0.1"),
    "PORT": os.environ.get("PGPORT", "5432"),
    "USER": os.environ.get("PGUSER", "root"),
    "PASSWORD": os.environ.get("PGPASSWORD", ""),
}
MY = {
    "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
    "PORT": os.environ.get("MYSQL_PORT", "3306"),
    "USER": os.environ.get("MYSQL_USER", "root"),
    "PASSWORD": os.environ.get("MYSQL_PASSWORD", ""),
}


def sqlite_path(name: str) -> Path:
    return SQLITE_DIR / f"{name}.sqlite3"


def django_database(
    vendor: str, name: str, *, sqlite_options: dict[str, Any], conn_max_age: int | None = None
) -> dict[str, Any]:
    """Return a ``DATABASES`` entry; by default workers keep their connection
    (``CONN_MAX_AGE=None``), ``conn_max_age=0`` is Django's default (a new project's)."""
    if vendor == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(sqlite_path(name)),
            "CONN_MAX_AGE": conn_max_age,
            "OPTIONS": sqlite_options,
        }
    if vendor == "postgresql":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "CONN_MAX_AGE": conn_max_age,
            **PG,
        }
    if vendor == "mysql":
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            "CONN_MAX_AGE": conn_max_age,
            "OPTIONS": {"charset": "utf8mb4"},
            **MY,
        }
    raise ValueError(f"unknown database {vendor!r}; use one of {', '.join(VENDORS)}")


def connect(vendor: str, name: str | None) -> Any:
    """Return a plain DB-API connection in autocommit mode (``name=None``: the server)."""
    if vendor == "sqlite":
        import sqlite3

        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        assert name is not None
        connection = sqlite3.connect(sqlite_path(name), timeout=20, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        return connection
    if vendor == "postgresql":
        import psycopg

        return psycopg.connect(
            host=PG["HOST"],
            port=int(PG["PORT"]),
            user=PG["USER"],
            password=PG["PASSWORD"] or None,
            dbname=name or "postgres",
            autocommit=True,
        )
    if vendor == "mysql":
        import MySQLdb

        connection = MySQLdb.connect(
            host=MY["HOST"],
            port=int(MY["PORT"]),
            user=MY["USER"],
            password=MY["PASSWORD"],
            database=name or "",
            charset="utf8mb4",
        )
        connection.autocommit(True)
        return connection
    raise ValueError(f"unknown database {vendor!r}")


def create(vendor: str, name: str) -> None:
    """Create database ``name`` on the server if it is absent (a SQLite file: its folder)."""
    if vendor == "sqlite":
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        return
    connection = connect(vendor, None)
    try:
        cursor = connection.cursor()
        if vendor == "postgresql":
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}"')
        else:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
    finally:
        connection.close()


def server_version(vendor: str) -> str:
    """Return the server's version string, for the report."""
    if vendor == "sqlite":
        import sqlite3

        return sqlite3.sqlite_version
    connection = connect(vendor, None)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT version()")
        return str(cursor.fetchone()[0]).split(" on ")[0].removeprefix("PostgreSQL ")
    finally:
        connection.close()
