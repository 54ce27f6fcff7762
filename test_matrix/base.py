"""Settings every database of the matrix shares; each sibling module adds DATABASES."""

import json
import os

import django

SECRET_KEY = "taskq-tests-only"
DEBUG = os.environ.get("TASKQ_TEST_DEBUG") == "1"
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "taskq",
    "test_matrix.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "test_matrix.urls"
STATIC_URL = "static/"
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Worker processes started by the tests read these from their environment.
TASKQ_CLAIM_STRATEGY = os.environ.get("TASKQ_CLAIM_STRATEGY") or None
TASKQ_HEARTBEAT_INTERVAL = 0.5
TASKQ_DIRTY_AFTER = float(os.environ.get("TASKQ_TEST_DIRTY_AFTER", "3"))
TASKQ_POLL_INTERVAL = float(os.environ.get("TASKQ_TEST_POLL_INTERVAL", "0.05"))
TASKQ_KEEP_CONNECTIONS = os.environ.get("TASKQ_TEST_KEEP_CONNECTIONS", "1") == "1"
TASKQ_TIME_LIMIT = (
    float(os.environ["TASKQ_TEST_TIME_LIMIT"]) if "TASKQ_TEST_TIME_LIMIT" in os.environ else None
)
TASKQ_SCHEDULE = json.loads(os.environ.get("TASKQ_TEST_SCHEDULE", "{}"))

# Worker processes connect to the test database that pytest-django created.
DB_NAME = os.environ.get("TASKQ_DB_NAME", "taskq")

# Django's Tasks framework (Django >= 6.0) queues @django.tasks.task functions in taskq.
if django.VERSION >= (6, 0):
    TASKS = {
        "default": {
            "BACKEND": "taskq.django_tasks.TaskqBackend",
            "QUEUES": ["default", "mail"],
        }
    }
# Extra task modules of the worker processes (tests/test_rate_limit_workers.py).
TASKQ_IMPORTS = tuple(filter(None, os.environ.get("TASKQ_TEST_IMPORTS", "").split(",")))
# Per-queue limits of the worker processes of tests/test_flow.py.
TASKQ_QUEUES = json.loads(os.environ.get("TASKQ_TEST_QUEUES") or "{}")
