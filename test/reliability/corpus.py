"""Hostile input messages: a hand-written corpus and hypothesis strategies for the stack's four inputs.

Every entry is ``(topic key, message or raw bytes, label)``; keys are those of ``harness.TOPICS``.
Stamps are relative to ``now_s`` where it matters, so good-looking messages reach the planner's
freshness checks instead of all being rejected as stale.
"""

from __future__ import annotations

import array
import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from hypothesis import strategies as st
from nav_msgs.msg import Odometry, Path
from rclpy.serialization import serialize_message

from rap_planner.msg import AgentPrediction, PredictionArray, TrackedAgent, TrackedAgentArray
from rap_planner.ros.conversions import s_to_stamp

NAN, INF = math.nan, math.inf
BAD_FLOATS = (NAN, INF, -INF, 1e300, -1e300, 1e30, 3.5e38, -0.0, 5e-324)
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
K, T = 2, 25  # mode count and steps of the hand-written forecasts (the shipped model's T)


def f32(values) -> array.array:
    return array.array("f", np.asarray(values, dtype=np.float32).tobytes())


# --- builders ------------------------------------------------------------------------------------

def agent(i: int = 1, x: float = 30.0, y: float = 0.0, **fields) -> TrackedAgent:
    values = dict(id=i, classification=1, x=x, y=y, yaw=0.0, vx=25.0, vy=0.0, has_acceleration=True, ax=0.0,
                  ay=0.0, length=4.5, width=1.8)
    values.update(fields)
    return TrackedAgent(**values)


def tracks(agents, stamp_s: float, frame_id: str = "map", stamp: Time | None = None) -> TrackedAgentArray:
    msg = TrackedAgentArray(agents=list(agents))
    msg.header.stamp = stamp if stamp is not None else s_to_stamp(stamp_s)
    msg.header.frame_id = frame_id
    return msg


def odom(stamp_s: float, x: float = 0.0, y: float = 0.0, v: float = 25.0, frame_id: str = "map",
         stamp: Time | None = None, q=(0.0, 0.0, 0.0, 1.0), vy: float = 0.0, z: float = 0.0) -> Odometry:
    msg = Odometry()
    msg.header.stamp = stamp if stamp is not None else s_to_stamp(stamp_s)
    msg.header.frame_id = frame_id
    msg.child_frame_id = "base_link"
    p, o = msg.pose.pose.position, msg.pose.pose.orientation
    p.x, p.y, p.z = x, y, z
    o.x, o.y, o.z, o.w = q
    msg.twist.twist.linear.x, msg.twist.twist.linear.y = v, vy
    return msg


def prediction_agent(i: int = 1, x0: float = 40.0, **arrays) -> AgentPrediction:
    """A well-formed 2-mode forecast driving along +x; ``arrays`` replace fields (lists or arrays)."""
    steps = np.arange(1, T + 1) * 0.2 * 25.0
    values = {"mode_weights": [0.7, 0.3], "mean_x": np.concatenate([x0 + steps, x0 + 0.8 * steps]),
              "mean_y": np.zeros(K * T), "cov_xx": np.full(K * T, 0.5), "cov_xy": np.zeros(K * T),
              "cov_yy": np.full(K * T, 0.5), "sample_x": [], "sample_y": []}
    length, width = arrays.pop("length", 4.5), arrays.pop("width", 1.8)
    values.update(arrays)
    msg = AgentPrediction(id=i, length=length, width=width)
    for name, value in values.items():
        setattr(msg, name, f32(value))
    return msg


def predictions(agents, stamp_s: float, dt: float = 0.2, num_steps: int = T, num_modes: int = K,
                num_samples: int = 0, sample_weights=(), frame_id: str = "map",
                stamp: Time | None = None) -> PredictionArray:
    msg = PredictionArray(dt=dt, num_steps=num_steps, num_modes=num_modes, agents=list(agents),
                          num_samples=num_samples, sample_weights=f32(sample_weights), sample_risk_level=0.0)
    msg.header.stamp = stamp if stamp is not None else s_to_stamp(stamp_s)
    msg.header.frame_id = frame_id
    return msg


def path(points, frame_id: str = "map") -> Path:
    msg = Path()
    msg.header.frame_id = frame_id
    for x, y in points:
        pose = PoseStamped()
        pose.header.frame_id = frame_id
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        msg.poses.append(pose)
    return msg


