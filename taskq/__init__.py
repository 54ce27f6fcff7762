"""taskq: a database-backed task queue for Django with Celery's API."""

__version__ = "0.1.0"
