"""Dataset trajectories (``TrackTable``, NGSIM, highD) -> a standard rosbag2 the nodes can replay.

One vehicle of the recording plays the ego: its track becomes ``/ego/odom`` (nav_msgs/Odometry), all
other vehicles ``/perception/tracked_agents`` (rap_planner/TrackedAgentArray), one message of each per
frame, in frame "map". The bag spans the ego's lifetime (first to last frame it was seen in), because
the planner cannot run without ego odometry.

Time: header stamps and bag timestamps are the same clock, starting at 0 at the ego's first frame
(like the sim time of ``make demo``), so ``BagPlayer(publish_clock=True)`` drives ``use_sim_time``
nodes with exactly the stamps in the messages.

Messages are built and serialised with the rosbags typestore of ``rap_planner_typestore()``, so the
bag stores the message definitions and rosbags, ``ros2 bag`` and MCAP tools (Foxglove) open it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from rap_planner import topics
from rap_planner.data.highd import load_highd
from rap_planner.data.ngsim import load_ngsim
from rap_planner.data.tracks import TrackTable
from rap_planner.ros.bag_recorder import rap_planner_typestore
from rap_planner.ros.conversions import yaw_to_quaternion

TRACKS_TYPE = "rap_planner/msg/TrackedAgentArray"
ODOM_TYPE = "nav_msgs/msg/Odometry"
FRAME_ID = "map"
EGO_CHILD_FRAME_ID = "base_link"
STORAGE_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
TRUCK_MIN_LENGTH_M = 7.0  # the table keeps no class: both datasets hold only motor vehicles, long ones are trucks
LISTED_IDS = 10  # valid ids quoted in an unknown-ego error


def tracks_to_bag(table: TrackTable, out_bag: Path, ego_id: int, scene: int | None = None,
                  storage: str = "mcap") -> Path:
    """Write one scene of ``table`` as a rosbag2 directory at ``out_bag`` with ``ego_id`` as the ego.

    ``scene`` may be left out when the ego appears in exactly one scene. Raises ValueError for an
    unknown ego id, scene or storage, FileExistsError when ``out_bag`` exists.
    """
    if storage not in STORAGE_PLUGINS:
        raise ValueError(f"unknown bag storage {storage!r}; use one of {sorted(STORAGE_PLUGINS)}")
    scene_id = _ego_scene(table, int(ego_id), scene)
    cols = table.select_scenes(np.array([scene_id])).columns
    out_bag = Path(out_bag)
    if out_bag.exists():
        raise FileExistsError(f"{out_bag} exists already; remove it or choose another output path")
    out_bag.parent.mkdir(parents=True, exist_ok=True)
    store = rap_planner_typestore()
    with Writer(out_bag, version=9, storage_plugin=STORAGE_PLUGINS[storage]) as writer:
        tracks_conn = writer.add_connection(topics.TRACKED_AGENTS, TRACKS_TYPE, typestore=store)
        odom_conn = writer.add_connection(topics.EGO_ODOM, ODOM_TYPE, typestore=store)
        for stamp_ns, rows in _frames_of_ego_lifetime(cols, int(ego_id), table.dt_s):
            is_ego = cols["agent_id"][rows] == ego_id
            tracks = _tracked_agent_array(store, cols, rows[~is_ego], stamp_ns)
            writer.write(tracks_conn, stamp_ns, store.serialize_cdr(tracks, TRACKS_TYPE))
            if is_ego.any():
                odom = _odometry(store, cols, int(rows[is_ego][0]), stamp_ns)
                writer.write(odom_conn, stamp_ns, store.serialize_cdr(odom, ODOM_TYPE))
    return out_bag


def ngsim_to_bag(csv_path: Path, out_bag: Path, ego_id: int, storage: str = "mcap") -> Path:
    """An NGSIM trajectory file (see ``load_ngsim``) as a bag with vehicle ``ego_id`` as the ego."""
    return tracks_to_bag(load_ngsim(csv_path), out_bag, ego_id, storage=storage)


def highd_to_bag(tracks_csv: Path, out_bag: Path, ego_id: int, recording_meta_csv: Path | None = None,
                 storage: str = "mcap") -> Path:
    """A highD ``XX_tracks.csv`` as a bag with track ``ego_id`` as the ego.

    The frame rate comes from ``recording_meta_csv`` when given, else from the sibling
    ``XX_recordingMeta.csv`` the loader finds itself (25 Hz when there is none).
    """
    if recording_meta_csv is None:
        table = load_highd(tracks_csv)
    else:
        rate_hz, recording_id = _highd_meta(Path(recording_meta_csv))
        loaded = load_highd(tracks_csv, scene=recording_id)
        table = TrackTable(loaded.columns, 1.0 / rate_hz, loaded.meta)
    return tracks_to_bag(table, out_bag, ego_id, storage=storage)


def _highd_meta(path: Path) -> tuple[float, int | None]:
    """frameRate and id of a highD recordingMeta file given explicitly (not next to the tracks)."""
    with path.open(newline="") as f:
        row = {k.strip(): v for k, v in next(csv.DictReader(f)).items()}
    if "frameRate" not in row:
        raise ValueError(f"{path}: highD recording meta lacks the frameRate column")
    rate_hz = float(row["frameRate"])
    if not np.isfinite(rate_hz) or rate_hz <= 0:
        raise ValueError(f"{path}: invalid frameRate {rate_hz}")
    return rate_hz, int(float(row["id"])) if row.get("id") else None


def _ego_scene(table: TrackTable, ego_id: int, scene: int | None) -> int:
    """The scene to convert; a clear ValueError when the ego or the scene does not exist."""
    ids_in = table["agent_id"]
    if scene is not None:
        if scene not in table.scenes:
            raise ValueError(f"scene {scene} is not in the table; scenes: {_few(table.scenes)}")
        ids_in = ids_in[table["scene"] == scene]
    if ego_id not in ids_in:
        where = f"scene {scene}" if scene is not None else "the table"
        raise ValueError(f"ego id {ego_id} is not in {where}; valid ids include {_few(np.unique(ids_in))}")
    if scene is not None:
        return int(scene)
    scenes = np.unique(table["scene"][table["agent_id"] == ego_id])
    if len(scenes) > 1:
        raise ValueError(f"ego id {ego_id} appears in scenes {_few(scenes)}; pass scene= to choose one")
    return int(scenes[0])


def _few(values: np.ndarray) -> str:
    shown = ", ".join(str(int(v)) for v in values[:LISTED_IDS])
    return f"{shown}, ... ({len(values)} in all)" if len(values) > LISTED_IDS else shown


def _frames_of_ego_lifetime(cols: dict[str, np.ndarray], ego_id: int, dt_s: float):
    """(stamp_ns, row indices) per frame from the ego's first to its last frame (rows sorted by frame)."""
    ego_frames = cols["frame"][cols["agent_id"] == ego_id]
    first, last = int(ego_frames.min()), int(ego_frames.max())
    frames, starts = np.unique(cols["frame"], return_index=True)
    ends = np.r_[starts[1:], len(cols["frame"])]
    for frame, lo, hi in zip(frames, starts, ends, strict=True):
        if first <= frame <= last:
            yield int(round((int(frame) - first) * dt_s * 1e9)), np.arange(lo, hi)


