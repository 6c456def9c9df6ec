"""``SumoWorld``: one SUMO episode in-process (libsumo), seen through our types and frames.

libsumo holds one simulation per process and must be driven from one thread, so only one world
may be open at a time. Positions handed out are footprint centres in the world frame (REP 103);
SUMO's front-bumper positions and compass angles never leave this module.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import libsumo
import numpy as np
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep

from rap_planner.core.types import EgoState, TrackedAgent
from rap_planner.sim.geometry import (
    ReferencePath,
    build_reference_path,
    centre_to_front,
    drivable_area,
    footprint,
    front_to_centre,
    sumo_angle_to_yaw,
    yaw_to_sumo_angle,
)
from rap_planner.sim.scenarios import ScenarioSpec, get_scenario, route_edges
from rap_planner.sim.traffic import EGO_ID, EventLog, EventRunner, routes_xml, sample_episode

EGO_AGENT_ID = 0
CLASS_CAR = 1  # TrackedAgent.msg CLASS_* values
CLASS_TRUCK = 2
SUBSCRIBED = (libsumo.VAR_POSITION, libsumo.VAR_ANGLE, libsumo.VAR_SPEED, libsumo.VAR_ACCELERATION)
MOVE_MATCH_THRESHOLD_M = 1.0e4  # moveToXY accepts poses this far from any lane (keepRoute=2: anywhere)
OFF_ROAD_TOLERANCE_M = 0.3


@dataclass(frozen=True)
class Collision:
    """An ego collision found this step, by our footprint test and/or SUMO's own report."""

    stamp_s: float
    other_id: int
    by_footprint: bool
    by_sumo: bool


@dataclass(frozen=True)
class Event:
    """Something that ends or marks an episode: collision, goal_reached, timeout, off_road."""

    kind: str
    stamp_s: float
    detail: str = ""


TERMINAL_EVENTS = frozenset({"collision", "goal_reached", "timeout"})


@dataclass(frozen=True)
class VehicleArrays:
    """All vehicles of one step as arrays (ego included, id 0): the recorder's fast path."""

    agent_id: np.ndarray
    x_m: np.ndarray
    y_m: np.ndarray
    yaw_rad: np.ndarray
    v_mps: np.ndarray
    a_mps2: np.ndarray
    length_m: np.ndarray
    width_m: np.ndarray


def sumo_command(spec: ScenarioSpec, episode_routes: Path, seed: int, step_s: float) -> list[str]:
    """The command line libsumo starts with (no GUI, no output files)."""
    return [
        "sumo", "-n", str(spec.net_path), "-r", f"{spec.routes_path},{episode_routes}",
        "--step-length", f"{step_s}", "--seed", str(seed), "--begin", "0",
        "--no-step-log", "true", "--no-warnings", "true", "--duration-log.disable", "true",
        "--xml-validation", "never",
        "--collision.action", "warn", "--collision.check-junctions", "true", "--collision.mingap-factor", "0",
        "--lanechange.duration", "3", "--time-to-teleport", "-1", "--max-depart-delay", "2",
    ]


