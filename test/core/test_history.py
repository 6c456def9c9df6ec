import math

import numpy as np

from rap_planner.core.history import AgentHistoryBuffer
from rap_planner.core.types import TrackedAgent


def agent(i: int, t: float, x: float, y: float = 0.0) -> TrackedAgent:
    return TrackedAgent(agent_id=i, stamp_s=t, x_m=x, y_m=y, yaw_rad=0.0, vx_mps=10.0, vy_mps=0.0)


def test_constant_speed_track_is_resampled_onto_the_grid():
    buf = AgentHistoryBuffer(history_s=1.0, dt_s=0.2)
    for k in range(16):
        t = 0.1 * k
        buf.update([agent(1, t, 10.0 * t)], t)
    w = buf.window()
    assert w.positions_m.shape == (1, 6, 2) and w.mask.all()
    np.testing.assert_allclose(w.positions_m[0, :, 0], 10.0 * (1.5 - 0.2 * np.arange(5, -1, -1)), atol=1e-9)


def test_new_agent_is_masked_before_its_first_observation():
    buf = AgentHistoryBuffer(history_s=1.0, dt_s=0.2, backfill_s=0.0)
    for k in range(11):
        t = 0.1 * k
        buf.update([agent(1, t, t)] + ([agent(2, t, 5.0)] if k >= 8 else []), t)
    w = buf.window()
    row = list(w.agent_ids).index(2)
    assert w.mask[row].tolist() == [False, False, False, False, True, True]


def test_out_of_order_and_duplicate_stamps_are_rejected_not_raised():
    buf = AgentHistoryBuffer()
    buf.update([agent(1, 1.0, 0.0)], 1.0)
    assert buf.update([agent(1, 1.0, 9.0)], 1.0).rejected_stale_message
    assert buf.update([agent(1, 0.9, 9.0)], 0.9).rejected_stale_message
    assert buf.window().positions_m[0, -1, 0] == 0.0


def test_large_jump_back_in_time_resets_histories():
    buf = AgentHistoryBuffer()
    buf.update([agent(1, 10.0, 0.0)], 10.0)
    report = buf.update([agent(2, 1.0, 0.0)], 1.0)
    assert report.reset_time_jump and buf.window().agent_ids.tolist() == [2]


def test_nan_duplicates_capacity_and_ageing():
    buf = AgentHistoryBuffer(max_agents=2, max_age_s=0.5)
    report = buf.update([agent(1, 0.0, math.nan), agent(2, 0.0, 1.0), agent(2, 0.0, 2.0), agent(3, 0.0, 1.0),
                         agent(4, 0.0, 1.0)], 0.0)
    assert (report.dropped_nonfinite, report.dropped_duplicate_id, report.dropped_over_capacity) == (1, 1, 1)
    assert report.accepted == 2
    buf.update([agent(2, 1.0, 1.0)], 1.0)
    assert buf.window().agent_ids.tolist() == [2]


def test_new_agent_history_is_backfilled_at_its_tracked_velocity():
    buf = AgentHistoryBuffer(history_s=1.0, dt_s=0.2, backfill_s=0.4)
    buf.update([agent(2, 1.0, 50.0)], 1.0)  # first seen now, moving at 10 m/s along +x
    w = buf.window()
    assert w.mask[0].tolist() == [False, False, False, True, True, True]
    np.testing.assert_allclose(w.positions_m[0, 3:, 0], [46.0, 48.0, 50.0])
