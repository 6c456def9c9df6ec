"""Hostile files: checkpoints, parameter/launch files and bags fail with a clear error, never run code.

Each "malicious" payload would create a marker file if it were ever executed; the payloads are
first proven live (run on purpose against a different marker), then fed to the loaders, and the
marker must not exist afterwards.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from rap_planner.bagtools.convert import ngsim_to_bag
from rap_planner.bagtools.evaluate import read_bag
from rap_planner.config import node_parameters
from rap_planner.core.predictor.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_optimizer,
    save_checkpoint,
    save_optimizer,
    sidecar_path,
)
from rap_planner.core.predictor.model import AttentionLSTMPredictor, PredictorConfig
from rap_planner.core.predictor.runtime import ForecastModel
from rap_planner.ros.bag_player import BagError, BagPlayer, bag_info, read_raw
from rap_planner.ros.launch_xml import parse
from rap_planner.ros.planner_node import PlannerNode
from rap_planner.ros.predictor_node import PredictorNode

NGSIM_CSV = Path(__file__).resolve().parents[1] / "fixtures" / "ngsim" / "trajectories-sample.csv"
TINY = PredictorConfig(history_s=1.0, horizon_s=2.0, dt_s=0.2, num_modes=3, encoder_hidden=16, model_dim=16,
                       num_heads=2, decoder_hidden=16, decoder_steps_per_cell=2, max_agents=8)


class _CreatesMarker:
    """Unpickling this calls open(marker, "w"): proof of code execution, harmless otherwise."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def armed_pickle(marker: Path) -> bytes:
    return pickle.dumps(_CreatesMarker(marker))


@pytest.fixture
def markers(tmp_path):
    """(marker that must never appear, marker for proving a payload live)."""
    never, proof = tmp_path / "PWNED", tmp_path / "payload_is_live"
    yield never, proof
    assert not never.exists(), "a hostile file executed code"


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return save_checkpoint(AttentionLSTMPredictor(TINY), tmp_path / "ckpt" / "m.safetensors")


# --- checkpoints --------------------------------------------------------------------------------------

