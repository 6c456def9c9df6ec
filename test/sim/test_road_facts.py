"""One road per scenario: the simulator's reference path, the planner's road parameters and the SUMO net agree."""

import pytest
import sumolib

from rap_planner.config import planner_parameters
from rap_planner.core.parameters import SCENARIO_NAMES, SIM
from rap_planner.sim.geometry import build_reference_path
from rap_planner.sim.scenarios import SCENARIOS, route_edges


def test_every_simulated_scenario_is_a_sim_node_choice_with_a_road_file():
    assert tuple(SCENARIOS) == SCENARIO_NAMES == SIM["scenario"].choices


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_the_simulator_and_the_planner_drive_the_same_road(scenario):
    spec = SCENARIOS[scenario]
    planner = planner_parameters(scenario)  # what sim.launch.xml gives planner_node for this scenario
    edges = list(route_edges(spec.routes_path, spec.ego_route_id))
    sim_reference = build_reference_path(spec.net_path, edges, spec.ego_lanes, spec.lane_offsets_m,
                                         spec.speed_limit_mps, spec.goal_s_m)  # what sim_node and the closed loop use
    assert sim_reference.lane_width_m == pytest.approx(planner["lane_width_m"])
    assert sim_reference.lane_offsets_m == tuple(planner["lane_offsets_m"])
    assert sim_reference.speed_limit_mps == planner["speed_limit_mps"] > 0.0
    assert 0.0 < planner["target_speed_mps"] <= planner["speed_limit_mps"]

    net = sumolib.net.readNet(str(spec.net_path))
    for edge_id, lane_index in zip(edges, spec.ego_lanes, strict=True):  # the net SUMO's drivers follow
        edge = net.getEdge(edge_id)
        lane = edge.getLanes()[lane_index]
        assert lane.getWidth() == pytest.approx(planner["lane_width_m"])
        assert lane.getSpeed() == pytest.approx(planner["speed_limit_mps"], abs=0.005)
        for offset_m in planner["lane_offsets_m"]:  # every usable lane exists beside the ego's
            assert 0 <= lane_index + round(offset_m / planner["lane_width_m"]) < edge.getLaneNumber()
