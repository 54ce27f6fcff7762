"""PostgreSQL through a PgBouncer in transaction pooling mode, for worker processes that
``tests/test_pgbouncer.py`` starts (it runs the bouncer and sets ``TASKQ_PGBOUNCER_PORT``).

What the README's "Behind PgBouncer" asks for: no server-side cursors (Django's own
advice for transaction pooling) and no prepared claims (PgBouncer before 1.21 does not
track them).
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
