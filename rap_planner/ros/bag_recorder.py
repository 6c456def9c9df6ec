"""Records topics as received (raw CDR, no deserialisation) into a standard rosbag2 (MCAP or sqlite3).

Built on rosbags + rclpy raw subscriptions, so it works where `ros2 bag` is absent; the bags carry
full message definitions, so `ros2 bag play` and Foxglove open them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from rap_planner.paths import share_dir
from rap_planner.ros.params import ParameterSet, ParamSpec
from rap_planner.topics import PARAMETER_EVENTS, ROSOUT


def message_class(msgtype: str):
    """The rclpy class of 'pkg/msg/Name' (rosidl_runtime_py is not on PyPI)."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def rap_planner_typestore():
    """Kilted's standard types plus this package's messages (read from msg/)."""
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted((share_dir() / "msg").glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"rap_planner/msg/{path.stem}"))
    store.register(types)
    return store


class RawTopicTap(Node):
    """Discovers topics (``topics`` or all) and hands each message's CDR bytes to ``on_message``.

    No deserialisation: the recorder and the Foxglove bridge forward bytes as they arrive.
    """

    def __init__(self, name: str, topics: list[str] | None, **kwargs):
        super().__init__(name, **kwargs)
        self.typestore = rap_planner_typestore()
        self.wanted = set(topics) if topics else None
        self.tapped: dict[str, str | None] = {}  # topic -> type (None: skipped)
        self.counts: dict[str, int] = {}

    def start_discovery(self) -> None:
        self.create_timer(0.2, self._discover)
        self._discover()

    def open_topic(self, topic: str, msgtype: str) -> None:
        """Called once per new topic before its first message."""

    def on_message(self, topic: str, data: bytes, stamp_ns: int) -> None:
        raise NotImplementedError

    def _discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic in self.tapped or (self.wanted is not None and topic not in self.wanted):
                continue
            if topic in (ROSOUT, PARAMETER_EVENTS) and self.wanted is None:
                continue
            msgtype = types[0]
            if msgtype not in self.typestore.types:
                self.get_logger().warning(f"skipping {topic}: type {msgtype} unknown to the typestore")
                self.tapped[topic] = None
                continue
            self.tapped[topic] = msgtype
            self.counts[topic] = 0
            self.open_topic(topic, msgtype)
            qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=self._durability(topic))
            self.create_subscription(message_class(msgtype), topic,
                                     lambda data, info, t=topic: self._receive(t, data, info), qos, raw=True)

    def _durability(self, topic: str) -> DurabilityPolicy:
        """Transient-local only if every publisher offers it (latched topics such as the reference path)."""
        offered = [info.qos_profile.durability for info in self.get_publishers_info_by_topic(topic)]
        latched = bool(offered) and all(d == DurabilityPolicy.TRANSIENT_LOCAL for d in offered)
        return DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE

    def _receive(self, topic: str, data: bytes, info) -> None:
        """Stamped with the publisher's source timestamp: receive times jitter with executor load."""
        self.counts[topic] += 1
        self.on_message(topic, data, info["source_timestamp"] or self.get_clock().now().nanoseconds)


class BagRecorder(RawTopicTap):
    """Writes every tapped topic into a rosbag2 (MCAP or sqlite3) with full message definitions."""

    def __init__(self, path: str | Path | None, topics: list[str] | None = None, storage: str = "mcap", **kwargs):
        """``path`` None: output, topics and storage come from the node's parameters (RECORDER_PARAMS)."""
        super().__init__("bag_recorder", topics, **kwargs)
        if path is None:
            values = ParameterSet(self, RECORDER_PARAMS).values
            path, storage = values["output"], values["storage"]
            self.wanted = {t for t in values["topics"] if t} or None
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(self.path, version=9, storage_plugin=plugin)
        self.writer.open()
        self._closed = False
        self.connections: dict[str, object] = {}
        self.start_discovery()

    def open_topic(self, topic: str, msgtype: str) -> None:
        self.connections[topic] = self.writer.add_connection(topic, msgtype, typestore=self.typestore)

    def on_message(self, topic: str, data: bytes, stamp_ns: int) -> None:
        self.writer.write(self.connections[topic], stamp_ns, data)

    def close(self) -> Path:
        if not self._closed:
            self.writer.close()
            self._closed = True
        return self.path


RECORDER_PARAMS = (
    ParamSpec("output", "outputs/replay_bag", "Bag folder to write (must not exist).", read_only=True),
    ParamSpec("topics", [""], "Topics to record; [''] records all.", read_only=True),
    ParamSpec("storage", "mcap", "Storage plugin.", choices=("mcap", "sqlite3"), read_only=True),
)


class BagRecorderNode(BagRecorder):
    """`ros2 run rap_planner bag_recorder_node --ros-args -p output:=PATH`: closes the bag on shutdown."""

    def __init__(self, **kwargs):
        super().__init__(None, **kwargs)

    def destroy_node(self) -> bool:
        self.close()
        return super().destroy_node()
