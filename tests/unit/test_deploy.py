"""The Prometheus alert rules and the Grafana dashboard in deploy/: valid files whose every
expression reads metrics a broker exports, and alerts that tell the operator what to do."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from goqueue.config.settings import BrokerSettings
from goqueue.node import BrokerNode

DEPLOY = Path(__file__).parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "goqueue-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "goqueue-dashboard.json"
METRIC_NAME = re.compile(r"\b((?:goqueue|process)_[a-z0-9_]+|up)\b(?!\s*\()")
PROMETHEUS_OWN = {"up"}
"""Series Prometheus itself records for every target."""
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "info": ("_info",),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series name a node exports, read from its registry without starting it."""
    settings = BrokerSettings(data_dir=tmp_path_factory.mktemp("data"))
    text = generate_latest(BrokerNode(settings).metrics.registry).decode()
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in document["panels"] for target in panel.get("targets", [])]


def referenced(expression: str) -> set[str]:
    """Metric names in a PromQL expression (function names are followed by a parenthesis)."""
    return set(METRIC_NAME.findall(expression))


def test_alerts_cover_the_failures_operators_must_hear_about() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "GoQueueBrokerDown",
        "GoQueueConsumerLagGrowing",
        "GoQueueUnderReplicatedPartitions",
        "GoQueueOfflinePartitions",
        "GoQueueDiskAlmostFull",
        "GoQueueEventLoopLag",
        "GoQueueHighErrorRate",
    } <= names


def test_every_alert_has_a_severity_a_summary_and_what_to_do() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert len(rule["annotations"]["description"].split()) >= 20, rule["alert"]


def test_every_alert_expression_reads_exported_metrics(exported: set[str]) -> None:
    for rule in alert_rules():
        names = referenced(rule["expr"])
        assert names, rule["alert"]
        assert names - PROMETHEUS_OWN <= exported, (rule["alert"], names - exported)


def test_the_dashboard_shows_throughput_latency_lag_storage_and_health() -> None:
    document = json.loads(DASHBOARD.read_text())
    rows = [panel["title"] for panel in document["panels"] if panel["type"] == "row"]
    assert rows == ["Throughput", "Latency and errors", "Consumer lag", "Storage", "Broker health"]


def test_every_dashboard_expression_reads_exported_metrics(exported: set[str]) -> None:
    expressions = dashboard_expressions()
    assert len(expressions) > 20
    for expression in expressions:
        names = referenced(expression)
        assert names, expression
        assert names - PROMETHEUS_OWN <= exported, (expression, names - exported)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
