"""PostgreSQL through a PgBouncer in transaction pooling mode, for worker processes that
``tests/test_pgbouncer.py`` starts (it runs the bouncer and sets ``TASKQ_PGBOUNCER_PORT``).

What the README's "Behind PgBouncer" asks for: no server-side cursors (Django's own
advice for transaction pooling) and no prepared claims (PgBouncer before 1.21 does not
track them). ``TASKQ_LISTEN_DATABASE`` and ``TASKQ_POLL_INTERVAL`` come from the
environment, for the test of a direct ``LISTEN`` connection.
"""

import os

from test_matrix.postgresql import *  # noqa: F403
from test_matrix.postgresql import DATABASES

DATABASES = {
    "default": {
        **DATABASES["default"],
        "PORT": os.environ["TASKQ_PGBOUNCER_PORT"],
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }
}
TASKQ_PREPARED_STATEMENTS = False
# The server itself, for TASKQ_LISTEN_DATABASE="listen" (the README's recipe).
DATABASES["listen"] = {**DATABASES["default"], "PORT": os.environ.get("PGPORT", "5432")}
TASKQ_LISTEN_DATABASE = os.environ.get("TASKQ_LISTEN_DATABASE") or None
TASKQ_POLL_INTERVAL = float(os.environ.get("TASKQ_TEST_POLL_INTERVAL", "0.1"))
