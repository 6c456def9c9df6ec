"""Risk-biased prediction (RAP, CoRL 2022): a biased encoder proposes, per agent, a distribution over
the predictor's latent (mode, standard normal) that leans towards the ego plan's risk; importance
weights keep the planner's weighted estimates consistent. ``sampler`` draws, ``train`` fits the
encoder against CVaR from many unbiased samples, ``evaluate`` measures CVaR estimation error."""

from rap_planner.core.biased.checkpoint import BiasedCheckpointError
from rap_planner.core.biased.sampler import BiasedSampler, BiasedSamplerConfig

__all__ = ["BiasedCheckpointError", "BiasedSampler", "BiasedSamplerConfig"]
