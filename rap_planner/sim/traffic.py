"""Turns (scenario, seed) into one concrete episode, and runs its scripted events inside SUMO.

All randomness of an episode comes from the seed: our numpy generator draws driver types, vehicles
and event times here, and SUMO's own ``--seed`` (the same number) drives speed factors and driver
imperfection. The same seed therefore gives the same episode, bit for bit.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

import libsumo
import numpy as np

from rap_planner.sim.geometry import load_net
from rap_planner.sim.scenarios import DriverRanges, EventRanges, ScenarioSpec, route_edges

EGO_ID = "ego"
EGO_LENGTH_M = 4.5
EGO_WIDTH_M = 1.8
DEFAULT_LC_MODE = 1621  # SUMO's default lane-change mode
CUTIN_LC_MODE = 341  # TraCI requests win over strategy; only immediate collisions are avoided
MIN_HEADWAY_S = 1.2
RETRY_S = 0.5


@dataclass(frozen=True)
class VehicleType:
    """One vType element."""

    type_id: str
    attrs: dict[str, str]


@dataclass(frozen=True)
class Departure:
    """One vehicle of the episode (``pos_m`` None: inserted at the route start)."""

    depart_s: float
    route_id: str
    type_id: str
    lane: int
    pos_m: float | None = None
    speed: str = "max"


@dataclass(frozen=True)
class ScriptedEvent:
    """A cut-in or hard brake to trigger at ``time_s`` (retried until ``deadline_s``)."""

    time_s: float
    kind: str  # "cutin" or "brake"
    victim: str  # EGO_ID, or "" for a vehicle picked at run time
    params: dict[str, float]
    deadline_s: float


@dataclass(frozen=True)
class EpisodePlan:
    """Everything SUMO needs for one episode besides the net."""

    vtypes: list[VehicleType]
    departures: list[Departure]  # sorted by depart time; ids are their indices + 1
    events: list[ScriptedEvent]
    tls_phase_fraction: float  # where in its cycle every traffic light starts


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _driver_types(rng: np.random.Generator, ranges: DriverRanges) -> list[VehicleType]:
    """A few car driver types; SUMO draws each vehicle's speed factor from its type's distribution."""
    types = []
    for i in range(ranges.num_types):
        mean, dev = _uniform(rng, ranges.speed_factor_mean), _uniform(rng, ranges.speed_factor_dev)
        attrs = {
            "vClass": "passenger", "length": f"{rng.uniform(4.0, 5.0):.2f}", "width": f"{rng.uniform(1.7, 2.0):.2f}",
            "minGap": f"{rng.uniform(1.5, 3.0):.2f}", "accel": f"{rng.uniform(2.0, 3.5):.2f}",
            "decel": f"{rng.uniform(4.0, 6.0):.2f}", "emergencyDecel": "9.0",
            "sigma": f"{_uniform(rng, ranges.sigma):.3f}", "tau": f"{_uniform(rng, ranges.tau_s):.3f}",
            "speedFactor": f"normc({mean:.3f},{dev:.3f},0.5,1.5)",
            "lcCooperative": f"{_uniform(rng, ranges.lc_cooperative):.3f}",
            "lcSpeedGain": f"{_uniform(rng, ranges.lc_speed_gain):.3f}",
            "lcKeepRight": f"{_uniform(rng, ranges.lc_keep_right):.3f}",
            "lcAssertive": f"{_uniform(rng, ranges.lc_assertive):.3f}",
            "lcImpatience": f"{rng.uniform(0.0, 0.8):.3f}",
        }
        types.append(VehicleType(f"car{i}", attrs))
    truck = {"vClass": "truck", "length": f"{rng.uniform(10.0, 16.5):.2f}", "width": "2.50", "minGap": "3.0",
             "accel": "1.0", "decel": "4.0", "emergencyDecel": "7.0", "maxSpeed": f"{rng.uniform(22.0, 25.0):.2f}",
             "sigma": f"{_uniform(rng, ranges.sigma):.3f}", "speedFactor": "normc(1.0,0.05,0.8,1.2)",
             "lcSpeedGain": "0.3", "lcKeepRight": "2.0"}
    types.append(VehicleType("truck", truck))
    ego = {"vClass": "passenger", "length": f"{EGO_LENGTH_M}", "width": f"{EGO_WIDTH_M}", "minGap": "2.0",
           "accel": "2.6", "decel": "4.5", "emergencyDecel": "9.0", "sigma": "0.2", "tau": "1.0",
           "speedFactor": "1.0", "color": "red"}
    types.append(VehicleType(EGO_ID, ego))
    return types


def _pick_type(rng: np.random.Generator, num_car_types: int, truck_fraction: float) -> str:
    return "truck" if rng.random() < truck_fraction else f"car{rng.integers(num_car_types)}"


def _prefill(rng: np.random.Generator, spec: ScenarioSpec, route_id: str, lane: int, flow_vph: float,
             edge_length_m: float, pick: Callable[[], str]) -> list[Departure]:
    """Vehicles spread along a lane at t = 0 with exponential gaps matching the stream's density."""
    speed = 0.85 * spec.speed_limit_mps
    min_gap_m = MIN_HEADWAY_S * speed + 8.0
    mean_gap_m = max(speed * 3600.0 / flow_vph, min_gap_m + 1.0)
    ego_lane = route_id == spec.ego_route_id and lane == spec.ego_lanes[0]
    clear_from_m = spec.ego_depart_pos_m - spec.ego_clear_behind_m
    clear_to_m = spec.ego_depart_pos_m + spec.ego_clear_ahead_m
    out, pos = [], edge_length_m - 5.0 - rng.uniform(0.0, mean_gap_m)
    while pos > 10.0:
        if not (ego_lane and clear_from_m < pos < clear_to_m):
            out.append(Departure(0.0, route_id, pick(), lane, round(pos, 2)))
        pos -= min_gap_m + rng.exponential(mean_gap_m - min_gap_m)
    return out


