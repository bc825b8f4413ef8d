"""Blocking facade over the asyncio clients: `from goqueue.client.sync import Admin`.

There is no second implementation: each sync object owns the very async object of
`goqueue.client` and runs its coroutines on a private event loop in a background thread
(`asyncio.run_coroutine_threadsafe`), blocking the calling thread until the answer arrives.
One loop thread serves every sync client of the process, so their connections and background
tasks (lingering batches, heartbeats) keep running between calls.

`SyncClient` proxies any attribute of the async object: a coroutine method becomes a blocking
method, an asyncio future becomes a `concurrent.futures.Future`, an async iterator becomes an
iterator, anything else is returned as is. New async methods therefore work without a copy
here; the public ones are also declared with `blocking` so that type checkers see their
signatures (taken from the async method, not written again).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import inspect
import os
import threading
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar

from goqueue.client import admin as _admin
from goqueue.client import consumer as _consumer
from goqueue.client import producer as _producer
from goqueue.client import share_consumer as _share
from goqueue.client.fetcher import ConsumerRecord
from goqueue.client.groups import Committed
from goqueue.client.metadata import TopicPartition
from goqueue.client.share_session import AckType

STOP_TIMEOUT_S = 5.0
"""How long interpreter exit waits for leftover client tasks to end."""
P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C")


class _LoopThread:
    """The event loop every sync client runs on, started on first use in a daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        """A forked child has no loop thread (only the forking thread survives a fork): it
        starts its own on first use. Clients made before the fork stay with the parent."""
        self._lock = threading.Lock()
        self._loop = self._thread = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(loop, ready), name="goqueue-sync-loop", daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
                atexit.register(self.stop)
            return self._loop

    def stop(self) -> None:
        """At interpreter exit: cancel what clients left running (a client never closed) so
        that it ends cleanly rather than being destroyed pending, then stop the loop."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        cancelled = asyncio.run_coroutine_threadsafe(_cancel_tasks(), loop)
        with contextlib.suppress(concurrent.futures.TimeoutError):
            cancelled.result(STOP_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread


async def _cancel_tasks() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


_LOOP = _LoopThread()


def run(awaitable: Awaitable[R]) -> R:
    """Run `awaitable` on the sync clients' loop and wait for its result (or exception).

    Interrupting the wait (Ctrl-C) cancels the operation on the loop before re-raising.
    """
    if _LOOP.in_loop_thread():
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError(
            "a goqueue.client.sync method was called on the sync clients' own event loop "
            "thread (from a callback?): it would wait for itself; use the async client there"
        )
    future = asyncio.run_coroutine_threadsafe(_awaited(awaitable), _LOOP.loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


async def _awaited(awaitable: Awaitable[R]) -> R:
    return await awaitable


def _on_loop(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call a plain function on the loop thread: async objects are not thread-safe."""

    async def call() -> R:
        return function(*args, **kwargs)

    return run(call())


def _concurrent(future: asyncio.Future[R]) -> concurrent.futures.Future[R]:
    """A thread-safe view of a loop future (a delivery report, say), resolved with it."""
    result: concurrent.futures.Future[R] = concurrent.futures.Future()

    def copy(done: asyncio.Future[R]) -> None:
        if done.cancelled():
            result.cancel()
        elif done.exception() is not None:
            result.set_exception(done.exception())
        else:
            result.set_result(done.result())

    result.set_running_or_notify_cancel()
    future.add_done_callback(copy)
    return result


def iterate(iterable: AsyncIterable[R]) -> Iterator[R]:
    """Iterate an async iterable (a consumer) from the calling thread."""
    return _iterate(_on_loop(aiter, iterable))


def _iterate(iterator: AsyncIterator[R]) -> Iterator[R]:
    """Drive an async iterator from the calling thread, one item per loop round trip."""
    while True:
        try:
            yield run(anext(iterator))
        except StopAsyncIteration:
            return


def _blocking_value(value: Any) -> Any:
    """What a sync caller gets for a value the async object produced on the loop."""
    if isinstance(value, asyncio.Future):
        return _concurrent(value)
    if isinstance(value, AsyncIterator):
        return _iterate(value)
    return value


def _call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call an async object's method on the loop; await what it returns if it is a coroutine."""

    async def call() -> Any:
        result = function(*args, **kwargs)
        if inspect.iscoroutine(result):
            result = await result
        return result

    return _blocking_value(run(call()))


