"""A wake-up that a signal handler can ring without risk: a self-pipe.

``threading.Event.set()`` takes a lock that the main thread may be holding at the very
moment the signal arrives (inside ``Event.wait()``); called from a signal handler it can
then deadlock, and a worker told to stop would hang forever. Writing a byte to a
non-blocking pipe takes no lock, and ``select()`` waits on the pipe and, where a
strategy has one, on the database connection's socket together.
"""

from __future__ import annotations

import os
import select


class Alarm:
    """Rung once, it stays rung: every later wait returns at once."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        os.set_blocking(self.read_end, False)
        os.set_blocking(self.write_end, False)

    def ring(self) -> None:
        """Wake every wait, now and later; safe in a signal handler."""
        try:
            os.write(self.write_end, b"!")
        except OSError:
            pass  # the pipe is full of rings already, or closed: nobody waits any more

    def is_set(self) -> bool:
        return bool(select.select([self.read_end], [], [], 0)[0])

    def wait(self, timeout: float, *sockets: int) -> None:
        """Return after ``timeout`` seconds, when rung, or when one of ``sockets`` (file
        descriptors) has something to read."""
        select.select([self.read_end, *sockets], [], [], max(0.0, timeout))

    def close(self) -> None:
        os.close(self.read_end)
        os.close(self.write_end)
