"""`make demo`: the closed loop in SUMO (issue: closed loop). Until it lands, say so plainly."""

from __future__ import annotations


def run_demo(out_dir: str) -> int:
    print("The closed-loop SUMO demo is not available yet: the simulator node has not landed.")
    print("What works today: `make test` (messages over DDS, the core planner and predictor).")
    return 0
