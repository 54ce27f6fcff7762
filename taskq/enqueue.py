"""Turn a call into a task row, checking every input before anything is written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from django.conf import settings as django_settings
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.db.models.sql import Query
from django.utils import timezone

from taskq import serialization
from taskq.clock import DatabaseNow, database_now
from taskq.conf import settings
from taskq.models import NAME_MAX_LENGTH, PRIORITY_RANGE, QUEUE_MAX_LENGTH, Task


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    return float(value)


def check_moment(name: str, value: Any) -> datetime:
    """Return ``value`` as a datetime the database accepts, or raise a clear error."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {value!r}")
    if django_settings.USE_TZ and timezone.is_naive(value):
        raise ValueError(
            f"{name}={value!r} is a naive datetime but USE_TZ is True; "
            "give it a tzinfo (for example datetime.timezone.utc)"
        )
    if not django_settings.USE_TZ and timezone.is_aware(value):
        return timezone.make_naive(value)
    return value


def check_queue(queue: Any) -> str:
    """Return ``queue`` if it is a usable queue name, else raise ``ValueError``."""
    if not isinstance(queue, str) or not 0 < len(queue) <= QUEUE_MAX_LENGTH:
        raise ValueError(
            f"queue must be a name of 1 to {QUEUE_MAX_LENGTH} characters, not {queue!r}"
        )
    return queue


def check_priority(priority: Any) -> int:
    """Return ``priority`` if it fits the priority column, else raise ``ValueError``."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int, not {priority!r}")
    if priority not in PRIORITY_RANGE:
        raise ValueError(
            f"priority must be between {PRIORITY_RANGE.start} and "
            f"{PRIORITY_RANGE.stop - 1}, not {priority}"
        )
    return priority


class Checked(NamedTuple):
    """A call's values, checked and ready for a row.

    ``eta`` and ``expires`` are either a datetime to store as given or a number of
    seconds after the database's "now" (``eta`` is ``0.0`` when the call gave neither a
    countdown nor an eta: due as soon as the row exists).
    """

    name: str
    queue: str
    priority: int
    args: str
    kwargs: str
    eta: float | datetime
    expires: float | datetime | None


_NO_KWARGS = serialization.dumps_kwargs({})


@dataclass
class Call:
    """Everything a row needs, as the caller gave it; ``checked`` checks it all."""

    name: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int = 0
    countdown: float | None = None
    eta: datetime | None = None
    expires: float | datetime | None = None

    def checked(self, default_queue: str | None = None) -> Checked:
        """Return the row's values or raise ``TypeError``/``ValueError``.

        As in Celery, ``countdown`` wins over ``eta``; ``expires`` is seconds from now
        or a datetime. A due time in the past means "run as soon as possible". Times
        relative to "now" are returned as seconds: "now" is the database's clock
        (``taskq.clock``), never this process's. ``default_queue`` saves reading
        ``TASKQ_DEFAULT_QUEUE`` once per call when the caller has read it already.
        """
        if not isinstance(self.name, str):
            raise TypeError(f"task name must be a str, not {self.name!r}")
        if len(self.name) > NAME_MAX_LENGTH:
            raise ValueError(f"task name is longer than {NAME_MAX_LENGTH} characters")
        eta: float | datetime
        if self.countdown is not None:
            eta = _seconds("countdown", self.countdown)
            if eta < 0:
                raise ValueError(f"countdown must not be negative, not {self.countdown!r}")
        elif self.eta is not None:
            eta = check_moment("eta", self.eta)
        else:
            eta = 0.0
        expires: float | datetime | None
        if self.expires is None:
            expires = None
        elif isinstance(self.expires, datetime):
            expires = check_moment("expires", self.expires)
        else:
            expires = _seconds("expires", self.expires)
        if self.queue is not None:
            queue = self.queue
        elif default_queue is not None:
            queue = default_queue
        else:
            queue = settings.DEFAULT_QUEUE
        return Checked(
            name=self.name,
            queue=check_queue(queue),
            priority=check_priority(self.priority),
            args=serialization.dumps_args(self.args),
            kwargs=_NO_KWARGS
            if type(self.kwargs) is dict and not self.kwargs
            else serialization.dumps_kwargs(self.kwargs),
            eta=eta,
            expires=expires,
        )

    def to_row(self) -> Task:
        """Return an unsaved ``Task`` or raise ``TypeError``/``ValueError``.

        The checks are ``checked``'s. Times relative to now become expressions of the
        database's clock, so a row saved with a countdown is due that long after the
        database wrote it, whatever this process's clock says.
        """
        values = self.checked()
        return Task(
            name=values.name,
            queue=values.queue,
            priority=values.priority,
            args=values.args,
            kwargs=values.kwargs,
            eta=_moment(values.eta),
            expires=None if values.expires is None else _moment(values.expires),
        )


def _moment(value: float | datetime) -> Any:
    """A checked time as a value for the model: seconds become the database's clock."""
    return value if isinstance(value, datetime) else database_now(value)


