"""Recorded SUMO data is a valid TrackTable the predictor can read."""

import numpy as np

from rap_planner.data.tracks import TrackTable
from rap_planner.sim.recorder import SCENE_STRIDE, generate_dataset, scene_id


def test_generate_dataset_writes_a_track_table_with_one_scene_per_scenario_and_seed(tmp_path):
    out = tmp_path / "sumo.npz"
    table = generate_dataset(["highway_cutin", "merge", "intersection"], [0, 1], duration_s=5.0, out_path=out)
    loaded = TrackTable.load(out)
    assert len(loaded) == len(table) > 0 and loaded.dt_s == 0.1
    expected = sorted(scene_id(name, seed) for name in ("highway_cutin", "merge", "intersection") for seed in (0, 1))
    assert loaded.scenes.tolist() == expected == [0, 1, SCENE_STRIDE, SCENE_STRIDE + 1, 2 * SCENE_STRIDE,
                                                  2 * SCENE_STRIDE + 1]
    keys = np.column_stack([loaded["scene"], loaded["frame"], loaded["agent_id"]])
    assert len(np.unique(keys, axis=0)) == len(loaded)
    for scene in loaded.scenes:
        rows = loaded["scene"] == scene
        frames = loaded["frame"][rows]
        assert frames.min() == 0 and frames.max() == 50
        assert (loaded["agent_id"][rows][frames == 0] == 0).any()  # the ego is recorded as agent 0
        assert len(np.unique(loaded["agent_id"][rows])) > 10
    for column in ("x_m", "y_m", "yaw_rad", "v_mps", "length_m", "width_m"):
        assert np.isfinite(loaded[column]).all()
    assert (loaded["v_mps"] >= 0).all() and (np.abs(loaded["yaw_rad"]) <= np.pi + 1e-9).all()


def test_track_positions_move_consistently_with_speed():
    table = generate_dataset(["highway_cutin"], [3], duration_s=3.0, out_path=None)
    for agent in np.unique(table["agent_id"])[:20]:
        rows = table["agent_id"] == agent
        x, v = table["x_m"][rows], table["v_mps"][rows]
        if len(x) > 2:
            np.testing.assert_allclose(np.diff(x), 0.1 * v[1:], atol=0.05)
