"""Live Foxglove WebSocket server (foxglove-sdk): every topic forwarded as raw CDR with its ros2msg schema.

Open Foxglove, "Open connection", ws://localhost:8765. Enabled with `foxglove:=true` in sim.launch.xml.
"""

from __future__ import annotations

import foxglove

from rap_planner.ros.bag_recorder import RawTopicTap
from rap_planner.ros.params import ParameterSet, ParamSpec

BRIDGE_PARAMS = (
    ParamSpec("port", 8765, "WebSocket port.", 1024, 65535, read_only=True),
    ParamSpec("host", "127.0.0.1", "Interface to listen on.", read_only=True),
)


class FoxgloveBridge(RawTopicTap):
    def __init__(self, **kwargs):
        super().__init__("foxglove_bridge", None, **kwargs)
        values = ParameterSet(self, BRIDGE_PARAMS).values
        self.server = foxglove.start_server(name="rap_planner", host=values["host"], port=values["port"])
        self.channels: dict[str, foxglove.Channel] = {}
        self.get_logger().info(f"Foxglove WebSocket server on ws://{values['host']}:{self.server.port}")
        self.start_discovery()

    def open_topic(self, topic: str, msgtype: str) -> None:
        msgdef, _ = self.typestore.generate_msgdef(msgtype, ros_version=2)
        schema = foxglove.Schema(name=msgtype, encoding="ros2msg", data=msgdef.encode())
        self.channels[topic] = foxglove.Channel(topic, schema=schema, message_encoding="cdr")

    def on_message(self, topic: str, data: bytes, stamp_ns: int) -> None:
        self.channels[topic].log(data, log_time=stamp_ns)

    def destroy_node(self) -> bool:
        self.server.stop()
        return super().destroy_node()
