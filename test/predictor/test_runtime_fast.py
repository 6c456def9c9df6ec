"""The batched runtime against straightforward references: batch vs per agent, window vs dict histories."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from rap_planner.core.history import AgentHistoryBuffer, HistoryWindow
from rap_planner.core.pipeline import PredictionPipeline
from rap_planner.core.predictor import runtime
from rap_planner.core.predictor.baselines import constant_velocity
from rap_planner.core.predictor.model import AttentionLSTMPredictor
from rap_planner.core.types import AgentForecast, TrackedAgent

TIGHT = {"rtol": 1e-12, "atol": 1e-9}  # torch's vectorised sqrt is not always correctly rounded: 1 ulp apart


def _histories(rng: np.random.Generator, n: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Moving, standing and barely moving agents far from the origin, with gaps and NaN points."""
    speed = rng.normal(0.0, 15.0, (n, 1, 2)) * rng.choice([0.0, 0.01, 1.0], (n, 1, 1))
    hist = rng.uniform(-1e4, 1e4, (n, 1, 2)) + speed * 0.2 * np.arange(h)[:, None] + rng.normal(0.0, 0.1, (n, h, 2))
    mask = rng.random((n, h)) < rng.uniform(0.2, 1.0)
    hist[rng.random((n, h)) < 0.05, rng.integers(0, 2)] = np.nan
    return hist, mask


