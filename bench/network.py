"""Loopback TCP throughput: the ceiling for any broker whose clients talk to it over 127.0.0.1
on this machine, measured in the same run as the brokers."""

from __future__ import annotations

import multiprocessing
import socket
import time
from dataclasses import dataclass

CHUNK_BYTES = 1024 * 1024
TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class TcpRun:
    total_bytes: int
    seconds: float

    @property
    def bytes_per_s(self) -> float:
        return self.total_bytes / self.seconds


def _sink(listener: socket.socket, total_bytes: int) -> None:
    """Child process: read `total_bytes`, then answer one byte so the sender can stop its clock."""
    connection, _ = listener.accept()
    with connection:
        view = memoryview(bytearray(CHUNK_BYTES))
        received = 0
        while received < total_bytes:
            read = connection.recv_into(view)
            if not read:
                return
            received += read
        connection.sendall(b"k")


def loopback_throughput(total_bytes: int) -> TcpRun:
    """Send `total_bytes` in 1 MiB `sendall` calls to a reader in another process (so sender
    and receiver each have a core, as a client and a broker do), timed to the reader's reply."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        context = multiprocessing.get_context("fork")
        reader = context.Process(target=_sink, args=(listener, total_bytes), daemon=True)
        reader.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=TIMEOUT_S) as sender:
                chunk = bytes(CHUNK_BYTES)
                start = time.perf_counter()
                sent = 0
                while sent < total_bytes:
                    sender.sendall(chunk)
                    sent += CHUNK_BYTES
                if sender.recv(1) != b"k":
                    raise OSError("loopback reader closed early")
                seconds = time.perf_counter() - start
        finally:
            reader.join(TIMEOUT_S)
            if reader.is_alive():
                reader.kill()
                reader.join()
    return TcpRun(sent, seconds)
