"""`rap-planner`: one command for running, training, evaluating and benchmarking the stack.

Heavy imports (torch, rclpy, libsumo) happen inside the subcommand that needs them, so
`rap-planner --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from rap_planner import __version__, topics
from rap_planner.runtime_tuning import tune_process


def _print_json_last(result: dict) -> None:
    """Benchmarks and evaluations end with one JSON object on the last line (for scripts)."""
    print(json.dumps(result, sort_keys=True))


def _cmd_param(args: argparse.Namespace) -> int:
    if args.action == "table":
        return _param_table(args.node)
    if args.node is None or args.name is None:
        print(f"param {args.action} needs a NODE and a NAME", file=sys.stderr)
        return 2
    from rap_planner.ros.param_client import UnknownParameter, get_parameter, set_parameter

    if args.action == "set" and args.value is None:
        print("param set needs a VALUE", file=sys.stderr)
        return 2
    try:
        if args.action == "get":
            print(get_parameter(args.node, args.name, timeout_s=args.timeout))
            return 0
        ok, reason = set_parameter(args.node, args.name, args.value, timeout_s=args.timeout)
    except (UnknownParameter, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("Set parameter successful" if ok else f"Setting parameter failed: {reason}")
    return 0 if ok else 1


def _param_table(node: str | None) -> int:
    """The markdown tables of the README's "Parameters" section, from the schemas (no ROS needed)."""
    from rap_planner.core.parameters import SCHEMAS, markdown_tables

    if node is None:
        print(markdown_tables())
        return 0
    schema = SCHEMAS.get(node.lstrip("/"))
    if schema is None:
        print(f"no parameter schema for node {node!r}; known: {', '.join('/' + n for n in SCHEMAS)}", file=sys.stderr)
        return 2
    print(schema.markdown_table())
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.target == "planner":
        from rap_planner.bench.planner import run_planner_bench

        result = run_planner_bench(agents=args.agents, scenarios=args.scenarios, candidates=args.candidates,
                                   repeats=args.repeats)
    elif args.target == "predictor":
        from rap_planner.core.predictor.bench import run_predictor_bench

        result = run_predictor_bench(agents=args.agents, repeats=args.repeats)
        print(f"predictor benchmark: {result['agents']} agents, K={result['modes']}, {result['horizon_s']:g} s, "
              f"{result['num_threads']} torch thread(s), {result['repeats']} scenes")
        print(f"  attention-LSTM  p50 {result['p50_ms']:6.2f} ms   p95 {result['p95_ms']:6.2f} ms   "
              f"throughput {1e3 / result['p50_ms']:6.0f} scenes/s")
        print(f"  const. velocity p50 {result['cv_p50_ms']:6.2f} ms   p95 {result['cv_p95_ms']:6.2f} ms   "
              f"(model / CV at p50: {result['p50_ms'] / result['cv_p50_ms']:.1f}x)")
    elif args.target == "soak":
        from rap_planner.bench.soak import run_soak

        result = run_soak(agents=args.agents, rate_hz=args.rate, minutes=args.minutes, composed=args.composed,
                          cycle_budget_s=1e-3 * args.cycle_budget_ms)
    else:
        from rap_planner.bench.e2e import run_e2e_bench

        result = run_e2e_bench(agents=args.agents, duration_s=args.duration)
    if args.json:
        _print_json_last(result)
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from rap_planner.sim.recorder import generate_dataset

    table = generate_dataset(args.scenarios, range(args.first_seed, args.first_seed + args.seeds), args.duration_s,
                             args.out, workers=args.workers)
    print(f"wrote {args.out}: {len(table)} rows, {len(table.scenes)} scenes, dt {table.dt_s} s")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    if args.stage == "biased":
        from rap_planner.core.biased.train import train_biased

        result = train_biased(args.config or "config/train_biased.yaml", resume=args.resume)
    else:
        from rap_planner.core.predictor.train import train

        result = train(args.config or "config/train_predictor.yaml", resume=args.resume)
    summary = {k: v for k, v in result.items() if k != "history"}
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.target == "risk":
        from rap_planner.core.biased.evaluate import evaluate_risk_estimation
        from rap_planner.paths import models_dir

        result = evaluate_risk_estimation(args.checkpoint or models_dir() / "biased_sampler.safetensors", args.out,
                                          risk_level=args.risk_level)
        print(f"CVaR_{args.risk_level:g} relative error with 16 samples: biased {result['err_biased_16']:.3f}, "
              f"unbiased {result['err_unbiased_16']:.3f}")
    elif args.target == "bag":
        from rap_planner.bagtools.evaluate import evaluate_bag

        if not args.bag:
            print("eval bag needs --bag BAG", file=sys.stderr)
            return 2
        result = evaluate_bag(Path(args.bag), Path(args.out))
        pred = result["prediction"]
        print(f"predictions: minADE {pred.get('minADE')} m, minFDE {pred.get('minFDE')} m; "
              f"plans: {result['plans'].get('count')}")
    elif args.target == "predictor":
        from rap_planner.core.predictor.evaluate import evaluate
        from rap_planner.paths import models_dir

        checkpoint = args.checkpoint or str(models_dir() / "predictor_default.safetensors")
        result = evaluate(checkpoint, args.data, args.out, max_windows=args.max_windows)
    else:
        from rap_planner.sim.evaluate import evaluate_closed_loop

        levels = [float(v) for v in args.risk_levels.split(",")]
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        planners = tuple(p.strip() for p in args.planner.split(",") if p.strip())
        result = evaluate_closed_loop(args.scenario, seeds, levels, args.out, risk_measure=args.risk_measure,
                                      model_path=args.checkpoint, workers=args.workers,
                                      biased_samples=args.biased_samples, num_scenarios=args.scenarios,
                                      planners=planners)
        keys = ("collision_rate", "at_fault_collision_rate", "progress_m", "goal_rate", "min_ttc_s", "off_lane_s")
        print(f"{'planner':<10}" + "".join(f"{k:>25}" for k in keys))
        for label, row in result["per_planner"].items():
            print(f"{label:<10}" + "".join(f"{'-' if row[k] is None else format(row[k], '.3g'):>25}" for k in keys))
        result = {**result, "per_planner": {label: {k: row[k] for k in keys}
                                            for label, row in result["per_planner"].items()}}
    print(f"wrote {args.out}")
    if args.json:
        _print_json_last(result)
    return 0


