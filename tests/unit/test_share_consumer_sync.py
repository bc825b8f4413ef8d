"""The blocking twins of the share consumer declare every public method of the async classes
(with their signatures), and iterate, acknowledge and renew through the loop thread."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from share_fakes import FakeShareBroker

from goqueue.client import share_consumer, sync


@pytest.mark.parametrize(
    ("sync_type", "async_type"),
    [
        (sync.ShareConsumer, share_consumer.ShareConsumer),
        (sync.ShareMessage, share_consumer.ShareMessage),
    ],
    ids=["ShareConsumer", "ShareMessage"],
)
def test_every_public_method_is_declared(sync_type: type[Any], async_type: type[Any]) -> None:
    public = [
        name
        for name, value in inspect.getmembers(async_type, inspect.isfunction)
        if not name.startswith("_")
    ]
    declared = {name for klass in sync_type.__mro__ for name in vars(klass)}
    assert [name for name in public if name not in declared] == []


def test_the_sync_consumer_iterates_renews_and_acknowledges() -> None:
    broker = FakeShareBroker([b"a", b"b"])
    consumer = sync.ShareConsumer("fake:9092", group_id="g", topics=["jobs"], ack_linger=60)
    broker.attach(consumer.aio)
    with consumer:
        first = next(iter(consumer))
        with first.renewing(every=0.01):
            pass
        first.ack()
        (second,) = consumer.poll(timeout=5)
        consumer.acknowledge([second])
        consumer.commit()
    assert (first.value, second.value) == (b"a", b"b")
    assert broker.accepted == {0, 1}
