"""`rap-planner param get|set`: the `ros2 param` verbs for machines without the ROS 2 CLI."""

from __future__ import annotations

import os

import rclpy
import yaml
from rcl_interfaces.msg import ParameterType
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.parameter_client import AsyncParameterClient


def parse_value(text: str):
    """Same typing as `ros2 param set`: YAML scalars (0.9 -> double, 3 -> int, true -> bool)."""
    return yaml.safe_load(text)


class _Session:
    """A short-lived node in its own context, so the CLI never touches a caller's context."""

    def __init__(self, target: str, timeout_s: float):
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"rap_planner_param_client_{os.getpid()}", context=self.context)
        self.client = AsyncParameterClient(self.node, target)
        self.timeout_s = timeout_s
        if not self.client.wait_for_services(timeout_sec=timeout_s):
            self.close()
            raise TimeoutError(f"node {target} did not answer within {timeout_s} s "
                               "(is it running, with the same ROS_DOMAIN_ID?)")

    def wait(self, future):
        executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        executor.add_node(self.node)
        executor.spin_until_future_complete(future, timeout_sec=self.timeout_s)
        executor.remove_node(self.node)
        if not future.done():
            raise TimeoutError("parameter service call timed out")
        return future.result()

    def close(self) -> None:
        self.node.destroy_node()
        self.context.try_shutdown()


# ParameterType's values -> what a user must give, in words
_TYPE_WORDS = {ParameterType.PARAMETER_BOOL: "true or false", ParameterType.PARAMETER_INTEGER: "an integer",
               ParameterType.PARAMETER_DOUBLE: "a number", ParameterType.PARAMETER_STRING: "a string",
               ParameterType.PARAMETER_DOUBLE_ARRAY: "a list of numbers",
               ParameterType.PARAMETER_INTEGER_ARRAY: "a list of integers",
               ParameterType.PARAMETER_STRING_ARRAY: "a list of strings",
               ParameterType.PARAMETER_BOOL_ARRAY: "a list of true/false"}


class UnknownParameter(KeyError):
    """The node has no such parameter (the message names the node and the parameter)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _declared_type(session: _Session, node: str, name: str) -> int:
    response = session.wait(session.client.describe_parameters([name]))
    kind = response.descriptors[0].type if response.descriptors else ParameterType.PARAMETER_NOT_SET
    if kind == ParameterType.PARAMETER_NOT_SET:
        raise UnknownParameter(f"{node} has no parameter '{name}' (rap-planner param table {node} lists them)")
    return int(kind)


def as_declared(name: str, value: object, kind: int) -> object:
    """``value`` in the parameter's declared type (an integer where a number is declared becomes a float, as
    `ros2 param set` users expect); raises ValueError in words when it cannot be."""
    if kind == ParameterType.PARAMETER_DOUBLE and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == ParameterType.PARAMETER_DOUBLE_ARRAY and isinstance(value, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    expected = {ParameterType.PARAMETER_BOOL: bool, ParameterType.PARAMETER_INTEGER: int,
                ParameterType.PARAMETER_DOUBLE: float, ParameterType.PARAMETER_STRING: str}.get(kind)
    if expected is not None and (type(value) is not expected):
        raise ValueError(f"{name} takes {_TYPE_WORDS[kind]}, got {value!r}")
    return value


def get_parameter(node: str, name: str, timeout_s: float = 5.0):
    """The parameter's value; raises UnknownParameter or TimeoutError with a message for people."""
    session = _Session(node, timeout_s)
    try:
        _declared_type(session, node, name)
        response = session.wait(session.client.get_parameters([name]))
        return parameter_value_to_python(response.values[0])
    finally:
        session.close()


def set_parameter(node: str, name: str, value, timeout_s: float = 5.0) -> tuple[bool, str]:
    """(accepted, reason). A string value is parsed as YAML first, like `ros2 param set`, then put in the declared
    type; an unknown name or a value of the wrong type is refused here with the reason in words."""
    if isinstance(value, str):
        value = parse_value(value)
    session = _Session(node, timeout_s)
    try:
        try:
            value = as_declared(name, value, _declared_type(session, node, name))
        except (UnknownParameter, ValueError) as exc:
            return False, str(exc)
        response = session.wait(session.client.set_parameters([Parameter(name, value=value)]))
        result = response.results[0]
        return bool(result.successful), result.reason
    finally:
        session.close()
