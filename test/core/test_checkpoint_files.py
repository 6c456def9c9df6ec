"""The shared safetensors + JSON-sidecar format: round trips, byte-stable re-saves and the optimizer checks."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from rap_planner.core import checkpoint_files as files
from rap_planner.core.biased import checkpoint as biased_checkpoint
from rap_planner.core.biased.sampler import BiasedSampler
from rap_planner.core.checkpoint_files import CheckpointError, sidecar_path
from rap_planner.core.predictor import checkpoint as predictor_checkpoint

MODELS = Path(__file__).resolve().parents[2] / "rap_planner" / "models"
FMT = "test.optimizer"


def _stepped_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """Two parameter groups with Adam state in both."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.Adam([{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.1}],
                                 lr=3e-3)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    return model, optimizer


def _fresh_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam([{"params": model[0].parameters()}, {"params": model[1].parameters()}], lr=1.0)


def test_biased_error_is_the_shared_error():
    assert biased_checkpoint.BiasedCheckpointError is predictor_checkpoint.CheckpointError is CheckpointError


def _resave_predictor(src: Path, dst: Path) -> Path:
    model, metadata = predictor_checkpoint.load_checkpoint(src)
    return predictor_checkpoint.save_checkpoint(model, dst, metadata)


def _resave_biased(src: Path, dst: Path) -> Path:
    sampler = BiasedSampler.load(src)
    return sampler.save(dst, sampler.metadata)


@pytest.mark.parametrize("name, resave", [("predictor_default", _resave_predictor),
                                          ("biased_sampler", _resave_biased)])
def test_resaving_a_shipped_model_reproduces_its_files(tmp_path, name, resave):
    """The shared writer keeps the on-disk format byte for byte."""
    shipped = MODELS / f"{name}.safetensors"
    path = resave(shipped, tmp_path / f"{name}.safetensors")
    assert path.read_bytes() == shipped.read_bytes()
    assert sidecar_path(path).read_bytes() == sidecar_path(shipped).read_bytes()


def test_tensors_without_expectations_must_still_be_finite(tmp_path):
    path = files.write_checkpoint(tmp_path / "t.safetensors", {"a": torch.ones(2)}, {"format": "t"})
    assert torch.equal(files.read_tensors(path)["a"], torch.ones(2))
    save_file({"a": torch.tensor([1.0, float("inf")])}, str(path))
    with pytest.raises(CheckpointError, match="non-finite"):
        files.read_tensors(path)


def test_optimizer_round_trip_keeps_groups_and_state(tmp_path):
    model, optimizer = _stepped_optimizer()
    path = files.save_optimizer(optimizer, tmp_path / "o.safetensors", FMT)
    restored = _fresh_optimizer(model)
    files.load_optimizer(restored, path, FMT)
    assert [g["lr"] for g in restored.param_groups] == [3e-3, 0.1]
    for p in model.parameters():
        assert torch.equal(optimizer.state[p]["exp_avg_sq"], restored.state[p]["exp_avg_sq"])


def test_optimizer_formats_and_versions_are_not_interchangeable(tmp_path):
    _, optimizer = _stepped_optimizer()
    path = files.save_optimizer(optimizer, tmp_path / "o.safetensors", biased_checkpoint.OPTIMIZER_FORMAT)
    with pytest.raises(CheckpointError, match="not a rap_planner.predictor.optimizer sidecar"):
        predictor_checkpoint.load_optimizer(optimizer, path)
    side = sidecar_path(path)
    side.write_text(json.dumps({**json.loads(side.read_text()), "version": 2}))
    with pytest.raises(CheckpointError, match="unsupported version"):
        biased_checkpoint.load_optimizer(optimizer, path)


def _edit_sidecar(path: Path, edit) -> None:
    side = sidecar_path(path)
    data = json.loads(side.read_text())
    edit(data)
    side.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, reason", [
    (lambda d: d["param_groups"].pop(), "different parameter list"),
    (lambda d: d["param_groups"][0]["params"].pop(), "different parameter list"),
    (lambda d: d["param_groups"].__setitem__(0, 5), "different parameter list"),
    (lambda d: d.__setitem__("param_groups", 5), "different parameter list"),
    (lambda d: d["param_groups"][1]["params"].reverse(), "different parameter list"),
    (lambda d: d.__setitem__("scalars", {"0": {"step": float("nan")}}), "0.step does not fit"),
    (lambda d: d.__setitem__("scalars", {"0": {"step": "evil"}}), "0.step does not fit"),
    (lambda d: d.__setitem__("scalars", {"9": {"step": 1}}), "unknown parameter 9"),
    (lambda d: d.__setitem__("scalars", {"x": {}}), "malformed"),
    (lambda d: d.__setitem__("scalars", [1]), "malformed"),
])
def test_optimizer_state_must_fit_the_parameters(tmp_path, edit, reason):
    model, optimizer = _stepped_optimizer()
    path = files.save_optimizer(optimizer, tmp_path / "o.safetensors", FMT)
    _edit_sidecar(path, edit)
    with pytest.raises(CheckpointError, match=reason):
        files.load_optimizer(_fresh_optimizer(model), path, FMT)


def test_optimizer_tensors_must_fit_and_be_finite(tmp_path):
    model, optimizer = _stepped_optimizer()
    path = files.save_optimizer(optimizer, tmp_path / "o.safetensors", FMT)
    tensors = files.read_tensors(path)
    save_file({**tensors, "0.exp_avg": torch.zeros(7)}, str(path))
    with pytest.raises(CheckpointError, match="0.exp_avg does not fit"):
        files.load_optimizer(_fresh_optimizer(model), path, FMT)
    save_file({**tensors, "0.exp_avg": torch.full((4, 3), float("nan"))}, str(path))
    with pytest.raises(CheckpointError, match="non-finite"):
        files.load_optimizer(_fresh_optimizer(model), path, FMT)
