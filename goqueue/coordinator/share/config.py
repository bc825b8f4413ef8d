"""A share group's settings in force: its own group configs over the broker defaults."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from goqueue.broker.topic_names import MAX_NAME_LENGTH
from goqueue.config.catalog import GROUP_CONFIGS
from goqueue.config.dynamic import _WIRE_TYPES as WIRE_TYPES
from goqueue.config.dynamic import ConfigSource, DescribedConfig, Synonym
from goqueue.config.settings import BrokerSettings
from goqueue.coordinator.share.partition import Limits

DLQ_SUFFIX = ".dlq"
_ILLEGAL_IN_TOPIC = re.compile(r"[^a-zA-Z0-9._-]")


def default_dlq_topic(group_id: str) -> str:
    """`<group>.dlq`, with each character a topic name cannot hold replaced by `_` and the
    group id cut to fit Kafka's 249-character limit."""
    return _ILLEGAL_IN_TOPIC.sub("_", group_id)[: MAX_NAME_LENGTH - len(DLQ_SUFFIX)] + DLQ_SUFFIX


@dataclass(frozen=True, slots=True)
class ShareGroupConfig:
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_size: int
    auto_offset_reset: str
    dlq_topic: str
    limits: Limits

    @classmethod
    def resolve(
        cls, group_id: str, overrides: Mapping[str, str], settings: BrokerSettings
    ) -> ShareGroupConfig:
        """The group's configs (validated when they were set) over their defaults."""
        values = {
            entry.name: overrides.get(entry.name, entry.default_for(settings))
            for entry in GROUP_CONFIGS
        }
        backoff = tuple(int(item) for item in values["goqueue.retry.backoff.ms"].split(",") if item)
        return cls(
            session_timeout_ms=int(values["share.session.timeout.ms"]),
            heartbeat_interval_ms=int(values["share.heartbeat.interval.ms"]),
            max_size=settings.group_share_max_size,
            auto_offset_reset=values["share.auto.offset.reset"],
            dlq_topic=values["goqueue.dlq.topic"] or default_dlq_topic(group_id),
            limits=Limits(
                lock_duration_ms=int(values["share.record.lock.duration.ms"]),
                delivery_count_limit=int(values["share.delivery.count.limit"]),
                max_record_locks=int(values["share.partition.max.record.locks"]),
                backoff_ms=backoff,
                fifo=values["goqueue.share.fifo"] == "true",
                dead_letter=values["goqueue.dlq.enable"] == "true",
            ),
        )


def describe_group_configs(
    overrides: Mapping[str, str], settings: BrokerSettings
) -> list[DescribedConfig]:
    """DescribeConfigs of a GROUP resource: every group config, set on the group or not."""
    described = []
    for entry in GROUP_CONFIGS:
        synonyms = []
        if entry.name in overrides:
            synonyms.append(Synonym(entry.name, overrides[entry.name], ConfigSource.GROUP_CONFIG))
        synonyms.append(
            Synonym(entry.name, entry.default_for(settings), ConfigSource.DEFAULT_CONFIG)
        )
        described.append(
            DescribedConfig(
                entry.name,
                synonyms[0].value,
                synonyms[0].source,
                False,
                False,
                tuple(synonyms),
                WIRE_TYPES[entry.type],
                entry.doc,
            )
        )
    return described
