"""Renders the configuration reference (docs/configuration.md) from the declarations.

The broker settings and the topic config catalog are the single source of truth; a unit test
fails when the committed page differs from what this renders, so the docs cannot drift.
Run `python -m goqueue.config.reference > docs/configuration.md` after changing a setting.
"""

from __future__ import annotations

from dataclasses import MISSING, fields

from goqueue.config.catalog import TOPIC_CONFIGS
from goqueue.config.settings import ENV_PREFIX, BrokerSettings


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
        "| setting | environment | default | description |",
        "|---|---|---|---|",
    ]
    for spec in fields(BrokerSettings):
        default = "" if spec.default is MISSING else spec.default
        lines.append(
            f"| `{spec.name}` | `{ENV_PREFIX}{spec.name.upper()}` | `{default}` "
            f"| {spec.metadata['doc']} |"
        )
    lines += [
        "",
        "## Topic configs",
        "",
        "Given at creation (`goqueue topic create NAME --config name=value`, or any Kafka admin "
        "client). A topic without a value takes the broker default.",
        "",
        "| config | type | default | description |",
        "|---|---|---|---|",
    ]
    for entry in TOPIC_CONFIGS:
        default = (
            f"broker setting `{entry.default_setting}`"
            if entry.default_setting
            else f"`{entry.default}`"
        )
        lines.append(f"| `{entry.name}` | {entry.type.value} | {default} | {entry.doc} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
