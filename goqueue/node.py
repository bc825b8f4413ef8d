"""One broker process: the core and its front ends, started and stopped in order."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import Gauge

from goqueue.broker.broker import Broker
from goqueue.config.settings import BrokerSettings, parse_host_port
from goqueue.http.app import Node, create_app
from goqueue.http.server import HttpServer
from goqueue.metadata.image import MetadataImage
from goqueue.observability.collectors import BrokerCollector
from goqueue.observability.health import Readiness
from goqueue.observability.lag import LagReader, group_coordinator_lag
from goqueue.observability.loop_lag import LoopLagMonitor
from goqueue.observability.metrics import BrokerMetrics
from goqueue.protocol.kafka.server import KafkaServer

logger = logging.getLogger(__name__)

LEFTOVER_TIMEOUT_S = 5.0


class BrokerNode:
    """Starts the core before the Kafka listener and stops the listener before the core, so
    no request ever reaches a broker that is not ready or already closed.

    The HTTP server starts first and stops last: liveness answers throughout, and readiness
    can be watched while the logs load (which may take long after an unclean shutdown).
    """

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.metrics = BrokerMetrics(
            enabled=settings.metrics_enabled, slow_request_ms=settings.request_slow_log_ms
        )
        self.broker = Broker(settings, self.metrics)
        host, port = parse_host_port(settings.listen)
        self.kafka = KafkaServer(self.broker, host, port)
        self._logs_loaded = False
        self._serving = False
        self.readiness = self._readiness()
        self.metrics.register(BrokerCollector(self.broker))
        Gauge(
            "goqueue_ready", "1 when /health/ready reports ready.", registry=self.metrics.registry
        ).set_function(lambda: float(self.readiness.ready()))
        lag_reader = self._group_lag_reader()
        self.metrics.lag.reader = lag_reader
        http_host, http_port = parse_host_port(settings.http)
        self.http = HttpServer(
            create_app(Node(self.broker, self.metrics, self.readiness), lag_reader),
            http_host,
            http_port,
        )
        self._loop_lag = LoopLagMonitor(self.metrics.loop_lag_seconds.observe)

    def _readiness(self) -> Readiness:
        readiness = Readiness()
        readiness.add("logs_loaded", lambda: self._logs_loaded)
        readiness.add("metadata_current", lambda: _metadata_current(self.broker.image))
        readiness.add("registered", lambda: self.settings.node_id in self.broker.image.brokers)
        readiness.add("accepting_clients", lambda: self._serving)
        return readiness

    def _group_lag_reader(self) -> LagReader:
        """Consumer group lag for `/metrics` and `/api/v1/groups`, from the group coordinator;
        later group kinds (share groups) add their lag here."""
        return group_coordinator_lag(self.broker.groups)

    async def start(self) -> None:
        await self.http.start()
        self._loop_lag.start()
        try:
            await self.broker.start()
            self._logs_loaded = True
            traffic = self.metrics.traffic
            if traffic is not None:
                self.broker.metadata.add_listener(lambda _old, new: traffic.forget(new.topics))
            await self.kafka.start()
        except BaseException:
            await self._stop_monitoring()
            raise
        self._serving = True
        logger.info("HTTP API, metrics and health checks on http://%s", self.settings.http)

    async def stop(self) -> None:
        lifecycle = self.broker.metadata.lifecycle
        if lifecycle is not None:
            await lifecycle.controlled_shutdown()
        self._serving = False
        await self.kafka.stop()
        await self.broker.stop()
        self._logs_loaded = False
        await self._stop_monitoring()

    async def _stop_monitoring(self) -> None:
        await self._loop_lag.stop()
        await self.http.stop()

    async def run_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        print(f"Go-Queue broker listening on {self.settings.listen}", flush=True)
        await stop.wait()
        logger.info("shutting down: finishing requests in flight and flushing logs")
        await self.stop()
        await _cancel_leftover_tasks()
        logger.info("shutdown complete")


async def _cancel_leftover_tasks() -> None:
    """Cancel what is still running after a stop and name any task that does not end: the
    process could not exit while it runs."""
    current = asyncio.current_task()
    leftovers = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftovers:
        task.cancel()
    if not leftovers:
        return
    _, stuck = await asyncio.wait(leftovers, timeout=LEFTOVER_TIMEOUT_S)
    for task in stuck:
        frames = "; ".join(f"{f.f_code.co_filename}:{f.f_lineno}" for f in task.get_stack())
        logger.error("task %s ignores cancellation at %s", task.get_name(), frames)


def _metadata_current(image: MetadataImage) -> bool:
    """The node has replayed the metadata and knows the cluster and its controller."""
    return bool(image.cluster_id) and image.controller_id >= 0
