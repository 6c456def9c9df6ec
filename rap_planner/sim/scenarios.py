"""Scenario definitions: which net, where the ego drives, and the ranges the seed draws traffic from.

A spec is pure data. ``rap_planner.sim.traffic`` turns (spec, seed) into one concrete episode
(driver types, vehicles, scripted cut-ins and hard brakes); ``SumoWorld`` runs it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from rap_planner.core.parameters import PLANNER, ParameterError, read_parameter_file, scenario_parameter_file

NETWORKS_DIR = Path(__file__).resolve().parent / "networks"

Range = tuple[float, float]


@dataclass(frozen=True)
class TrafficStream:
    """Traffic entering on ``route_id``: pre-filled along its first edge and flowing in at its start."""

    route_id: str
    lanes: tuple[int, ...]  # lane indices on the route's first edge
    flow_vph_per_lane: Range  # inflow range, the seed picks one value per episode and stream
    prefill: bool = True  # place vehicles along the first edge at t = 0 (no empty road at start)


@dataclass(frozen=True)
class DriverRanges:
    """Ranges of driver parameters; each episode draws a few driver types from them."""

    sigma: Range = (0.2, 0.7)  # Krauss imperfection
    speed_factor_mean: Range = (0.8, 1.0)  # desired speed / speed limit
    speed_factor_dev: Range = (0.05, 0.15)
    tau_s: Range = (0.8, 1.6)
    lc_assertive: Range = (1.0, 3.0)
    lc_speed_gain: Range = (0.5, 3.0)
    lc_cooperative: Range = (0.2, 1.0)
    lc_keep_right: Range = (0.2, 1.5)
    truck_fraction: Range = (0.0, 0.1)
    num_types: int = 6


@dataclass(frozen=True)
class EventRanges:
    """Scripted interactions, drawn per episode. Rates are events per second, 0 disables."""

    first_cutin_s: Range = (2.0, 6.0)  # first forced cut-in in front of the ego
    cutin_interval_s: Range = (5.0, 10.0)  # gap between later ego cut-ins
    ego_cutins: int = 0  # number of cut-ins aimed at the ego
    cutin_gap_m: Range = (2.0, 30.0)  # bumper gap ahead of the victim the cutter must have
    cutin_lat_speed_mps: Range = (1.2, 2.8)  # lateral speed of the cut-in (3.5 m lane in 1.3-2.9 s)
    brake_after_cutin_prob: float = 0.3
    first_brake_s: Range = (8.0, 20.0)  # hard brake of the ego's leader
    ego_brakes: int = 0
    brake_speed_fraction: Range = (0.3, 0.6)  # leader slows to this fraction of its speed
    brake_duration_s: Range = (1.5, 3.0)
    brake_hold_s: Range = (1.0, 3.0)
    background_cutin_rate_per_s: Range = (0.0, 0.0)  # forced cut-ins between two other vehicles
    patience_s: float = 8.0  # how long a scripted event waits for a suitable vehicle


@dataclass(frozen=True)
class Road:
    """What the simulator and the planner must agree on about a scenario's road (one file holds it)."""

    lane_width_m: float
    lane_offsets_m: tuple[float, ...]  # lateral offsets (left positive) of usable lanes, 0 = ego lane
    speed_limit_mps: float


@lru_cache(maxsize=8)
def road(scenario: str) -> Road:
    """The road of config/scenarios/<scenario>.yaml, checked against the planner's parameter schema."""
    path = scenario_parameter_file(scenario)
    values = read_parameter_file(path, PLANNER.node, PLANNER)
    missing = [k for k in ("lane_width_m", "lane_offsets_m", "speed_limit_mps") if k not in values]
    if missing:
        raise ParameterError(f"{path}: road parameters missing: {', '.join(missing)}")
    return Road(lane_width_m=float(values["lane_width_m"]),
                lane_offsets_m=tuple(float(v) for v in values["lane_offsets_m"]),
                speed_limit_mps=float(values["speed_limit_mps"]))


