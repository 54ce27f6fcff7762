"""The benchmark's one model: the row ``bench.write`` writes, one per task.

A drain of tasks that do work needs work that touches the database the way a real task
does, through the ORM and on the worker's own connection; one small INSERT is the least
of that. ``key`` is not unique: a task that ran twice writes two rows, and the drain
counts duplicates from the record files anyway (``bench/record.py``).
"""

from django.db import models


class Written(models.Model):
    key = models.BigIntegerField()

    def __str__(self) -> str:
        return f"written {self.key}"
