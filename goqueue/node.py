"""One broker process: the core and its front ends, started and stopped in order."""

from __future__ import annotations

import asyncio
import logging
import signal

from goqueue.broker.broker import Broker
from goqueue.config.settings import BrokerSettings, parse_host_port
from goqueue.protocol.kafka.server import KafkaServer

logger = logging.getLogger(__name__)


class BrokerNode:
    """Starts the core before the listeners and stops the listeners before the core, so no
    request ever reaches a broker that is not ready or already closed."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.broker = Broker(settings)
        host, port = parse_host_port(settings.listen)
        self.kafka = KafkaServer(self.broker, host, port)

    async def start(self) -> None:
        await self.broker.start()
        await self.kafka.start()

    async def stop(self) -> None:
        await self.kafka.stop()
        await self.broker.stop()

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
        logger.info("shutdown complete")