# --- the hand-written corpus ------------------------------------------------------------------------

def hostile_tracks(now_s: float) -> list[tuple[str, object, str]]:
    out = []
    fields64 = ("x", "y", "yaw", "vx", "vy", "ax", "ay")
    for value in BAD_FLOATS:
        for name in fields64:
            out.append(("tracks", tracks([agent(1), agent(2, **{name: value})], now_s), f"agent.{name}={value}"))
        for name in ("length", "width"):
            out.append(("tracks", tracks([agent(1), agent(2, **{name: value})], now_s), f"agent.{name}={value}"))
        out.append(("tracks", tracks([agent(2, covariance=np.full(25, value))], now_s), f"covariance={value}"))
    out += [
        ("tracks", tracks([agent(i, **{n: NAN for n in fields64}, length=NAN, width=NAN) for i in range(5)], now_s),
         "every numeric field NaN"),
        ("tracks", tracks([], now_s), "0 agents"),
        ("tracks", tracks([agent(i, x=float(i % 2000), y=3.5 * (i % 3)) for i in range(10_000)], now_s),
         "10,000 agents"),
        ("tracks", tracks([agent(7), agent(7, x=80.0), agent(7, x=-50.0)], now_s), "duplicate ids"),
        ("tracks", tracks([agent(7, x=5000.0, y=-300.0)], now_s + 0.05), "reused id: 5 km jump in 50 ms"),
        ("tracks", tracks([agent(UINT64_MAX), agent(0)], now_s), "ids 0 and 2^64-1"),
        ("tracks", tracks([agent(1)], now_s - 0.3), "time backwards by 0.3 s"),
        ("tracks", tracks([agent(1)], now_s - 3600.0), "time backwards by an hour"),
        ("tracks", tracks([agent(1)], now_s + 3600.0), "an hour in the future"),
        ("tracks", tracks([agent(1)], 0.0, stamp=Time(sec=INT32_MAX, nanosec=UINT32_MAX)), "stamp at int32 max"),
        ("tracks", tracks([agent(1)], 0.0, stamp=Time(sec=-(2**31), nanosec=0)), "stamp at int32 min"),
        ("tracks", tracks([agent(1)], 0.0, stamp=Time(sec=0, nanosec=0)), "stamp zero"),
        ("tracks", tracks([agent(1, length=-4.5, width=-1.8)], now_s), "negative size"),
        ("tracks", tracks([agent(1, length=1e30, width=1e30)], now_s), "huge size"),
        ("tracks", tracks([agent(1, length=0.0, width=0.0)], now_s), "zero size"),
        ("tracks", tracks([agent(1, classification=255)], now_s), "unknown class"),
        ("tracks", tracks([agent(1, vx=1e30, vy=-1e30)], now_s), "absurd velocity"),
        ("tracks", tracks([agent(1), agent(2, x=1e300)], now_s), "one agent at 1e300 m"),
        ("tracks", tracks([agent(1), agent(2, x=1e12)], now_s), "one agent at 1e12 m"),
    ]
    for frame in ("odom", "", "MAP", "map ", "/map", "ç" * 300):
        out.append(("tracks", tracks([agent(1)], now_s, frame_id=frame), f"frame {frame[:8]!r}"))
    return out


def hostile_odometry(now_s: float) -> list[tuple[str, object, str]]:
    out = []
    for value in BAD_FLOATS:
        for name in ("x", "y", "v", "vy", "z"):
            out.append(("odom", odom(now_s, **{name: value}), f"odom.{name}={value}"))
        for i in range(4):
            q = [0.0, 0.0, 0.0, 1.0]
            q[i] = value
            out.append(("odom", odom(now_s, q=tuple(q)), f"odom.q[{i}]={value}"))
    out += [
        ("odom", odom(now_s, q=(0.0, 0.0, 0.0, 0.0)), "zero quaternion"),
        ("odom", odom(now_s, q=(0.0, 0.0, 10.0, 10.0)), "unnormalised quaternion"),
        ("odom", odom(now_s - 3600.0), "an hour old"),
        ("odom", odom(now_s + 3600.0), "an hour in the future"),
        ("odom", odom(0.0, stamp=Time(sec=INT32_MAX, nanosec=UINT32_MAX)), "stamp at int32 max"),
        ("odom", odom(0.0, stamp=Time(sec=-(2**31), nanosec=0)), "stamp at int32 min"),
        ("odom", odom(now_s, v=-30.0), "reversing at 30 m/s"),
        ("odom", odom(now_s, x=1e7, y=-1e7), "10,000 km away"),
    ]
    for frame in ("odom", "", "base_link"):
        out.append(("odom", odom(now_s, frame_id=frame), f"odom frame {frame!r}"))
    return out


