"""Histories on the model's grid -> forecasts: the one glue step the node and the in-process loop share."""

from __future__ import annotations

import numpy as np

from rap_planner.core.history import AgentHistoryBuffer
from rap_planner.core.predictor.runtime import ForecastModel
from rap_planner.core.types import ForecastSet, Plan


def forecast_agents(model: ForecastModel, buffer: AgentHistoryBuffer, ego_xy_m: np.ndarray | None = None
                    ) -> ForecastSet:
    """Forecasts of every buffered agent; those nearest the ego get the learned model first."""
    window = buffer.window()
    return model.predict_set(window, window.now_s, centre_m=ego_xy_m)


def plan_on_grid(plan: Plan, forecasts: ForecastSet) -> np.ndarray:
    """The plan's (x, y) at the forecast's steps (``stamp + (t + 1) dt``), clamped at its ends."""
    times_s = forecasts.stamp_s + forecasts.dt_s * np.arange(1, forecasts.num_steps + 1)
    plan_times_s = plan.stamp_s + np.asarray(plan.times_s)
    return np.stack([np.interp(times_s, plan_times_s, plan.states[:, i]) for i in (0, 1)], axis=1)
