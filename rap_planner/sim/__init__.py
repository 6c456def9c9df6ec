"""SUMO simulator layer: networks, seeded scenarios, the ``SumoWorld`` episode and the dataset recorder.

``rap_planner.sim.render`` (matplotlib) is imported on demand, not from here.
"""

from rap_planner.sim.geometry import ReferencePath
from rap_planner.sim.recorder import generate_dataset, scene_id
from rap_planner.sim.scenarios import SCENARIOS, ScenarioSpec, get_scenario
from rap_planner.sim.world import Collision, Event, SumoWorld, noisy_agents

__all__ = [
    "SCENARIOS",
    "Collision",
    "Event",
    "ReferencePath",
    "ScenarioSpec",
    "SumoWorld",
    "generate_dataset",
    "get_scenario",
    "noisy_agents",
    "scene_id",
]
