"""Django settings of the benchmark's taskq processes (the agent and its workers).

``BENCH_DATABASE`` (sqlite, postgresql, mysql) picks the database; ``BENCH_DEBUG=1`` turns
on ``DEBUG`` for the memory run. Workers keep their connection (``CONN_MAX_AGE=None``,
as the README asks of worker processes) and poll at the default interval. SQLite gets
the options the README recommends.
"""

import os

from bench.databases import TASKQ_NAME, django_database

BENCH_TARGET = "taskq"
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "sqlite")

SECRET_KEY = "taskq-bench-only"
DEBUG = os.environ.get("BENCH_DEBUG") == "1"
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["taskq"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": django_database(
        BENCH_DATABASE,
        TASKQ_NAME,
        sqlite_options={"timeout": 20, "transaction_mode": "IMMEDIATE"},
    )
}
TASKQ_IMPORTS = ["bench.tasks"]
