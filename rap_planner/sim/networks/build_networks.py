"""Regenerates the committed SUMO networks (``*.net.xml``) and their route files from plain XML.

The project itself never needs SUMO's binaries: only this script does, so the generated files are
committed. To regenerate (needs ``netconvert`` from the ``eclipse-sumo`` wheel, kept out of the
project's environment)::

    python3 -m venv /tmp/sumo-tools && /tmp/sumo-tools/bin/pip install eclipse-sumo==1.28.0
    /tmp/sumo-tools/bin/python rap_planner/sim/networks/build_networks.py

Coordinates are kept as written here (``--offset.disable-normalization``), so the map frame of the
nets is the frame designed below: x east, y north, metres. Every net keeps its plain-XML sources
out of the repository; this script is the source.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

HIGHWAY_SPEED_MPS = 33.33
RAMP_SPEED_MPS = 25.0
URBAN_SPEED_MPS = 13.89
HIGHWAY_LANE_WIDTH_M = 3.5
URBAN_LANE_WIDTH_M = 3.2
ARM_LENGTH_M = 200.0

NETCONVERT_OPTIONS = [
    "--offset.disable-normalization", "true",
    "--no-turnarounds", "true",
    "--output.street-names", "false",
    "--junctions.corner-detail", "5",
    "--junctions.internal-link-detail", "12",
    "--tls.default-type", "static",
    "--tls.cycle.time", "60",
    "--tls.yellow.time", "3",
    "--tls.left-green.time", "6",
    "--no-warnings", "true",
]


def _xml(root: str, body: list[str]) -> str:
    return "\n".join([f"<{root}>", *[f"    {line}" for line in body], f"</{root}>", ""])


def highway_sources() -> dict[str, str]:
    """One straight 1.5 km edge with three lanes, road centre on y = 0 (middle lane centre)."""
    nodes = ['<node id="w" x="0" y="0" type="priority"/>', '<node id="e" x="1500" y="0" type="priority"/>']
    edges = [f'<edge id="hw" from="w" to="e" numLanes="3" speed="{HIGHWAY_SPEED_MPS}" '
             f'width="{HIGHWAY_LANE_WIDTH_M}" spreadType="center"/>']
    routes = ['<route id="hw" edges="hw"/>']
    return {"nod": _xml("nodes", nodes), "edg": _xml("edges", edges), "rou": _xml("routes", routes)}


def merge_sources() -> dict[str, str]:
    """Two-lane highway along y <= 0 with a single-lane on-ramp joining a 200 m acceleration lane.

    main_in (0..600 m, 2 lanes) -> merge_zone (600..800 m, 3 lanes, lane 0 = acceleration lane)
    -> main_out (800..1500 m, 2 lanes); ramp comes from the south-west into lane 0 of merge_zone.
    The acceleration lane has no successor, so ramp traffic must change left inside merge_zone.
    """
    nodes = [
        '<node id="m0" x="0" y="0" type="priority"/>',
        '<node id="m1" x="600" y="0" type="priority"/>',
        '<node id="m2" x="800" y="0" type="priority"/>',
        '<node id="m3" x="1500" y="0" type="priority"/>',
        '<node id="r0" x="330" y="-70" type="priority"/>',
    ]
    common = f'speed="{HIGHWAY_SPEED_MPS}" width="{HIGHWAY_LANE_WIDTH_M}"'
    edges = [
        f'<edge id="main_in" from="m0" to="m1" numLanes="2" {common}/>',
        f'<edge id="merge_zone" from="m1" to="m2" numLanes="3" {common}/>',
        f'<edge id="main_out" from="m2" to="m3" numLanes="2" {common}/>',
        f'<edge id="ramp" from="r0" to="m1" numLanes="1" speed="{RAMP_SPEED_MPS}" '
        f'width="{HIGHWAY_LANE_WIDTH_M}" shape="330,-70 470,-30 560,-10 600,-7"/>',
    ]
    connections = [
        '<connection from="main_in" to="merge_zone" fromLane="0" toLane="1"/>',
        '<connection from="main_in" to="merge_zone" fromLane="1" toLane="2"/>',
        '<connection from="ramp" to="merge_zone" fromLane="0" toLane="0"/>',
        '<connection from="merge_zone" to="main_out" fromLane="1" toLane="0"/>',
        '<connection from="merge_zone" to="main_out" fromLane="2" toLane="1"/>',
    ]
    routes = [
        '<route id="main" edges="main_in merge_zone main_out"/>',
        '<route id="ramp" edges="ramp merge_zone main_out"/>',
    ]
    return {"nod": _xml("nodes", nodes), "edg": _xml("edges", edges),
            "con": _xml("connections", connections), "rou": _xml("routes", routes)}


ARMS = {"n": (0.0, 1.0), "s": (0.0, -1.0), "e": (1.0, 0.0), "w": (-1.0, 0.0)}
LEFT_OF = {"s": "w", "w": "n", "n": "e", "e": "s"}  # arriving from key, a left turn leaves towards value
OPPOSITE = {"s": "n", "n": "s", "e": "w", "w": "e"}


def intersection_sources() -> dict[str, str]:
    """Signalised 4-way junction ``c`` at the origin; arms of 200 m, two lanes each way.

    Edge ``s_in`` runs from the south arm to the centre, ``n_out`` from the centre to the north arm,
    and so on. Routes are named ``<from>_<to>`` (e.g. ``s_n`` straight north, ``s_w`` left turn).
    """
    nodes = ['<node id="c" x="0" y="0" type="traffic_light"/>']
    edges = []
    common = f'numLanes="2" speed="{URBAN_SPEED_MPS}" width="{URBAN_LANE_WIDTH_M}"'
    for arm, (dx, dy) in ARMS.items():
        nodes.append(f'<node id="{arm}" x="{dx * ARM_LENGTH_M:.0f}" y="{dy * ARM_LENGTH_M:.0f}" type="priority"/>')
        edges.append(f'<edge id="{arm}_in" from="{arm}" to="c" {common}/>')
        edges.append(f'<edge id="{arm}_out" from="c" to="{arm}" {common}/>')
    routes = []
    for arm in ARMS:
        right = OPPOSITE[LEFT_OF[arm]]
        for target in (OPPOSITE[arm], LEFT_OF[arm], right):
            routes.append(f'<route id="{arm}_{target}" edges="{arm}_in {target}_out"/>')
    return {"nod": _xml("nodes", nodes), "edg": _xml("edges", edges), "rou": _xml("routes", routes)}


def sumocfg(name: str) -> str:
    """A config for looking at a net in sumo-gui; the simulator builds its own command line."""
    body = ["<input>", f'    <net-file value="{name}.net.xml"/>', f'    <route-files value="{name}.rou.xml"/>',
            "</input>"]
    return _xml("configuration", body)


BUILDERS = {"highway": highway_sources, "merge": merge_sources, "intersection": intersection_sources}


def find_netconvert(explicit: str | None) -> str:
    """The netconvert next to this interpreter (tool venv) wins over one on PATH."""
    candidates = [explicit, str(Path(sys.executable).parent / "netconvert"), shutil.which("netconvert")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise SystemExit("netconvert not found: install eclipse-sumo in a tool venv (see module docstring)")


def _strip_generator_header(net_path: Path) -> None:
    """Drops netconvert's comment (temp paths, a date) so rebuilding gives identical files."""
    text = re.sub(r"<!-- generated on .*?-->\n", "<!-- generated by build_networks.py -->\n", net_path.read_text(),
                  count=1, flags=re.S)
    net_path.write_text(text)


