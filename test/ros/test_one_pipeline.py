"""One pipeline: the nodes over DDS and the in-process closed loop make the same plans from the same inputs.

A short closed-loop episode is recorded in process (SUMO -> Stack). Its per-instant inputs are then
turned into the messages the simulator node would publish and fed, in lock-step, (a) to the predictor
and planner nodes configured by sim.launch.xml, over real DDS, and (b) through the same message
conversions to the pipeline stages in process. (a) and (b) must agree to the bit: the nodes add nothing
but conversion. The closed loop itself saw its inputs before the messages' rounding (forecasts as
float32, stamps in nanoseconds, yaw as a quaternion) and must agree to within that rounding.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from rap_planner import topics
from rap_planner.config import planner_config, planner_parameters, predictor_parameters
from rap_planner.core.pipeline import PlanningPipeline, PredictionPipeline, PredictionSettings
from rap_planner.core.predictor.runtime import ForecastModel
from rap_planner.core.types import Plan
from rap_planner.msg import RiskAwarePlan, TrackedAgentArray
from rap_planner.ros.compose import create_nodes
from rap_planner.ros.conversions import (
    ego_to_odometry,
    forecast_set_from_msg,
    forecast_set_to_msg,
    odometry_to_ego,
    plan_from_msg,
    plan_to_msg,
    stamp_to_s,
    tracked_agents_from_msg,
    tracked_agents_to_msg,
)
from rap_planner.ros.launch_xml import launch_file, parse
from rap_planner.ros.planner_node import reference_from_polyline
from rap_planner.runtime_tuning import tune_process
from rap_planner.sim.closed_loop import LoopConfig, run_episode
from rap_planner.sim.world import SumoWorld

SCENARIO, SEED, UNTIL_S = "highway_cutin", 1, 2.0
SOLVER_TIME_LIMIT_S = 1.0  # as in lock-step evaluation: the refinement never stops early on a busy machine


def planner_values() -> dict:
    return {**planner_parameters(SCENARIO), "refine_time_limit_s": SOLVER_TIME_LIMIT_S, "seed": SEED}


@dataclasses.dataclass
class Instant:
    tracks: TrackedAgentArray
    odom: Odometry
    closed_loop_plan: Plan


def record_episode() -> tuple[list[Instant], np.ndarray]:
    """The closed loop's inputs as the simulator node would publish them, its plans, and the reference."""
    instants: list[Instant] = []

    def keep(agents, ego, now_s, output) -> None:
        instants.append(Instant(tracked_agents_to_msg(agents, now_s), ego_to_odometry(ego), output.plan))

    run_episode(LoopConfig(SCENARIO, seed=SEED, until_s=UNTIL_S), planner_config(planner_values()),
                ForecastModel.default(), PredictionSettings.from_values(predictor_parameters()), on_step=keep)
    with SumoWorld(SCENARIO, seed=SEED) as world:
        centerline_m = world.reference_path().centerline_m
    return instants, centerline_m


def in_process_plans(instants: list[Instant], centerline_m: np.ndarray) -> list[Plan]:
    """The messages through the nodes' conversions into the pipeline stages in process (forecasts, too, cross
    the conversion both ways: the wire's float32 is the only difference the closed loop has from the nodes)."""
    values = planner_values()
    config = planner_config(values)
    prediction = PredictionPipeline(ForecastModel.default(), PredictionSettings.from_values(predictor_parameters()))
    planning = PlanningPipeline(config, reference_from_polyline(centerline_m, values), values["odom_timeout_s"])
    plans = []
    for instant in instants:
        agents, problems = tracked_agents_from_msg(instant.tracks)
        assert not problems
        ego = odometry_to_ego(instant.odom, values.get("ego_length_m", 4.5), values.get("ego_width_m", 1.8))
        ego_xy_m = np.array([ego.x_m, ego.y_m])
        prediction.add_tracks(agents, stamp_to_s(instant.tracks.header.stamp), ego_xy_m)
        forecasts = forecast_set_from_msg(forecast_set_to_msg(prediction.step(ego_xy_m)))
        plan = planning.step(ego, forecasts, ego.stamp_s)
        prediction.set_ego_plan(plan_from_msg(plan_to_msg(plan)))
        plans.append(plan)
    return plans


def node_plans(context, instants: list[Instant], centerline_m: np.ndarray) -> list[Plan]:
    """The same messages to the launch file's predictor and planner nodes over DDS, one instant at a time."""
    description = parse(launch_file("sim.launch.xml"), {"lockstep": "true", "scenario": SCENARIO, "viz": "false"})
    description.nodes = [n for n in description.nodes if n.name in ("predictor", "planner")]
    next(n for n in description.nodes if n.name == "planner").params.update(
        seed=SEED, refine_time_limit_s=SOLVER_TIME_LIMIT_S)
    nodes = create_nodes(description, context=context)
    predictor, planner = nodes
    feeder = rclpy.create_node("recorded_inputs", context=context)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub_tracks = feeder.create_publisher(TrackedAgentArray, topics.TRACKED_AGENTS, reliable)
    pub_odom = feeder.create_publisher(Odometry, topics.EGO_ODOM, reliable)
    pub_reference = feeder.create_publisher(Path, topics.REFERENCE_PATH, latched)
    received: list[RiskAwarePlan] = []
    feeder.create_subscription(RiskAwarePlan, topics.PLAN, received.append, reliable)
    executor = SingleThreadedExecutor(context=context)
    for node in [*nodes, feeder]:
        executor.add_node(node)

    def spin_until(done, what: str) -> None:
        deadline = time.monotonic() + 30.0
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            executor.spin_once(timeout_sec=0.01)

    try:
        path = Path()
        path.header.frame_id = "map"
        for x, y in centerline_m:
            pose = PoseStamped()
            pose.header.frame_id = "map"
            pose.pose.position.x, pose.pose.position.y = float(x), float(y)
            path.poses.append(pose)
        pub_reference.publish(path)
        spin_until(lambda: not planner._reference_from_params, "the reference path")
        for instant in instants:
            stamp_s = stamp_to_s(instant.odom.header.stamp)
            pub_odom.publish(instant.odom)
            spin_until(lambda s=stamp_s: planner.ego is not None and planner.ego.stamp_s == s
                       and predictor._ego_xy_m is not None, "odometry")
            count = len(received)
            pub_tracks.publish(instant.tracks)
            spin_until(lambda c=count: len(received) > c, f"the plan at {stamp_s:.1f} s")
    finally:
        executor.shutdown()
        for node in [*nodes, feeder]:
            node.destroy_node()
    return [plan_from_msg(m) for m in received]


def test_nodes_over_dds_and_closed_loop_make_the_same_plans(rclpy_context):
    tune_process()  # what every entry point does (thread counts change float rounding)
    instants, centerline_m = record_episode()
    assert len(instants) >= 15
    local = in_process_plans(instants, centerline_m)
    remote = node_plans(rclpy_context, instants, centerline_m)
    assert len(remote) == len(local)
    assert all(p.ok for p in local), [p.reason for p in local if not p.ok]
    for mine, theirs, loop in zip(local, remote, (i.closed_loop_plan for i in instants), strict=True):
        assert theirs.stamp_s == mine.stamp_s
        np.testing.assert_array_equal(theirs.states, mine.states)
        f32 = np.float32  # the plan message carries its risk figures as float32
        assert (theirs.risk, theirs.expected_cost) == (f32(mine.risk), f32(mine.expected_cost))
        assert theirs.num_agents == mine.num_agents
        np.testing.assert_allclose(loop.states, mine.states, rtol=0.0, atol=1e-3)
