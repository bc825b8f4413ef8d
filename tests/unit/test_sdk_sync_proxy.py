"""The sync facade's proxy, over a fake async client (no sockets)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

import pytest

from goqueue.client import admin, consumer, producer, sync
from goqueue.client.errors import NotCoordinatorError
from goqueue.client.sync import SyncClient, blocking, iterate, run


class FakeAsync:
    """An async client: records the threads and loop it runs on."""

    def __init__(self, name: str) -> None:
        if not name:
            raise ValueError("a name is needed")
        self.name = name
        self.created_on = threading.current_thread()
        self.events: list[str] = []
        self.counter = 0

    async def __aenter__(self) -> FakeAsync:
        self.events.append("enter")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.events.append(f"exit {exc_type.__name__ if exc_type else None}")

    async def add(self, amount: int, *, times: int = 1) -> int:
        await asyncio.sleep(0)
        self.counter += amount * times
        return self.counter

    async def undeclared(self) -> str:
        return f"{self.name} on {threading.current_thread().name}"

    async def fail(self) -> None:
        raise NotCoordinatorError("moved")

    def later(self) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, future.set_result, 7)
        return future

    def thread_name(self) -> str:
        return threading.current_thread().name

    async def numbers(self, count: int) -> AsyncIterator[int]:
        for number in range(count):
            await asyncio.sleep(0)
            yield number

    def __aiter__(self) -> AsyncIterator[int]:
        return self.numbers(3)


class Fake(SyncClient[FakeAsync]):
    _async_type = FakeAsync
    add = blocking(FakeAsync.add)

    def __iter__(self) -> Iterator[int]:
        return iterate(self.aio)


def test_declared_and_undeclared_coroutine_methods_block_for_their_result() -> None:
    fake = Fake("a")
    assert fake.add(2, times=3) == 6
    assert fake.add(1) == 7
    assert fake.undeclared() == "a on goqueue-sync-loop"
    assert fake.add.__doc__ == FakeAsync.add.__doc__


def test_the_async_object_is_made_and_used_on_the_loop_thread() -> None:
    fake = Fake("b")
    assert fake.aio.created_on.name == "goqueue-sync-loop"
    assert fake.thread_name() == "goqueue-sync-loop"
    assert fake.name == "b"


def test_exceptions_arrive_as_raised() -> None:
    with pytest.raises(NotCoordinatorError, match="moved"):
        Fake("c").fail()


def test_loop_futures_become_thread_safe_futures() -> None:
    future = Fake("d").later()
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=5) == 7


def test_async_iteration_becomes_iteration() -> None:
    fake = Fake("e")
    assert list(fake.numbers(4)) == [0, 1, 2, 3]
    assert list(fake) == [0, 1, 2]


def test_context_manager_enters_and_exits_the_async_object() -> None:
    with Fake("f") as fake:
        assert fake.aio.events == ["enter"]
    assert fake.aio.events == ["enter", "exit None"]
    with pytest.raises(KeyError), Fake("g") as failing:
        raise KeyError("x")
    assert failing.aio.events == ["enter", "exit KeyError"]


def test_a_blocking_call_from_the_loop_thread_is_refused_not_deadlocked() -> None:
    fake = Fake("h")

    async def from_loop() -> None:
        fake.add(1)

    with pytest.raises(RuntimeError, match="would wait for itself"):
        run(from_loop())


def test_a_failing_constructor_raises_its_error() -> None:
    with pytest.raises(ValueError, match="a name is needed"):
        Fake("")
    half_built = Fake.__new__(Fake)
    with pytest.raises(AttributeError):
        half_built.add(1)


@pytest.mark.parametrize(
    ("sync_type", "async_type"),
    [
        (sync.Admin, admin.Admin),
        (sync.Producer, producer.Producer),
        (sync.Consumer, consumer.Consumer),
    ],
    ids=["Admin", "Producer", "Consumer"],
)
def test_every_public_method_of_the_async_client_is_declared_typed(
    sync_type: type[SyncClient[Any]], async_type: type[Any]
) -> None:
    """Undeclared methods still work through the proxy, but without a signature: declare each
    one in `goqueue.client.sync` (`name = blocking(AsyncClass.name)`, or `on_loop` for a
    plain method)."""
    public = [
        name
        for name, value in inspect.getmembers(async_type, inspect.isfunction)
        if not name.startswith("_")
    ]
    declared = {name for klass in sync_type.__mro__ for name in vars(klass)}
    assert [name for name in public if name not in declared] == []


def test_a_forked_child_gets_a_loop_thread_of_its_own() -> None:
    assert Fake("parent").add(1) == 1
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if a blocking call works here too
        os._exit(0 if Fake("child").add(2, times=2) == 4 else 1)
    deadline = time.monotonic() + 10
    while (waited := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's blocking call hung")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(waited[1]) == 0
