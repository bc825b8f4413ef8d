"""Producer id blocks: the metadata record that reserves them and the allocator that hands
their ids out, without Raft or sockets."""

from __future__ import annotations

import asyncio

from goqueue.broker.producer_ids import BLOCK_SIZE, ProducerIdAllocator
from goqueue.metadata.image import MetadataImage
from goqueue.metadata.state_machine import apply_record, image_from_json, image_to_json


def allocate(image: MetadataImage, node_id: int) -> MetadataImage:
    return apply_record(
        image, {"type": "allocate_producer_ids", "node_id": node_id, "block_size": BLOCK_SIZE}
    )


def test_blocks_never_overlap_whichever_node_asks() -> None:
    image = allocate(MetadataImage.empty(), 1)
    assert image.producer_id_blocks[1] == 0
    image = allocate(image, 2)
    assert image.producer_id_blocks[2] == BLOCK_SIZE
    image = allocate(image, 1)
    assert image.producer_id_blocks[1] == 2 * BLOCK_SIZE
    assert image.next_producer_id == 3 * BLOCK_SIZE


def test_allocations_survive_a_metadata_snapshot() -> None:
    image = allocate(allocate(MetadataImage.empty(), 0), 3)
    restored = image_from_json(image_to_json(image))
    assert restored.next_producer_id == image.next_producer_id
    assert dict(restored.producer_id_blocks) == dict(image.producer_id_blocks)
    assert allocate(restored, 0).producer_id_blocks[0] == 2 * BLOCK_SIZE


def test_a_snapshot_from_before_producer_ids_starts_at_zero() -> None:
    data = image_to_json(MetadataImage.empty())
    del data["next_producer_id"], data["producer_id_blocks"]
    assert image_from_json(data).next_producer_id == 0


def test_the_allocator_reserves_a_block_only_when_the_last_runs_out() -> None:
    image = MetadataImage.empty()
    reservations = 0

    async def reserve(size: int) -> int:
        nonlocal image, reservations
        assert size == BLOCK_SIZE
        reservations += 1
        image = allocate(image, 0)
        return image.producer_id_blocks[0]

    async def main() -> list[int]:
        allocator = ProducerIdAllocator(reserve)
        return list(await asyncio.gather(*(allocator.next_id() for _ in range(BLOCK_SIZE + 2))))

    ids = asyncio.run(main())
    assert sorted(ids) == list(range(BLOCK_SIZE + 2))
    assert reservations == 2


def test_a_restarted_broker_never_reuses_its_last_block() -> None:
    image = allocate(MetadataImage.empty(), 0)

    async def reserve(size: int) -> int:
        nonlocal image
        image = allocate(image, 0)
        return image.producer_id_blocks[0]

    first = asyncio.run(ProducerIdAllocator(reserve).next_id())
    assert first == BLOCK_SIZE