def _cmd_bag(args: argparse.Namespace) -> int:
    from rap_planner.ros.bag_player import BagError, bag_info

    try:
        if args.action == "info":
            print(bag_info(args.bag))
            return 0
        if args.action == "play":
            return _bag_play(args)
        if args.action == "convert":
            return _bag_convert(args)
        return _bag_record(args)
    except BagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _bag_convert(args: argparse.Namespace) -> int:
    from rap_planner.bagtools.convert import highd_to_bag, ngsim_to_bag

    if args.source is None or args.ego_id is None:
        print("bag convert needs --from CSV and --ego-id ID", file=sys.stderr)
        return 2
    if args.format == "ngsim":
        path = ngsim_to_bag(Path(args.source), Path(args.bag), args.ego_id, storage=args.storage)
    else:
        meta = Path(args.meta) if args.meta else None
        path = highd_to_bag(Path(args.source), Path(args.bag), args.ego_id, meta, storage=args.storage)
    print(f"wrote {path}")
    return 0


def _bag_play(args: argparse.Namespace) -> int:
    import rclpy

    from rap_planner.ros.bag_player import BagPlayer, PlayOptions

    remap = dict(item.split(":=", 1) for item in args.remap)
    options = PlayOptions(rate=args.rate, loop=args.loop, start_offset_s=args.start_offset,
                          topics=set(args.topics) if args.topics else None, remap=remap, publish_clock=args.clock)
    rclpy.init()
    player = BagPlayer(args.bag, options)
    try:
        print(f"published {player.play()} messages from {args.bag}")
    except KeyboardInterrupt:
        pass
    finally:
        player.destroy_node()
        rclpy.try_shutdown()
    return 0


