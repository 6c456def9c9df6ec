"""Shared fixtures: every ROS test gets its own DDS domain so concurrent runs never mix streams."""

from __future__ import annotations

import itertools
import os

import pytest

_domains = itertools.count(int(os.environ.get("RAP_TEST_DOMAIN_BASE", "60")))


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """A fresh ROS_DOMAIN_ID (also exported to subprocesses), discovery kept on this host."""
    domain = next(_domains) % 100 + 100
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain


@pytest.fixture
def rclpy_context(ros_domain):
    """An initialised rclpy context on the test's own domain, shut down afterwards."""
    import rclpy

    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=ros_domain)
    yield context
    context.try_shutdown()
