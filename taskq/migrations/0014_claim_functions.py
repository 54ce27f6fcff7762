"""Where the database's planner must be told how to read the claim, claim functions.

On PostgreSQL the claim is ``taskq_claim(worker, queues, held)`` and the idle worker's
next-ETA query ``taskq_next_due(queues, within)``, functions whose planner settings
leave an index read in order as the only plan (why, in
``taskq.backends.postgresql.claim_function_sql``). Other databases get nothing.

The functions are written out here as ``claim_function_sql`` rendered them when this
migration was made, as a migration must stay what it was: a later change to the claim
definition comes with a migration of its own, and ``tests/test_claim_plan.py`` fails
until it does.
"""

from typing import Any

from django.db import migrations

from taskq.backends import engine_for

POSTGRESQL_FUNCTIONS = """
CREATE OR REPLACE FUNCTION taskq_claim(p_worker bigint, p_queues text[], p_held text[]) RETURNS TABLE (claimed_id bigint, claimed_name varchar, claimed_queue varchar, claimed_args text, claimed_kwargs text, claimed_retries integer, claimed_version bigint, claimed_priority smallint, claimed_eta timestamp with time zone, claimed_expires timestamp with time zone, claimed_created_at timestamp with time zone, claimed_headers text, claimed_time_limit double precision, claimed_soft_time_limit double precision, claimed_expired boolean) LANGUAGE plpgsql VOLATILE SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off SET jit = off SET plan_cache_mode = force_generic_plan AS $claim$
BEGIN
  IF cardinality(p_queues) = 1 THEN
    RETURN QUERY WITH claimed (id, name, queue, args, kwargs, retries, version, priority, eta, expires, created_at, headers, time_limit, soft_time_limit, expired) AS (UPDATE "taskq_task" SET "state" = 1, "version" = "version" + 1, "worker_id" = p_worker, "started_at" = STATEMENT_TIMESTAMP() WHERE "id" = (SELECT "id" FROM "taskq_task" WHERE "state" = 0 AND "queue" = p_queues[1] AND "eta" <= STATEMENT_TIMESTAMP() AND "name" <> ALL(p_held) AND NOT EXISTS (SELECT 1 FROM "taskq_queue" WHERE "name" = ANY(p_queues) AND "paused" = true) ORDER BY "priority" DESC, "eta", "id" LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING "id", "name", "queue", "args", "kwargs", "retries", "version", "priority", "eta", "expires", "created_at", "headers", "time_limit", "soft_time_limit", COALESCE("expires" <= STATEMENT_TIMESTAMP(), false))
    SELECT claimed.id::bigint, claimed.name::varchar, claimed.queue::varchar, claimed.args::text, claimed.kwargs::text, claimed.retries::integer, claimed.version::bigint, claimed.priority::smallint, claimed.eta::timestamp with time zone, claimed.expires::timestamp with time zone, claimed.created_at::timestamp with time zone, claimed.headers::text, claimed.time_limit::double precision, claimed.soft_time_limit::double precision, claimed.expired::boolean FROM claimed;
  ELSE
    RETURN QUERY WITH claimed (id, name, queue, args, kwargs, retries, version, priority, eta, expires, created_at, headers, time_limit, soft_time_limit, expired) AS (UPDATE "taskq_task" SET "state" = 1, "version" = "version" + 1, "worker_id" = p_worker, "started_at" = STATEMENT_TIMESTAMP() WHERE "id" = (SELECT "id" FROM unnest(p_queues) AS listed(queue) CROSS JOIN LATERAL (SELECT "id", "priority", "eta" FROM "taskq_task" WHERE "state" = 0 AND "queue" = listed.queue AND "eta" <= STATEMENT_TIMESTAMP() AND "name" <> ALL(p_held) AND NOT EXISTS (SELECT 1 FROM "taskq_queue" WHERE "name" = ANY(p_queues) AND "paused" = true) ORDER BY "priority" DESC, "eta", "id" LIMIT 1 FOR UPDATE SKIP LOCKED) AS first_rows ORDER BY "priority" DESC, "eta", "id" LIMIT 1) RETURNING "id", "name", "queue", "args", "kwargs", "retries", "version", "priority", "eta", "expires", "created_at", "headers", "time_limit", "soft_time_limit", COALESCE("expires" <= STATEMENT_TIMESTAMP(), false))
    SELECT claimed.id::bigint, claimed.name::varchar, claimed.queue::varchar, claimed.args::text, claimed.kwargs::text, claimed.retries::integer, claimed.version::bigint, claimed.priority::smallint, claimed.eta::timestamp with time zone, claimed.expires::timestamp with time zone, claimed.created_at::timestamp with time zone, claimed.headers::text, claimed.time_limit::double precision, claimed.soft_time_limit::double precision, claimed.expired::boolean FROM claimed;
  END IF;
END
$claim$;
CREATE OR REPLACE FUNCTION taskq_next_due(p_queues text[], p_within float8) RETURNS TABLE (next_eta timestamptz, now timestamptz) LANGUAGE plpgsql STABLE SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off SET jit = off SET plan_cache_mode = force_generic_plan AS $next$
BEGIN
  RETURN QUERY SELECT "eta", STATEMENT_TIMESTAMP() FROM "taskq_task" WHERE "state" = 0 AND "queue" = ANY(p_queues) AND "eta" > STATEMENT_TIMESTAMP() AND "eta" <= STATEMENT_TIMESTAMP() + p_within * interval '1 second' ORDER BY "eta" LIMIT 1;
END
$next$
"""
DROP_POSTGRESQL_FUNCTIONS = (
    "DROP FUNCTION IF EXISTS taskq_claim(bigint, text[], text[]); "
    "DROP FUNCTION IF EXISTS taskq_next_due(text[], float8)"
)


def create_functions(apps: Any, schema_editor: Any) -> None:
    if engine_for(schema_editor.connection).claim_functions_sql():
        schema_editor.execute(POSTGRESQL_FUNCTIONS, params=None)


def drop_functions(apps: Any, schema_editor: Any) -> None:
    if engine_for(schema_editor.connection).claim_functions_sql():
        schema_editor.execute(DROP_POSTGRESQL_FUNCTIONS, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("taskq", "0013_task_worker_ident_and_minute_history"),
    ]

    operations = [
        migrations.RunPython(create_functions, drop_functions, elidable=False),
    ]
