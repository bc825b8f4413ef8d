"""Raft routes: a voter keeps its listed address as its identity but is reached elsewhere."""

import pytest

from goqueue.config.settings import SettingsError, load_settings
from goqueue.metadata.state_machine import RoutedNode

VOTERS = "1@127.0.0.1:7001,2@127.0.0.1:7002,3@127.0.0.1:7003"
CLUSTER = {"node_id": 1, "raft": "127.0.0.1:7001", "voters": VOTERS, "cluster_secret": "s"}


def test_routes_map_listed_addresses_to_where_this_node_connects() -> None:
    settings = load_settings(
        CLUSTER, None, {"GOQUEUE_RAFT_ROUTES": "2@127.0.0.1:8002,3@127.0.0.1:8003"}
    )
    assert settings.raft_route_addresses() == {
        "127.0.0.1:7002": "127.0.0.1:8002",
        "127.0.0.1:7003": "127.0.0.1:8003",
    }


def test_a_route_for_a_node_that_is_not_a_voter_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"not voters: route only nodes listed"):
        load_settings({**CLUSTER, "raft_routes": "4@127.0.0.1:8004"}, None, {})


def test_a_malformed_route_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"--raft-routes: .* is not NODE_ID@HOST:PORT"):
        load_settings({**CLUSTER, "raft_routes": "2-127.0.0.1"}, None, {})


def test_routed_node_is_identified_by_its_listed_address_and_connects_to_the_route() -> None:
    node = RoutedNode("127.0.0.1:7002", "127.0.0.1:8002")
    assert node.id == node.address == "127.0.0.1:7002"
    assert (node.ip, node.port) == ("127.0.0.1", 8002)
