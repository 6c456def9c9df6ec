"""sim_node: SUMO (libsumo, in-process) as the world around the stack.

Publishes tracked agents (with tracker-like noise and dropouts), ego odometry, /clock and the ego's
reference path; moves the ego along the received plan. Two modes:
- lock-step: the world advances one step only when the plan for the current step has arrived
  (reproducible evaluation; a watchdog advances anyway after ``plan_wait_s`` and counts it);
- real time: the world advances on a wall-clock timer with whatever plan is newest (demo).
"""

from __future__ import annotations

import contextlib
import json
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String

from rap_planner import topics
from rap_planner.core.parameters import SIM
from rap_planner.core.types import EgoState
from rap_planner.msg import PredictionArray, RiskAwarePlan, TrackedAgentArray
from rap_planner.ros.conversions import (
    ego_to_odometry,
    forecast_set_from_msg,
    plan_from_msg,
    s_to_stamp,
    stamp_to_s,
    tracked_agents_to_msg,
)
from rap_planner.ros.params import ParameterSet
from rap_planner.sim.episode import EpisodeRecorder, follow_plan, stop_line_agents
from rap_planner.sim.world import SumoWorld, noisy_agents

PARAMS = SIM.params  # rap_planner/core/parameters.py: names, types, units, ranges, defaults


class SimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("sim", **kwargs)
        self.params = ParameterSet(self, PARAMS)
        self.world = SumoWorld(self.params["scenario"], seed=self.params["seed"], step_s=self.params["step_s"])
        self.world.reset()
        self.rng = np.random.default_rng(self.params["seed"])
        self.recorder = EpisodeRecorder(self.world) if self.params["record"] else None
        self.finished = False
        self.summary: dict = {}
        self.plan = None
        self.plan_timeouts = 0
        self._published_at = time.monotonic()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_agents = self.create_publisher(TrackedAgentArray, topics.TRACKED_AGENTS, reliable)
        self.pub_odom = self.create_publisher(Odometry, topics.EGO_ODOM, reliable)
        self.pub_clock = self.create_publisher(Clock, topics.CLOCK, reliable)
        self.pub_events = self.create_publisher(String, topics.SIM_EVENTS, latched)
        self.pub_reference = self.create_publisher(Path, topics.REFERENCE_PATH, latched)
        self.create_subscription(RiskAwarePlan, topics.PLAN, self._on_plan, reliable)
        self.create_subscription(PredictionArray, topics.PREDICTIONS, self._on_predictions, reliable)
        self._publish_reference()
        self._started = False
        if self.params["lockstep"]:
            self.create_timer(0.05, self._lockstep_watchdog)
        else:
            self.create_timer(self.params["step_s"] / self.params["realtime_factor"], self._advance)

    # --- outputs ---------------------------------------------------------------------------------
    def _publish_reference(self) -> None:
        reference = self.world.reference_path()
        path = Path()
        path.header.frame_id = self.params["frame_id"]
        for x, y in reference.centerline_m:
            pose = PoseStamped()
            pose.header.frame_id = self.params["frame_id"]
            pose.pose.position.x, pose.pose.position.y = float(x), float(y)
            pose.pose.orientation.w = 1.0
            path.poses.append(pose)
        self.pub_reference.publish(path)

    def _publish_state(self) -> None:
        t = self.world.time_s
        frame = self.params["frame_id"]
        self.pub_clock.publish(Clock(clock=s_to_stamp(t)))
        agents = noisy_agents(self.world.agents(), self.rng, self.params["pos_noise_m"],
                              self.params["vel_noise_mps"], self.params["dropout_prob"])
        agents += stop_line_agents(self.world)
        self.pub_odom.publish(ego_to_odometry(self.world.ego(), frame))  # first: the predictor ranks agents by it
        self.pub_agents.publish(tracked_agents_to_msg(agents, t, frame))
        self._published_at = time.monotonic()

    # --- inputs ----------------------------------------------------------------------------------
    def _on_predictions(self, msg: PredictionArray) -> None:
        # the planner reports bad predictions; the recorder only draws good ones
        if self.recorder is not None:
            with contextlib.suppress(ValueError):
                self.recorder.set_forecasts(forecast_set_from_msg(msg))

    def _on_plan(self, msg: RiskAwarePlan) -> None:
        self.plan = plan_from_msg(msg)
        if self.params["lockstep"] and stamp_to_s(msg.header.stamp) >= self.world.time_s - 1e-6:
            self._advance()

    def _lockstep_watchdog(self) -> None:
        if self.finished:
            return
        if not self._started:
            if self.pub_agents.get_subscription_count() and self.pub_odom.get_subscription_count():
                self._started = True
                self._publish_state()
            return
        if time.monotonic() - self._published_at > self.params["plan_wait_s"]:
            self.plan_timeouts += 1
            self.get_logger().warning(f"no plan for t={self.world.time_s:.1f} s within {self.params['plan_wait_s']} s:"
                                      " advancing with the last plan", throttle_duration_sec=2.0)
            self._advance()

    # --- stepping --------------------------------------------------------------------------------
    def _advance(self) -> None:
        if self.finished:
            return
        step_s = self.params["step_s"]
        ego: EgoState = self.world.ego()
        x, y, yaw, v = follow_plan(self.plan, ego, self.world.time_s + step_s)
        self.world.apply_ego_state(x, y, yaw, v)
        self.world.step()
        if self.recorder is not None:
            self.recorder.record(self.plan)
        events = self.world.events()
        for event in events:
            self.pub_events.publish(String(data=json.dumps({"kind": event.kind, "t_s": event.stamp_s,
                                                            "detail": event.detail})))
        if self.world.done() or not self.world.ego_present:
            self._finish(events)
            return
        self._publish_state()

    def _finish(self, events) -> None:
        self.finished = True
        self.summary = {"scenario": self.params["scenario"], "seed": self.params["seed"],
                        "duration_s": self.world.time_s, "events": [e.kind for e in events],
                        "collision": any(e.kind == "collision" for e in events),
                        "goal_reached": any(e.kind == "goal_reached" for e in events),
                        "plan_timeouts": self.plan_timeouts}
        self.get_logger().info(f"episode finished: {self.summary}")

    def destroy_node(self) -> bool:
        self.world.close()
        return super().destroy_node()
