import json

import pytest
import yaml

from rap_planner.core.predictor.checkpoint import load_checkpoint
from rap_planner.core.predictor.train import train


def _config(tmp_path, path, cfg, **extra) -> dict:
    return {"train_data": [str(path)], "output_dir": str(tmp_path / "run"), "model": cfg.to_dict(), "epochs": 6,
            "lr": 1e-2, "batch_size": 8, "seed": 1, "sample_every_s": 0.5, "split_fractions": [0.75, 0.25, 0.0],
            **extra}


def test_tiny_training_reduces_loss_and_writes_checkpoints(tmp_path, highway_path, tiny_config):
    result = train(_config(tmp_path, highway_path, tiny_config), progress=False)
    losses = [h["train_loss"] for h in result["history"]]
    assert losses[-1] < losses[0] - 0.5
    assert result["history"][-1]["val_nll"] < result["history"][0]["val_nll"]
    model, meta = load_checkpoint(result["best_checkpoint"])
    assert model.config == tiny_config and meta["split_seed"] == 1
    assert (tmp_path / "run" / "last_optim.safetensors").is_file()


def test_yaml_config_resume_matches_uninterrupted_run(tmp_path, highway_path, tiny_config):
    full = train(_config(tmp_path / "a", highway_path, tiny_config, epochs=3, max_batches_per_epoch=3), progress=False)
    cfg = _config(tmp_path / "b", highway_path, tiny_config, epochs=2, max_batches_per_epoch=3)
    yaml_path = tmp_path / "train.yaml"
    yaml_path.write_text(yaml.safe_dump(cfg))
    train(yaml_path, progress=False)
    yaml_path.write_text(yaml.safe_dump({**cfg, "epochs": 3}))
    resumed = train(yaml_path, resume=True, progress=False)
    assert [h["epoch"] for h in resumed["history"]] == [0, 1, 2]
    assert resumed["history"][-1]["train_loss"] == pytest.approx(full["history"][-1]["train_loss"], rel=1e-5)
    state = json.loads((tmp_path / "b" / "run" / "train_state.json").read_text())
    assert state["epoch"] == 2


def test_unknown_keys_are_rejected(tmp_path, highway_path, tiny_config):
    with pytest.raises(ValueError, match="unknown"):
        train({**_config(tmp_path, highway_path, tiny_config), "epoch": 3}, progress=False)
