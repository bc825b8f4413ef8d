"""All partition logs of a data directory, and the clean-shutdown protocol that decides
whether opening them needs a recovery scan."""

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from goqueue.log.config import LogConfig
from goqueue.log.layout import (
    CLEAN_SHUTDOWN_MARKER,
    DELETE_SUFFIX,
    fsync_dir,
    partition_dir_name,
    partition_dirs,
    write_durably,
)
from goqueue.log.partition_log import PartitionLog
from goqueue.log.reaper import FdReaper

logger = logging.getLogger(__name__)


class LogManager:
    """Opens, creates and deletes partition logs under ``data_dir``.

    ``close`` writes the ``.clean-shutdown`` marker after every log is flushed; ``load``
    removes it, so its absence at the next start means the process died and every log's tail
    must be scanned.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._reaper = FdReaper()
        self._recovered_unclean = False

    @property
    def recovered_unclean(self) -> bool:
        """True if ``load`` found logs but no clean-shutdown marker, and so recovered them."""
        return self._recovered_unclean

    def load(self, config_for: Callable[[str], LogConfig]) -> None:
        """Open every partition directory, recovering them if the last shutdown was unclean."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        marker = self.data_dir / CLEAN_SHUTDOWN_MARKER
        clean = marker.exists()
        for entry in self.data_dir.iterdir():
            if entry.name.endswith(DELETE_SUFFIX) and entry.is_dir():
                shutil.rmtree(entry)
        for directory, topic, partition in partition_dirs(self.data_dir):
            self._logs[(topic, partition)] = PartitionLog(
                directory,
                topic,
                partition,
                config_for(topic),
                recover=not clean,
                reaper=self._reaper,
            )
        self._recovered_unclean = not clean and bool(self._logs)
        if self._recovered_unclean:
            logger.warning("recovered %d logs after an unclean shutdown", len(self._logs))
        if clean:
            marker.unlink()
            fsync_dir(self.data_dir)

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get((topic, partition))

    def create(self, topic: str, partition: int, config: LogConfig) -> PartitionLog:
        """The log of a partition, created empty if it does not exist yet."""
        log = self._logs.get((topic, partition))
        if log is not None:
            log.update_config(config)
            return log
        directory = self.data_dir / partition_dir_name(topic, partition)
        log = PartitionLog(directory, topic, partition, config, reaper=self._reaper)
        fsync_dir(self.data_dir)
        self._logs[(topic, partition)] = log
        return log

    def delete_topic(self, topic: str) -> None:
        """Delete the logs of every partition of ``topic``."""
        for key in [key for key in self._logs if key[0] == topic]:
            self._logs.pop(key).delete()

    def delete_partition(self, topic: str, partition: int) -> None:
        """Delete one partition's log, if this node has it."""
        log = self._logs.pop((topic, partition), None)
        if log is not None:
            log.delete()

    def all_logs(self) -> list[PartitionLog]:
        return list(self._logs.values())

    def topics(self) -> set[str]:
        return {topic for topic, _ in self._logs}

    def close(self) -> None:
        """Flush and close every log, then mark the shutdown clean."""
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        self._reaper.close_all()
        write_durably(self.data_dir / CLEAN_SHUTDOWN_MARKER, b"")
