"""Publishes every sample message once subscribed, waits for acknowledgements, then exits."""

import sys
import time

import rclpy
from msg_samples import samples  # noqa: I001 (run as a script from this folder)
from rclpy.qos import QoSProfile, ReliabilityPolicy


def main() -> int:
    rclpy.init()
    node = rclpy.create_node("sample_publisher")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {name: (node.create_publisher(type(msg), f"/samples/{name}", qos), msg) for name, msg in samples().items()}
    deadline = time.monotonic() + 30.0
    while any(p.get_subscription_count() == 0 for p, _ in pubs.values()):
        if time.monotonic() > deadline:
            print("no subscriber within 30 s", file=sys.stderr)
            return 1
        time.sleep(0.05)
    for pub, msg in pubs.values():
        pub.publish(msg)
    ok = all(pub.wait_for_all_acked(rclpy.duration.Duration(seconds=10)) for pub, _ in pubs.values())
    node.destroy_node()
    rclpy.shutdown()
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