def hostile_predictions(now_s: float) -> list[tuple[str, object, str]]:
    good = prediction_agent
    kt = K * T
    out = [
        ("predictions", predictions([good(1, mean_x=np.zeros(kt - 1))], now_s), "mean_x shorter than K*T"),
        ("predictions", predictions([good(1, mean_y=np.zeros(kt + 1))], now_s), "mean_y longer than K*T"),
        ("predictions", predictions([good(1, cov_xx=[])], now_s), "cov_xx empty"),
        ("predictions", predictions([good(1, cov_xy=np.zeros(3))], now_s), "cov_xy 3 values"),
        ("predictions", predictions([good(1, cov_yy=np.zeros(kt * 100))], now_s), "cov_yy 100x too long"),
        ("predictions", predictions([good(1, mode_weights=[])], now_s), "no mode weights"),
        ("predictions", predictions([good(1, mode_weights=[0.2, 0.2, 0.6])], now_s), "K above num_modes"),
        ("predictions", predictions([good(1, mode_weights=[1.0])], now_s), "1 weight, 2 modes of means"),
        ("predictions", predictions([good(1, mode_weights=[-0.5, 1.5])], now_s), "negative mode weight"),
        ("predictions", predictions([good(1, mode_weights=[0.0, 0.0])], now_s), "all-zero mode weights"),
        ("predictions", predictions([good(1, mode_weights=[3e38, 3e38])], now_s), "weights near float32 max"),
        ("predictions", predictions([good(1, mode_weights=[1e-45, 0.0])], now_s), "denormal weight"),
        ("predictions", predictions([good(1, cov_xx=np.full(kt, -5.0))], now_s), "negative variance"),
        ("predictions", predictions([good(1, cov_xy=np.full(kt, 10.0))], now_s), "covariance not PSD"),
        ("predictions", predictions([good(1, cov_xx=np.full(kt, 3e38), cov_yy=np.full(kt, 3e38))], now_s),
         "variance near float32 max"),
        ("predictions", predictions([good(1, mean_x=np.full(kt, 3e38))], now_s), "means near float32 max"),
        ("predictions", predictions([good(1, length=-4.0, width=1e30)], now_s), "negative / huge footprint"),
        ("predictions", predictions([good(1), good(1, x0=60.0)], now_s), "duplicate agent ids"),
        ("predictions", predictions([], now_s, num_steps=0, num_modes=0), "no agents, no steps"),
        ("predictions", predictions([good(1)], now_s, num_steps=0), "agents but num_steps 0"),
        ("predictions", predictions([], now_s, num_steps=UINT32_MAX, num_modes=UINT32_MAX), "num_steps 2^32-1"),
        ("predictions", predictions([good(1)], now_s, num_steps=UINT32_MAX), "num_steps 2^32-1 with an agent"),
        ("predictions", predictions([good(1)], now_s, num_modes=1), "num_modes below K"),
        ("predictions", predictions([good(1)], now_s, num_samples=4), "num_samples 4, no samples"),
        ("predictions", predictions([good(1, sample_x=np.zeros(3 * T), sample_y=np.zeros(3 * T))], now_s,
                                    num_samples=3, sample_weights=[0.5, 0.5]), "sample_weights too short"),
        ("predictions", predictions([good(1, sample_x=np.zeros(2 * T), sample_y=np.zeros(2 * T))], now_s,
                                    num_samples=2, sample_weights=[-1.0, 2.0]), "negative sample weight"),
        ("predictions", predictions([good(1, sample_x=np.zeros(2 * T), sample_y=np.zeros(2 * T))], now_s,
                                    num_samples=2, sample_weights=[NAN, 1.0]), "NaN sample weight"),
        ("predictions", predictions([good(1, sample_x=np.zeros(2 * T), sample_y=np.zeros(T))], now_s,
                                    num_samples=2, sample_weights=[0.5, 0.5]), "sample_y short"),
        ("predictions", predictions([good(1)], now_s, num_samples=UINT32_MAX), "num_samples 2^32-1"),
        ("predictions", predictions([good(1)], now_s - 3600.0), "an hour old"),
        ("predictions", predictions([good(1)], now_s + 3600.0), "an hour in the future"),
        ("predictions", predictions([good(1)], 0.0, stamp=Time(sec=INT32_MAX, nanosec=UINT32_MAX)), "stamp max"),
        ("predictions", predictions([good(1)], now_s, frame_id="odom"), "wrong frame"),
        ("predictions", predictions([good(i, x0=10.0 * i) for i in range(300)], now_s), "300 agents"),
    ]
    for name in ("mode_weights", "mean_x", "mean_y", "cov_xx", "cov_xy", "cov_yy"):
        for value in (NAN, INF, -INF):
            size = K if name == "mode_weights" else kt
            out.append(("predictions", predictions([good(1, **{name: np.full(size, value)})], now_s),
                        f"{name} all {value}"))
    for dt in (0.0, -0.2, NAN, INF, 1e-45, 3e38):
        out.append(("predictions", predictions([good(1)], now_s, dt=dt), f"dt={dt}"))
    return out


