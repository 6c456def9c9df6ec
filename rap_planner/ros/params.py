"""Declared, validated node parameters: a bad value is rejected with its reason, the old one kept.

Names, types, units, ranges and descriptions come from the schemas in ``rap_planner.core.parameters``
(``PLANNER.params`` ...); ``ParamSpec`` is that record, for the small nodes that declare their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from rap_planner.core.parameters import DOUBLE, INTEGER, Param

ParamSpec = Param


def descriptor(spec: Param) -> ParameterDescriptor:
    """What `ros2 param describe` shows: description with what 0 means and the unit, choices, range."""
    text = spec.full_description()
    if spec.unit:
        text += f" Unit: {spec.unit}."
    if spec.choices:
        text += f" One of: {', '.join(spec.choices)}."
    desc = ParameterDescriptor(name=spec.name, description=text, read_only=spec.read_only)
    if spec.min_value is not None and spec.max_value is not None:
        if spec.kind == INTEGER:
            desc.integer_range = [IntegerRange(from_value=int(spec.min_value), to_value=int(spec.max_value))]
        elif spec.kind == DOUBLE:
            desc.floating_point_range = [FloatingPointRange(from_value=float(spec.min_value),
                                                            to_value=float(spec.max_value))]
    return desc


class ParameterSet:
    """Declares ``specs`` on ``node`` and keeps ``values`` current.

    ``validate(candidate_values) -> reason | None`` sees the full set as it would be after the change,
    so cross-parameter rules (e.g. risk_level < 1 for CVaR) reject a change before it lands.
    ``on_change(values)`` runs after an accepted change; the node applies it at its next cycle.
    """

    def __init__(self, node: Node, specs: Sequence[Param],
                 validate: Callable[[dict[str, Any]], str | None] | None = None,
                 on_change: Callable[[dict[str, Any]], None] | None = None):
        self._node = node
        self._specs = {s.name: s for s in specs}
        self._validate = validate
        self._on_change = on_change
        for spec in specs:
            node.declare_parameter(spec.name, spec.default, descriptor(spec))
        self.values: dict[str, Any] = {s.name: node.get_parameter(s.name).value for s in specs}
        reason = self._check(self.values)
        if reason:
            raise ValueError(f"invalid parameters for {node.get_name()}: {reason}")
        node.add_on_set_parameters_callback(self._on_set)
        node.add_post_set_parameters_callback(self._after_set)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def _check(self, values: dict[str, Any]) -> str | None:
        for name, value in values.items():
            spec = self._specs.get(name)
            if spec is not None and (reason := spec.problem(value)):
                return reason
        return self._validate(values) if self._validate else None

    def _on_set(self, params: list[Parameter]) -> SetParametersResult:
        candidate = dict(self.values)
        candidate.update({p.name: p.value for p in params if p.name in self._specs})
        reason = self._check(candidate)
        if reason:
            self._node.get_logger().warning(f"parameter change rejected: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _after_set(self, params: list[Parameter]) -> None:
        changed = {p.name: p.value for p in params if p.name in self._specs}
        if not changed:
            return
        self.values.update(changed)
        self._node.get_logger().info("parameters set: " + ", ".join(f"{k}={v}" for k, v in changed.items()))
        if self._on_change:
            self._on_change(dict(self.values))