def _header(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def _with_header(header, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def hostile_weight_files(good: bytes) -> dict[str, bytes]:
    header, body = _header(good)
    name = next(k for k in header if k != "__metadata__")

    def edit(**fields):
        return _with_header({**header, name: {**header[name], **fields}}, body)

    cuts = {f"truncated to {n} bytes": good[:n] for n in (0, 1, 7, 8, 100, len(good) // 2, len(good) - 1)}
    return {
        **cuts,
        "header length 2^63": struct.pack("<Q", 2**63) + good[8:],
        "header length past the end": struct.pack("<Q", len(good)) + good[8:],
        "header not JSON": struct.pack("<Q", 10) + b"not json!!" + body,
        "header a JSON list": _with_header([1, 2, 3], body),
        "offsets past the end": edit(data_offsets=[0, 10**12]),
        "shape 2^40 x 2^40": edit(shape=[2**40, 2**40]),
        "negative shape": edit(shape=[-1]),
        "unknown dtype": edit(dtype="F128"),
        "dtype size mismatch": edit(dtype="F64"),
        "metadata not a string": _with_header({**header, "__metadata__": {"format": 5}}, body),
        "random bytes": os.urandom(4096),
    }


def test_corrupt_and_hostile_weight_files_fail_clearly(checkpoint):
    good = checkpoint.read_bytes()
    for label, data in hostile_weight_files(good).items():
        checkpoint.write_bytes(data)
        with pytest.raises(CheckpointError, match="m.safetensors") as err:
            load_checkpoint(checkpoint)
        assert "corrupt" in str(err.value) or "unreadable" in str(err.value), f"{label}: {err.value}"
    tensors = {k: v.double() for k, v in AttentionLSTMPredictor(TINY).state_dict().items()}
    save_file(tensors, str(checkpoint))  # a valid file of the wrong dtype
    with pytest.raises(CheckpointError, match="dtype"):
        load_checkpoint(checkpoint)


def test_pickles_renamed_to_safetensors_are_never_unpickled(checkpoint, markers, tmp_path):
    never, proof = markers
    pickle.loads(armed_pickle(proof))  # the payload is live: unpickling it runs code
    assert proof.exists()
    torch_file = tmp_path / "evil.pt"
    torch.save(_CreatesMarker(never), torch_file)  # torch's zip format with the same payload in data.pkl
    for payload in (armed_pickle(never), torch_file.read_bytes()):
        checkpoint.write_bytes(payload)
        with pytest.raises(CheckpointError):
            load_checkpoint(checkpoint)
        with pytest.raises(CheckpointError):
            ForecastModel.load(checkpoint)
    sidecar_path(checkpoint).write_bytes(armed_pickle(never))  # and as the JSON sidecar
    with pytest.raises(CheckpointError, match="JSON"):
        load_checkpoint(checkpoint)


def test_hostile_sidecars_fail_clearly(checkpoint):
    side = sidecar_path(checkpoint)
    good = json.loads(side.read_text())
    config = good["model_config"]
    bad_configs = {
        "unknown key": {**config, "evil": 1},
        "string for an int": {**config, "num_modes": "6"},
        "float for an int": {**config, "num_modes": 6.0},
        "bool for an int": {**config, "num_modes": True},
        "null": {**config, "model_dim": None},
        "list": {**config, "history_s": [1.0]},
        "huge width": {**config, "model_dim": 10**8},
        "huge mode count": {**config, "num_modes": 10**6},
        "huge horizon": {**config, "horizon_s": 1e9},
        "NaN": {**config, "dt_s": float("nan")},
        "Infinity": {**config, "history_s": float("inf")},
        "negative": {**config, "dt_s": -0.2},
        "not a mapping": [config],
        "missing": None,
    }
    for label, bad in bad_configs.items():
        side.write_text(json.dumps({**good, "model_config": bad}))
        with pytest.raises(CheckpointError, match="config") as err:
            load_checkpoint(checkpoint)
        assert "m.json" in str(err.value), f"{label}: {err.value}"
    other = {
        "wrong format": json.dumps({**good, "format": "evil"}),
        "wrong version": json.dumps({**good, "version": 99}),
        "not JSON": "{model_config: ",
        "not UTF-8": b"\xff\xfe\x00garbage",
        "nested 100,000 deep": "[" * 100_000 + "]" * 100_000,
        "a JSON number": "5",
        "empty": "",
    }
    for label, text in other.items():
        side.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(CheckpointError, match="m.json"):
            load_checkpoint(checkpoint)
        assert label
    side.write_bytes(b" " * (16 * 1024 * 1024 + 1))  # over the sidecar size limit
    with pytest.raises(CheckpointError, match="large"):
        load_checkpoint(checkpoint)
    side.unlink()
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(checkpoint)


def test_hostile_optimizer_files_fail_clearly(tmp_path, markers):
    never, _ = markers
    model = AttentionLSTMPredictor(TINY)
    optimizer = torch.optim.Adam(model.parameters())
    path = save_optimizer(optimizer, tmp_path / "opt.safetensors")
    good = path.read_bytes()
    for data in (good[: len(good) // 2], armed_pickle(never), b""):
        path.write_bytes(data)
        with pytest.raises(CheckpointError):
            load_optimizer(optimizer, path)
    path.write_bytes(good)
    for text in ("[" * 100_000, "{}", json.dumps({"format": "rap_planner.predictor.optimizer", "param_groups": 5})):
        sidecar_path(path).write_text(text)
        with pytest.raises(CheckpointError):
            load_optimizer(optimizer, path)


def test_predictor_node_refuses_a_hostile_checkpoint(rclpy_context, checkpoint, markers):
    never, _ = markers
    from rclpy.parameter import Parameter

    checkpoint.write_bytes(armed_pickle(never))
    with pytest.raises(CheckpointError, match="m.safetensors"):
        PredictorNode(context=rclpy_context, parameter_overrides=[Parameter("model_path", value=str(checkpoint))])


def test_predictor_process_exits_with_the_reason_on_a_hostile_checkpoint(ros_domain, checkpoint, markers):
    never, _ = markers
    checkpoint.write_bytes(armed_pickle(never))
    result = subprocess.run([sys.executable, "-m", "rap_planner.ros.entry", "predictor_node", "--ros-args", "-p",
                             f"model_path:={checkpoint}"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "CheckpointError" in result.stderr and str(checkpoint) in result.stderr, result.stderr[-2000:]


# --- parameter and launch files ----------------------------------------------------------------------

PYTHON_TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/apply:builtins.open ['{marker}', 'w']",
    "!!python/object/new:builtins.open ['{marker}', 'w']",
    "!!python/name:os.system",
    "!!python/module:os",
]


def test_yaml_with_python_tags_is_refused_by_safe_load(tmp_path, markers):
    never, proof = markers
    yaml.unsafe_load(PYTHON_TAGS[1].format(marker=proof))  # the payload is live under an unsafe loader
    assert proof.exists()
    for tag in PYTHON_TAGS:
        text = f"planner:\n  ros__parameters:\n    risk_level: {tag.format(marker=never)}\n"
        with pytest.raises(yaml.YAMLError, match="constructor"):
            node_parameters(_write(tmp_path / "p.yaml", text), "planner")


def test_parameter_files_with_python_tags_never_reach_python(rclpy_context, tmp_path, markers):
    """rcl parses --params-file in C: a python tag is just a string (array); the typed parameter refuses it."""
    never, _ = markers
    from rclpy.exceptions import InvalidParameterTypeException

    for tag in PYTHON_TAGS[:3]:
        text = f"planner:\n  ros__parameters:\n    risk_level: {tag.format(marker=never)}\n"
        path = _write(tmp_path / "p.yaml", text)
        with pytest.raises(InvalidParameterTypeException, match="risk_level"):
            PlannerNode(context=rclpy_context, cli_args=["--ros-args", "--params-file", str(path)])


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


LAUNCH_OK_NODE = '<node pkg="rap_planner" exec="planner_node" name="planner"/>'


@pytest.mark.parametrize("body, match", [
    ('<include file="/etc/passwd"/>', "not supported"),
    ('<group><node pkg="rap_planner" exec="planner_node"/></group>', "not supported"),
    ('<executable cmd="touch {marker}"/>', "not supported"),
    ('<let name="x" value="1"/>', "not supported"),
    ('<set_env name="LD_PRELOAD" value="/tmp/evil.so"/>', "not supported"),
    ('<node pkg="rap_planner" exec="planner_node"><env name="A" value="1"/></node>', "not supported"),
    ('<node pkg="evil_pkg" exec="evil"/>', "only rap_planner"),
    ('<node pkg="rap_planner" exec="planner_node"><param from="$(find-pkg-share evil)/x.yaml"/></node>',
     "only rap_planner"),
    ('<node pkg="rap_planner" exec="planner_node"><param name="a" value="$(var undeclared)"/></node>',
     "before it is declared"),
    ('<arg name="needs_value"/>' + LAUNCH_OK_NODE, "has no default"),
    ('<node pkg="rap_planner" exec="planner_node"><param name="a" value="$(command touch {marker})"/></node>',
     "substitution .* is not supported"),
    ('<node pkg="rap_planner" exec="planner_node"><param name="a" value="$(env HOME)"/></node>',
     "substitution .* is not supported"),
    ('<arg name="x" default="$(eval 1+1"/>' + LAUNCH_OK_NODE, "substitution .* is not supported"),
])
def test_launch_xml_with_unknown_elements_is_refused(tmp_path, markers, body, match):
    never, _ = markers
    path = _write(tmp_path / "x.launch.xml", f"<launch>{body.format(marker=never)}</launch>")
    with pytest.raises(ValueError, match=match):
        parse(path)


def test_hostile_launch_xml_fails_clearly_and_runs_nothing(tmp_path, markers):
    never, _ = markers
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 9))
    cases = {
        "billion laughs": f'<?xml version="1.0"?><!DOCTYPE launch [<!ENTITY l0 "lol">{laughs}]>'
                          '<launch><arg name="x" default="&l8;"/></launch>',
        "external entity": '<?xml version="1.0"?><!DOCTYPE launch [<!ENTITY s SYSTEM "file:///etc/passwd">]>'
                           '<launch><arg name="x" default="&s;"/></launch>',
        "malformed": "<launch><node",
        "random bytes": os.urandom(300).decode("latin-1"),
        "not launch": "<html/>",
    }
    for label, text in cases.items():
        with pytest.raises((ET.ParseError, ValueError)):
            parse(_write(tmp_path / "x.launch.xml", text))
        assert label
    tagged = (f'<launch><node pkg="rap_planner" exec="planner_node" name="planner">'
              f'<param name="risk_level" value="{PYTHON_TAGS[0].format(marker=never)}"/></node></launch>')
    with pytest.raises(yaml.YAMLError, match="constructor"):
        parse(_write(tmp_path / "x.launch.xml", tagged))
    override = '<launch><arg name="r" default="0.9"/><node pkg="rap_planner" exec="planner_node" name="planner">' \
               '<param name="risk_level" value="$(var r)"/></node></launch>'
    with pytest.raises(yaml.YAMLError, match="constructor"):  # the same through a command-line argument
        parse(_write(tmp_path / "x.launch.xml", override), {"r": PYTHON_TAGS[0].format(marker=never)})
    command = f'<launch><node pkg="rap_planner" exec="planner_node" name="planner">' \
              f'<param name="seed" value="$(command touch {never})"/></node></launch>'
    with pytest.raises(ValueError, match="is not supported"):  # refused, never run
        parse(_write(tmp_path / "x.launch.xml", command))
    assert not never.exists()


# --- bags ------------------------------------------------------------------------------------------------

@pytest.fixture
def good_bag(tmp_path) -> Path:
    return ngsim_to_bag(NGSIM_CSV, tmp_path / "good_bag", ego_id=7)


def hostile_bags(good: Path, root: Path, marker: Path) -> dict[str, Path]:
    mcap = next(good.glob("*.mcap"))
    data = mcap.read_bytes()
    out = {}

    def variant(label: str, edit) -> None:
        bag = root / f"bag_{len(out)}"
        shutil.copytree(good, bag)
        edit(bag, bag / mcap.name)
        out[label] = bag

    for n in (0, 8, 100, len(data) // 2, len(data) - 10):
        variant(f"MCAP truncated to {n} bytes", lambda b, m, n=n: m.write_bytes(data[:n]))
    variant("MCAP replaced by random bytes", lambda b, m: m.write_bytes(os.urandom(len(data))))
    variant("MCAP replaced by a pickle", lambda b, m: m.write_bytes(armed_pickle(marker)))
    variant("metadata.yaml missing", lambda b, m: (b / "metadata.yaml").unlink())
    variant("metadata.yaml with a python tag", lambda b, m: (b / "metadata.yaml").write_text(
        f"rosbag2_bagfile_information: {PYTHON_TAGS[0].format(marker=marker)}\n"))
    variant("metadata.yaml random bytes", lambda b, m: (b / "metadata.yaml").write_bytes(os.urandom(300)))
    variant("metadata.yaml empty", lambda b, m: (b / "metadata.yaml").write_text(""))
    variant("MCAP missing", lambda b, m: m.unlink())
    empty = root / "empty_dir"
    empty.mkdir()
    out["empty directory"] = empty
    out["nothing there"] = root / "no_such_bag"
    return out


def test_hostile_bags_fail_with_a_bag_error(good_bag, tmp_path, markers, rclpy_context):
    never, _ = markers
    assert bag_info(good_bag).message_count == 12 and len(list(read_raw(good_bag))) == 12
    for label, bag in hostile_bags(good_bag, tmp_path, never).items():
        with pytest.raises(BagError, match=str(bag.name)):
            bag_info(bag)
        with pytest.raises(BagError):
            list(read_raw(bag))
        with pytest.raises(BagError):
            BagPlayer(bag, context=rclpy_context)
        with pytest.raises(Exception) as err:  # the evaluation reader: rosbags' own errors, not wrapped
            read_bag(bag)
        assert str(err.value), f"{label}: an error without a message"