def _inflow(rng: np.random.Generator, route_id: str, lane: int, flow_vph: float, horizon_s: float,
            pick: Callable[[], str]) -> list[Departure]:
    """Poisson arrivals at the route start with a minimum headway."""
    mean_s = 3600.0 / flow_vph
    out, t = [], rng.uniform(0.0, mean_s)
    while t < horizon_s:
        out.append(Departure(round(t, 1), route_id, pick(), lane))
        t += MIN_HEADWAY_S + rng.exponential(max(mean_s - MIN_HEADWAY_S, 0.1))
    return out


def _events(rng: np.random.Generator, ranges: EventRanges, horizon_s: float) -> list[ScriptedEvent]:
    """Ego cut-ins, ego-leader brakes and background cut-ins at seeded times."""
    events = []
    t = _uniform(rng, ranges.first_cutin_s)
    for _ in range(ranges.ego_cutins):
        events.append(_cutin(rng, ranges, t, EGO_ID))
        t += _uniform(rng, ranges.cutin_interval_s)
    t = _uniform(rng, ranges.first_brake_s)
    for _ in range(ranges.ego_brakes):
        params = {"fraction": _uniform(rng, ranges.brake_speed_fraction),
                  "duration_s": _uniform(rng, ranges.brake_duration_s), "hold_s": _uniform(rng, ranges.brake_hold_s)}
        events.append(ScriptedEvent(t, "brake", EGO_ID, params, t + ranges.patience_s))
        t += _uniform(rng, ranges.cutin_interval_s)
    rate = _uniform(rng, ranges.background_cutin_rate_per_s)
    t = rng.exponential(1.0 / rate) if rate > 0 else math.inf
    while t < horizon_s:
        events.append(_cutin(rng, ranges, t, ""))
        t += rng.exponential(1.0 / rate)
    return sorted(events, key=lambda e: e.time_s)


def _cutin(rng: np.random.Generator, ranges: EventRanges, t: float, victim: str) -> ScriptedEvent:
    params = {"gap_min_m": ranges.cutin_gap_m[0], "gap_max_m": ranges.cutin_gap_m[1],
              "lat_speed_mps": _uniform(rng, ranges.cutin_lat_speed_mps), "choice": float(rng.random()),
              "brake": float(rng.random() < ranges.brake_after_cutin_prob),
              "fraction": _uniform(rng, (0.5, 0.8)), "duration_s": _uniform(rng, ranges.brake_duration_s)}
    return ScriptedEvent(t, "cutin", victim, params, t + ranges.patience_s)