def _header(store, stamp_ns: int):
    time = store.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    return store.types["std_msgs/msg/Header"](stamp=time, frame_id=FRAME_ID)


def _tracked_agent_array(store, cols: dict[str, np.ndarray], rows: np.ndarray, stamp_ns: int):
    """Velocity in frame axes from heading and speed; acceleration and covariance unknown (flag / zeros)."""
    agent_cls = store.types["rap_planner/msg/TrackedAgent"]
    agents = []
    for i in rows:
        yaw, v, length = float(cols["yaw_rad"][i]), float(cols["v_mps"][i]), float(cols["length_m"][i])
        classification = agent_cls.CLASS_TRUCK if length >= TRUCK_MIN_LENGTH_M else agent_cls.CLASS_CAR
        agents.append(agent_cls(id=int(cols["agent_id"][i]), classification=classification, x=float(cols["x_m"][i]),
                                y=float(cols["y_m"][i]), yaw=yaw, vx=v * math.cos(yaw), vy=v * math.sin(yaw),
                                has_acceleration=False, ax=0.0, ay=0.0, length=length, width=float(cols["width_m"][i]),
                                covariance=np.zeros(25)))
    return store.types[TRACKS_TYPE](header=_header(store, stamp_ns), agents=agents)


def _odometry(store, cols: dict[str, np.ndarray], row: int, stamp_ns: int):
    """Pose of the ego's footprint centre; twist in the body frame (REP 105), as ``ego_to_odometry`` does."""
    t = store.types
    qx, qy, qz, qw = yaw_to_quaternion(float(cols["yaw_rad"][row]))
    pose = t["geometry_msgs/msg/Pose"](
        position=t["geometry_msgs/msg/Point"](x=float(cols["x_m"][row]), y=float(cols["y_m"][row]), z=0.0),
        orientation=t["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw))
    vector = t["geometry_msgs/msg/Vector3"]
    twist = t["geometry_msgs/msg/Twist"](linear=vector(x=float(cols["v_mps"][row]), y=0.0, z=0.0),
                                         angular=vector(x=0.0, y=0.0, z=0.0))
    return t[ODOM_TYPE](header=_header(store, stamp_ns), child_frame_id=EGO_CHILD_FRAME_ID,
                        pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
                        twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)))
