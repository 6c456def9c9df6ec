import numpy as np
import pytest

from rap_planner.core.predictor.dataset import build_windows, load_windows, resample_table, scene_split
from rap_planner.core.predictor.model import PredictorConfig
from rap_planner.data.tracks import TrackTable


def _table(dt_s: float = 0.1) -> TrackTable:
    """Scene 0: agent 1 at x = frame (0..59), agent 2 at y = 100 + frame, only frames 20..39."""
    f1 = np.arange(60)
    f2 = np.arange(20, 40)
    cols = {"scene": np.zeros(80, np.int64), "frame": np.r_[f1, f2], "agent_id": np.r_[np.ones(60), np.full(20, 2)],
            "x_m": np.r_[f1.astype(float), np.zeros(20)], "y_m": np.r_[np.zeros(60), 100.0 + f2],
            "yaw_rad": np.zeros(80), "v_mps": np.ones(80), "length_m": np.full(80, 4.5), "width_m": np.full(80, 1.8)}
    return TrackTable(cols, dt_s)


CFG = PredictorConfig(history_s=0.4, horizon_s=0.6, dt_s=0.2)  # H = 3 points, T = 3 steps


def test_windows_hold_history_and_future_on_the_config_grid():
    w = build_windows(_table(), CFG, sample_every_s=1.0, seed=0)
    assert (CFG.history_steps, CFG.horizon_steps) == (3, 3)
    # table dt 0.1, config dt 0.2: stride 2; current frames from 0 + 2·2 every 10 up to 59 - 3·2
    assert list(w.frame) == [4, 14, 24, 34, 44]
    s = int(np.flatnonzero(w.frame == 24)[0])
    rows = slice(w.offsets[s], w.offsets[s + 1])
    ids = list(w.agent_id[rows])
    assert sorted(ids) == [1, 2]
    a1 = ids.index(1)
    hist = w.hist_m[rows][a1] + w.origin_m[s]
    fut = w.fut_m[rows][a1] + w.origin_m[s]
    np.testing.assert_allclose(hist[:, 0], [20.0, 22.0, 24.0])
    np.testing.assert_allclose(fut[:, 0], [26.0, 28.0, 30.0])
    np.testing.assert_allclose(w.hist_m[rows][w.agent_id[rows] == w.agent_id[rows][0]][0, -1], [0.0, 0.0])


def test_missing_points_are_masked_and_zeroed():
    w = build_windows(_table(), CFG, sample_every_s=1.0, seed=0)
    s = int(np.flatnonzero(w.frame == 34)[0])
    rows = np.arange(w.offsets[s], w.offsets[s + 1])
    a2 = rows[w.agent_id[rows] == 2][0]
    assert w.hist_mask[a2].all()
    assert list(w.fut_mask[a2]) == [True, True, False]  # agent 2 ends at frame 39
    assert (w.fut_m[a2][~w.fut_mask[a2]] == 0).all()


def test_agent_cap_keeps_the_nearest():
    w = build_windows(_table(), CFG, sample_every_s=1.0, max_agents=1, seed=0)
    assert (w.agents_per_window == 1).all()


def test_ego_is_the_focal_agent():
    table = _table()
    table.meta["ego_agent_id"] = 2
    w = build_windows(table, CFG, sample_every_s=1.0, seed=0)
    s = int(np.flatnonzero(w.frame == 24)[0])
    assert w.agent_id[w.offsets[s]] == 2
    np.testing.assert_allclose(w.origin_m[s], [0.0, 124.0])


def test_non_integer_dt_ratio_is_interpolated():
    table = _table(dt_s=0.08)  # 0.2 / 0.08 = 2.5: resample
    out = resample_table(table, 0.2)
    one = out["agent_id"] == 1
    t_s = out["frame"][one] * 0.2
    np.testing.assert_allclose(out["x_m"][one], t_s / 0.08)  # x = frame_old = t / 0.08
    w = build_windows(table, CFG, sample_every_s=1.0)
    assert len(w) > 0 and np.isclose(w.dt_s, 0.2)


def test_batch_pads_to_the_largest_window(highway_table):
    w = build_windows(highway_table, CFG, sample_every_s=1.0)
    idx = np.arange(min(5, len(w)))
    batch = w.batch(idx)
    n = int(w.agents_per_window[idx].max())
    assert batch.hist_m.shape == (len(idx), n, 3, 2)
    assert batch.agent_mask.sum() == w.agents_per_window[idx].sum()
    assert not batch.hist_mask[~batch.agent_mask].any()


def test_scene_split_never_mixes_scenes(highway_path):
    table = TrackTable.load(highway_path)
    parts = [set(scene_split(table, s, seed=4).scenes) for s in ("train", "val", "test")]
    assert set.union(*parts) == set(table.scenes)
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    train = load_windows([highway_path], CFG, "train", seed=4)
    test = load_windows([highway_path], CFG, "test", seed=4)
    assert set(train.scene) <= parts[0] and set(test.scene) <= parts[2]
    with pytest.raises(ValueError):
        scene_split(table, "validation")
