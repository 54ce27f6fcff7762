"""The rows ``enqueue_many`` and ``enqueue`` write, ready for the database.

Rows arrive checked (``taskq.enqueue.Checked``): name, queue, priority, args, kwargs,
then eta and expires as a datetime or as seconds after the database's "now", which is
read once per call. Which statement writes them is the database engine's
(``Engine.write_rows`` in ``taskq.backends``): each database has its fastest.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.db.models.sql import Query
from django.utils import timezone

from taskq.backends import engine_for
from taskq.clock import DatabaseNow
from taskq.models import Task

if TYPE_CHECKING:
    from taskq.enqueue import Checked


class BulkInsert:
    """The statements of ``enqueue_many``, built from the model's fields.

    The columns are those of ``Checked``, then every other column but the primary key
    with its default, computed once per ``enqueue_many`` (``bulk_create`` would compute
    it per row). Values go through each field's ``get_db_prep_save``, so datetimes are
    adapted as a save would adapt them on every database.
    """

    def __init__(self, connection: BaseDatabaseWrapper, call_columns: Sequence[str]) -> None:
        self.connection = connection
        meta = Task._meta
        fields = {f.name: f for f in meta.concrete_fields}
        self.call_fields: list[Field[Any, Any]] = [fields[name] for name in call_columns]
        self.eta_field, self.expires_field = fields["eta"], fields["expires"]
        self.default_fields: list[Field[Any, Any]] = [
            target
            for target in meta.concrete_fields
            if target.name not in call_columns
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
        engine_for(self.connection).write_rows(self, rows, batch_size)

    def default_literals(self) -> list[str]:
        """The defaults as SQL literals, as the schema editor writes a column's
        ``DEFAULT``, so that rows carry only what differs between them."""
        quote_value = self.connection.schema_editor().quote_value
        literals = ["NULL" if value is None else str(quote_value(value)) for value in self.defaults]
        # The statements go through the driver's %s formatting.
        return [literal.replace("%", "%%") for literal in literals]

    def moment(self, target: Field[Any, Any], value: float | datetime | None) -> Any:
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


class SingleInsert:
    """``enqueue``'s statement for one row due now or at a given moment, without expiry.

    The ORM compiles all fifteen columns of a save on every call; this is the same
    ``INSERT``, built once per connection and setting, with the database's clock written
    into it as SQL, so a row due now is due when the database writes it. Rows with a
    countdown or an expiry go through the ORM (``Call.to_row``) instead.
    """

    def __init__(self, connection: BaseDatabaseWrapper, call_columns: Sequence[str]) -> None:
        self.connection = connection
        bulk = BulkInsert(connection, call_columns)
        self.eta_field = bulk.eta_field
        #: Defaults computed per row (``created_at``'s ``timezone.now``), and the rest.
        self.fresh = [f for f in bulk.default_fields if callable(f.default)]
        literals = [
            literal
            for target, literal in zip(bulk.default_fields, bulk.default_literals(), strict=True)
            if target not in self.fresh
        ]
        compiler = Query(None).get_compiler(connection=connection)
        now, now_params = compiler.compile(DatabaseNow())
        assert not now_params
        quote_name = connection.ops.quote_name
        columns = [*call_columns[:-2], "eta", *(cast(str, f.column) for f in self.fresh)]
        columns += [cast(str, f.column) for f in bulk.default_fields if f not in self.fresh]
        head = (
            f"INSERT INTO {bulk.table} ({', '.join(quote_name(c) for c in columns)}) "
            f"VALUES ({', '.join(['%s'] * (len(call_columns) - 2))}, "
        )
        tail = f"{', '.join(['%s'] * len(self.fresh) + literals)})"
        self.returning = connection.features.can_return_columns_from_insert
        self.pk_column = cast(str, Task._meta.pk.column)
        returning = f" RETURNING {quote_name(self.pk_column)}" if self.returning else ""
        #: Keyed by whether the row is due now (the clock's SQL) or at a given moment.
        self.sql = {
            True: f"{head}{now}, {tail}{returning}",
            False: f"{head}%s, {tail}{returning}",
        }

    def write(self, values: Checked, using: str) -> Task:
        """Write the row and return it as a saved ``Task``."""
        connection = self.connection
        due_now = not isinstance(values.eta, datetime)
        params: list[Any] = list(values[:5])
        if not due_now:
            params.append(self.eta_field.get_db_prep_save(values.eta, connection))
        fresh = {f.attname: f.get_default() for f in self.fresh}
        params += [f.get_db_prep_save(fresh[f.attname], connection) for f in self.fresh]
        with connection.cursor() as cursor:
            cursor.execute(self.sql[due_now], params)
            if self.returning:
                (pk,) = cursor.fetchone()
            else:
                pk = connection.ops.last_insert_id(cursor, Task._meta.db_table, self.pk_column)
        task = Task(
            pk=pk,
            name=values.name,
            queue=values.queue,
            priority=values.priority,
            args=values.args,
            kwargs=values.kwargs,
            eta=DatabaseNow() if due_now else cast(datetime, values.eta),
            **fresh,
        )
        task._state.adding = False
        task._state.db = using
        return task
