"""`adapt pretrain` end to end on the tiny preset: two embodiments, checkpoint, plots, resume."""

from __future__ import annotations

import torch

from adapt.model import load_model
from adapt.train.plots import read_metrics


def last_step(run) -> int:
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    return checkpoint["global_step"]


def test_pretrain_two_embodiments_then_resume(invoke, synthetic_dataset, tmp_path):
    ur5e, baxter = synthetic_dataset("ur5e"), synthetic_dataset("baxter", episodes=2)
    run = tmp_path / "run"
    args = ["pretrain", "--data", str(ur5e), "--data", f"{baxter}=baxter", "--out", str(run), "--size", "tiny"]
    args += ["--tokenizer-steps", "2", "--batch-size", "4", "--workers", "0", "--checkpoint-every", "3"]
    result = invoke(*args, "--steps", "6")
    assert result.exit_code == 0, result.output
    assert last_step(run) == 6
    for name in ("loss_curves.png", "predictions.png", "model/config.json", "model/model.safetensors"):
        assert (run / name).is_file(), name
    model = load_model(run / "model")
    assert sorted(model.specs) == ["baxter", "ur5e"] and sorted(model.stats) == ["baxter", "ur5e"]
    assert model.tokenizer.latent_scale != 1.0  # calibrated when the tokenizer froze

    refused = invoke(*args, "--steps", "9")
    assert refused.exit_code == 2 and "already exists" in refused.output

    resumed = invoke(*args, "--steps", "9", "--overwrite")
    assert resumed.exit_code == 0, resumed.output
    assert last_step(run) == 9
    steps = [int(row["step"]) for row in read_metrics(run / "logs")]  # both attempts' logs, in order
    assert steps == sorted(steps) and min(steps) <= 2 and max(steps) >= 7


def test_pretrain_rejects_data_without_an_embodiment(invoke, tmp_path):
    result = invoke("pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--size", "tiny")
    assert result.exit_code == 2 and "not a LeRobot dataset" in result.output
