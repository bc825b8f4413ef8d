"""Bytes and records in and out per topic, counted on the request path without decoding.

Records in are counted from the offsets the log assigned to a produced batch. Fetched data
goes to the socket with sendfile and never passes through Python, so records out are read
from the headers of the batches sent: the base offset of the batch after the last one sent,
minus the base offset of the first (two 8-byte reads of the page cache), or, when the data
ends at the end of its segment file, the last-offset fields of the batches themselves. They
count offsets: in a compacted topic, offsets whose records the cleaner removed count too.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping
from typing import Any

from goqueue.log.partition_log import FileSlice
from goqueue.records.batch import LENGTH_PREFIX

_BASE_AND_LENGTH = struct.Struct(">qi")
_LAST_OFFSET_DELTA = struct.Struct(">i")
_LAST_OFFSET_DELTA_POSITION = 23
_HEADER_PREFIX = _LAST_OFFSET_DELTA_POSITION + _LAST_OFFSET_DELTA.size
_WALK_CHUNK = 16 * 1024


class TopicTraffic:
    """One topic's totals; the request path holds it and adds to its fields directly."""

    __slots__ = ("bytes_in", "bytes_out", "records_in", "records_out")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.records_in = 0
        self.bytes_out = 0
        self.records_out = 0


class Traffic:
    """Per-topic totals, created on a topic's first traffic and dropped with the topic."""

    def __init__(self) -> None:
        self._topics: dict[str, TopicTraffic] = {}

    def topic(self, name: str) -> TopicTraffic:
        traffic = self._topics.get(name)
        if traffic is None:
            traffic = self._topics[name] = TopicTraffic()
        return traffic

    def produced(self, topic: str, size: int, records: int) -> None:
        traffic = self.topic(topic)
        traffic.bytes_in += size
        traffic.records_in += records

    def fetched(self, response: Any, slices: Mapping[bytes, FileSlice], names: Any) -> None:
        """Count the file regions of a Fetch response, whose `records` fields hold the keys of
        `slices`; `names` maps topic ids to topics for Fetch v13+, which names no topics."""
        for topic in response.responses:
            name = getattr(topic, "topic", None)
            if name is None:
                info = names.get(topic.topic_id)
                if info is None:
                    continue
                name = info.name
            traffic = self.topic(name)
            for partition in topic.partitions:
                data = slices.get(partition.records)
                if data is not None:
                    traffic.bytes_out += data.size
                    traffic.records_out += offsets_in(data)

    def forget(self, live_topics: Iterable[str]) -> None:
        """Drop the totals of topics that no longer exist, so their series end."""
        live = set(live_topics)
        for name in [name for name in self._topics if name not in live]:
            del self._topics[name]

    def items(self) -> list[tuple[str, TopicTraffic]]:
        return list(self._topics.items())


def offsets_in(data: FileSlice) -> int:
    """Offsets covered by the whole batches of `data` (0 if the file cannot be read)."""
    end = data.position + data.size
    try:
        after = os.pread(data.fd, _BASE_AND_LENGTH.size, end)
        if len(after) == _BASE_AND_LENGTH.size:
            first = os.pread(data.fd, _BASE_AND_LENGTH.size, data.position)
            return int(_base_offset(after) - _base_offset(first))
        return _walk_offsets(data.fd, data.position, end)
    except (OSError, struct.error):
        return 0


def _base_offset(header: bytes) -> int:
    base_offset: int = _BASE_AND_LENGTH.unpack(header)[0]
    return base_offset


def _walk_offsets(fd: int, position: int, end: int) -> int:
    """Offsets from the first batch at `position` to the end of the last one before `end`."""
    first = last = -1
    chunk, chunk_start = b"", position
    while position < end:
        i = position - chunk_start
        if i + _HEADER_PREFIX > len(chunk):
            chunk = os.pread(fd, min(_WALK_CHUNK, end - position), position)
            chunk_start, i = position, 0
        base_offset, length = _BASE_AND_LENGTH.unpack_from(chunk, i)
        if length <= 0:
            return 0
        (delta,) = _LAST_OFFSET_DELTA.unpack_from(chunk, i + _LAST_OFFSET_DELTA_POSITION)
        if first < 0:
            first = base_offset
        last = base_offset + delta
        position += length + LENGTH_PREFIX
    return last - first + 1 if first >= 0 else 0
