"""Real worker processes for a measurement: start idle, wait until ready, stop.

Workers are started before the tasks exist and timing starts only once every one of
them is ready, so Python and Django start-up never count as queue time. Each worker
writes its output to a log file of its own, read afterwards for "database is locked"
and for workers that died.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from bench.target import Target

READY_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0


def rss_bytes(pid: int) -> int:
    """Return the resident set size of process ``pid``, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Workers:
    """``count`` worker processes of ``target``, recording tasks into ``record_dir``."""

    def __init__(
        self, target: Target, count: int, record_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.target = target
        self.count = count
        self.record_dir = record_dir
        self.env = {**os.environ, "BENCH_RECORD_DIR": str(record_dir), "PYTHONUNBUFFERED": "1"}
        self.env.update(env or {})
        self.log_dir = Path(tempfile.mkdtemp(prefix="taskq-bench-logs-"))
        self.logs = [self.log_dir / f"worker-{i}.log" for i in range(count)]
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Workers:
        for log in self.logs:
            with log.open("wb") as out:
                self.processes.append(
                    subprocess.Popen(
                        self.target.worker_argv(),
                        env=self.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                )
        self.wait_ready()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while self.target.ready(self.logs) < self.count:
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"a worker exited while starting:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready after {READY_TIMEOUT}s:\n{self.log_text()}")
            time.sleep(0.05)

    def dead(self) -> list[int]:
        """Return the exit codes of workers that ended although nobody stopped them."""
        return [code for code in (p.poll() for p in self.processes) if code is not None]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_text(self, tail: int = 4000) -> str:
        return "\n".join(log.read_text(errors="replace")[-tail:] for log in self.logs)

    def count_in_logs(self, text: str) -> int:
        return sum(log.read_bytes().count(text.encode()) for log in self.logs)
