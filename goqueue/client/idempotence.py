"""The idempotent producer's bookkeeping: its producer id and each partition's sequence numbers.

As in Kafka's `TransactionManager` for a non-transactional producer: a batch gets its sequence
number when it is first drained and keeps it through retries, so the broker can drop a retry of
a batch it already wrote and refuse one that would leave a gap. When a sequence number is lost
for good (a batch that had one failed or expired) the producer needs a new identity: Kafka bumps
the epoch; Go-Queue's broker answers InitProducerId without a transactional id with a fresh
producer id, which likewise starts every partition at sequence 0.
"""

import datetime
from typing import Any

from goqueue.client.accumulator import NO_EPOCH, NO_PRODUCER_ID, ProducerBatch
from goqueue.client.cluster import Cluster
from goqueue.client.errors import raise_for
from goqueue.client.metadata import TopicPartition

INIT_PRODUCER_ID = 22
SEQUENCE_MODULUS = 1 << 31
"""Sequence numbers are non-negative int32s that wrap to 0, as in Kafka's
DefaultRecordBatch.incrementSequence."""
MAX_IN_FLIGHT = 5
"""Kafka's limit for an idempotent producer: the broker remembers a producer's last five batches
per partition, so a retry is always one of them."""
TRANSACTION_TIMEOUT = datetime.timedelta(minutes=1)


class IdempotenceState:
    """The producer id and epoch, the next sequence and the last acknowledged one per partition."""

    def __init__(self) -> None:
        self.producer_id = NO_PRODUCER_ID
        self.producer_epoch = NO_EPOCH
        self.reset_requested = False
        """A sequence number was lost: get a new producer id once nothing is in flight."""
        self._next: dict[TopicPartition, int] = {}
        self._last_acked: dict[TopicPartition, int] = {}

    @property
    def needs_producer_id(self) -> bool:
        return self.producer_id == NO_PRODUCER_ID or self.reset_requested

    def use(self, producer_id: int, producer_epoch: int) -> None:
        """Adopt a new identity: every partition starts again at sequence 0."""
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.reset_requested = False
        self._next.clear()
        self._last_acked.clear()

    def assign(self, batch: ProducerBatch) -> None:
        """Give a batch drained for the first time (or since a reset) its sequence numbers."""
        sequence = self._next.get(batch.tp, 0)
        batch.producer_id = self.producer_id
        batch.producer_epoch = self.producer_epoch
        batch.base_sequence = sequence
        self._next[batch.tp] = (sequence + len(batch.records)) % SEQUENCE_MODULUS

    def acknowledged(self, batch: ProducerBatch) -> None:
        if batch.producer_id == self.producer_id:
            last = (batch.base_sequence + len(batch.records) - 1) % SEQUENCE_MODULUS
            self._last_acked[batch.tp] = last

    def is_next(self, batch: ProducerBatch) -> bool:
        """Whether every batch before this one on its partition is acknowledged: an
        OUT_OF_ORDER_SEQUENCE_NUMBER for it then means the broker lost the producer's state."""
        expected = (self._last_acked.get(batch.tp, -1) + 1) % SEQUENCE_MODULUS
        return batch.producer_id == self.producer_id and batch.base_sequence == expected


async def init_producer_id(cluster: Cluster) -> tuple[int, int]:
    """Ask any broker for a fresh producer id and epoch."""
    connection = await cluster.any_connection()
    response: Any = await connection.request(
        INIT_PRODUCER_ID,
        {
            "transactional_id": None,
            "transaction_timeout": TRANSACTION_TIMEOUT,
            "producer_id": NO_PRODUCER_ID,
            "producer_epoch": NO_EPOCH,
        },
        timeout=cluster.request_timeout,
    )
    raise_for(response.error_code)
    return int(response.producer_id), int(response.producer_epoch)
