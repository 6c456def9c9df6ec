"""Histories on the model's grid -> forecasts: the one glue step the node and the in-process loop share."""

from __future__ import annotations

import numpy as np

from rap_planner.core.history import AgentHistoryBuffer
from rap_planner.core.predictor.runtime import ForecastModel
from rap_planner.core.types import ForecastSet


def forecast_agents(model: ForecastModel, buffer: AgentHistoryBuffer, ego_xy_m: np.ndarray | None = None
                    ) -> ForecastSet:
    """Forecasts of every buffered agent; those nearest the ego get the learned model first."""
    window = buffer.window()
    histories = {int(i): np.where(window.mask[n, :, None], window.positions_m[n], np.nan)
                 for n, i in enumerate(window.agent_ids)}
    sizes = {int(i): (float(window.sizes_m[n, 0]), float(window.sizes_m[n, 1]))
             for n, i in enumerate(window.agent_ids)}
    return model.predict_set(histories, window.now_s, sizes_m=sizes, centre_m=ego_xy_m)