def sample_episode(spec: ScenarioSpec, seed: int, horizon_s: float) -> EpisodePlan:
    """Draws one episode of ``spec``: densities, driver types, vehicles and scripted events."""
    rng = np.random.default_rng([seed, len(spec.name), sum(map(ord, spec.name))])
    vtypes = _driver_types(rng, spec.drivers)
    truck_fraction = _uniform(rng, spec.drivers.truck_fraction)

    def pick() -> str:
        return _pick_type(rng, spec.drivers.num_types, truck_fraction)

    net = load_net(spec.net_path)
    departures = [Departure(0.0, spec.ego_route_id, EGO_ID, spec.ego_lanes[0], spec.ego_depart_pos_m,
                            f"{spec.ego_depart_speed_mps:.2f}")]
    for stream in spec.streams:
        edge_length_m = net.getEdge(route_edges(spec.routes_path, stream.route_id)[0]).getLength()
        for lane in stream.lanes:
            flow = _uniform(rng, stream.flow_vph_per_lane)
            if stream.prefill:
                departures += _prefill(rng, spec, stream.route_id, lane, flow, edge_length_m, pick)
            departures += _inflow(rng, stream.route_id, lane, flow, horizon_s, pick)
    departures.sort(key=lambda d: (d.depart_s, d.type_id != EGO_ID))
    return EpisodePlan(vtypes, departures, _events(rng, spec.events, horizon_s), float(rng.random()))


def routes_xml(plan: EpisodePlan) -> str:
    """The episode as a SUMO route file (routes themselves come from the net's ``.rou.xml``)."""
    lines = ["<routes>"]
    for vtype in plan.vtypes:
        attrs = " ".join(f"{k}={quoteattr(v)}" for k, v in vtype.attrs.items())
        lines.append(f'    <vType id="{vtype.type_id}" {attrs}/>')
    for i, dep in enumerate(plan.departures):
        vid = EGO_ID if dep.type_id == EGO_ID else str(i)
        pos = "base" if dep.pos_m is None else f"{dep.pos_m:.2f}"
        lines.append(f'    <vehicle id="{vid}" type="{dep.type_id}" route="{dep.route_id}" depart="{dep.depart_s:.1f}" '
                     f'departLane="{dep.lane}" departPos="{pos}" departSpeed="{dep.speed}"/>')
    lines.append("</routes>")
    return "\n".join(lines) + "\n"


@dataclass
class EventLog:
    """What the scripted events actually did (for tests and analysis)."""

    time_s: float
    kind: str
    actor: str
    victim: str


@dataclass(order=True)
class _Pending:
    time_s: float
    order: int
    action: Callable[[float], None] = field(compare=False)


