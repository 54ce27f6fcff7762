"""Django settings of the original django-taskq's processes, in its own virtualenv.

Its own database (``taskq_bench_orig``: its table is also ``taskq_task``) and Django's
defaults otherwise, as a user of the original would have them; only the connection is
kept between tasks, as for taskq's workers.
"""

import os

from bench.databases import ORIGINAL_NAME, django_database

BENCH_TARGET = "original"
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "sqlite")

SECRET_KEY = "taskq-bench-only"
DEBUG = os.environ.get("BENCH_DEBUG") == "1"
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["django_taskq"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {"default": django_database(BENCH_DATABASE, ORIGINAL_NAME, sqlite_options={})}
