"""How many database connections each worker process holds, read from ``/proc``.

The design allows a worker process at most two connections (its loop's and its
heartbeat's). A server can say how many sessions a database has but not which process
holds them, so this looks from the other side, the same way on every database: a
worker's open file descriptors that are TCP sockets to the server's port (PostgreSQL,
MariaDB, both on 127.0.0.1), or that are the SQLite file itself (each connection opens
it once). A drain samples this a few times a second (``bench/drain.py``); a connection
opened and closed between two samples is not seen, so the maximum is of what a worker
holds for a while (its steady connections), not a count of connections it opened.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from django.db import connection


def _server_sockets(port: int) -> set[str]:
    """Return the inodes of the established TCP sockets whose remote port is ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _targets(pid: int) -> list[str]:
    """Return what the open file descriptors of ``pid`` point to."""
    directory = f"/proc/{pid}/fd"
    try:
        names = os.listdir(directory)
    except OSError:  # the process ended
        return []
    targets = []
    for name in names:
        try:
            targets.append(os.readlink(f"{directory}/{name}"))
        except OSError:  # closed meanwhile
            continue
    return targets


def held(pids: Iterable[int]) -> dict[int, int]:
    """Return, per process, how many connections to this process's database it holds."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        path = os.path.realpath(settings["NAME"])
        return {pid: _targets(pid).count(path) for pid in pids}
    sockets = {f"socket:[{inode}]" for inode in _server_sockets(int(settings["PORT"]))}
    return {pid: sum(1 for t in _targets(pid) if t in sockets) for pid in pids}
