"""Plays a rosbag2 (MCAP or sqlite3) into DDS as raw CDR, without deserialising.

Built on rosbags + rclpy raw publishing, so it works where `ros2 bag play` is absent. Nothing is
lost: publishing starts once every topic has a subscriber (or after ``wait_subscribers_s``), and the
player waits for reliable acknowledgements before it returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from rosgraph_msgs.msg import Clock

from rap_planner.ros.bag_recorder import message_class
from rap_planner.ros.conversions import s_to_stamp
from rap_planner.ros.params import ParameterSet, ParamSpec
from rap_planner.topics import CLOCK


class BagError(RuntimeError):
    """A bag that cannot be opened or read (missing, truncated, corrupt); the message says which and where."""


@dataclass
class BagInfo:
    path: Path
    duration_s: float
    start_s: float
    message_count: int
    topics: dict[str, tuple[str, int]] = field(default_factory=dict)  # topic -> (type, count)

    def __str__(self) -> str:
        lines = [f"bag:       {self.path}", f"duration:  {self.duration_s:.3f} s", f"start:     {self.start_s:.3f} s",
                 f"messages:  {self.message_count}", "topics:"]
        lines += [f"  {t:<32} {ty:<40} {n:>8}" for t, (ty, n) in sorted(self.topics.items())]
        return "\n".join(lines)


def _open(path: str | Path) -> Reader:
    path = Path(path)
    if not path.exists():
        raise BagError(f"no bag at {path}")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:
        raise BagError(f"cannot open bag {path}: {exc}") from exc
    return reader


def bag_info(path: str | Path) -> BagInfo:
    reader = _open(path)
    try:
        topics = {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
        return BagInfo(Path(path), reader.duration * 1e-9, reader.start_time * 1e-9, reader.message_count, topics)
    finally:
        reader.close()


def read_raw(path: str | Path, topics: set[str] | None = None, start_offset_s: float = 0.0
             ) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, type, timestamp_ns, cdr) in time order. A read error past the start raises BagError
    after everything readable before it has been yielded."""
    reader = _open(path)
    try:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        start_ns = reader.start_time + int(start_offset_s * 1e9)
        try:
            for conn, timestamp, data in reader.messages(connections=conns, start=start_ns):
                yield conn.topic, conn.msgtype, timestamp, bytes(data)
        except Exception as exc:
            raise BagError(f"bag {path} is damaged: stopped reading ({exc})") from exc
    finally:
        reader.close()


@dataclass
class PlayOptions:
    rate: float = 1.0
    loop: bool = False
    start_offset_s: float = 0.0
    topics: set[str] | None = None
    remap: dict[str, str] = field(default_factory=dict)
    publish_clock: bool = False
    wait_subscribers_s: float = 5.0
    min_subscribers: int = 1  # per topic: e.g. 2 when the stack and a recorder both listen


class BagPlayer(Node):
    def __init__(self, path: str | Path | None, options: PlayOptions | None = None, **kwargs):
        """``path`` None: bag and options come from the node's parameters (PLAYER_PARAMS)."""
        super().__init__("bag_player", **kwargs)
        if path is None:
            values = ParameterSet(self, PLAYER_PARAMS).values
            path = values["bag"]
            options = PlayOptions(rate=values["rate"], loop=values["loop"], start_offset_s=values["start_offset_s"],
                                  topics={t for t in values["topics"] if t} or None,
                                  publish_clock=values["publish_clock"],
                                  wait_subscribers_s=values["wait_subscribers_s"],
                                  min_subscribers=values["min_subscribers"])
        self.path = Path(path)
        self.options = options or PlayOptions()
        if not self.options.rate > 0:
            raise ValueError("rate must be positive")
        info = bag_info(self.path)
        qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.publishers_by_topic = {}
        for topic, (msgtype, _) in info.topics.items():
            if self.options.topics is None or topic in self.options.topics:
                out = self.options.remap.get(topic, topic)
                self.publishers_by_topic[topic] = self.create_publisher(message_class(msgtype), out, qos)
        self.clock_pub = self.create_publisher(Clock, CLOCK, 10) if self.options.publish_clock else None
        self.published = 0
        self.finished = False

    def start(self) -> threading.Thread:
        """Plays in a background thread (for composition with other nodes); ``finished`` is set at the end."""
        thread = threading.Thread(target=self._play_and_finish, daemon=True)
        thread.start()
        return thread

    def _play_and_finish(self) -> None:
        try:
            self.play()
        except BagError as exc:
            self.get_logger().error(str(exc))
        finally:
            self.get_logger().info(f"played {self.published} messages from {self.path}")
            self.finished = True

    def wait_for_subscribers(self) -> bool:
        deadline = time.monotonic() + self.options.wait_subscribers_s
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() >= self.options.min_subscribers
                   for p in self.publishers_by_topic.values()):
                return True
            time.sleep(0.02)
        return False

    def play(self) -> int:
        """Publishes in (scaled) real time; returns the number of messages published."""
        self.wait_for_subscribers()
        while True:
            self._play_once()
            if not self.options.loop:
                break
        for pub in self.publishers_by_topic.values():
            pub.wait_for_all_acked(Duration(seconds=5))
        return self.published

    def _play_once(self) -> None:
        wall0 = bag0 = None
        for topic, _, stamp_ns, data in read_raw(self.path, set(self.publishers_by_topic), self.options.start_offset_s):
            if wall0 is None:
                wall0, bag0 = time.monotonic(), stamp_ns
            delay = (stamp_ns - bag0) * 1e-9 / self.options.rate - (time.monotonic() - wall0)
            if delay > 0:
                time.sleep(delay)
            if self.clock_pub is not None:
                self.clock_pub.publish(Clock(clock=s_to_stamp(stamp_ns * 1e-9)))
            self.publishers_by_topic[topic].publish(data)
            self.published += 1



PLAYER_PARAMS = (
    ParamSpec("bag", "", "Bag folder to play.", read_only=True),
    ParamSpec("rate", 1.0, "Playback speed factor [-].", 0.01, 100.0, read_only=True),
    ParamSpec("loop", False, "Start over at the end.", read_only=True),
    ParamSpec("start_offset_s", 0.0, "Skip this much of the bag [s].", 0.0, 1e6, read_only=True),
    ParamSpec("topics", [""], "Topics to play; [''] plays all.", read_only=True),
    ParamSpec("publish_clock", False, f"Publish {CLOCK} from the bag's time.", read_only=True),
    ParamSpec("min_subscribers", 1, "Subscribers every topic needs before playback starts [-].", 0, 100,
              read_only=True),
    ParamSpec("wait_subscribers_s", 10.0, "Wait this long for every topic to have a subscriber [s].", 0.0, 600.0,
              read_only=True),
)


class BagPlayerNode(BagPlayer):
    """`ros2 run rap_planner bag_player_node --ros-args -p bag:=PATH`: plays in the background at start."""

    def __init__(self, **kwargs):
        super().__init__(None, None, **kwargs)
        self.start()
