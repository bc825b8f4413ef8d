"""Renders the configuration reference (docs/configuration.md) from the declarations.

The broker settings and the topic config catalog are the single source of truth; a unit test
fails when the committed page differs from what this renders, so the docs cannot drift.
Run `python -m goqueue.config.reference > docs/configuration.md` after changing a setting.
"""

from __future__ import annotations

from dataclasses import MISSING, fields

from goqueue.config.catalog import GROUP_CONFIGS, TOPIC_CONFIGS, ConfigEntry
from goqueue.config.settings import ENV_PREFIX, BrokerSettings, config_name


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the declarations in `goqueue/config`; do not edit by hand.",
        "",
        "## Broker settings",
        "",
        "Set in the TOML file given with `--config` (by this name or with dots, Kafka style),",
        f"as `{ENV_PREFIX}NAME` environment variables, or as `goqueue serve` flags where one "
        "exists.",
        "",
        "Settings marked dynamic can also be changed on a running cluster, by their dotted name,",
        "without a restart: `goqueue config set --broker-default log.retention.ms=3600000` (see",
        "[topic management](topic-management.md)).",
        "",
        "| setting | environment | default | dynamic | description |",
        "|---|---|---|---|---|",
    ]
    for spec in fields(BrokerSettings):
        default = "" if spec.default is MISSING else spec.default
        dynamic = f"`{config_name(spec.name)}`" if spec.metadata["dynamic"] else "no"
        lines.append(
            f"| `{spec.name}` | `{ENV_PREFIX}{spec.name.upper()}` | `{default}` | {dynamic} "
            f"| {spec.metadata['doc']} |"
        )
    lines += [
        "",
        "## Topic configs",
        "",
        "Given at creation (`goqueue topic create NAME --config name=value`, or any Kafka admin "
        "client) and changed at run time (`goqueue topic alter NAME --config name=value`). A "
        "topic without a value takes the broker default.",
        "",
        "| config | type | default | description |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{entry.name}` | {entry.type.value} | {_default(entry)} | {entry.doc} |"
        for entry in TOPIC_CONFIGS
    ]
    lines += [
        "",
        "## Group configs",
        "",
        "Set per share group with any Kafka admin client (IncrementalAlterConfigs on a GROUP "
        "resource, e.g. `kafka-configs --entity-type groups`); a group without a value takes the "
        "default. See [share groups](share-groups.md).",
        "",
        "| config | type | default | description |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{entry.name}` | {entry.type.value} | {_default(entry)} | {entry.doc} |"
        for entry in GROUP_CONFIGS
    ]
    return "\n".join(lines) + "\n"


def _default(entry: ConfigEntry) -> str:
    if entry.default_setting:
        return f"broker setting `{entry.default_setting}`"
    return f"`{entry.default}`" if entry.default else "empty"


if __name__ == "__main__":
    print(render(), end="")