def hostile_paths() -> list[tuple[str, object, str]]:
    return [
        ("reference", path([]), "0 points"),
        ("reference", path([(0.0, 0.0)]), "1 point"),
        ("reference", path([(5.0, 1.0)] * 50), "50 copies of one point"),
        ("reference", path([(0.0, 0.0), (0.0, 0.0), (100.0, 0.0), (100.0, 0.0)]), "duplicate points"),
        ("reference", path([(0.0, 0.0), (NAN, 0.0), (100.0, 0.0)]), "NaN point"),
        ("reference", path([(0.0, 0.0), (INF, 0.0)]), "inf point"),
        ("reference", path([(0.0, 0.0), (1e300, 0.0)]), "1e300 m long"),
        ("reference", path([(-1e300, 0.0), (1e300, 0.0)]), "span overflows to inf"),
        ("reference", path([(0.0, 0.0), (1e9, 0.0)]), "a million km long"),
        ("reference", path([(0.0, 0.0), (1e7, 0.0)]), "10,000 km long"),
        ("reference", path([(0.0, 0.0), (100.0, 0.0), (0.0, 0.0), (100.0, 0.0)]), "doubles back on itself"),
        ("reference", path([(1e6 + 0.001 * i, 0.0) for i in range(3)]), "3 points within 2 mm"),
        ("reference", path([(float(i), 0.0) for i in range(20_000)]), "20,000 points"),
        ("reference", path([(0.0, 0.0), (1000.0, 0.0)], frame_id="odom"), "wrong frame"),
    ]


