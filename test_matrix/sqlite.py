"""SQLite, in files, so that worker processes share the database with the tests."""

import os
import tempfile

from test_matrix.base import *  # noqa: F403
from test_matrix.base import DB_NAME

_DIR = os.environ.get("TASKQ_SQLITE_DIR", tempfile.gettempdir())

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DB_NAME
        if DB_NAME.endswith(".sqlite3")
        else os.path.join(_DIR, f"{DB_NAME}.sqlite3"),
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        "TEST": {"NAME": os.path.join(_DIR, f"test_{DB_NAME}.sqlite3")},
    }
}
