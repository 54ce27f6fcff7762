"""Django settings of the benchmark's taskq processes (the agent and its workers).

``BENCH_DATABASE`` (sqlite, postgresql, mysql) picks the database; ``BENCH_DEBUG=1`` turns
on ``DEBUG`` for the memory run. Workers keep their connection (``CONN_MAX_AGE=None``,
as the README asks of worker processes) unless ``BENCH_CONN_MAX_AGE=0`` gives them
Django's default, which a new project has and the ``*_age0`` cells measure; they poll at
the default interval. SQLite gets the options the README recommends. The app ``bench``
holds the table ``bench.write`` writes to (``bench/models.py``).
"""

import os

from bench import databases
from bench.databases import django_database

BENCH_TARGET = "taskq"
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "sqlite")
_AGE = os.environ.get("BENCH_CONN_MAX_AGE", "none").lower()
BENCH_CONN_MAX_AGE = None if _AGE == "none" else int(_AGE)

SECRET_KEY = "taskq-bench-only"
DEBUG = os.environ.get("BENCH_DEBUG") == "1"
USE_TZ = True
TIME_ZONE = "UTC"
# The admin apps are here for the admin page timings (bench/admin_pages.py).
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "taskq",
    "bench",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "bench.urls"
ALLOWED_HOSTS = ["testserver"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": django_database(
        BENCH_DATABASE,
        databases.TASKQ_NAME,
        sqlite_options={"timeout": 20, "transaction_mode": "IMMEDIATE"},
        conn_max_age=BENCH_CONN_MAX_AGE,
    )
}
TASKQ_IMPORTS = ["bench.tasks"]
