"""planner_node over real DDS: RAP's didactic scene, with risk_level changed live between two runs.

The node runs in its own process (as `ros2 run` would start it); this process publishes ego
odometry, the two-mode forecast and the reference path, reads the plans, and sets parameters
through the same client `rap-planner param set` uses.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from rap_planner import topics
from rap_planner.core.scenes import didactic_scene
from rap_planner.core.types import EgoState
from rap_planner.msg import PredictionArray, RiskAwarePlan
from rap_planner.ros.conversions import ego_to_odometry, forecast_set_to_msg, plan_from_msg
from rap_planner.ros.param_client import UnknownParameter, get_parameter, set_parameter

SCENE_PARAMS = {  # the didactic scene's cost scale: an expected collision is cheaper than yielding
    "w_collision": 100.0, "w_ttc": 10.0, "speed_limit_mps": 10.0, "target_speed_mps": 10.0,
    "lane_offsets_m": "[0.0]", "prediction_timeout_s": 1.0, "odom_timeout_s": 1.0, "risk_level": 0.0,
}


@pytest.fixture
def planner_process(ros_domain):
    args = [a for k, v in SCENE_PARAMS.items() for a in ("-p", f"{k}:={v}")]
    proc = subprocess.Popen([sys.executable, "-m", "rap_planner.ros.entry", "planner_node", "--ros-args", *args])
    yield proc
    proc.terminate()
    proc.wait(timeout=10)


class ScenePublisher:
    """Feeds the didactic scene with fresh stamps and collects the plans."""

    def __init__(self, context):
        self.node = rclpy.create_node("didactic_scene", context=context)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_odom = self.node.create_publisher(Odometry, topics.EGO_ODOM, reliable)
        self.pub_pred = self.node.create_publisher(PredictionArray, topics.PREDICTIONS, reliable)
        self.pub_ref = self.node.create_publisher(Path, topics.REFERENCE_PATH, latched)
        self.plans: list = []
        self.node.create_subscription(RiskAwarePlan, topics.PLAN, self.plans.append, reliable)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.ego, self.forecasts, self.reference = didactic_scene()
        path = Path()
        path.header.frame_id = "map"
        for x, y in self.reference.points_m[::20]:
            pose = PoseStamped()
            pose.header.frame_id = "map"
            pose.pose.position.x, pose.pose.position.y = float(x), float(y)
            path.poses.append(pose)
        self.pub_ref.publish(path)

    def publish_scene(self) -> None:
        now_s = self.node.get_clock().now().nanoseconds * 1e-9
        ego = EgoState(now_s, self.ego.x_m, self.ego.y_m, self.ego.yaw_rad, self.ego.v_mps)
        self.pub_odom.publish(ego_to_odometry(ego))
        self.forecasts.stamp_s = now_s
        self.pub_pred.publish(forecast_set_to_msg(self.forecasts))

    def plans_after(self, t0_s: float, count: int, timeout_s: float = 30.0) -> list:
        """``count`` plans computed from inputs stamped after ``t0_s``."""
        deadline = time.monotonic() + timeout_s
        next_publish = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() > next_publish:
                self.publish_scene()
                next_publish = time.monotonic() + 0.1
            self.executor.spin_once(timeout_sec=0.02)
            fresh = [plan_from_msg(m) for m in self.plans if plan_from_msg(m).stamp_s > t0_s + 0.3]
            if len(fresh) >= count:
                return fresh
        raise AssertionError(f"no {count} fresh plans within {timeout_s} s (got {len(self.plans)} in all)")


def test_cvar_yields_where_risk_neutral_goes_through_live_risk_level(rclpy_context, planner_process):
    scene = ScenePublisher(rclpy_context)
    t0 = time.time()
    neutral = scene.plans_after(t0, 3)
    assert all(p.ok and p.risk_measure == "cvar" and p.risk_level == 0.0 for p in neutral)
    assert min(np.min(p.states[:, 3]) for p in neutral) >= 9.5, "risk-neutral plan should keep its speed"

    ok, reason = set_parameter("/planner", "risk_level", "0.9")
    assert ok, reason
    t1 = time.time()
    cautious = scene.plans_after(t1, 3)
    assert all(abs(p.risk_level - 0.9) < 1e-6 for p in cautious)
    assert max(np.min(p.states[:, 3]) for p in cautious) <= 8.5, "CVaR_0.9 plan should yield to the crosser"

    ok, reason = set_parameter("/planner", "risk_level", "1.5")
    assert not ok and "risk_level" in reason
    ok, reason = set_parameter("/planner", "risk_measure", "banana")
    assert not ok and "one of" in reason
    ok, reason = set_parameter("/planner", "risk_level", "true")  # a type error, said in words
    assert not ok and reason == "risk_level takes a number, got True"
    ok, reason = set_parameter("/planner", "risk_levle", "0.5")
    assert not ok and "has no parameter 'risk_levle'" in reason
    with pytest.raises(UnknownParameter, match="risk_levle"):
        get_parameter("/planner", "risk_levle")
    assert get_parameter("/planner", "risk_level") == pytest.approx(0.9)
    ok, reason = set_parameter("/planner", "w_lane", "2")  # an integer where a number is declared: fine
    assert ok, reason
    assert get_parameter("/planner", "w_lane") == 2.0
