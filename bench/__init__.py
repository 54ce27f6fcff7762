"""taskq's benchmark: ``python -m bench [--quick]`` (or ``nox -s bench``).

Throughput, latency, claim cost at depth and worker memory on SQLite, PostgreSQL and
MariaDB, each beside references measured in the same run: the original django-taskq
1.0.x in a virtualenv of its own, and a bare client loop that sends taskq's per-task
SQL with no framework around it. It prints a table and writes JSON; nothing here
asserts a time. ``bench/__main__.py`` says how one run is put together.
"""