def enqueue(call: Call) -> Task:
    """Write one task row in the current transaction and return it."""
    task = call.to_row()
    task.save(force_insert=True)
    return task


#: The columns ``enqueue_many`` fills from each call, in ``Checked``'s order.
_CALL_FIELDS = Checked._fields


def enqueue_many(calls: Iterable[Call], *, batch_size: int = 1000, using: str | None = None) -> int:
    """Write many task rows in as few round trips as the database allows; return how many.

    Every call is checked before the first row is written: one bad call writes nothing.
    The rows are written in one transaction (the caller's, if there is one) on ``using``,
    by default the database Django's routers choose for writing tasks, at most
    ``batch_size`` rows per statement, without a ``Task`` instance per call. The
    database's clock is read once: every countdown and ``expires`` in seconds counts
    from that moment, and a call without a due time is due from it. On PostgreSQL the
    workers of each queue written to are woken when the transaction commits (by a
    trigger: see the migration ``0004_notify_trigger``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
    default_queue = settings.DEFAULT_QUEUE
    checked = [call.checked(default_queue) for call in calls]
    if not checked:
        return 0
    alias = router.db_for_write(Task) if using is None else using
    insert = _Insert(connections[alias])
    with transaction.atomic(using=alias, savepoint=False):
        insert.write(checked, batch_size)
    return len(checked)


class _Insert:
    """The statements of ``enqueue_many``, built from the model's fields.

    The columns are those of ``Checked``, then every other column but the primary key
    with its default, computed once per ``enqueue_many`` (``bulk_create`` would compute
    it per row). Values go through each field's ``get_db_prep_save``, so datetimes are
    adapted as a save would adapt them on every database.
    """

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        meta = Task._meta
        fields = {f.name: f for f in meta.concrete_fields}
        self.call_fields: list[Field[Any, Any]] = [fields[name] for name in _CALL_FIELDS]
        self.eta_field, self.expires_field = fields["eta"], fields["expires"]
        self.default_fields: list[Field[Any, Any]] = [
            target
            for target in meta.concrete_fields
            if target.name not in _CALL_FIELDS
            and target is not meta.auto_field
            # Left out, the database fills it.
            and not (target.has_db_default() and not target.has_default())
        ]
        self.defaults = tuple(
            target.get_db_prep_save(_default(target), connection) for target in self.default_fields
        )
        quote_name = connection.ops.quote_name
        self.table = quote_name(meta.db_table)
        self.columns = ", ".join(
            quote_name(cast(str, f.column)) for f in (*self.call_fields, *self.default_fields)
        )
        self.prepared: dict[tuple[str, float | datetime], Any] = {}

    def write(self, rows: list[Checked], batch_size: int) -> None:
        """Write ``rows``, with times relative to the database's clock read now."""
        self.now = database_clock(self.connection)
        vendor = self.connection.vendor
        if vendor == "postgresql":
            if self.can_copy():
                self._write_copy(rows, batch_size)
            else:
                self._write_unnest(rows, batch_size)
        elif vendor == "mysql":
            self._write_mysql(rows, batch_size)
        else:
            self._write_values(rows, batch_size)

    def can_copy(self) -> bool:
        """Whether the driver is psycopg 3, whose ``Cursor.copy`` streams rows (psycopg2
        has another API)."""
        with self.connection.cursor() as cursor:
            return hasattr(cursor.cursor, "copy")

    def default_literals(self) -> list[str]:
        """The defaults as SQL literals, as the schema editor writes a column's
        ``DEFAULT``, so that rows carry only what differs between them."""
        quote_value = self.connection.schema_editor().quote_value
        literals = ["NULL" if value is None else str(quote_value(value)) for value in self.defaults]
        # The statements go through the driver's %s formatting.
        return [literal.replace("%", "%%") for literal in literals]

    def _write_values(self, rows: list[Checked], batch_size: int) -> None:
        """``INSERT … VALUES (…), (…)``: one statement per batch."""
        placeholders = ["%s"] * len(self.call_fields) + self.default_literals()
        placeholder = f"({', '.join(placeholders)})"
        head = f"INSERT INTO {self.table} ({self.columns}) VALUES "
        # SQLite (and Oracle) cap the parameters of one statement.
        size = self.connection.ops.bulk_batch_size(self.call_fields, rows)
        size = max(1, min(batch_size, size))
        eta, expires = self.eta_field, self.expires_field
        sql = ""
        with self.connection.cursor() as cursor:
            for start in range(0, len(rows), size):
                batch = rows[start : start + size]
                params: list[Any] = []
                for row in batch:
                    params += row[:5]
                    params.append(self._moment(eta, row.eta))
                    params.append(self._moment(expires, row.expires))
                if not sql or len(batch) < size:
                    sql = head + ", ".join([placeholder] * len(batch))
                cursor.execute(sql, params)

    def _write_mysql(self, rows: list[Checked], batch_size: int) -> None:
        """MySQL and MariaDB: ``INSERT … VALUES (…), (…)``, one statement per batch.

        mysqlclient has no server-side parameters: it escapes every value into the
        statement with ``Connection.literal``. Calling it here instead, once per distinct
        value (most rows share their name, queue, priority, kwargs and due time), is the
        same text for a fraction of the work.
        """
        connection = self.connection
        connection.ensure_connection()
        driver = connection.connection
        encoding = driver.encoding
        literals: dict[tuple[type, Any], bytes] = {}

        def literal(value: Any) -> bytes:
            key = (type(value), value)
            if key not in literals:
                literals[key] = driver.literal(value)
            return literals[key]

        head = f"INSERT INTO {self.table} ({self.columns}) VALUES ".encode(encoding)
        defaults = b"".join(b", " + literal(value) for value in self.defaults) + b")"
        eta, expires = self.eta_field, self.expires_field
        with connection.cursor() as cursor:
            for start in range(0, len(rows), batch_size):
                values = [
                    b"("
                    + b", ".join(
                        (
                            literal(row.name),
                            literal(row.queue),
                            literal(row.priority),
                            driver.literal(row.args),  # rarely the same twice
                            literal(row.kwargs),
                            literal(self._moment(eta, row.eta)),
                            literal(self._moment(expires, row.expires)),
                        )
                    )
                    + defaults
                    for row in rows[start : start + batch_size]
                ]
                # Text, as Django's execute wrappers expect, and without parameters: no
                # %-formatting either.
                cursor.execute((head + b", ".join(values)).decode(encoding))

    def _write_copy(self, rows: list[Checked], batch_size: int) -> None:
        """PostgreSQL with psycopg 3: ``COPY … FROM STDIN``, one per batch.

        The fastest way in: rows are formatted in C and streamed. ``COPY`` does not go
        through Django's execute wrappers (nor its debug log of queries).
        """
        sql = f"COPY {self.table} ({self.columns}) FROM STDIN"
        eta, expires = self.eta_field, self.expires_field
        defaults = self.defaults
        with self.connection.cursor() as cursor, self.connection.wrap_database_errors:
            for start in range(0, len(rows), batch_size):
                with cursor.cursor.copy(sql) as copy:
                    for row in rows[start : start + batch_size]:
                        copy.write_row(
                            (
                                *row[:5],
                                self._moment(eta, row.eta),
                                self._moment(expires, row.expires),
                                *defaults,
                            )
                        )

    def _write_unnest(self, rows: list[Checked], batch_size: int) -> None:
        """PostgreSQL with psycopg2: ``INSERT … SELECT … FROM UNNEST(array, …)``.

        One array a column, as ``bulk_create`` does since Django 5.2: the statement
        stays small and is planned in no time, however many rows a batch has.
        """
        connection = self.connection
        arrays = ", ".join(f"(%s)::{_array_type(f, connection)}[]" for f in self.call_fields)
        selected = ", ".join(["rows.*", *self.default_literals()])
        sql = (
            f"INSERT INTO {self.table} ({self.columns}) "
            f"SELECT {selected} FROM UNNEST({arrays}) AS rows"
        )
        eta, expires = self.eta_field, self.expires_field
        with connection.cursor() as cursor:
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                columns: list[list[Any]] = [list(column) for column in zip(*batch, strict=True)]
                columns[5] = [self._moment(eta, value) for value in columns[5]]
                columns[6] = [self._moment(expires, value) for value in columns[6]]
                cursor.execute(sql, columns)

    def _moment(self, target: Field[Any, Any], value: float | datetime | None) -> Any:
        """A checked time as the database value: seconds count from the database's now."""
        if value is None:
            return None
        key = (target.name, value)
        if key not in self.prepared:
            moment = value if isinstance(value, datetime) else self.now + timedelta(seconds=value)
            self.prepared[key] = target.get_db_prep_save(moment, self.connection)
        return self.prepared[key]


def _default(target: Field[Any, Any]) -> Any:
    if getattr(target, "auto_now", False) or getattr(target, "auto_now_add", False):
        return timezone.now()
    return target.get_default()


def database_clock(connection: BaseDatabaseWrapper) -> datetime:
    """Return the database's time now, as Django would read a ``DateTimeField``.

    Aware (in UTC) with ``USE_TZ = True``; in ``TIME_ZONE`` otherwise.
    """
    expression = DatabaseNow()
    compiler = Query(None).get_compiler(connection=connection)
    sql, params = compiler.compile(expression)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql}", params)
        (value,) = cursor.fetchone()
    converters = connection.ops.get_db_converters(expression)
    converters += expression.get_db_converters(connection)
    for converter in converters:
        value = converter(value, expression, connection)
    return value


def _array_type(target: Field[Any, Any], connection: BaseDatabaseWrapper) -> str:
    """The column's type without its size (``varchar``, not ``varchar(200)``), as Django's
    own ``UNNEST`` does: the values were checked already, and nothing is cut."""
    return cast(str, target.db_type(connection)).split("(")[0]
