"""Zero-copy transfer of stored batches from a segment file to a client socket.

uvloop, the broker's event loop, does not implement `loop.sendfile`, so the broker calls
`os.sendfile` on the transport's socket itself. It does so only when the transport has
nothing buffered (the connection keeps its write-buffer high-water mark at zero, so `drain()`
means "fully written"), and waits for writability in a worker thread when the socket is full.
"""

from __future__ import annotations

import asyncio
import os
import select

from goqueue.log.partition_log import FileSlice

WRITABLE_POLL_S = 1.0


async def send_file_slice(transport: asyncio.WriteTransport, file_slice: FileSlice) -> None:
    """Send the file region; raises ConnectionError if the peer goes away or the file shrank."""
    sock = transport.get_extra_info("socket")
    if sock is None or transport.is_closing():
        raise ConnectionError("connection closed before the records could be sent")
    fd = sock.fileno()
    offset, remaining = file_slice.position, file_slice.size
    loop = asyncio.get_running_loop()
    while remaining:
        try:
            sent = os.sendfile(fd, file_slice.fd, offset, remaining)
        except BlockingIOError:
            await loop.run_in_executor(None, _wait_writable, fd)
            continue
        if sent == 0:
            raise ConnectionError("segment file ended before the slice being sent")
        offset += sent
        remaining -= sent


def _wait_writable(fd: int) -> None:
    select.select([], [fd], [], WRITABLE_POLL_S)
