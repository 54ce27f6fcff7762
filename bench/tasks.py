"""The benchmark's taskq tasks, each recording its execution (``bench.record``).

``bench.record`` is a no-op; ``bench.write`` does the least work a real task does: one
row INSERTed through Django's connection (``connection.cursor().execute``) on the
worker's own connection, the task the issue that asked for the write drain measured.
The bare loop sends the same INSERT the same way (``bench/bare.py``), so the drain's
ratio is what the queue costs around it; what the ORM would add to the task is shown by
the ``body`` cell (``bench/body.py``).
"""

from django.db import connection

from bench.bare import WRITE
from bench.record import record as _record
from taskq.celery import shared_task

#: ``bench.bare.WRITE`` in Django's placeholder style (its SQLite cursor takes ``%s``).
WRITE_SQL = {vendor: sql.replace("?", "%s") for vendor, sql in WRITE.items()}


@shared_task(name="bench.record")
def record(key: int) -> None:
    _record(key)


@shared_task(name="bench.write")
def write(key: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(WRITE_SQL[connection.vendor], [key])
        cursor.fetchone()
    _record(key)