class SumoWorld:
    """A seeded SUMO episode of one scenario with an ego that is planned outside or driven by SUMO.

    Use as a context manager (``with SumoWorld("highway_cutin", seed=3) as world:``); ``reset()``
    restarts the same seed from scratch.
    """

    _open: ClassVar[SumoWorld | None] = None

    def __init__(self, scenario: str | ScenarioSpec, seed: int, step_s: float = 0.1, ego_controlled: bool = True,
                 horizon_s: float | None = None) -> None:
        self.spec = scenario if isinstance(scenario, ScenarioSpec) else get_scenario(scenario)
        self.seed = int(seed)
        self.step_s = float(step_s)
        self.ego_controlled = ego_controlled
        self.horizon_s = float(horizon_s if horizon_s is not None else self.spec.timeout_s)
        self._tmp_dir: Path | None = None
        self._reference: ReferencePath | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self._step_index = 0
        self._sizes: dict[str, tuple[float, float]] = {}
        self._classes: dict[str, int] = {}
        self._state: dict[str, dict[int, object]] = {}
        self._ego_present = False
        self._last_ego: EgoState | None = None
        self._events_cache: tuple[int, list[Event]] | None = None
        self._runner: EventRunner | None = None

    def __enter__(self) -> SumoWorld:
        self.reset()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def reset(self) -> None:
        """(Re)starts the episode: same seed, same traffic, same events."""
        if SumoWorld._open is not None and SumoWorld._open is not self:
            raise RuntimeError("another SumoWorld is open in this process (libsumo runs one simulation); close it")
        self.close()
        self._tmp_dir = Path(tempfile.mkdtemp(prefix="rap_sumo_"))
        plan = sample_episode(self.spec, self.seed, self.horizon_s)
        episode_routes = self._tmp_dir / "episode.rou.xml"
        episode_routes.write_text(routes_xml(plan))
        libsumo.start(sumo_command(self.spec, episode_routes, self.seed, self.step_s))
        SumoWorld._open = self
        self._reset_state()
        self._runner = EventRunner(plan.events, self.seed)
        libsumo.simulationStep()
        self._after_step()
        self._start_traffic_lights(plan.tls_phase_fraction)
        if not self._ego_present:
            self.close()
            raise RuntimeError(f"ego could not be inserted in {self.spec.name} seed {self.seed}")
        if self.ego_controlled:
            libsumo.vehicle.setSpeedMode(EGO_ID, 0)
            libsumo.vehicle.setLaneChangeMode(EGO_ID, 0)
            libsumo.vehicle.setSpeed(EGO_ID, self.spec.ego_depart_speed_mps)
        elif self.spec.ego_keeps_lane:
            libsumo.vehicle.setLaneChangeMode(EGO_ID, 0)

    def close(self) -> None:
        """Ends the simulation and removes the episode's temporary files."""
        if SumoWorld._open is self:
            libsumo.close()
            SumoWorld._open = None
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None

    def _start_traffic_lights(self, fraction: float) -> None:
        """Starts every signal at a seeded point of its cycle so the ego meets different phases."""
        for tls in libsumo.trafficlight.getIDList():
            phases = libsumo.trafficlight.getAllProgramLogics(tls)[0].phases
            offset_s = fraction * sum(p.duration for p in phases)
            for index, phase in enumerate(phases):
                if offset_s < phase.duration:
                    libsumo.trafficlight.setPhase(tls, index)
                    libsumo.trafficlight.setPhaseDuration(tls, phase.duration - offset_s)
                    break
                offset_s -= phase.duration

    @property
    def time_s(self) -> float:
        """Episode time: 0 right after ``reset()``."""
        return self._step_index * self.step_s

    @property
    def event_log(self) -> list[EventLog]:
        """Scripted cut-ins and brakes that were carried out so far."""
        return list(self._runner.log) if self._runner else []

    def step(self, num_steps: int = 1) -> None:
        """Advances the simulation; scripted events due are triggered first."""
        self._require_open()
        for _ in range(num_steps):
            self._runner.run_due(self.time_s)
            libsumo.simulationStep()
            self._step_index += 1
            self._after_step()

    def _after_step(self) -> None:
        """Keeps the subscriptions and size cache in step with departures and arrivals."""
        for vid in libsumo.simulation.getDepartedIDList():
            libsumo.vehicle.subscribe(vid, SUBSCRIBED)
            self._sizes[vid] = (libsumo.vehicle.getLength(vid), libsumo.vehicle.getWidth(vid))
            self._classes[vid] = CLASS_TRUCK if libsumo.vehicle.getVehicleClass(vid) == "truck" else CLASS_CAR
        for vid in libsumo.simulation.getArrivedIDList():
            self._sizes.pop(vid, None)
            self._classes.pop(vid, None)
        self._state = libsumo.vehicle.getAllSubscriptionResults()
        self._ego_present = EGO_ID in self._state
        if self._ego_present:
            self._last_ego = self._ego_from_state()

    def _require_open(self) -> None:
        if SumoWorld._open is not self:
            raise RuntimeError("world is not running: call reset() or use it as a context manager")

    def _centre_pose(self, vid: str) -> tuple[float, float, float, float, float]:
        """x, y (footprint centre), yaw, speed, acceleration of a vehicle from this step's subscription."""
        values = self._state[vid]
        (fx, fy), angle = values[libsumo.VAR_POSITION], values[libsumo.VAR_ANGLE]
        yaw = sumo_angle_to_yaw(angle)
        x, y = front_to_centre(fx, fy, yaw, self._sizes[vid][0])
        return x, y, yaw, values[libsumo.VAR_SPEED], values[libsumo.VAR_ACCELERATION]

    def agents(self) -> list[TrackedAgent]:
        """Every vehicle but the ego, in the world frame (footprint centre, velocity along the heading)."""
        arrays = self.vehicle_arrays()
        stamp = self.time_s
        cos, sin = np.cos(arrays.yaw_rad), np.sin(arrays.yaw_rad)
        rows = zip(arrays.agent_id.tolist(), arrays.x_m.tolist(), arrays.y_m.tolist(), arrays.yaw_rad.tolist(),
                   arrays.v_mps.tolist(), arrays.a_mps2.tolist(), arrays.length_m.tolist(), arrays.width_m.tolist(),
                   cos.tolist(), sin.tolist(), strict=True)
        classes = [self._classes[vid] for vid in self._state]
        return [TrackedAgent(i, stamp, x, y, yaw, v * c, v * s, length, width, a * c, a * s, cls)
                for (i, x, y, yaw, v, a, length, width, c, s), cls in zip(rows, classes, strict=True)
                if i != EGO_AGENT_ID]

    def _ego_from_state(self) -> EgoState:
        x, y, yaw, v, a = self._centre_pose(EGO_ID)
        length, width = self._sizes[EGO_ID]
        return EgoState(self.time_s, x, y, yaw, v, a, length, width)

    def ego(self) -> EgoState:
        """The ego now (its last state if SUMO already let it leave the net)."""
        if self._last_ego is None:
            raise RuntimeError("no ego state: call reset() first")
        return self._last_ego

    @property
    def ego_present(self) -> bool:
        return self._ego_present

    def apply_ego_state(self, x_m: float, y_m: float, yaw_rad: float, v_mps: float) -> None:
        """Puts the ego at a planned pose (footprint centre) for the next ``step()``, anywhere on or off the road."""
        self._require_open()
        if not self.ego_controlled:
            raise RuntimeError("the ego is driven by SUMO in this world (ego_controlled=False)")
        if not self._ego_present:
            raise RuntimeError("the ego has left the simulation")
        if not all(math.isfinite(value) for value in (x_m, y_m, yaw_rad, v_mps)):
            raise ValueError(f"non-finite ego state {(x_m, y_m, yaw_rad, v_mps)}")
        length = self._sizes[EGO_ID][0]
        fx, fy = centre_to_front(x_m, y_m, yaw_rad, length)
        libsumo.vehicle.moveToXY(EGO_ID, "", -1, fx, fy, yaw_to_sumo_angle(yaw_rad), 2, MOVE_MATCH_THRESHOLD_M)
        libsumo.vehicle.setSpeed(EGO_ID, max(float(v_mps), 0.0))

    def reference_path(self) -> ReferencePath:
        """The ego's lane centreline along its route, lane width, usable lane offsets, speed limit, goal."""
        if self._reference is None:
            edges = list(route_edges(self.spec.routes_path, self.spec.ego_route_id))
            self._reference = build_reference_path(self.spec.net_path, edges, self.spec.ego_lanes,
                                                   self.spec.lane_offsets_m, self.spec.speed_limit_mps,
                                                   self.spec.goal_s_m)
        return self._reference

    def drivable_area(self) -> BaseGeometry:
        """Union of every lane and junction of the net (shapely geometry, world frame)."""
        return drivable_area(self.spec.net_path)

    def ego_progress_m(self) -> float:
        """Arc length of the ego's footprint centre along the reference path."""
        ego = self.ego()
        return self.reference_path().project(ego.x_m, ego.y_m)[0]

    def ego_signal(self) -> tuple[float, str] | None:
        """Distance to the next traffic light on the ego's route and its state ('r', 'y', 'G', ...)."""
        if not self._ego_present:
            return None
        upcoming = libsumo.vehicle.getNextTLS(EGO_ID)
        return (float(upcoming[0][2]), upcoming[0][3]) if upcoming else None

    def check_collisions(self) -> list[Collision]:
        """Ego collisions now: rotated-footprint overlap (catches side swipes SUMO misses) and SUMO's report."""
        if not self._ego_present:
            return []
        ego = self.ego()
        ego_box = footprint(ego.x_m, ego.y_m, ego.yaw_rad, ego.length_m, ego.width_m)
        arrays = self.vehicle_arrays()
        reach = 0.5 * (math.hypot(ego.length_m, ego.width_m) + np.hypot(arrays.length_m, arrays.width_m))
        near = (np.hypot(arrays.x_m - ego.x_m, arrays.y_m - ego.y_m) <= reach) & (arrays.agent_id != EGO_AGENT_ID)
        hits: dict[int, list[bool]] = {}
        for i in np.flatnonzero(near):
            other = footprint(arrays.x_m[i], arrays.y_m[i], arrays.yaw_rad[i], arrays.length_m[i], arrays.width_m[i])
            if ego_box.intersection(other).area > 1e-6:
                hits[int(arrays.agent_id[i])] = [True, False]
        for collision in libsumo.simulation.getCollisions():
            if EGO_ID in (collision.collider, collision.victim):
                other = collision.victim if collision.collider == EGO_ID else collision.collider
                hits.setdefault(int(other), [False, False])[1] = True
        return [Collision(self.time_s, other, fp, sumo) for other, (fp, sumo) in sorted(hits.items())]

    def events(self) -> list[Event]:
        """This step's events: collision, goal_reached, timeout, off_road (ego footprint leaves the road)."""
        if self._events_cache is not None and self._events_cache[0] == self._step_index:
            return list(self._events_cache[1])
        out = [Event("collision", self.time_s, f"with {c.other_id}") for c in self.check_collisions()]
        if self._last_ego is not None:
            progress = self.ego_progress_m()
            if progress >= self.spec.goal_s_m:
                out.append(Event("goal_reached", self.time_s, f"s={progress:.1f} m"))
            if not self._on_road(self.ego()):
                out.append(Event("off_road", self.time_s))
        if self.time_s >= self.spec.timeout_s - 1e-9:
            out.append(Event("timeout", self.time_s))
        self._events_cache = (self._step_index, out)
        return list(out)

    def done(self) -> bool:
        """True once a collision, the goal or the timeout has happened this step."""
        return any(e.kind in TERMINAL_EVENTS for e in self.events())

    def _on_road(self, ego: EgoState) -> bool:
        area = _prepared_area(self.spec.net_path)
        return area.contains(footprint(ego.x_m, ego.y_m, ego.yaw_rad, ego.length_m, ego.width_m))

    def vehicle_arrays(self) -> VehicleArrays:
        """All vehicles now as arrays, ego (if present) as id 0: cheaper than ``agents()`` for recording."""
        ids = list(self._state)
        values = list(self._state.values())
        pos = np.array([v[libsumo.VAR_POSITION] for v in values], dtype=float).reshape(-1, 2)
        angle = np.array([v[libsumo.VAR_ANGLE] for v in values], dtype=float)
        speed = np.array([v[libsumo.VAR_SPEED] for v in values], dtype=float)
        accel = np.array([v[libsumo.VAR_ACCELERATION] for v in values], dtype=float)
        sizes = np.array([self._sizes[vid] for vid in ids], dtype=float).reshape(-1, 2)
        yaw = np.angle(np.exp(1j * np.radians(90.0 - angle)))
        half = 0.5 * sizes[:, 0]
        agent_id = np.array([EGO_AGENT_ID if vid == EGO_ID else int(vid) for vid in ids], dtype=np.int64)
        return VehicleArrays(agent_id, pos[:, 0] - half * np.cos(yaw), pos[:, 1] - half * np.sin(yaw), yaw, speed,
                             accel, sizes[:, 0], sizes[:, 1])


_PREPARED: dict[Path, object] = {}


def _prepared_area(net_path: Path) -> object:
    """Drivable area grown by a small tolerance, prepared for fast containment tests."""
    if net_path not in _PREPARED:
        _PREPARED[net_path] = prep(drivable_area(net_path).buffer(OFF_ROAD_TOLERANCE_M))
    return _PREPARED[net_path]


def noisy_agents(agents: list[TrackedAgent], rng: np.random.Generator, pos_sigma_m: float = 0.3,
                 vel_sigma_mps: float = 0.3, dropout_prob: float = 0.0) -> list[TrackedAgent]:
    """Tracker-like view of the truth: Gaussian position/velocity noise and random missed detections."""
    out = []
    for agent in agents:
        if rng.random() < dropout_prob:
            continue
        dx, dy = rng.normal(0.0, pos_sigma_m, 2)
        dvx, dvy = rng.normal(0.0, vel_sigma_mps, 2)
        out.append(replace(agent, x_m=agent.x_m + dx, y_m=agent.y_m + dy, vx_mps=agent.vx_mps + dvx,
                           vy_mps=agent.vy_mps + dvy))
    return out
