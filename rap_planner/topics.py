"""Every topic name the stack uses, in one place (the launch XML files spell them for ``ros2 launch``).

Nodes, benches, the simulator, bag tools and tests import these instead of repeating the strings, so a
renamed or namespaced topic is changed here once. Message types are in the README's topic table.
"""

from __future__ import annotations

TRACKED_AGENTS = "/perception/tracked_agents"  # rap_planner/TrackedAgentArray: tracker (or simulator) output
EGO_ODOM = "/ego/odom"  # nav_msgs/Odometry: ego pose and speed
PREDICTIONS = "/prediction/agents"  # rap_planner/PredictionArray: the predictor's mixtures and samples
PLAN = "/planning/plan"  # rap_planner/RiskAwarePlan: the chosen trajectory with its risk figures
PLAN_PATH = "/planning/path"  # nav_msgs/Path: the same trajectory for generic consumers
REFERENCE_PATH = "/planning/reference_path"  # nav_msgs/Path, latched: the road centreline to follow
PREDICTION_MARKERS = "/viz/prediction"  # visualization_msgs/MarkerArray
PLAN_MARKERS = "/viz/plan"  # visualization_msgs/MarkerArray
CLOCK = "/clock"  # rosgraph_msgs/Clock: simulated or bag time
SIM_EVENTS = "/sim/events"  # std_msgs/String, latched: JSON episode events of the simulator
DIAGNOSTICS = "/diagnostics"  # diagnostic_msgs/DiagnosticArray: counted bad input per node
BENCH_RELAY = "/bench/relay"  # rap_planner/TrackedAgentArray: the end-to-end bench's DDS round-trip baseline

# ROS's own topics, which a bag of "all topics" leaves out
ROSOUT = "/rosout"
PARAMETER_EVENTS = "/parameter_events"
