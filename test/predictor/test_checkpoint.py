import json

import pytest
import torch
from safetensors.torch import save_file

from rap_planner.core.predictor.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_optimizer,
    save_checkpoint,
    save_optimizer,
    sidecar_path,
)
from rap_planner.core.predictor.model import AttentionLSTMPredictor


def _inputs(cfg):
    h = cfg.history_steps
    return torch.randn(1, 3, h, 2).cumsum(2), torch.ones(1, 3, h, dtype=torch.bool)


def test_round_trip_reproduces_outputs(tmp_path, tiny_config):
    model = AttentionLSTMPredictor(tiny_config).eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors", {"note": "x"})
    loaded, meta = load_checkpoint(path)
    assert meta == {"note": "x"} and loaded.config == tiny_config
    x, m = _inputs(tiny_config)
    assert torch.equal(model(x, m)[1], loaded(x, m)[1])


def test_truncated_file_raises_clear_error(tmp_path, tiny_config):
    path = save_checkpoint(AttentionLSTMPredictor(tiny_config), tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_garbage_and_pickle_files_are_rejected(tmp_path, tiny_config):
    path = save_checkpoint(AttentionLSTMPredictor(tiny_config), tmp_path / "m.safetensors")
    path.write_bytes(b"\x80\x04\x95" + b"cos\nsystem\n" * 50)  # pickle-looking bytes are never unpickled
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_shape_mismatch_and_wrong_keys(tmp_path, tiny_config):
    path = save_checkpoint(AttentionLSTMPredictor(tiny_config), tmp_path / "m.safetensors")
    tensors = {k: v.clone() for k, v in AttentionLSTMPredictor(tiny_config).state_dict().items()}
    tensors["head.bias"] = torch.zeros(3)
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(path)
    save_file({"evil": torch.zeros(1)}, str(path))
    with pytest.raises(CheckpointError, match="names"):
        load_checkpoint(path)


def test_non_finite_weights_rejected(tmp_path, tiny_config):
    model = AttentionLSTMPredictor(tiny_config)
    with torch.no_grad():
        model.head.bias[0] = float("nan")
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="non-finite"):
        load_checkpoint(path)


def test_bad_sidecars(tmp_path, tiny_config):
    path = save_checkpoint(AttentionLSTMPredictor(tiny_config), tmp_path / "m.safetensors")
    side = sidecar_path(path)
    good = json.loads(side.read_text())
    side.write_text("{not json")
    with pytest.raises(CheckpointError, match="JSON"):
        load_checkpoint(path)
    side.write_text(json.dumps({**good, "model_config": {**good["model_config"], "model_dim": 10**8}}))
    with pytest.raises(CheckpointError, match="config"):
        load_checkpoint(path)
    side.write_text(json.dumps({**good, "format": "something-else"}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    side.unlink()
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_optimizer_round_trip(tmp_path, tiny_config):
    model = AttentionLSTMPredictor(tiny_config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x, m = _inputs(tiny_config)
    model(x, m)[1].sum().backward()
    opt.step()
    save_optimizer(opt, tmp_path / "o.safetensors")
    opt2 = torch.optim.AdamW(model.parameters(), lr=1.0)
    load_optimizer(opt2, tmp_path / "o.safetensors")
    assert opt2.param_groups[0]["lr"] == 3e-3
    assert len(opt.state) == len(opt2.state) > 0
    for p in model.parameters():
        if p in opt.state:
            a, b = opt.state[p], opt2.state[p]
            assert torch.equal(a["exp_avg"], b["exp_avg"]) and float(a["step"]) == float(b["step"])
