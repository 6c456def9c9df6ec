"""ROS declarations derived from the schema: types, ranges, descriptions, refusals with the schema's reason."""

from rclpy.node import Node
from rclpy.parameter import Parameter

from rap_planner.core.parameters import PLANNER, PREDICTOR, SIM
from rap_planner.ros.params import ParameterSet
from rap_planner.ros.planner_node import PARAMS as PLANNER_PARAMS
from rap_planner.ros.predictor_node import PARAMS as PREDICTOR_PARAMS
from rap_planner.ros.sim_node import PARAMS as SIM_PARAMS


def test_node_parameter_lists_are_the_schemas():
    assert (PLANNER.params, PREDICTOR.params, SIM.params) == (PLANNER_PARAMS, PREDICTOR_PARAMS, SIM_PARAMS)


def test_declared_parameters_carry_the_schema(rclpy_context):
    node = Node("planner", context=rclpy_context)
    try:
        params = ParameterSet(node, PLANNER.params)
        assert params.values["w_collision"] == 20000.0 and params.values["lane_offsets_m"] == (0.0,)
        risk = node.describe_parameter("risk_level")
        assert (risk.floating_point_range[0].from_value, risk.floating_point_range[0].to_value) == (0.0, 0.999)
        assert risk.description == "Risk level alpha: 0 is risk-neutral, towards 1 the worst case. Unit: -."
        seed = node.describe_parameter("seed")
        assert seed.integer_range[0].to_value == 2**31 - 1
        budget = node.describe_parameter("cycle_budget_s").description
        assert "0: no budget, always refine." in budget and budget.endswith("Unit: s.")
        assert "One of: mean, var, cvar, entropic, worst." in node.describe_parameter("risk_measure").description
        result = node.set_parameters([Parameter("risk_measure", value="banana")])[0]
        assert not result.successful and "risk_measure must be one of" in result.reason
        assert node.set_parameters([Parameter("cycle_budget_s", value=0.02)])[0].successful
        assert params.values["cycle_budget_s"] == 0.02
    finally:
        node.destroy_node()
