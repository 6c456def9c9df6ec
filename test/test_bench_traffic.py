"""The benches' synthetic highway keeps its density for runs of any length, with fresh ids for re-entries."""

import numpy as np

from rap_planner.bench.e2e import EGO_SPEED_MPS, LANES_Y_M, ROAD_PER_AGENT_M, highway_traffic


def test_density_holds_and_reentering_agents_get_new_ids():
    n = 50
    window_m = n * ROAD_PER_AGENT_M
    seen: dict[int, float] = {}
    for t_s in np.arange(0.0, 600.0, 0.5):
        agents = highway_traffic(n, float(t_s))
        rel = np.array([a.x_m for a in agents]) - EGO_SPEED_MPS * t_s
        assert len(agents) == n and len({a.agent_id for a in agents}) == n
        assert rel.min() >= -0.3 * window_m - 1e-6 and rel.max() < 0.7 * window_m + 1e-6
        assert {a.y_m for a in agents} <= set(LANES_Y_M)
        for a in agents:  # an id never jumps: a track that wraps around comes back under a new id
            if a.agent_id in seen:
                assert abs(a.x_m - seen[a.agent_id]) < 0.5 * 30.0 + 1e-6
            seen[a.agent_id] = a.x_m
    assert len(seen) > 2 * n  # plenty of agents left and re-entered over 10 minutes
