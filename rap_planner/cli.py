"""`rap-planner`: one command for running, training, evaluating and benchmarking the stack.

Heavy imports (torch, rclpy, libsumo) happen inside the subcommand that needs them, so
`rap-planner --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from rap_planner import __version__


def _print_json_last(result: dict) -> None:
    """Benchmarks and evaluations end with one JSON object on the last line (for scripts)."""
    print(json.dumps(result, sort_keys=True))


def _cmd_param(args: argparse.Namespace) -> int:
    from rap_planner.ros.param_client import get_parameter, set_parameter

    if args.action == "get":
        value = get_parameter(args.node, args.name, timeout_s=args.timeout)
        print(value)
        return 0
    if args.value is None:
        print("param set needs a VALUE", file=sys.stderr)
        return 2
    ok, reason = set_parameter(args.node, args.name, args.value, timeout_s=args.timeout)
    print("Set parameter successful" if ok else f"Setting parameter failed: {reason}")
    return 0 if ok else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.target == "planner":
        from rap_planner.bench.planner import run_planner_bench

        result = run_planner_bench(agents=args.agents, scenarios=args.scenarios, candidates=args.candidates,
                                   repeats=args.repeats)
    elif args.target == "predictor":
        from rap_planner.core.predictor.bench import run_predictor_bench

        result = run_predictor_bench(agents=args.agents, repeats=args.repeats)
    else:
        print(f"unknown bench target {args.target}", file=sys.stderr)
        return 2
    if args.json:
        _print_json_last(result)
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from rap_planner.ros.compose import run
    from rap_planner.ros.launch_xml import launch_file, parse

    name = args.launch if args.launch.endswith(".xml") else f"{args.launch}.launch.xml"
    overrides = {}
    for item in args.launch_args:
        key, sep, value = item.partition(":=")
        if not sep:
            print(f"launch arguments are NAME:=VALUE, got '{item}'", file=sys.stderr)
            return 2
        overrides[key] = value
    return run(parse(launch_file(name), overrides), duration_s=args.duration)


def _cmd_demo(args: argparse.Namespace) -> int:
    from rap_planner.demo import run_demo

    return run_demo(out_dir=args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rap-planner", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"rap-planner {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    param = sub.add_parser("param", help="get or set a parameter of a running node (like `ros2 param`)")
    param.add_argument("action", choices=["get", "set"])
    param.add_argument("node", help="node name, e.g. /planner")
    param.add_argument("name", help="parameter name, e.g. risk_level")
    param.add_argument("value", nargs="?", help="new value (set only), parsed as YAML: 0.9, true, cvar")
    param.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the node")
    param.set_defaults(func=_cmd_param)

    bench = sub.add_parser("bench", help="latency benchmarks (p50/p95) against a baseline in the same run")
    bench.add_argument("target", choices=["planner", "predictor"])
    bench.add_argument("--agents", type=int, default=32)
    bench.add_argument("--scenarios", type=int, default=64)
    bench.add_argument("--candidates", type=int, default=512)
    bench.add_argument("--repeats", type=int, default=100)
    bench.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    bench.set_defaults(func=_cmd_bench)

    up = sub.add_parser("up", help="run a launch file composed in one process (like `ros2 launch rap_planner`)")
    up.add_argument("launch", help="sim (= sim.launch.xml) or a path to a .launch.xml")
    up.add_argument("launch_args", nargs="*", metavar="NAME:=VALUE", help="launch arguments, e.g. risk_level:=0.9")
    up.add_argument("--duration", type=float, default=None, help="stop after this many wall seconds")
    up.set_defaults(func=_cmd_up)

    demo = sub.add_parser("demo", help="one closed-loop episode in SUMO; prints where the outputs went")
    demo.add_argument("--out", default="outputs/demo", help="output folder")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
