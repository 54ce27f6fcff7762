"""Workers behind a PgBouncer in transaction pooling mode.

The suite starts a PgBouncer of its own (Debian's ``pgbouncer``) on a free local port,
with a generated configuration: transaction pooling, trust authentication for the test
user, an admin console. Worker processes connect through it with the settings the
README's "Behind PgBouncer" gives (``test_matrix/postgresql_pgbouncer.py``); the test
process itself talks to the server directly. Skipped where the database takes no
pooler (``Engine.can_pool_connections``) or ``pgbouncer`` is not installed. The shared
server is never restarted: the restart-style test makes PgBouncer drop every client and
server connection of the test database (``KILL``, then ``RESUME``), which is what
workers see when the server restarts behind a pooler.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection, transaction

from taskq.backends import engine_for
from taskq.enqueue import Call, enqueue_many
from taskq.models import Task
from test_matrix.testapp.tasks import record

pytestmark = pytest.mark.django_db(transaction=True)

SETTINGS = "test_matrix.postgresql_pgbouncer"
RECORD = "test_matrix.testapp.tasks.record"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgBouncer:
    """A PgBouncer process in front of the test database's server."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        server = connection.settings_dict
        self.user = server["USER"]
        config = directory / "pgbouncer.ini"
        (directory / "userlist.txt").write_text(f'"{self.user}" ""\n')
        config.write_text(
            "[databases]\n"
            f"* = host={server['HOST']} port={server['PORT']}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {directory / 'userlist.txt'}\n"
            f"admin_users = {self.user}\n"
            "pool_mode = transaction\ndefault_pool_size = 20\nmax_client_conn = 200\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        directory.chmod(0o755)
        for path in directory.iterdir():
            path.chmod(0o644)
        # PgBouncer refuses to run as root: -u drops to another user when started as root.
        as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            ["pgbouncer", *as_user, str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(directory / "stderr.log").open("wb"),
        )
        deadline = time.monotonic() + 30
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise RuntimeError(f"PgBouncer did not start:\n{log}")
            time.sleep(0.1)

    def answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def admin(self, command: str) -> str:
        """Run ``command`` on the admin console (simple queries only: ``psql``)."""
        completed = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-Atc", command,
             "pgbouncer"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stderr
        return completed.stdout

    def log(self) -> str:
        return (self.directory / "stderr.log").read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def pgbouncer(transactional_db: None) -> Iterator[PgBouncer]:
    if not engine_for(connection).can_pool_connections:
        pytest.skip(f"{connection.display_name}: no connection pooler in front of it")
    if shutil.which("pgbouncer") is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    # A folder of its own under /tmp (pytest's are private to root): PgBouncer, which
    # drops to another user when started as root, must read its files.
    bouncer = PgBouncer(Path(tempfile.mkdtemp(prefix="taskq-pgbouncer-")))
    yield bouncer
    bouncer.stop()


def through(bouncer: PgBouncer) -> dict[str, str]:
    return {"DJANGO_SETTINGS_MODULE": SETTINGS, "TASKQ_PGBOUNCER_PORT": str(bouncer.port)}


def queue(count: int, start: int = 0) -> None:
    with transaction.atomic():
        enqueue_many([Call(RECORD, args=[key]) for key in range(start, start + count)])


def picked_up(workers, line: str, timeout: float) -> float:
    """Wait for ``line`` in the record, looking every few milliseconds (the fixture's
    ``wait_for_record`` looks every 50 ms, too coarse for a pickup latency); return when."""
    deadline = time.monotonic() + timeout
    while line not in workers.records():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {line!r} recorded within {timeout}s")
        time.sleep(0.002)
    return time.monotonic()


def assert_each_ran_once(workers, keys: range) -> None:
    lines = workers.records()
    assert sorted(lines, key=int) == [str(key) for key in keys]


def test_workers_behind_pgbouncer_run_every_task_exactly_once(pgbouncer, workers):
    tasks = 600
    queue(tasks)
    processes = [workers.start("--burst", **through(pgbouncer)) for _ in range(3)]
    for process in processes:
        process.wait(timeout=300)
    logs = "\n".join(p.log.read_text(errors="replace") for p in processes)
    assert [p.returncode for p in processes] == [0, 0, 0], logs
    assert not Task.objects.exists()
    assert_each_ran_once(workers, range(tasks))


def test_workers_survive_pgbouncer_dropping_every_connection(pgbouncer, workers, wait_until):
    """``KILL`` drops every client and server connection of the database, as a server
    restart behind the pooler does; workers reconnect and lose or repeat nothing."""
    processes = [workers.start(**through(pgbouncer)) for _ in range(2)]
    for process in processes:
        workers.wait_until_registered(process)
    database = connection.settings_dict["NAME"]
    produced = 0
    for _round in range(3):
        queue(200, produced)
        produced += 200
        # Mid-drain: some of this round's tasks ran, others wait.
        least = produced - 150
        wait_until(lambda least=least: len(workers.records()) >= least, timeout=120)
        pgbouncer.admin(f"KILL {database}")
        pgbouncer.admin(f"RESUME {database}")
    wait_until(lambda: not Task.objects.exists(), timeout=180, message="tasks were left")
    assert_each_ran_once(workers, range(produced))
    logs = "\n".join(p.log.read_text(errors="replace") for p in processes)
    for process in processes:
        assert process.poll() is None, logs
    assert "unavailable" in logs, "no worker noticed its connection dropped"


def test_pickup_behind_pgbouncer_is_by_polling(pgbouncer, workers, wait_until):
    """``LISTEN`` needs a session; through a transaction pooler it lands on a pooled
    server connection and the worker hears nothing: it finds new tasks by polling
    (``TASKQ_POLL_INTERVAL``). Printed: pickup latency through PgBouncer."""
    process = workers.start(**through(pgbouncer))
    workers.wait_until_registered(process)
    latencies = []
    for key in range(10):
        time.sleep(0.3)  # let the worker go idle
        started = time.monotonic()
        record.delay(key)
        latencies.append(picked_up(workers, str(key), timeout=60) - started)
    print(
        f"pickup through PgBouncer (transaction pooling): p50 "
        f"{1e3 * statistics.median(latencies):.0f} ms, max {1e3 * max(latencies):.0f} ms"
    )
    assert_each_ran_once(workers, range(10))


def test_a_direct_listen_connection_wakes_a_worker_behind_pgbouncer(pgbouncer, workers):
    """``TASKQ_LISTEN_DATABASE`` names a direct connection: the idle worker ``LISTEN``s
    there and a new task wakes it. It polls only every minute or so here, so a task it
    runs within the wait below was announced, not found by a poll."""
    env = {"TASKQ_LISTEN_DATABASE": "listen", "TASKQ_TEST_POLL_INTERVAL": "60"}
    process = workers.start(**through(pgbouncer), **env)
    workers.wait_until_registered(process)
    time.sleep(1.0)  # into its first wait, listening
    latencies = []
    for key in range(5):
        started = time.monotonic()
        record.delay(key)
        # A poll comes after 30 s at least: found sooner, the task was announced.
        latencies.append(picked_up(workers, str(key), timeout=25) - started)
        time.sleep(0.3)
    print(
        f"pickup through PgBouncer with a direct LISTEN connection: p50 "
        f"{1e3 * statistics.median(latencies):.0f} ms, max {1e3 * max(latencies):.0f} ms"
    )
    assert_each_ran_once(workers, range(5))
