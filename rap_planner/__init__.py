"""rap_planner: prediction-coupled, risk-aware planning for ROS 2."""

__version__ = "0.1.0"
