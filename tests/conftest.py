"""Fixtures shared by the suite: claim strategies, and real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from taskq.backends import FAMILIES, ClaimStrategy

ROOT = Path(__file__).resolve().parent.parent
ALL_STRATEGIES = [cls for family in FAMILIES.values() for cls in family]
#: The dotted path that forces each strategy in a worker process.
STRATEGY_PATHS = {cls: f"{cls.__module__}.{cls.__qualname__}" for cls in ALL_STRATEGIES}


@pytest.fixture(params=ALL_STRATEGIES, ids=lambda cls: cls.__name__)
def strategy_cls(request: pytest.FixtureRequest) -> type[ClaimStrategy]:
    """Every claim strategy that can run on the database under test."""
    cls: type[ClaimStrategy] = request.param
    if not cls.is_supported(connection):
        pytest.skip(f"{cls.__name__} cannot run on {connection.display_name}")
    return cls


class WorkerProcesses:
    """Start ``manage.py taskq_worker`` processes against the test database."""

    def __init__(self, record: Path, logs: Path) -> None:
        self.record = record
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE=settings.SETTINGS_MODULE,
            TASKQ_DB_NAME=str(connection.settings_dict["NAME"]),
            TASKQ_TEST_RECORD=str(self.record),
            PYTHONPATH=str(ROOT),
        )
        env.update(extra)
        return env

    def start(self, *args: str, strategy: type[ClaimStrategy] | None = None, **env: str):
        if strategy is not None:
            env["TASKQ_CLAIM_STRATEGY"] = STRATEGY_PATHS[strategy]
        log = self.logs / f"worker-{len(self.started)}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "taskq_worker", *args],
            cwd=ROOT,
            env=self.env(**env),
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        process.log = log  # type: ignore[attr-defined]
        self.started.append(process)
        return process

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        """Run one worker to the end and return its exit code and log."""
        process = self.start(*args, **env)
        process.wait(timeout=timeout)
        return subprocess.CompletedProcess(process.args, process.returncode, "", log_of(process))

    def records(self) -> list[str]:
        return self.record.read_text().splitlines() if self.record.exists() else []

    def wait_for_record(self, line: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.records():
            if time.monotonic() > deadline:
                logs = "\n".join(log_of(p) for p in self.started)
                raise AssertionError(f"no {line!r} recorded within {timeout}s\n{logs}")
            time.sleep(0.05)

    def wait_until_registered(self, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
        """Wait for a worker's row: from then on it handles SIGTERM as a graceful stop.

        A signal sent while Python is still importing Django kills the process the default
        way, which says nothing about taskq.
        """
        from taskq.models import Worker

        deadline = time.monotonic() + timeout
        while not Worker.objects.filter(pid=process.pid).exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker {process.pid} did not register\n{log_of(process)}")
            time.sleep(0.05)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()


def log_of(process: subprocess.Popen[bytes]) -> str:
    return process.log.read_text(errors="replace")  # type: ignore[attr-defined]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the test item, for fixtures that look at the outcome."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def workers(
    transactional_db: None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[WorkerProcesses]:
    """Real worker processes; every one still running at the end is killed. When the
    test failed, their logs are printed (pytest shows them under the failure)."""
    processes = WorkerProcesses(tmp_path / "record.txt", tmp_path)
    yield processes
    processes.stop_all()
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for process in processes.started:
            print(f"---- worker {process.pid} (exit {process.returncode}) ----")
            print(log_of(process)[-20_000:])


@pytest.fixture
def wait_until() -> Callable[..., None]:
    def wait(predicate: Callable[[], bool], timeout: float = 30, message: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(message or f"condition not met within {timeout}s")
            time.sleep(0.05)

    return wait
