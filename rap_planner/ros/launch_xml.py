"""Runs the package's own launch files where `ros2 launch` is absent (`rap-planner up`).

One declarative description serves both worlds: `ros2 launch rap_planner sim.launch.xml` in a full
ROS 2 install, and this interpreter of the same XML here. It understands exactly the subset our
launch files use (`arg`, `node` with `if`/`unless`, `param` with `name`/`value` or `from`, `remap`, and the
substitutions `$(var NAME)` and `$(find-pkg-share rap_planner)`) and refuses anything else, so
the two can never silently drift. All nodes run composed in one process on one executor.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rap_planner.core.parameters import PLANNER, PREDICTOR, SIM, Schema, read_parameter_file
from rap_planner.paths import share_dir

_SUBST = re.compile(r"\$\((var|find-pkg-share)\s+([A-Za-z0-9_]+)\)")
_ANY_SUBST = re.compile(r"\$\([^)]*\)?")
SCHEMAS: dict[str, Schema] = {"planner_node": PLANNER, "predictor_node": PREDICTOR, "sim_node": SIM}  # by executable


@dataclass
class NodeDescription:
    executable: str
    name: str
    param_files: list[Path] = field(default_factory=list)
    params: dict[str, object] = field(default_factory=dict)
    remaps: list[tuple[str, str]] = field(default_factory=list)

    def ros_args(self) -> list[str]:
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        for f in self.param_files:
            args += ["--params-file", str(f)]
        for src, dst in self.remaps:
            args += ["-r", f"{src}:={dst}"]
        return args


@dataclass
class LaunchDescription:
    path: Path
    args: dict[str, str]
    nodes: list[NodeDescription]


def launch_file(name: str) -> Path:
    path = Path(name)
    if path.exists():
        return path
    candidate = share_dir() / "launch" / name
    if not candidate.exists():
        available = ", ".join(sorted(p.name for p in (share_dir() / "launch").glob("*.launch.xml")))
        raise FileNotFoundError(f"no launch file '{name}' (available: {available})")
    return candidate


def declared_args(path: Path) -> dict[str, tuple[str | None, str]]:
    """name -> (default or None, description) of the file's <arg> elements."""
    root = ET.parse(path).getroot()
    return {a.get("name"): (a.get("default"), a.get("description", "")) for a in root.iter("arg")}


def parse(path: Path, overrides: dict[str, str] | None = None) -> LaunchDescription:
    root = ET.parse(path).getroot()
    if root.tag != "launch":
        raise ValueError(f"{path}: root element must be <launch>, got <{root.tag}>")
    overrides = dict(overrides or {})
    values: dict[str, str] = {}
    nodes: list[NodeDescription] = []
    for element in root:
        if element.tag == "arg":
            name = element.get("name")
            if name in overrides:
                values[name] = overrides.pop(name)
            elif element.get("default") is not None:
                values[name] = _substitute(element.get("default"), values)
            else:
                raise ValueError(f"launch argument '{name}' has no default: pass {name}:=VALUE")
        elif element.tag == "node":
            if _enabled(element, values):
                nodes.append(_node(element, values))
        else:
            raise ValueError(f"{path}: <{element.tag}> is not supported by rap-planner up")
    if overrides:
        raise ValueError(f"unknown launch arguments: {', '.join(sorted(overrides))} (declared: {', '.join(values)})")
    return LaunchDescription(path, values, nodes)


def _substitute(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        kind, name = match.groups()
        if kind == "var":
            if name not in values:
                raise ValueError(f"$(var {name}) used before it is declared")
            return values[name]
        if name != "rap_planner":
            raise ValueError(f"$(find-pkg-share {name}): only rap_planner is known here")
        return str(share_dir())

    unknown = _ANY_SUBST.search(_SUBST.sub("", text))
    if unknown:  # $(env ...), $(command ...), $(eval ...), ...: ros2 launch would expand them, we would not
        raise ValueError(f"substitution {unknown.group(0)!r} is not supported by rap-planner up "
                         "(only $(var NAME) and $(find-pkg-share rap_planner))")
    return _SUBST.sub(replace, text)


def _enabled(element: ET.Element, values: dict[str, str]) -> bool:
    """The `if` / `unless` attributes of ros2 launch, with its truth values."""
    for attr, wanted in (("if", True), ("unless", False)):
        text = element.get(attr)
        if text is not None:
            value = _substitute(text, values).strip().lower()
            if value not in ("true", "false", "1", "0"):
                raise ValueError(f"{attr}='{text}' must be true or false, got '{value}'")
            if (value in ("true", "1")) != wanted:
                return False
    return True


def _node(element: ET.Element, values: dict[str, str]) -> NodeDescription:
    if element.get("pkg") != "rap_planner":
        raise ValueError(f"node pkg '{element.get('pkg')}': only rap_planner nodes can run here")
    node = NodeDescription(executable=element.get("exec"), name=element.get("name") or element.get("exec"))
    schema = SCHEMAS.get(node.executable)
    for child in element:
        if child.tag == "param" and child.get("from") is not None:
            path = Path(_substitute(child.get("from"), values))
            read_parameter_file(path, node.name, schema)  # an unknown key or mistyped value fails here, worded
            node.param_files.append(path)
        elif child.tag == "param":
            value = yaml.safe_load(_substitute(child.get("value"), values))
            if schema is not None and child.get("name") not in schema:
                raise ValueError(schema.unknown(child.get("name")))
            node.params[child.get("name")] = value
        elif child.tag == "remap":
            node.remaps.append((_substitute(child.get("from"), values), _substitute(child.get("to"), values)))
        else:
            raise ValueError(f"<{child.tag}> inside <node> is not supported by rap-planner up")
    return node
