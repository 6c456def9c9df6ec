"""The committed networks have the promised layout."""

import sumolib

from rap_planner.sim.scenarios import NETWORKS_DIR, SCENARIOS


def _net(name: str) -> sumolib.net.Net:
    return sumolib.net.readNet(str(NETWORKS_DIR / f"{name}.net.xml"))


def test_highway_is_a_straight_three_lane_road_of_1500_m():
    edge = _net("highway").getEdge("hw")
    assert edge.getLaneNumber() == 3 and abs(edge.getLength() - 1500.0) < 1.0
    assert {round(lane.getShape()[0][1], 2) for lane in edge.getLanes()} == {-3.5, 0.0, 3.5}


def test_merge_has_an_on_ramp_into_an_acceleration_lane():
    net = _net("merge")
    assert net.getEdge("main_in").getLaneNumber() == 2 and net.getEdge("main_out").getLaneNumber() == 2
    zone = net.getEdge("merge_zone")
    assert zone.getLaneNumber() == 3 and not zone.getLanes()[0].getOutgoing()
    assert [c.getToLane().getID() for c in net.getEdge("ramp").getLanes()[0].getOutgoing()] == ["merge_zone_0"]


def test_intersection_is_signalised_with_two_lanes_per_approach():
    net = _net("intersection")
    assert [tls.getID() for tls in net.getTrafficLights()] == ["c"]
    for arm in "nsew":
        assert net.getEdge(f"{arm}_in").getLaneNumber() == 2 and net.getEdge(f"{arm}_out").getLaneNumber() == 2


def test_every_scenario_points_at_committed_files():
    for spec in SCENARIOS.values():
        assert spec.net_path.is_file() and spec.routes_path.is_file()
        assert spec.net_path.stat().st_size < 64_000
