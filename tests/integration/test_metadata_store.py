"""The metadata store on a real one-member pysyncobj quorum bound to a loopback port."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from pysyncobj.utility import TcpUtility, UtilityException

from goqueue.config.settings import BrokerSettings
from goqueue.metadata.image import MetadataImage
from goqueue.metadata.store import (
    MetadataError,
    MetadataStore,
    TopicExistsError,
    UnknownTopicError,
)
from goqueue.testing.process import free_port

pytestmark = pytest.mark.integration

SECRET = "correct horse battery staple"


def settings_for(data_dir: Path, **overrides: object) -> BrokerSettings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "raft": f"127.0.0.1:{free_port()}",
        "cluster_secret": SECRET,
    }
    values.update(overrides)
    return BrokerSettings(**values)  # type: ignore[arg-type]


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


async def started(settings: BrokerSettings) -> MetadataStore:
    store = MetadataStore(settings)
    await store.start()
    return store


def test_a_single_node_bootstraps_its_cluster(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, node_id=3, advertised="127.0.0.1:19092")

    async def scenario() -> None:
        store = await started(settings)
        try:
            image = store.image
            assert len(image.cluster_id) == 22
            assert image.controller_id == 3
            broker = image.brokers[3]
            assert (broker.host, broker.port) == ("127.0.0.1", 19092)
        finally:
            await store.close()

    run(scenario)


def test_topics_and_cluster_id_survive_a_restart(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    async def scenario() -> None:
        store = await started(settings)
        orders = await store.create_topic("orders", 3, 1, {"retention.ms": "1000"})
        await store.create_topic("payments", 1, 1, {})
        cluster_id = store.image.cluster_id
        await store.close()

        store = await started(settings)
        try:
            assert store.image.cluster_id == cluster_id
            assert store.image.topics["orders"] == orders
            assert store.image.topics_by_id[orders.topic_id].partitions == 3
            assert dict(store.image.topics["orders"].configs) == {"retention.ms": "1000"}
            assert set(store.image.topics) == {"orders", "payments"}
        finally:
            await store.close()

    run(scenario)


def test_delete_topic_and_its_errors(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    async def scenario() -> None:
        store = await started(settings)
        try:
            orders = await store.create_topic("orders", 1, 1, {})
            with pytest.raises(TopicExistsError):
                await store.create_topic("orders", 2, 1, {})
            assert store.image.topics["orders"] == orders
            await store.delete_topic("orders")
            assert "orders" not in store.image.topics
            assert orders.topic_id not in store.image.topics_by_id
            with pytest.raises(UnknownTopicError):
                await store.delete_topic("orders")
        finally:
            await store.close()
        store = await started(settings)
        try:
            assert "orders" not in store.image.topics
        finally:
            await store.close()

    run(scenario)


def test_listeners_run_on_the_loop_before_the_command_returns(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    calls: list[tuple[MetadataImage, MetadataImage, int]] = []

    async def scenario() -> None:
        store = await started(settings)
        try:
            store.add_listener(lambda old, new: calls.append((old, new, threading.get_ident())))
            before = store.image
            await store.create_topic("orders", 1, 1, {})
            assert len(calls) == 1
            old, new, thread = calls[0]
            assert thread == threading.get_ident()
            assert old is before
            assert new is store.image
            assert "orders" in new.topics and "orders" not in old.topics
            assert new.offset == old.offset + 1
        finally:
            await store.close()

    run(scenario)


def test_a_failing_listener_does_not_stop_the_others(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    seen: list[str] = []

    def broken(_old: MetadataImage, _new: MetadataImage) -> None:
        raise RuntimeError("listener bug")

    async def scenario() -> None:
        store = await started(settings)
        try:
            store.add_listener(broken)
            store.add_listener(lambda _old, new: seen.extend(new.topics))
            await store.create_topic("orders", 1, 1, {})
            assert seen == ["orders"]
        finally:
            await store.close()

    run(scenario)


def test_the_raft_port_only_talks_to_holders_of_the_secret(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    def status(password: str | None) -> object:
        return TcpUtility(password=password, timeout=5).executeCommand(settings.raft, ["status"])

    async def scenario() -> None:
        store = await started(settings)
        try:
            answer = await asyncio.to_thread(status, SECRET)
            assert isinstance(answer, dict)
            assert answer["leader"] is not None
            for wrong in ("wrong secret", None):
                with pytest.raises(UtilityException):
                    await asyncio.to_thread(status, wrong)
        finally:
            await store.close()

    run(scenario)


def test_without_a_cluster_secret_the_port_is_still_encrypted(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, cluster_secret=None)

    async def scenario() -> None:
        store = await started(settings)
        try:
            with pytest.raises(UtilityException):
                await asyncio.to_thread(
                    TcpUtility(timeout=5).executeCommand, settings.raft, ["status"]
                )
        finally:
            await store.close()

    run(scenario)


def test_snapshot_then_journal_replay_restores_the_image(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    dump = tmp_path / "__metadata" / "metadata.dump"

    async def scenario() -> None:
        store = await started(settings)
        await store.create_topic("before-snapshot", 1, 1, {})
        assert store._raft is not None
        store._raft.forceLogCompaction()
        deadline = time.monotonic() + 10
        while not dump.exists():
            assert time.monotonic() < deadline, "no snapshot written"
            await asyncio.sleep(0.01)
        snapshot = json.loads(dump.read_text())
        assert [topic["name"] for topic in snapshot["image"]["topics"]] == ["before-snapshot"]
        await store.create_topic("after-snapshot", 2, 1, {})
        expected = store.image
        await store.close()

        store = await started(settings)
        try:
            # The restarted broker registers its new incarnation; all else is as it was.
            assert store.image.topics == expected.topics
            assert store.image.cluster_id == expected.cluster_id
            assert store.image.brokers[0].incarnation_id == store.incarnation_id
        finally:
            await store.close()

    run(scenario)


def test_an_unreadable_snapshot_stops_the_start(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    directory = tmp_path / "__metadata"
    directory.mkdir()
    (directory / "metadata.dump").write_text("{not json")

    async def scenario() -> None:
        with pytest.raises(MetadataError, match="unreadable"):
            await started(settings)

    run(scenario)


def test_a_taken_raft_address_is_reported(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "a")

    async def scenario() -> None:
        store = await started(settings)
        try:
            with pytest.raises(MetadataError, match="--raft"):
                await started(settings_for(tmp_path / "b", raft=settings.raft))
        finally:
            await store.close()

    run(scenario)


def test_a_record_this_version_cannot_apply_stops_the_start(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    async def scenario() -> None:
        store = await started(settings)
        assert store._raft is not None
        raft = store._raft
        raft.submit({"type": "from_a_newer_version"}, lambda _result, _error: None)
        deadline = time.monotonic() + 10
        while raft.fatal_error is None:
            assert time.monotonic() < deadline, "the record was not applied"
            await asyncio.sleep(0.01)
        await store.close()
        with pytest.raises(MetadataError, match=r"from_a_newer_version.*upgrade"):
            await started(settings)

    run(scenario)