class SyncClient(Generic[C]):
    """A blocking proxy over one async client object (`.aio`), created on the loop thread."""

    _async_type: Callable[..., C]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.aio: C = _on_loop(self._async_type, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        """Every other attribute of the async client, made blocking (see the module doc)."""
        if name == "aio":
            raise AttributeError(name)  # not created (the constructor failed): no recursion
        value = getattr(self.aio, name)
        if callable(value):
            return functools.wraps(value)(functools.partial(_call, value))
        return _blocking_value(value)

    def __enter__(self) -> Self:
        run(self.aio.__aenter__())  # type: ignore[attr-defined]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        run(self.aio.__aexit__(exc_type, exc, tb))  # type: ignore[attr-defined]


def blocking(
    method: Callable[Concatenate[Any, P], Awaitable[R]],
) -> Callable[Concatenate[SyncClient[Any], P], R]:
    """Declare a coroutine method of the async class as a typed blocking method of the facade;
    the call goes to the async object's attribute of the same name, so overrides still apply."""
    return _declared(method)


def blocking_future(
    method: Callable[Concatenate[Any, P], Awaitable[asyncio.Future[R]]],
) -> Callable[Concatenate[SyncClient[Any], P], concurrent.futures.Future[R]]:
    """Like `blocking`, for a coroutine that returns a loop future (a delivery report): the
    caller gets a `concurrent.futures.Future` it can wait on from any thread."""
    return _declared(method)


def on_loop(
    method: Callable[Concatenate[Any, P], R],
) -> Callable[Concatenate[SyncClient[Any], P], R]:
    """Declare a plain method of the async class (`assign`, `seek`, `pause`): it runs on the
    loop thread too, since the async object's state is not guarded against other threads."""
    return _declared(method)


def _declared(method: Callable[..., Any]) -> Callable[..., Any]:
    name = method.__name__

    def call(self: SyncClient[Any], /, *args: Any, **kwargs: Any) -> Any:
        return _call(getattr(self.aio, name), *args, **kwargs)

    functools.update_wrapper(call, method)
    return call


class Admin(SyncClient[_admin.Admin]):
    """Blocking `goqueue.client.Admin`: `with Admin("127.0.0.1:9092") as admin: ...`."""

    _async_type = _admin.Admin

    start = blocking(_admin.Admin.start)
    close = blocking(_admin.Admin.close)
    create_topic = blocking(_admin.Admin.create_topic)
    create_topics = blocking(_admin.Admin.create_topics)
    delete_topics = blocking(_admin.Admin.delete_topics)
    list_topics = blocking(_admin.Admin.list_topics)
    describe_topics = blocking(_admin.Admin.describe_topics)
    create_partitions = blocking(_admin.Admin.create_partitions)
    delete_records = blocking(_admin.Admin.delete_records)
    describe_configs = blocking(_admin.Admin.describe_configs)
    describe_topic_configs = blocking(_admin.Admin.describe_topic_configs)
    alter_configs = blocking(_admin.Admin.alter_configs)
    incremental_alter_configs = blocking(_admin.Admin.incremental_alter_configs)
    describe_cluster = blocking(_admin.Admin.describe_cluster)
    list_offsets = blocking(_admin.Admin.list_offsets)
    list_groups = blocking(_admin.Admin.list_groups)
    describe_group = blocking(_admin.Admin.describe_group)
    delete_groups = blocking(_admin.Admin.delete_groups)
    list_group_offsets = blocking(_admin.Admin.list_group_offsets)
    alter_group_offsets = blocking(_admin.Admin.alter_group_offsets)
    delete_group_offsets = blocking(_admin.Admin.delete_group_offsets)
    reset_group_offsets = blocking(_admin.Admin.reset_group_offsets)
    group_lag = blocking(_admin.Admin.group_lag)
    cancel_delayed = blocking(_admin.Admin.cancel_delayed)


class Consumer(SyncClient[_consumer.Consumer]):
    """Blocking `goqueue.client.Consumer`: `for message in consumer:` waits for each record;
    `getmany` returns what arrived within its timeout. Rebalance listeners and commit
    callbacks run on the sync clients' loop thread, where they must not call blocking
    methods."""

    _async_type = _consumer.Consumer

    def __iter__(self) -> Iterator[ConsumerRecord]:
        return iterate(self.aio)

    def commit_async(
        self,
        offsets: Mapping[TopicPartition, int | Committed] | None = None,
        callback: _consumer.CommitCallback | None = None,
    ) -> concurrent.futures.Future[None]:
        """Start a commit and return at once; the future resolves when it is stored."""
        future: concurrent.futures.Future[None] = _call(self.aio.commit_async, offsets, callback)
        return future

    start = blocking(_consumer.Consumer.start)
    close = blocking(_consumer.Consumer.close)
    subscribe = on_loop(_consumer.Consumer.subscribe)
    subscription = on_loop(_consumer.Consumer.subscription)
    unsubscribe = blocking(_consumer.Consumer.unsubscribe)
    assign = on_loop(_consumer.Consumer.assign)
    assignment = on_loop(_consumer.Consumer.assignment)
    joined = blocking(_consumer.Consumer.joined)
    getmany = blocking(_consumer.Consumer.getmany)
    getone = blocking(_consumer.Consumer.getone)
    position = blocking(_consumer.Consumer.position)
    seek = on_loop(_consumer.Consumer.seek)
    seek_to_beginning = on_loop(_consumer.Consumer.seek_to_beginning)
    seek_to_end = on_loop(_consumer.Consumer.seek_to_end)
    seek_to_timestamp = on_loop(_consumer.Consumer.seek_to_timestamp)
    offsets_for_times = blocking(_consumer.Consumer.offsets_for_times)
    beginning_offsets = blocking(_consumer.Consumer.beginning_offsets)
    end_offsets = blocking(_consumer.Consumer.end_offsets)
    highwater = on_loop(_consumer.Consumer.highwater)
    last_stable_offset = on_loop(_consumer.Consumer.last_stable_offset)
    lag = on_loop(_consumer.Consumer.lag)
    pause = on_loop(_consumer.Consumer.pause)
    resume = on_loop(_consumer.Consumer.resume)
    paused = on_loop(_consumer.Consumer.paused)
    commit = blocking(_consumer.Consumer.commit)
    committed = blocking(_consumer.Consumer.committed)


class Producer(SyncClient[_producer.Producer]):
    """Blocking `goqueue.client.Producer`: `send` waits for the acknowledgement; `enqueue`
    returns a `concurrent.futures.Future` at once, for throughput. Delivery callbacks run on
    the sync clients' loop thread, where they must not call blocking methods."""

    _async_type = _producer.Producer

    start = blocking(_producer.Producer.start)
    close = blocking(_producer.Producer.close)
    send = blocking(_producer.Producer.send)
    enqueue = blocking_future(_producer.Producer.enqueue)
    flush = blocking(_producer.Producer.flush)


class ShareMessage(SyncClient[_share.ShareMessage]):
    """Blocking view of a share-group message: the same fields; `ack()`, `release()`,
    `reject()` and `renew()` block."""

    def __init__(self, message: _share.ShareMessage) -> None:
        self.aio = message

    ack = blocking(_share.ShareMessage.ack)
    release = blocking(_share.ShareMessage.release)
    reject = blocking(_share.ShareMessage.reject)
    renew = blocking(_share.ShareMessage.renew)

    @contextlib.contextmanager
    def renewing(self, every: float | None = None) -> Iterator[ShareMessage]:
        """Keep the lock while the body works: the renewals run on the loop thread."""
        renewal = _call(self.aio.renewing, every)
        run(renewal.__aenter__())
        try:
            yield self
        finally:
            run(renewal.__aexit__(None, None, None))


class ShareConsumer(SyncClient[_share.ShareConsumer]):
    """Blocking `goqueue.client.ShareConsumer`: `for message in consumer: message.ack()`."""

    _async_type = _share.ShareConsumer

    start = blocking(_share.ShareConsumer.start)
    close = blocking(_share.ShareConsumer.close)
    commit = blocking(_share.ShareConsumer.commit)

    def __iter__(self) -> Iterator[ShareMessage]:
        return (ShareMessage(message) for message in iterate(self.aio))

    def poll(self, timeout: float | None = None) -> list[ShareMessage]:
        return [ShareMessage(message) for message in _call(self.aio.poll, timeout)]

    def acknowledge(self, messages: Iterable[ShareMessage], kind: AckType = AckType.ACCEPT) -> None:
        _call(self.aio.acknowledge, [message.aio for message in messages], kind)

    def renew(self, messages: Iterable[ShareMessage]) -> None:
        _call(self.aio.renew, [message.aio for message in messages])


__all__ = [
    "Admin",
    "Consumer",
    "Producer",
    "ShareConsumer",
    "ShareMessage",
    "SyncClient",
    "blocking",
    "blocking_future",
    "iterate",
    "on_loop",
    "run",
]