def _bag_record(args: argparse.Namespace) -> int:
    import signal
    import time

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from rap_planner.ros.bag_recorder import BagRecorder

    rclpy.init()
    recorder = BagRecorder(args.bag, topics=args.topics or None, storage=args.storage)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    executor = SingleThreadedExecutor()
    executor.add_node(recorder)
    end = None if args.duration is None else time.monotonic() + args.duration
    try:
        while not stop and (end is None or time.monotonic() < end):
            executor.spin_once(timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        path = recorder.close()  # flushes and writes the metadata even on Ctrl-C / SIGTERM
        recorder.destroy_node()
        rclpy.try_shutdown()
    print(f"wrote {path}: " + ", ".join(f"{t} {n}" for t, n in sorted(recorder.counts.items())))
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
    try:
        description = parse(launch_file(name), overrides)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run(description, duration_s=args.duration)


def _cmd_demo(args: argparse.Namespace) -> int:
    from rap_planner.demo import run_demo

    return run_demo(out_dir=args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rap-planner", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"rap-planner {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    param = sub.add_parser("param", help="get or set a parameter of a running node (like `ros2 param`); "
                           "`table`: every parameter's type, default, unit and range (markdown)")
    param.add_argument("action", choices=["get", "set", "table"])
    param.add_argument("node", nargs="?", help="node name, e.g. /planner (table: all nodes if left out)")
    param.add_argument("name", nargs="?", help="parameter name, e.g. risk_level")
    param.add_argument("value", nargs="?", help="new value (set only), parsed as YAML: 0.9, true, cvar")
    param.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the node")
    param.set_defaults(func=_cmd_param)

    bench = sub.add_parser("bench", help="latency benchmarks (p50/p95) against a baseline in the same run")
    bench.add_argument("target", choices=["planner", "predictor", "e2e", "soak"])
    bench.add_argument("--rate", type=float, default=20.0, help="soak: tracks per second")
    bench.add_argument("--minutes", type=float, default=10.0, help="soak: duration")
    bench.add_argument("--composed", action="store_true",
                       help="soak: predictor and planner in one process (as `rap-planner up`), not one each")
    bench.add_argument("--cycle-budget-ms", type=float, default=0.0,
                       help="soak: the planner's cycle budget (skip refinements that would end a plan later); 0: none")
    bench.add_argument("--duration", type=float, default=20.0, help="e2e: measured seconds")
    bench.add_argument("--agents", type=int, default=32)
    bench.add_argument("--scenarios", type=int, default=64)
    bench.add_argument("--candidates", type=int, default=512)
    bench.add_argument("--repeats", type=int, default=100)
    bench.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    bench.set_defaults(func=_cmd_bench)

    data = sub.add_parser("data", help="generate a training data set of SUMO traffic (track-table .npz)")
    data.add_argument("action", choices=["generate"])
    data.add_argument("--scenarios", nargs="+", default=["highway_cutin", "merge", "intersection"])
    data.add_argument("--seeds", type=int, default=40, help="seeds per scenario")
    data.add_argument("--first-seed", type=int, default=1)
    data.add_argument("--duration-s", type=float, default=90.0)
    data.add_argument("--workers", type=int, default=1)
    data.add_argument("--out", default="outputs/data/sumo_train.npz")
    data.set_defaults(func=_cmd_data)

    train = sub.add_parser("train", help="train the predictor from a config file (safetensors checkpoints)")
    train.add_argument("config", nargs="?", default=None,
                       help="training config (default: config/train_predictor.yaml, or train_biased.yaml)")
    train.add_argument("--stage", choices=["base", "biased"], default="base",
                       help="base: the mixture predictor; biased: RAP's risk-biased sampler on top of it")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("eval", help="evaluate the predictor, or the closed loop over seeds and risk levels")
    ev.add_argument("target", choices=["predictor", "closed-loop", "bag", "risk"])
    ev.add_argument("--risk-level", type=float, default=0.95, help="risk: the CVaR level whose estimate is scored")
    ev.add_argument("--bag", default=None, help="bag: a bag with tracked agents and predictions (and plans)")
    ev.add_argument("--checkpoint", default=None, help="predictor checkpoint (default: the shipped model)")
    ev.add_argument("--data", nargs="+", default=["outputs/data/sumo_train.npz"], help="predictor: track tables")
    ev.add_argument("--max-windows", type=int, default=None, help="predictor: cap on evaluated windows")
    ev.add_argument("--scenario", default="highway_cutin", help="closed-loop: scenario")
    ev.add_argument("--seeds", type=int, default=10, help="closed-loop: episodes per risk level")
    ev.add_argument("--first-seed", type=int, default=0)
    ev.add_argument("--risk-levels", default="0,0.5,0.9,0.95", help="closed-loop: comma-separated")
    ev.add_argument("--risk-measure", default="cvar")
    ev.add_argument("--biased-samples", type=int, default=0,
                    help="closed-loop: plan on this many RAP risk-biased weighted samples instead of unbiased draws")
    ev.add_argument("--scenarios", type=int, default=None, help="closed-loop: unbiased scenarios per plan")
    ev.add_argument("--workers", type=int, default=2, help="closed-loop: parallel processes")
    ev.add_argument("--planner", default="rap,sumo,idm",
                    help="closed-loop: comma list of rap (at each risk level), sumo (SUMO's driver as the ego), "
                         "idm (IDM + MOBIL lane changes)")
    ev.add_argument("--out", default=None, help="output folder (default outputs/eval/<target>)")
    ev.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    ev.set_defaults(func=_cmd_eval)

    bag = sub.add_parser("bag", help="record, play and inspect rosbag2 files (like `ros2 bag`)")
    bag.add_argument("action", choices=["record", "play", "info", "convert"])
    bag.add_argument("bag", help="bag folder")
    bag.add_argument("--topics", nargs="*", default=None, help="record/play only these topics (default: all)")
    bag.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="record: storage plugin")
    bag.add_argument("--duration", type=float, default=None, help="record: stop after this many seconds")
    bag.add_argument("--rate", type=float, default=1.0, help="play: speed factor")
    bag.add_argument("--loop", action="store_true", help="play: start over at the end")
    bag.add_argument("--start-offset", type=float, default=0.0, help="play: skip this many seconds")
    bag.add_argument("--remap", nargs="*", default=[], metavar="FROM:=TO", help="play: topic remapping")
    bag.add_argument("--clock", action="store_true", help=f"play: publish {topics.CLOCK} from the bag's time")
    bag.add_argument("--format", choices=["ngsim", "highd"], default="ngsim", help="convert: CSV format")
    bag.add_argument("--from", dest="source", default=None, help="convert: NGSIM CSV or highD XX_tracks.csv")
    bag.add_argument("--meta", default=None, help="convert: highD XX_recordingMeta.csv (default: beside tracks)")
    bag.add_argument("--ego-id", type=int, default=None, help="convert: vehicle id that becomes the ego")
    bag.set_defaults(func=_cmd_bag)

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
    if getattr(args, "command", None) == "eval" and args.out is None:
        args.out = f"outputs/eval/{args.target}"
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    tune_process()
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
