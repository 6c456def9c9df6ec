"""Every custom message travels between two processes over real DDS with all fields intact."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

from .msg_samples import assert_msg_equal, samples

HERE = Path(__file__).parent


def test_every_message_crosses_processes_intact(rclpy_context):
    expected = samples()
    node = rclpy.create_node("sample_subscriber", context=rclpy_context)
    received: dict[str, object] = {}
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    for name, msg in expected.items():
        node.create_subscription(type(msg), f"/samples/{name}", lambda m, n=name: received.setdefault(n, m), qos)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    publisher = subprocess.Popen([sys.executable, str(HERE / "publish_samples.py")], cwd=HERE)
    try:
        deadline = time.monotonic() + 40.0
        while len(received) < len(expected) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert publisher.wait(timeout=20) == 0
    finally:
        publisher.kill()
        executor.shutdown()
        node.destroy_node()
    assert sorted(received) == sorted(expected)
    for name, msg in expected.items():
        assert_msg_equal(msg, received[name], name)
