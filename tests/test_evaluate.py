"""Evaluation: a tiny policy runs closed loop in robosuite and open loop on a dataset, end to end."""

from __future__ import annotations

import json

import numpy as np
import torch

from adapt.embodiment import load_embodiment
from adapt.model import WorldActionModel, model_config, save_model


def test_closed_loop_eval_writes_results_and_videos(invoke, tmp_path):
    torch.manual_seed(0)
    save_model(WorldActionModel(model_config("tiny"), [load_embodiment("ur5e")]), tmp_path / "policy")
    out = tmp_path / "eval"
    args = ["--policy", tmp_path / "policy", "--task", "Lift", "--episodes", "2", "--max-steps", "10"]
    result = invoke("eval", *args, "--steps", "1", "--execute", "4", "--out", out)
    assert result.exit_code == 0, result.output
    assert "success rate" in result.output and "episode 2 (seed 1): progress" in result.output
    report = json.loads((out / "results.json").read_text())
    assert report["robot"] == "ur5e" and len(report["episodes"]) == 2
    for episode in report["episodes"]:
        assert 0.0 <= episode["progress"] <= 1.0 and episode["steps"] == 10
        video = out / episode["video"]
        assert video.is_file() and video.stat().st_size > 1000
    import decord

    frames = decord.VideoReader(str(out / report["episodes"][0]["video"]))
    assert len(frames) == 10 and frames[0].shape == (128, 256, 3)  # camera | predicted future


def test_open_loop_eval_scores_actions_and_video(invoke, synthetic_dataset, tmp_path):
    from adapt.data import LeRobotDataset
    from adapt.data.stats import compute_stats

    spec = load_embodiment("ur5e")
    data = synthetic_dataset("ur5e")
    model = WorldActionModel(model_config("tiny"), [spec])
    model.stats["ur5e"] = compute_stats(LeRobotDataset(data, spec))
    save_model(model, tmp_path / "policy")
    result = invoke("eval", "--policy", tmp_path / "policy", "--open-loop", "--data", data, "--out", tmp_path / "ol")
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "ol" / "results.json").read_text())
    assert scores["windows"] > 0 and np.isfinite(scores["action_mse"]) and len(scores["action_mse_per_dim"]) == 7


def test_eval_without_data_for_open_loop_is_refused(invoke, tmp_path):
    save_model(WorldActionModel(model_config("tiny"), [load_embodiment("ur5e")]), tmp_path / "policy")
    result = invoke("eval", "--policy", tmp_path / "policy", "--open-loop")
    assert result.exit_code == 2 and "needs --data" in result.output