@dataclass(frozen=True)
class ScenarioSpec:
    """Everything that defines a scenario except the seed."""

    name: str
    net: str  # base name of ``networks/<net>.net.xml`` and ``.rou.xml``
    ego_route_id: str
    ego_lanes: tuple[int, ...]  # ego lane index on each route edge: defines the reference centreline
    ego_depart_pos_m: float  # front bumper, along the first edge
    ego_depart_speed_mps: float
    goal_s_m: float  # distance along the reference centreline (from the route start) to reach
    timeout_s: float
    streams: tuple[TrafficStream, ...]
    drivers: DriverRanges = field(default_factory=DriverRanges)
    events: EventRanges = field(default_factory=EventRanges)
    ego_keeps_lane: bool = True  # a SUMO-driven ego (ego_controlled=False) never changes lanes by itself
    ego_clear_ahead_m: float = 25.0  # no pre-filled vehicle this close ahead of the ego in its lane
    ego_clear_behind_m: float = 30.0

    @property
    def net_path(self) -> Path:
        return NETWORKS_DIR / f"{self.net}.net.xml"

    @property
    def road(self) -> Road:
        """The road facts of config/scenarios/<name>.yaml, the file sim.launch.xml loads into the planner."""
        return road(self.name)

    @property
    def speed_limit_mps(self) -> float:
        return self.road.speed_limit_mps

    @property
    def lane_offsets_m(self) -> tuple[float, ...]:
        """Lateral offsets (left positive) of usable lanes, 0 = ego lane."""
        return self.road.lane_offsets_m

    @property
    def routes_path(self) -> Path:
        return NETWORKS_DIR / f"{self.net}.rou.xml"


HIGHWAY_CUTIN = ScenarioSpec(
    name="highway_cutin",
    net="highway",
    ego_route_id="hw",
    ego_lanes=(1,),
    ego_depart_pos_m=150.0,
    ego_depart_speed_mps=25.0,
    goal_s_m=800.0,
    timeout_s=40.0,
    streams=(TrafficStream("hw", (0, 1, 2), (1300.0, 2000.0)),),
    events=EventRanges(ego_cutins=3, ego_brakes=1, background_cutin_rate_per_s=(0.05, 0.2)),
    ego_clear_ahead_m=30.0,
)

MERGE = ScenarioSpec(
    name="merge",
    net="merge",
    ego_route_id="main",
    ego_lanes=(0, 1, 0),
    ego_depart_pos_m=300.0,
    ego_depart_speed_mps=25.0,
    goal_s_m=1000.0,
    timeout_s=45.0,
    streams=(
        TrafficStream("main", (0, 1), (1000.0, 1800.0)),
        TrafficStream("ramp", (0,), (500.0, 1100.0)),
    ),
    drivers=DriverRanges(lc_assertive=(1.5, 4.0), lc_cooperative=(0.3, 1.0)),
    events=EventRanges(ego_brakes=1, first_brake_s=(10.0, 25.0), background_cutin_rate_per_s=(0.02, 0.1)),
)

INTERSECTION = ScenarioSpec(
    name="intersection",
    net="intersection",
    ego_route_id="s_n",
    ego_lanes=(0, 0),
    ego_depart_pos_m=80.0,
    ego_depart_speed_mps=10.0,
    goal_s_m=280.0,
    timeout_s=60.0,
    streams=tuple(
        TrafficStream(f"{arm}_{target}", lanes, (150.0, 350.0))
        for arm, turns in {"s": "nwe", "n": "sew", "e": "wsn", "w": "ens"}.items()
        for target, lanes in zip(turns, ((0, 1), (1,), (0,)), strict=True)
    ),
    drivers=DriverRanges(speed_factor_mean=(0.85, 1.05), sigma=(0.3, 0.8), truck_fraction=(0.0, 0.05)),
    events=EventRanges(ego_brakes=1, first_brake_s=(3.0, 15.0), brake_speed_fraction=(0.0, 0.3)),
    ego_clear_ahead_m=20.0,
)

SCENARIOS: dict[str, ScenarioSpec] = {s.name: s for s in (HIGHWAY_CUTIN, MERGE, INTERSECTION)}


def get_scenario(name: str) -> ScenarioSpec:
    """Looks a scenario up by name with a helpful error."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {sorted(SCENARIOS)}") from None


@lru_cache(maxsize=16)
def _routes(routes_path: Path) -> dict[str, tuple[str, ...]]:
    root = ET.parse(routes_path).getroot()
    return {r.get("id"): tuple(r.get("edges").split()) for r in root.iter("route")}


def route_edges(routes_path: Path, route_id: str) -> tuple[str, ...]:
    """Edge ids of a route defined in a net's ``.rou.xml``."""
    return _routes(routes_path)[route_id]
