"""Dataset CSV -> rosbag2: read back with rosbags, the MCAP ROS 2 reader and rclpy's deserialiser."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from mcap_ros2.reader import read_ros2_messages
from rosbags.highlevel import AnyReader

from rap_planner.bagtools.convert import highd_to_bag, ngsim_to_bag, tracks_to_bag
from rap_planner.data.highd import load_highd
from rap_planner.data.ngsim import FEET_TO_M, load_ngsim
from rap_planner.topics import EGO_ODOM, TRACKED_AGENTS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NGSIM_CSV = FIXTURES / "ngsim" / "trajectories-sample.csv"
HIGHD_TRACKS = FIXTURES / "highd" / "01_tracks.csv"
HIGHD_META = FIXTURES / "highd" / "01_recordingMeta.csv"


def _read_any(bag: Path) -> list[tuple[str, int, object]]:
    with AnyReader([bag]) as reader:
        return [(c.topic, t, reader.deserialize(d, c.msgtype)) for c, t, d in reader.messages()]


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _yaw(q) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def test_ngsim_bag_has_others_as_tracks_and_ego_as_odometry(tmp_path):
    bag = ngsim_to_bag(NGSIM_CSV, tmp_path / "ngsim_bag", ego_id=7)
    messages = _read_any(bag)
    tracks = [(t, m) for topic, t, m in messages if topic == TRACKED_AGENTS]
    odoms = [(t, m) for topic, t, m in messages if topic == EGO_ODOM]
    assert len(tracks) == len(odoms) == 6  # ego 7 lives in frames 1000-1005
    expected_ns = [k * 100_000_000 for k in range(6)]  # t = 0 at the ego's first frame, 10 Hz
    assert [t for t, _ in tracks] == [_stamp_ns(m) for _, m in tracks] == expected_ns
    assert [t for t, _ in odoms] == [_stamp_ns(m) for _, m in odoms] == expected_ns
    assert all(m.header.frame_id == "map" for _, m in tracks + odoms)
    assert [[a.id for a in m.agents] for _, m in tracks] == [[], [], [9], [9], [9], [9]]
    other = tracks[2][1].agents[0]
    assert other.vx == pytest.approx(40.0 * FEET_TO_M) and other.vy == pytest.approx(0.0, abs=1e-9)
    assert other.length == pytest.approx(20.0 * FEET_TO_M, rel=1e-6) and not other.has_acceleration

    table = load_ngsim(NGSIM_CSV)
    ego = table["agent_id"] == 7
    for (_, odom), x, y, yaw, v in zip(odoms, table["x_m"][ego], table["y_m"][ego], table["yaw_rad"][ego],
                                       table["v_mps"][ego], strict=True):
        pose = odom.pose.pose
        assert (pose.position.x, pose.position.y) == pytest.approx((x, y))
        assert _yaw(pose.orientation) == pytest.approx(yaw, abs=1e-9)
        assert odom.twist.twist.linear.x == pytest.approx(v)
        assert odom.child_frame_id == "base_link"


def test_ngsim_bag_opens_with_mcap_ros2_reader(tmp_path):
    bag = ngsim_to_bag(NGSIM_CSV, tmp_path / "ngsim_bag", ego_id=9)
    messages = list(read_ros2_messages(next(bag.glob("*.mcap"))))
    assert {m.channel.topic for m in messages} == {TRACKED_AGENTS, EGO_ODOM}
    odoms = [m for m in messages if m.channel.topic == EGO_ODOM]
    tracks = [m for m in messages if m.channel.topic == TRACKED_AGENTS]
    assert len(odoms) == len(tracks) == 4  # ego 9 lives in frames 1002-1005; vehicle 7 is there throughout
    assert all([a.id for a in m.ros_msg.agents] == [7] for m in tracks)
    assert [m.log_time_ns for m in odoms] == [k * 100_000_000 for k in range(4)]
    table = load_ngsim(NGSIM_CSV)
    first = np.flatnonzero(table["agent_id"] == 9)[0]
    assert odoms[0].ros_msg.pose.pose.position.x == pytest.approx(table["x_m"][first])
    assert odoms[0].ros_msg.pose.pose.position.y == pytest.approx(table["y_m"][first])


def test_highd_bag_with_explicit_recording_meta(tmp_path):
    """The meta file is found when given explicitly, not only next to the tracks; its frame rate is used."""
    tracks_csv = tmp_path / "tracks" / "01_tracks.csv"
    tracks_csv.parent.mkdir()
    shutil.copy(HIGHD_TRACKS, tracks_csv)  # no sibling meta: the loader alone would assume 25 Hz
    meta = tmp_path / "meta.csv"
    meta.write_text(HIGHD_META.read_text().replace("\n1,25,", "\n1,10,"))
    bag = highd_to_bag(tracks_csv, tmp_path / "highd_bag", ego_id=2, recording_meta_csv=meta)
    odoms = [m for m in read_ros2_messages(next(bag.glob("*.mcap"))) if m.channel.topic == EGO_ODOM]
    assert [m.log_time_ns for m in odoms] == [k * 100_000_000 for k in range(5)]  # frames 3-7 at 10 Hz


def test_highd_bag_ego_pose_truck_class_and_both_readers(tmp_path):
    bag = highd_to_bag(HIGHD_TRACKS, tmp_path / "highd_bag", ego_id=1)
    messages = _read_any(bag)
    tracks = [m for topic, _, m in messages if topic == TRACKED_AGENTS]
    odoms = [(t, m) for topic, t, m in messages if topic == EGO_ODOM]
    assert len(tracks) == len(odoms) == 8  # ego 1: frames 1-8 at 25 Hz (sibling meta)
    assert [t for t, _ in odoms] == [k * 40_000_000 for k in range(8)]
    truck_frames = [m.agents for m in tracks if m.agents]
    assert len(truck_frames) == 5 and all([a.id for a in agents] == [2] for agents in truck_frames)
    truck = truck_frames[0][0]
    assert truck.classification == 2  # CLASS_TRUCK: 16 m long
    assert (truck.vx, truck.vy) == pytest.approx((-30.0, 0.0), abs=1e-9)
    assert (truck.x, truck.y) == pytest.approx((308.0, -11.25))

    table = load_highd(HIGHD_TRACKS)
    ego = np.flatnonzero(table["agent_id"] == 1)
    pose = odoms[3][1].pose.pose
    assert (pose.position.x, pose.position.y) == pytest.approx((table["x_m"][ego[3]], table["y_m"][ego[3]]))
    assert (pose.position.x, pose.position.y) == pytest.approx((103.0 + 2.25, -(22.06 + 0.95)))
    assert _yaw(pose.orientation) == pytest.approx(math.atan2(-0.5, 25.0))
    mcap_odoms = [m for m in read_ros2_messages(next(bag.glob("*.mcap"))) if m.channel.topic == EGO_ODOM]
    assert mcap_odoms[3].ros_msg.pose.pose.position.x == pytest.approx(pose.position.x)


def test_bag_decodes_into_the_nodes_messages(tmp_path):
    """rclpy's deserialiser and the node-side conversion accept the CDR the converter wrote."""
    from rclpy.serialization import deserialize_message

    from rap_planner.msg import TrackedAgentArray
    from rap_planner.ros.bag_player import read_raw
    from rap_planner.ros.conversions import tracked_agents_from_msg

    bag = highd_to_bag(HIGHD_TRACKS, tmp_path / "highd_bag", ego_id=1, storage="sqlite3")
    raw = [cdr for topic, _, _, cdr in read_raw(bag, {TRACKED_AGENTS})]
    agents, problems = tracked_agents_from_msg(deserialize_message(raw[2], TrackedAgentArray))
    assert problems == [] and [a.agent_id for a in agents] == [2]
    assert agents[0].stamp_s == pytest.approx(0.08) and agents[0].vx_mps == pytest.approx(-30.0)


def test_unknown_ego_scene_and_existing_output_are_reported(tmp_path):
    with pytest.raises(ValueError, match=r"ego id 8 is not in the table; valid ids include 7, 9"):
        ngsim_to_bag(NGSIM_CSV, tmp_path / "bag", ego_id=8)
    table = load_ngsim(NGSIM_CSV, segment_s=0.3)  # scenes 0 (frames 1000-1002) and 1 (1003-1005)
    with pytest.raises(ValueError, match=r"appears in scenes 0, 1; pass scene="):
        tracks_to_bag(table, tmp_path / "bag", ego_id=7)
    with pytest.raises(ValueError, match=r"scene 5 is not in the table"):
        tracks_to_bag(table, tmp_path / "bag", ego_id=7, scene=5)
    with pytest.raises(ValueError, match=r"unknown bag storage"):
        tracks_to_bag(table, tmp_path / "bag", ego_id=7, scene=1, storage="rosbag1")
    bag = tracks_to_bag(table, tmp_path / "bag", ego_id=7, scene=1)
    assert sum(topic == EGO_ODOM for topic, _, _ in _read_any(bag)) == 3
    with pytest.raises(FileExistsError):
        tracks_to_bag(table, bag, ego_id=7, scene=1)