def garbage_bytes(valid: dict[str, object]) -> list[tuple[str, bytes, str]]:
    """Raw payloads: noise, empty, plausible CDR headers with absurd lengths, truncations, bit flips,
    and each input's valid CDR sent on every other input topic."""
    rng = np.random.default_rng(7)
    out = []
    for key, msg in valid.items():
        cdr = serialize_message(msg)
        out += [
            (key, b"", "empty"),
            (key, b"\x00", "1 byte"),
            (key, b"garbage bytes, not CDR at all", "ascii"),
            (key, rng.bytes(64), "64 random bytes"),
            (key, rng.bytes(100_000), "100 kB random bytes"),
            (key, b"\x00\x01\x00\x00" + b"\xff" * 60, "CDR header then 0xff"),
            (key, b"\x00\x01\x00\x00" + b"\x00" * 8 + b"\xff\xff\xff\x7f" + b"map\x00", "frame_id length 2^31"),
            (key, b"\x00\x01\x00\x00" + b"\x00" * 8 + b"\x04\x00\x00\x00map\x00" + b"\xff\xff\xff\x0f",
             "sequence length 2^28"),
            (key, cdr[: len(cdr) // 2], "valid CDR cut in half"),
            (key, cdr[:-1], "valid CDR minus one byte"),
            (key, cdr + rng.bytes(32), "valid CDR plus 32 bytes"),
            (key, b"\x01\x00\x00\x00" + cdr[4:], "big-endian flag on little-endian data"),
        ]
        for _ in range(8):
            flipped = bytearray(cdr)
            for pos in rng.integers(4, len(cdr), 3):
                flipped[pos] ^= 1 << int(rng.integers(0, 8))
            out.append((key, bytes(flipped), "valid CDR with 3 bit flips"))
        for other, other_msg in valid.items():
            if other != key:
                out.append((key, serialize_message(other_msg), f"{other} CDR on the {key} topic"))
    return out


# --- hypothesis strategies -------------------------------------------------------------------------

any_float = st.one_of(st.floats(), st.sampled_from(BAD_FLOATS), st.floats(-300.0, 300.0))
any_f32 = st.one_of(st.floats(width=32), st.floats(0.0, 10.0, width=32))
frames = st.one_of(st.just("map"), st.just("map"), st.sampled_from(["odom", "", "MAP"]),
                   st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12))


@st.composite
def stamps(draw, now_s: float) -> Time:
    if draw(st.booleans()):
        return s_to_stamp(now_s + draw(st.floats(-5.0, 5.0)))
    return Time(sec=draw(st.integers(-(2**31), INT32_MAX)), nanosec=draw(st.integers(0, UINT32_MAX)))


@st.composite
def tracked_agent_arrays(draw, now_s: float) -> TrackedAgentArray:
    agents = draw(st.lists(st.builds(
        TrackedAgent, id=st.one_of(st.integers(0, 5), st.integers(0, UINT64_MAX)),
        classification=st.integers(0, 255), x=any_float, y=any_float, yaw=any_float, vx=any_float, vy=any_float,
        has_acceleration=st.booleans(), ax=any_float, ay=any_float, length=any_f32, width=any_f32,
        covariance=st.lists(st.floats(), min_size=25, max_size=25).map(np.array)), max_size=12))
    return tracks(agents, 0.0, draw(frames), stamp=draw(stamps(now_s)))


@st.composite
def odometries(draw, now_s: float) -> Odometry:
    q = tuple(draw(st.one_of(st.floats(), st.floats(-1.0, 1.0))) for _ in range(4))
    return odom(0.0, x=draw(any_float), y=draw(any_float), v=draw(any_float), vy=draw(any_float), q=q,
                frame_id=draw(frames), stamp=draw(stamps(now_s)))


@st.composite
def prediction_arrays(draw, now_s: float) -> PredictionArray:
    steps = draw(st.sampled_from([0, 1, 3, T, UINT32_MAX]))
    modes = draw(st.integers(0, 4))
    samples = draw(st.sampled_from([0, 0, 2, UINT32_MAX]))

    def values(n):  # usually the right length, sometimes not
        size = draw(st.one_of(st.just(n), st.just(n), st.integers(0, 2 * n + 2)))
        return draw(st.lists(st.one_of(any_f32, st.floats(0.125, 2.0, width=32)), min_size=min(size, 60),
                             max_size=min(size, 60))) if size <= 60 else list(np.full(size, 0.5))

    agents = []
    for _ in range(draw(st.integers(0, 3))):
        k = draw(st.integers(0, 4))
        fields = {n: values(k * steps if steps < 100 else 3) for n in ("mean_x", "mean_y", "cov_xx", "cov_xy",
                                                                      "cov_yy")}
        fields["mode_weights"] = values(k)
        if samples and samples < 100:
            fields["sample_x"] = values(samples * steps if steps < 100 else 3)
            fields["sample_y"] = values(samples * steps if steps < 100 else 3)
        agents.append(prediction_agent(draw(st.integers(0, UINT64_MAX)), **fields))
    sample_weights = values(samples) if samples < 100 else [1.0]
    return predictions(agents, 0.0, dt=draw(st.one_of(any_f32, st.just(0.2))), num_steps=steps, num_modes=modes,
                       num_samples=samples, sample_weights=sample_weights, frame_id=draw(frames),
                       stamp=draw(stamps(now_s)))


@st.composite
def paths(draw) -> Path:
    points = draw(st.lists(st.tuples(any_float, any_float), max_size=6))
    if draw(st.booleans()) and points:
        points = points + points[-1:] * draw(st.integers(1, 3))  # repeated points
    return path(points, draw(frames))
