"""The task table and the worker table.

A task row is written in the caller's transaction and deleted when the task succeeds.
Its ``state`` says only what the database can know for sure (queued, started, failed);
whether a started task is *active* or *dirty* depends on the heartbeat of the worker
process that claimed it, which lives in its own small table so that a heartbeat is one
write per second per process, whatever the task is doing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, models
from django.db.models import F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from taskq.bounds import bounded_error
from taskq.clock import database_now
from taskq.conf import settings
from taskq.names import NAME_MAX_LENGTH, QUEUE_MAX_LENGTH

#: The most values ``distinct_values`` returns by default: the admin's filters list no
#: more (a longer list helps nobody), and each value costs one probe.
DISTINCT_VALUES_LIMIT = 300

# Without this, importing taskq (shared_task, delay) in a project that forgot the app
# fails in Django's model metaclass with an "app_label" error that does not say why.
if apps.apps_ready and not apps.is_installed("taskq"):
    raise ImproperlyConfigured(
        '"taskq" is not in INSTALLED_APPS: add it, then run "manage.py migrate taskq". '
        "Its task table, delay() and the worker all need the app installed."
    )

# The claim, defined once. Every strategy builds on these: the ORM ones use them as they
# are, the hand-written SQL of ``taskq.backends.claim`` is rendered from them, and the
# contract suite checks that each strategy claims exactly ``due()`` in ``CLAIM_ORDER``.

#: The name of the index the claim reads (some strategies name it in their SQL).
CLAIM_INDEX = "taskq_task_claim"
#: The order a claim takes due tasks in: highest priority first, then the earliest ETA,
#: then the oldest row (so that ties are broken the same way by every strategy).
CLAIM_ORDER = ("-priority", "eta", "id")
#: The columns a claim returns, in this order, followed by whether the task has expired.
CLAIM_FIELDS = (
    "id",
    "name",
    "queue",
    "args",
    "kwargs",
    "retries",
    "version",
    # The rest fill the running task's ``taskq.context.Request``.
    "priority",
    "eta",
    "expires",
    "created_at",
    "headers",
    "time_limit",
    "soft_time_limit",
)


def claim_changes(worker: Any, now: Any) -> dict[str, Any]:
    """Return what a claim writes, by field: the row is started, by ``worker``, at ``now``
    (the database's clock), and its version moves on, which fences off older claims."""
    return {
        "state": Task.State.STARTED,
        "version": F("version") + 1,
        "worker_id": worker,
        "started_at": now,
    }


class ClaimIndex(models.Index):
    """The index the claim reads in order: due tasks of a queue, in ``CLAIM_ORDER``.

    Where the database's engine says so (``Engine.has_partial_claim_index``) it holds
    queued rows only, so failed and started rows cost the claim nothing. Elsewhere
    ``state`` leads the key instead, and the index covers the whole claim query (InnoDB
    appends the primary key), so ``FOR UPDATE SKIP LOCKED`` locks only the row it returns.
    """

    def __init__(self, *, name: str) -> None:
        super().__init__(fields=["state", "queue", *CLAIM_ORDER], name=name)

    def deconstruct(self):  # type: ignore[no-untyped-def]
        return ("taskq.models.ClaimIndex", (), {"name": self.name})

    def create_sql(self, model, schema_editor, using="", **kwargs):  # type: ignore[no-untyped-def]
        from taskq.backends import engine_for  # taskq.backends imports this module

        if engine_for(schema_editor.connection).has_partial_claim_index:
            index = models.Index(
                fields=["queue", *CLAIM_ORDER],
                condition=Q(state=Task.State.QUEUED),
                name=self.name,
            )
        else:
            index = models.Index(fields=self.fields, name=self.name)
        return index.create_sql(model, schema_editor, using=using, **kwargs)


class FailedListIndex(models.Index):
    """The index of the admin's list of failed tasks, newest first.

    Where the engine says so (``Engine.has_partial_failed_index``) it holds failed rows
    only, by ``failed_at``: an index on ``state`` first would also hold an entry per
    queued and started task, one more index write per enqueue and per claim, and with
    every queued entry equal it deduplicates into a small index the planner may prefer
    for the claim. Elsewhere ``state`` leads the key, as before (SQLite reads a partial
    index in order only for its own columns, not with the ``id`` that breaks ties).
    """

    def __init__(self, *, name: str) -> None:
        super().__init__(fields=["state", "failed_at"], name=name)

    def deconstruct(self):  # type: ignore[no-untyped-def]
        return ("taskq.models.FailedListIndex", (), {"name": self.name})

    def create_sql(self, model, schema_editor, using="", **kwargs):  # type: ignore[no-untyped-def]
        from taskq.backends import engine_for  # taskq.backends imports this module

        if engine_for(schema_editor.connection).has_partial_failed_index:
            index = models.Index(
                fields=["failed_at"], condition=Q(state=Task.State.FAILED), name=self.name
            )
        else:
            index = models.Index(fields=self.fields, name=self.name)
        return index.create_sql(model, schema_editor, using=using, **kwargs)


class Worker(models.Model):
    """One running ``taskq_worker`` process; its heartbeat tells active from dirty."""

    ident = models.CharField(max_length=100, unique=True)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.CharField(max_length=1000)
    started_at = models.DateTimeField()
    heartbeat = models.DateTimeField(db_index=True)
    #: Outcomes since the process started, written with each heartbeat.
    succeeded = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["host", "pid"]

    def __str__(self) -> str:
        return self.ident


class Queue(models.Model):
    """The state of one queue that every worker must respect: paused, and when its rate
    limit lets the next task start.

    A row exists for every queue a worker serves (the worker writes it when it starts)
    and for every queue ever paused; a queue without a row is neither. Claims read this
    small table in the same statement or transaction as the task table
    (``taskq.backends.flow``), so a pause that committed is seen by every later claim.
    """

    name = models.CharField(max_length=QUEUE_MAX_LENGTH, primary_key=True)
    paused = models.BooleanField(default=False)
    #: Rate-limited queues: no task of the queue starts before this moment (the
    #: database's clock); set by each start to its time plus the rate's interval.
    next_start_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Schedule(models.Model):
    """One entry of ``TASKQ_SCHEDULE``: the last slot a worker queued for it.

    Workers move ``last_slot`` on with a compare-and-set in the transaction that writes
    the slot's task, so each slot is queued once (``taskq.schedules``).
    """

    name = models.CharField(max_length=200, unique=True)
    last_slot = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TaskRate(models.Model):
    """When the next task called ``name`` may start, for a task with a ``rate_limit``:
    the per-task counterpart of ``Queue.next_start_at``, locked and moved by each claim
    of such a task in the same way (``taskq.backends.flow``).

    A table of its own, not rows of ``Queue``: a task name is not a queue, and must not
    show up among the queues, be paused, or fit the queue column's length.
    """

    name = models.CharField(max_length=NAME_MAX_LENGTH, primary_key=True)
    #: No task called ``name`` starts before this moment (the database's clock).
    next_start_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class TaskQuerySet(models.QuerySet["Task"]):
    """Querysets named after the groups the admin and the metrics show."""

    def failed(self) -> TaskQuerySet:
        return self.filter(state=Task.State.FAILED)

    def started(self) -> TaskQuerySet:
        return self.filter(state=Task.State.STARTED)

    def dirty(self) -> TaskQuerySet:
        return self.started().filter(dirty_q())

    def active(self) -> TaskQuerySet:
        return self.started().exclude(dirty_q())

    def queued(self) -> TaskQuerySet:
        return self.filter(state=Task.State.QUEUED)

    def pending(self) -> TaskQuerySet:
        return self.queued().filter(eta__lte=database_now())

    def due(self, queues: Sequence[str], held_back: Sequence[str] = ()) -> TaskQuerySet:
        """Pending tasks of ``queues``: what a worker of those queues may claim now (in
        ``CLAIM_ORDER``; ``taskq.backends.claim`` says the same in SQL).

        ``held_back``: names of tasks with a ``rate_limit``, left out (they are claimed
        one name at a time, under their rate's lock: ``taskq.backends.flow``).
        """
        due = self.pending().filter(queue__in=queues)
        return due.exclude(name__in=held_back) if held_back else due

    def future(self) -> TaskQuerySet:
        return self.queued().filter(eta__gt=database_now())

    def distinct_values(self, field: str, limit: int | None = DISTINCT_VALUES_LIMIT) -> list[Any]:
        """Return the first ``limit`` distinct non-null values of ``field`` among these rows,
        in order (all of them if ``limit`` is None).

        A loose index scan done by hand: one ``ORDER BY field LIMIT 1`` probe per value,
        each starting after the last value found. Through an index that starts with the
        filtered columns and then ``field`` (``state, name``; the claim index for
        ``state, queue``), each probe reads one index entry, so a table of millions of
        rows with a few dozen names costs a few dozen tiny queries, where ``SELECT
        DISTINCT`` reads every row (MariaDB does no loose scan of an index that has a
        descending part, such as the claim index). The answer is the same either way.
        The limit keeps a table with a value per row from costing a query per row.
        """
        rows = self.order_by(field)
        if self.model._meta.get_field(field).null:
            rows = rows.exclude(**{f"{field}__isnull": True})
        values: list[Any] = []
        while limit is None or len(values) < limit:
            after = rows.filter(**{f"{field}__gt": values[-1]}) if values else rows
            value = after.values_list(field, flat=True).first()
            if value is None:
                break
            values.append(value)
        return values

    def values_in_state(
        self, state: int, field: str, limit: int | None = DISTINCT_VALUES_LIMIT
    ) -> list[Any]:
        """Return the first ``limit`` distinct values of ``field`` ("queue" or "name")
        among these rows in ``state``, the cheapest way the indexes allow.

        ``(state, name)`` is an index everywhere, and so is ``(state, queue)`` where the
        claim index is not partial; else only queued rows have an index by queue, and
        one ``SELECT DISTINCT`` over the failed or started rows beats a probe per value
        that would each read them all.
        """
        from taskq.backends import engine_for  # taskq.backends imports this module

        rows = self.filter(state=state)
        partial = engine_for(connections[self.db]).has_partial_claim_index
        if field == "queue" and state != Task.State.QUEUED and partial:
            distinct = rows.order_by(field).values_list(field, flat=True).distinct()
            return list(distinct if limit is None else distinct[:limit])
        return rows.distinct_values(field, limit)

    def run_now(self) -> int:
        """Make queued tasks due now; return how many."""
        return self.queued().update(eta=database_now())

    def retry(self) -> int:
        """Put failed or dirty tasks back in the queue, due now; return how many."""
        return self.exclude(state=Task.State.QUEUED).requeue(database_now())

    def requeue(self, eta: Any = None, *, error: str | None = None, retried: bool = False) -> int:
        """Queue these rows again, due at ``eta`` (``None``: keep their ETA), counting
        one more retry if ``retried``; return how many.

        The version is bumped, so a worker that still holds an old claim on one of
        them can no longer complete, retry or fail it. Every re-queue goes through here.
        """
        changes: dict[str, Any] = {
            "state": Task.State.QUEUED,
            "version": F("version") + 1,
            "worker_ident": last_worker_ident(),
            "worker": None,
            "cancel_requested_by": "",  # a cancel asked of the run that ended
        }
        if eta is not None:
            changes["eta"] = eta
        if error is not None:
            changes["error"] = bounded_error(error)
        if retried:
            changes["retries"] = F("retries") + 1
        return self.update(**changes)


def failure_changes(error: str) -> dict[str, Any]:
    """Return what failing a task writes: the state, the error (a traceback) for a human
    to read, the database's time, and the release of its unique key (the key itself
    stays in ``unique_key``, for the admin): a failed task holds its key no longer.
    It keeps the ident of the worker that ran it (``last_worker_ident``)."""
    return {
        "state": Task.State.FAILED,
        "error": error,
        "failed_at": database_now(),
        "unique_key_hash": None,
        "worker_ident": last_worker_ident(),
    }


def last_worker_ident() -> Any:
    """Return an expression of the ident of the worker a row points to, or the row's
    ``worker_ident`` as it is when it points to none.

    Written where a task lets go of its worker (it fails, it is queued again), so that
    the admin can still name the worker that last ran it once the worker row is gone;
    the claim itself writes nothing more. One primary-key probe of the worker table.
    """
    ident = Worker.objects.filter(pk=OuterRef("worker_id")).values("ident")[:1]
    return Coalesce(Subquery(ident), F("worker_ident"))


def dirty_cutoff() -> Any:
    """Return the moment before which a worker's last heartbeat makes its tasks dirty,
    as an expression of the database's clock."""
    return database_now(-settings.DIRTY_AFTER)


def dirty_q() -> Q:
    """Match started tasks whose worker is gone or has not beaten recently."""
    return Q(worker__isnull=True) | Q(worker__heartbeat__lt=dirty_cutoff())


class Task(models.Model):
    """A call of a registered function, waiting, running or failed."""

    class State(models.IntegerChoices):
        QUEUED = 0, "queued"
        STARTED = 1, "started"
        FAILED = 2, "failed"

    name = models.CharField(max_length=NAME_MAX_LENGTH)
    queue = models.CharField(max_length=QUEUE_MAX_LENGTH, default="default")
    priority = models.SmallIntegerField(default=0)
    args = models.TextField(default="[]")
    kwargs = models.TextField(default="{}")
    eta = models.DateTimeField()
    expires = models.DateTimeField(null=True, blank=True)
    retries = models.PositiveIntegerField(default=0)
    #: Bumped by every claim and every re-queue; writes after a claim are fenced by it.
    version = models.PositiveBigIntegerField(default=0)
    state = models.PositiveSmallIntegerField(choices=State.choices, default=State.QUEUED)
    worker = models.ForeignKey(
        Worker,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tasks",
    )
    #: The ident ("host:pid:…") of the worker that last ran the task, written when the
    #: task lets go of it (``last_worker_ident``): the ``worker`` link is cleared when
    #: that worker's row is deleted. NULL for a task never let go of: adding a nullable
    #: column leaves a big table's rows alone.
    worker_ident = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    error = models.TextField(blank=True, default="")
    #: The call's Celery ``headers``, as typed JSON (``taskq.serialization``). NULL, not
    #: "", for none: adding a nullable column leaves a big table's rows alone.
    headers = models.TextField(null=True, blank=True)  # noqa: DJ001
    #: The call's time limits in seconds; ``None``: the task's own, if any.
    time_limit = models.FloatField(null=True, blank=True)
    soft_time_limit = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    #: Who asked to stop the running task; its worker's heartbeat reads it.
    cancel_requested_by = models.CharField(max_length=200, blank=True, default="")
    #: The key of a unique task (``apply_async(unique_key=…)``), kept after it fails.
    unique_key = models.TextField(blank=True, default="")
    #: The SHA-256 of ``unique_key`` while the task holds it (queued or started), else
    #: NULL. Its unique index is what makes a key unique: NULLs never collide on any
    #: database, and a digest compares byte for byte whatever the column's collation
    #: (MySQL's default ones ignore case and trailing spaces) and however long the key.
    unique_key_hash = models.CharField(  # noqa: DJ001  (NULL: holds no key)
        max_length=64, null=True, blank=True, unique=True, editable=False
    )

    objects = TaskQuerySet.as_manager()

    #: ``False`` on the ``Task`` that ``taskq.enqueue.enqueue`` returns for a unique call
    #: whose key another task held: nothing was written, and ``pk`` is that task's.
    created: bool = True

    class Meta:
        indexes = [
            ClaimIndex(name=CLAIM_INDEX),
            models.Index(fields=["state", "name"], name="taskq_task_state_name"),
            # The admin's long lists: pending and future by due time, failed newest first.
            models.Index(fields=["state", "eta"], name="taskq_task_state_eta"),
            FailedListIndex(name="taskq_task_state_failed_at"),
        ]

    def __str__(self) -> str:
        return f"{self.name}[{self.pk}]"


class Minute(models.Model):
    """What the workers of one queue did in one minute, by the database's clock.

    Each worker's heartbeat adds the tasks it finished since its last beat
    (``taskq.history``); the first heartbeat to write a queue's minute also samples
    that queue's backlog. The admin's summary draws its charts from these rows, and
    ``taskq.metrics.history`` returns them. Rows older than ``history.KEPT_FOR`` are
    deleted by the heartbeats.
    """

    queue = models.CharField(max_length=QUEUE_MAX_LENGTH)
    #: The minute's first second (UTC with ``USE_TZ``).
    minute = models.DateTimeField()
    succeeded = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    retried = models.PositiveBigIntegerField(default=0)
    expired = models.PositiveBigIntegerField(default=0)
    #: The queue's pending tasks when the row was written (counted up to
    #: ``history.BACKLOG_COUNTED_UP_TO``), and the oldest one's age in seconds.
    pending = models.PositiveBigIntegerField(default=0)
    oldest_pending_age = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["queue", "minute"], name="taskq_minute_queue_minute")
        ]
        indexes = [models.Index(fields=["minute"], name="taskq_minute_minute")]

    def __str__(self) -> str:
        return f"{self.queue} {self.minute:%Y-%m-%d %H:%M}"


# One proxy per admin view, so that each group is its own page in the admin index.


class FailedTask(Task):
    class Meta:
        proxy = True
        verbose_name = "failed task"


class DirtyTask(Task):
    class Meta:
        proxy = True
        verbose_name = "dirty task"


class ActiveTask(Task):
    class Meta:
        proxy = True
        verbose_name = "active task"


class PendingTask(Task):
    class Meta:
        proxy = True
        verbose_name = "pending task"


class FutureTask(Task):
    class Meta:
        proxy = True
        verbose_name = "future task"


class Summary(Task):
    class Meta:
        proxy = True
        verbose_name = "summary"
        verbose_name_plural = "summary"