def _reference_predict(model: runtime.ForecastModel, histories: dict[int, np.ndarray],
                        centre_m: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per agent: pad, pick the nearest for the learned model, torch constant velocity for the rest."""
    h = model.config.history_steps
    padded = {}
    for agent_id, arr in histories.items():
        arr = np.concatenate((np.full((h, 2), np.nan), arr))[-h:]
        if np.isfinite(arr).all(-1).any():
            padded[agent_id] = arr
    ids = list(padded)
    last = np.array([arr[np.isfinite(arr).all(-1)][-1] for arr in padded.values()])
    nearest = sorted(range(len(ids)), key=lambda j: float(np.hypot(*(last[j] - centre_m))))[:model.max_agents]
    groups = (sorted(nearest), [j for j in range(len(ids)) if j not in nearest])
    out = {}
    for learned, rows in zip((True, False), groups, strict=True):
        if not rows:
            continue
        hist = np.stack([padded[ids[j]] for j in rows])
        mask = np.isfinite(hist).all(-1)
        hist = np.where(mask[..., None], hist, 0.0)
        if learned:
            mixture = model._run_model(hist, mask)
        else:
            origin = last[rows].mean(axis=0)
            logits, params = constant_velocity(torch.from_numpy(hist - origin)[None], torch.from_numpy(mask)[None],
                                               model.kinematic)
            mixture = runtime._to_mixture(logits[0].numpy(), params[0].numpy(), origin)
        out.update({ids[j]: tuple(m[k] for m in mixture) for k, j in enumerate(rows)})
    return {i: out[i] for i in ids}


@pytest.mark.parametrize("seed", range(5))
def test_predict_matches_the_per_agent_reference(seed, tiny_config):
    rng = np.random.default_rng(seed)
    cfg = replace(tiny_config, max_agents=4)
    model = runtime.ForecastModel(AttentionLSTMPredictor(cfg), cfg, "test")
    hist, mask = _histories(rng, 12, cfg.history_steps + 2)
    hist[3] = np.nan  # nothing to extrapolate
    histories = {100 + n: np.where(mask[n, :, None], hist[n], np.nan)[rng.integers(0, 4):] for n in range(12)}
    centre = np.nanmean(hist[:, -1], axis=0)
    out = model.predict(histories, sizes_m={101: (9.0, 2.5)}, centre_m=centre)
    expected = _reference_predict(model, histories, centre)
    assert [f.agent_id for f in out] == list(expected) and 103 not in expected
    assert all((f.length_m, f.width_m) == ((9.0, 2.5) if f.agent_id == 101 else runtime.DEFAULT_SIZE_M) for f in out)
    learned = min(len(out), cfg.max_agents)
    assert sorted(len(f.weights) for f in out) == [1] * (len(out) - learned) + [cfg.num_modes] * learned
    for forecast in out:
        for actual, wanted in zip((forecast.weights, forecast.means_m, forecast.covariances_m2),
                                  expected[forecast.agent_id], strict=True):
            np.testing.assert_allclose(actual, wanted, **TIGHT)


def _dict_forecasts(model: runtime.ForecastModel, buffer: AgentHistoryBuffer,
                    ego_xy_m: np.ndarray) -> list[AgentForecast]:
    """What the prediction stage did before the batch path: the window as a dict of NaN-padded arrays."""
    window = buffer.window()
    histories = {int(i): np.where(window.mask[n, :, None], window.positions_m[n], np.nan)
                 for n, i in enumerate(window.agent_ids)}
    sizes = {int(i): tuple(window.sizes_m[n]) for n, i in enumerate(window.agent_ids)}
    return model.predict(histories, sizes_m=sizes, centre_m=ego_xy_m)


@pytest.mark.parametrize("buffer_history_s", [0.6, 1.0, 2.0])  # shorter than, as long as, longer than the model's
def test_the_window_path_matches_the_dict_path(buffer_history_s, tiny_config):
    rng = np.random.default_rng(7)
    cfg = replace(tiny_config, max_agents=5)
    model = runtime.ForecastModel(AttentionLSTMPredictor(cfg), cfg, "test")
    buffer = AgentHistoryBuffer(history_s=buffer_history_s, dt_s=cfg.dt_s, max_agents=40, backfill_s=0.4)
    start, velocity = rng.uniform(-200.0, 200.0, (30, 2)), rng.normal(0.0, 15.0, (30, 2))
    for k in range(30):
        stamp_s = 100.0 + 0.05 * k
        present = np.flatnonzero(rng.random(30) < 0.8)
        xy = start + velocity * stamp_s
        buffer.update([TrackedAgent(int(i), stamp_s, *xy[i], 0.0, *velocity[i], 4.0 + i / 10, 1.8)
                       for i in present], stamp_s)
    ego = np.zeros(2)
    window = buffer.window()
    fast, slow = model.predict_set(window, window.now_s, centre_m=ego), _dict_forecasts(model, buffer, ego)
    assert fast.stamp_s == buffer.last_stamp_s and fast.num_steps == model.num_steps
    assert [f.agent_id for f in fast.agents] == [f.agent_id for f in slow] and len(slow) == len(buffer)
    for a, b in zip(fast.agents, slow, strict=True):
        assert (a.length_m, a.width_m) == (b.length_m, b.width_m)
        for x, y in ((a.weights, b.weights), (a.means_m, b.means_m), (a.covariances_m2, b.covariances_m2)):
            np.testing.assert_array_equal(x, y)


def test_a_window_treats_non_finite_points_as_missing_even_when_masked_valid(tiny_config):
    model = runtime.ForecastModel.constant_velocity(tiny_config)
    hist, _ = _histories(np.random.default_rng(3), 6, tiny_config.history_steps)
    hist[2] = np.nan
    hist[4, -1] = np.inf
    window = HistoryWindow(0.0, np.arange(6), hist, np.ones(hist.shape[:2], dtype=bool),
                           np.tile(runtime.DEFAULT_SIZE_M, (6, 1)))
    stacked, per_agent = model.predict(window), model.predict(dict(enumerate(hist)))
    assert [f.agent_id for f in stacked] == [f.agent_id for f in per_agent] == [0, 1, 3, 4, 5]
    for a, b in zip(stacked, per_agent, strict=True):
        np.testing.assert_array_equal(a.means_m, b.means_m)
        assert np.isfinite(a.means_m).all()


def test_the_prediction_stage_goes_through_predict(monkeypatch, tiny_config):
    """Fault injection (test_faults) replaces ``predict``: the window path must not bypass it."""
    model = runtime.ForecastModel.constant_velocity(tiny_config)
    pipeline = PredictionPipeline(model)
    pipeline.add_tracks([TrackedAgent(1, 0.0, 0.0, 0.0, 0.0, 10.0, 0.0)], 0.0)

    def broken_predict(*args, **kwargs):
        raise RuntimeError("injected")

    monkeypatch.setattr(model, "predict", broken_predict)
    with pytest.raises(RuntimeError, match="injected"):
        pipeline.step()
