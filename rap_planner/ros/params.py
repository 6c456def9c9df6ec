"""Declared, validated node parameters: a bad value is rejected with its reason, the old one kept."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: default (its type is the parameter's type), description with units, limits."""

    name: str
    default: Any
    description: str
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False

    def descriptor(self) -> ParameterDescriptor:
        text = self.description + (f" One of: {', '.join(self.choices)}." if self.choices else "")
        desc = ParameterDescriptor(name=self.name, description=text, read_only=self.read_only)
        if self.min_value is not None and self.max_value is not None:
            if isinstance(self.default, bool):
                pass
            elif isinstance(self.default, int):
                desc.integer_range = [IntegerRange(from_value=int(self.min_value), to_value=int(self.max_value))]
            elif isinstance(self.default, float):
                desc.floating_point_range = [FloatingPointRange(from_value=float(self.min_value),
                                                                to_value=float(self.max_value))]
        return desc

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is unacceptable, or None. Checked here too: rclpy's ranges are inclusive."""
        if self.choices is not None and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value or value in (float("inf"), float("-inf")):
                return f"{self.name} must be finite, got {value}"
            if self.min_value is not None and value < self.min_value:
                return f"{self.name} must be >= {self.min_value}, got {value}"
            if self.max_value is not None and value > self.max_value:
                return f"{self.name} must be <= {self.max_value}, got {value}"
        return None


class ParameterSet:
    """Declares ``specs`` on ``node`` and keeps ``values`` current.

    ``validate(candidate_values) -> reason | None`` sees the full set as it would be after the change,
    so cross-parameter rules (e.g. risk_level < 1 for CVaR) reject a change before it lands.
    ``on_change(values)`` runs after an accepted change; the node applies it at its next cycle.
    """

    def __init__(self, node: Node, specs: Sequence[ParamSpec],
                 validate: Callable[[dict[str, Any]], str | None] | None = None,
                 on_change: Callable[[dict[str, Any]], None] | None = None):
        self._node = node
        self._specs = {s.name: s for s in specs}
        self._validate = validate
        self._on_change = on_change
        for spec in specs:
            node.declare_parameter(spec.name, spec.default, spec.descriptor())
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
