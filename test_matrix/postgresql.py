"""PostgreSQL; credentials from the environment, defaults for the local server.

``CONN_MAX_AGE`` stays at Django's default (0), as in a new project.
"""

import os

from test_matrix.base import *  # noqa: F403
from test_matrix.base import DB_NAME

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DB_NAME,
        "USER": os.environ.get("PGUSER", "root"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
    }
}
