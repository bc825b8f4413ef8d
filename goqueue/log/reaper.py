"""Delayed closing of the file descriptors of deleted segments.

A fetch may hold a FileSlice of a segment that retention, truncation or a topic deletion removes
while the response is still being sent; the file is unlinked at once but its fd stays readable
for ``file.delete.delay.ms`` (Kafka's delay for the same reason) and only then is closed, so the
number cannot be reused under an in-flight ``sendfile``.
"""

import os
import threading
import time
from collections.abc import Callable


class FdReaper:
    """Closes deferred fds once their delay has passed; ``close_due`` is called periodically."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pending: list[tuple[float, int]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pending)

    def defer(self, fd: int, delay_ms: int) -> None:
        with self._lock:
            self._pending.append((self._clock() + delay_ms / 1000, fd))

    def close_due(self) -> None:
        now = self._clock()
        with self._lock:
            due = [fd for deadline, fd in self._pending if deadline <= now]
            self._pending = [(deadline, fd) for deadline, fd in self._pending if deadline > now]
        for fd in due:
            os.close(fd)

    def close_all(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for _, fd in pending:
            os.close(fd)
