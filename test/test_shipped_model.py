"""The committed predictor weights load with today's code (guards against architecture drift)."""

import numpy as np

from rap_planner.core.predictor.runtime import ForecastModel


def test_shipped_predictor_loads_and_predicts_a_moving_car():
    model = ForecastModel.default()
    assert model.is_learned, "rap_planner/models/predictor_default.safetensors must load"
    history = np.stack([np.linspace(0.0, 30.0, 16), np.zeros(16)], axis=1)  # 3 s at 10 m/s, dt 0.2 s
    forecast = model.predict_set({7: history}, stamp_s=0.0).agents[0]
    assert forecast.means_m.shape == (6, 25, 2) and np.isclose(forecast.weights.sum(), 1.0)
    best = forecast.means_m[np.argmax(forecast.weights)]
    assert 60.0 < best[-1, 0] < 100.0, f"a 10 m/s car should be 30-70 m further after 5 s, got {best[-1, 0]:.1f}"