def build(name: str, netconvert: str, out_dir: Path) -> Path:
    """Writes ``<name>.net.xml``, ``<name>.rou.xml`` and ``<name>.sumocfg`` into ``out_dir``."""
    sources = BUILDERS[name]()
    out_dir.mkdir(parents=True, exist_ok=True)
    net_path = out_dir / f"{name}.net.xml"
    with tempfile.TemporaryDirectory() as tmp:
        args = [netconvert, *NETCONVERT_OPTIONS, "-o", str(net_path)]
        flags = {"nod": "--node-files", "edg": "--edge-files", "con": "--connection-files"}
        for kind, flag in flags.items():
            if kind in sources:
                path = Path(tmp) / f"{name}.{kind}.xml"
                path.write_text(sources[kind])
                args += [flag, str(path)]
        subprocess.run(args, check=True)
    _strip_generator_header(net_path)
    (out_dir / f"{name}.rou.xml").write_text(sources["rou"])
    (out_dir / f"{name}.sumocfg").write_text(sumocfg(name))
    return net_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--netconvert", help="path to netconvert (default: next to this python, then PATH)")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: this folder)")
    parser.add_argument("names", nargs="*", default=list(BUILDERS), help="nets to build")
    args = parser.parse_args()
    netconvert = find_netconvert(args.netconvert)
    for name in args.names:
        print(build(name, netconvert, args.out))


if __name__ == "__main__":
    main()