class EventRunner:
    """Executes scripted events against the running SUMO simulation, retrying until a fit vehicle shows up."""

    def __init__(self, events: list[ScriptedEvent], seed: int) -> None:
        self._queue: list[_Pending] = []
        self._order = 0
        self._rng = np.random.default_rng([seed, 7])
        self.log: list[EventLog] = []
        self._busy: set[str] = set()
        for event in events:
            self._push(event.time_s, self._attempt(event))

    def _push(self, time_s: float, action: Callable[[float], None]) -> None:
        self._order += 1
        heapq.heappush(self._queue, _Pending(time_s, self._order, action))

    def run_due(self, now_s: float) -> None:
        """Runs every action due by ``now_s`` (simulation time)."""
        while self._queue and self._queue[0].time_s <= now_s + 1e-9:
            heapq.heappop(self._queue).action(now_s)

    def _attempt(self, event: ScriptedEvent) -> Callable[[float], None]:
        def act(now_s: float) -> None:
            done = self._cutin(event, now_s) if event.kind == "cutin" else self._brake(event, now_s)
            if not done and now_s + RETRY_S <= event.deadline_s:
                self._push(now_s + RETRY_S, act)
        return act

    def _cutin(self, event: ScriptedEvent, now_s: float) -> bool:
        victims = [event.victim] if event.victim else self._shuffled_vehicles()
        for victim in victims:
            cutter, lane = self._find_cutter(victim, event.params)
            if cutter:
                self._force_lane_change(cutter, lane, event.params, now_s)
                self.log.append(EventLog(now_s, "cutin", cutter, victim))
                return True
        return False

    def _shuffled_vehicles(self) -> list[str]:
        ids = [v for v in libsumo.vehicle.getIDList() if v != EGO_ID]
        return [ids[i] for i in self._rng.permutation(len(ids))[:20]]

    def _find_cutter(self, victim: str, params: dict[str, float]) -> tuple[str, int]:
        """A vehicle in a lane beside ``victim`` whose rear is a small gap ahead of its front bumper."""
        if victim not in _vehicle_ids():
            return "", -1
        edge = libsumo.vehicle.getRoadID(victim)
        lane = libsumo.vehicle.getLaneIndex(victim)
        if not edge or edge.startswith(":") or lane < 0 or _lane_ends(edge, lane):
            return "", -1
        front = libsumo.vehicle.getLanePosition(victim)
        speed = libsumo.vehicle.getSpeed(victim)
        room_end_m = self._leader_rear(victim, front)
        candidates = []
        for other in libsumo.edge.getLastStepVehicleIDs(edge):
            if other in (victim, EGO_ID) or other in self._busy or abs(libsumo.vehicle.getLaneIndex(other) - lane) != 1:
                continue
            other_front, other_speed = libsumo.vehicle.getLanePosition(other), libsumo.vehicle.getSpeed(other)
            gap = other_front - libsumo.vehicle.getLength(other) - front
            room = room_end_m - other_front  # cutter front to the victim's leader: no cut-in into a collision
            if (params["gap_min_m"] <= gap <= params["gap_max_m"] and other_speed > speed - 4.0
                    and room > 3.0 + 0.5 * other_speed):
                candidates.append(other)
        if not candidates:
            return "", -1
        return sorted(candidates)[int(params["choice"] * len(candidates))], lane

    @staticmethod
    def _leader_rear(victim: str, front_m: float) -> float:
        """Lane position of the rear of the victim's leader (infinite when there is none in range)."""
        leader = libsumo.vehicle.getLeader(victim, 150.0)
        if not leader or not leader[0]:
            return math.inf
        return front_m + leader[1] + libsumo.vehicle.getMinGap(victim)

    def _force_lane_change(self, cutter: str, lane: int, params: dict[str, float], now_s: float) -> None:
        default_lat = libsumo.vehicle.getMaxSpeedLat(cutter)
        libsumo.vehicle.setLaneChangeMode(cutter, CUTIN_LC_MODE)
        libsumo.vehicle.setMaxSpeedLat(cutter, params["lat_speed_mps"])
        libsumo.vehicle.changeLane(cutter, lane, 5.0)
        self._busy.add(cutter)

        def release(_: float) -> None:
            if cutter in _vehicle_ids():
                libsumo.vehicle.setLaneChangeMode(cutter, DEFAULT_LC_MODE)
                libsumo.vehicle.setMaxSpeedLat(cutter, default_lat)
            self._busy.discard(cutter)

        self._push(now_s + 6.0, release)
        if params["brake"]:
            lc_time_s = 3.5 / params["lat_speed_mps"]
            self._push(now_s + lc_time_s + 0.5, lambda t: self._slow_down(cutter, params, t))

    def _brake(self, event: ScriptedEvent, now_s: float) -> bool:
        if event.victim not in _vehicle_ids():
            return False
        leader = libsumo.vehicle.getLeader(event.victim, 80.0)
        if not leader or not leader[0] or leader[0] in self._busy:
            return False
        self._slow_down(leader[0], event.params, now_s)
        self.log.append(EventLog(now_s, "brake", leader[0], event.victim))
        return True

    def _slow_down(self, vid: str, params: dict[str, float], now_s: float) -> None:
        """Linear slow-down to a fraction of the current speed, held a while, then released."""
        if vid not in _vehicle_ids():
            return
        target = params["fraction"] * libsumo.vehicle.getSpeed(vid)
        decel = libsumo.vehicle.getDecel(vid)
        libsumo.vehicle.setDecel(vid, max(decel, 8.0))
        libsumo.vehicle.slowDown(vid, target, params["duration_s"])
        self._busy.add(vid)
        hold_end = now_s + params["duration_s"] + params.get("hold_s", 1.0)

        def hold(_: float) -> None:
            if vid in _vehicle_ids():
                libsumo.vehicle.setSpeed(vid, target)

        def release(_: float) -> None:
            if vid in _vehicle_ids():
                libsumo.vehicle.setSpeed(vid, -1.0)
                libsumo.vehicle.setDecel(vid, decel)
            self._busy.discard(vid)

        self._push(now_s + params["duration_s"], hold)
        self._push(hold_end, release)


def _vehicle_ids() -> tuple[str, ...]:
    return libsumo.vehicle.getIDList()


def _lane_ends(edge: str, lane: int) -> bool:
    """True for a lane drop (an acceleration lane): no successor while a sibling lane has one."""
    links = [libsumo.lane.getLinkNumber(f"{edge}_{i}") for i in range(libsumo.edge.getLaneNumber(edge))]
    return links[lane] == 0 and any(links)
