"""What a benchmark task does: append its key and start time to a per-process file.

One ``write`` on a file opened with ``O_APPEND`` costs microseconds and needs no lock,
so the tasks stay no-ops for throughput while every execution is counted: the drain
finds duplicates and missing keys, the latency runs read the start times.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_fd: int | None = None


def record(key: int) -> None:
    """Append ``"<key> <time.time()>"`` to ``$BENCH_RECORD_DIR/<pid>``."""
    global _fd
    if _fd is None:
        directory = os.environ.get("BENCH_RECORD_DIR")
        if not directory:
            return
        path = os.path.join(directory, str(os.getpid()))
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, f"{key} {time.time():.6f}\n".encode())


def read(directory: Path) -> list[tuple[int, float]]:
    """Return every ``(key, started)`` recorded in ``directory``, in no particular order."""
    records = []
    for path in directory.iterdir():
        for line in path.read_text().splitlines():
            key, started = line.split()
            records.append((int(key), float(started)))
    return records
