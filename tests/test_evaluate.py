"""Evaluation: a tiny policy runs closed loop in robosuite and open loop on a dataset, end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
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
    assert "success 0/2 = 0.00 (95% CI 0.00-0.66, Wilson)" in result.output
    assert "episode 2 (seed 1): progress" in result.output
    assert "2 failed:" in result.output and "median closest approach" in result.output
    report = json.loads((out / "results.json").read_text())
    assert report["robot"] == "ur5e" and len(report["episodes"]) == 2
    for episode in report["episodes"]:
        stages = ("reach", "grasp", "lift", "hold")
        assert tuple(episode["stages"]) == stages[: len(episode["stages"])]  # each stage needs those before
        assert episode["progress"] == len(episode["stages"]) / 4 and episode["steps"] == 10
        video = out / episode["video"]
        assert video.is_file() and video.stat().st_size > 1000
    import decord

    frames = decord.VideoReader(str(out / report["episodes"][0]["video"]))
    assert len(frames) == 10 and frames[0].shape == (128, 384, 3)  # front camera | wrist | predicted future


def test_open_loop_eval_scores_actions_and_video(invoke, synthetic_dataset, tmp_path):
    from adapt.data import LeRobotDataset
    from adapt.data.codec import compute_stats

    spec = load_embodiment("ur5e")
    data = synthetic_dataset("ur5e")
    model = WorldActionModel(model_config("tiny"), [spec])
    model.stats["ur5e"] = compute_stats(LeRobotDataset(data, spec))
    save_model(model, tmp_path / "policy")
    result = invoke("eval", "--policy", tmp_path / "policy", "--open-loop", "--data", data, "--out", tmp_path / "ol")
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "ol" / "results.json").read_text())
    assert scores["windows"] > 0 and np.isfinite(scores["action_mse"]) and len(scores["action_mse_per_dim"]) == 7
    # the synthetic video is a red square gliding over black: copying the last frame is close, an untrained
    # decoder's output is not, and on the [-1, 1] scale no PSNR is negative (catches a PSNR computed on the
    # wrong scale or against the wrong frames; the untrained model's own score, 4-6 dB, hangs on its draw)
    assert 0.0 < scores["video_psnr"] < scores["copy_last_frame_psnr"] and scores["copy_last_frame_psnr"] > 15.0
    # three held-out windows pictured, context | real future | decoded | drawn (catches the whole batch
    # pictured, or a strip left out)
    from PIL import Image

    c = model.config
    picture = Image.open(tmp_path / "ol" / "predictions.png")
    assert picture.size == ((c.context + 3 * c.future) * c.image_size + 3 * 4, 3 * c.image_size)
    # a rerun scores and pictures the same windows with the same noise (catches unseeded sampling noise, in
    # the scores or in the picture), another --seed other ones (catches a seed that never reaches them)
    again = invoke("eval", "--policy", tmp_path / "policy", "--open-loop", "--data", data, "--out", tmp_path / "ol2")
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "ol2" / "results.json").read_text()) == scores
    drawn = (tmp_path / "ol" / "predictions.png").read_bytes()
    assert (tmp_path / "ol2" / "predictions.png").read_bytes() == drawn
    args = ("--open-loop", "--data", data, "--seed", "1", "--out", tmp_path / "ol3")
    assert invoke("eval", "--policy", tmp_path / "policy", *args).exit_code == 0
    assert json.loads((tmp_path / "ol3" / "results.json").read_text())["video_latent_mse"] != scores["video_latent_mse"]
    assert (tmp_path / "ol3" / "predictions.png").read_bytes() != drawn


def test_open_loop_scores_a_model_that_predicts_no_motion_as_the_copy_baseline(invoke, synthetic_dataset, tmp_path):
    """An untrained model that denoises the change from the last frame and outputs it clean predicts no
    change: its sampled and expected futures are the last latent copied, so their latent errors equal the
    copy baseline's, and rendered on the last frame they are the pixel copy itself. Catches a baseline
    copied from another frame, an expected future that is not the one scored, and a rendering that adds
    the decoded frames instead of their change (or takes the change from another frame)."""
    from adapt.data import LeRobotDataset
    from adapt.data.codec import compute_stats

    spec = load_embodiment("ur5e")
    data = synthetic_dataset("ur5e")
    config = model_config("tiny").model_copy(update={"video_target": "change", "video_prediction": "clean"})
    model = WorldActionModel(config, [spec])
    model.stats["ur5e"] = compute_stats(LeRobotDataset(data, spec))
    save_model(model, tmp_path / "policy")
    result = invoke("eval", "--policy", tmp_path / "policy", "--open-loop", "--data", data, "--out", tmp_path / "ol")
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "ol" / "results.json").read_text())
    assert scores["copy_last_latent_mse"] > 1e-4  # the synthetic square moves
    for key in ("video_latent_mse", "expected_video_latent_mse"):
        assert scores[key] == pytest.approx(scores["copy_last_latent_mse"], rel=1e-5)
    assert scores["video_psnr"] == pytest.approx(scores["expected_video_psnr"], rel=1e-5)
    assert scores["copy_last_frame_psnr"] > scores["video_psnr"] + 3  # the untrained decoder's blur
    for future in ("video", "expected_video"):
        for metric in ("psnr", "ssim"):
            copy = scores[f"copy_last_frame_{metric}"]
            assert scores[f"{future}_on_last_frame_{metric}"] == pytest.approx(copy, rel=1e-4)


def test_latent_errors_leave_out_padded_future_frames():
    """A window at an episode's end repeats its last frame as padding; the training loss and the PSNR leave
    those frames out, and so must the latent MSE. Catches padding scored (the error below would not be 0)
    and a mask applied to the wrong axis (camera instead of frame)."""
    import torch

    from adapt.evaluate import future_latent_errors

    target = torch.zeros(2, 3, 4, 5, 6)  # (batch, cameras, future frames, patches, dim)
    predicted = target.clone()
    predicted[0, :, 3] = 7.0  # wrong only where window 0 is padded
    batch = {"future_mask": torch.tensor([[True, True, True, False], [True] * 4])}
    errors = future_latent_errors(batch, predicted, target)
    assert errors.shape == (3 * 3 + 3 * 4,) and errors.max() == 0.0
    errors = future_latent_errors(batch, target[:, :, :1] + 1.0, target)  # one frame (the copy), broadcast
    assert errors.tolist() == [1.0] * 21


def test_frame_scores_leave_out_padding_and_rank_a_closer_frame_higher():
    """PSNR's MSE and SSIM per real future frame: a perfect frame scores MSE 0 and SSIM 1, a padded frame
    is not scored whatever it holds, and a frame nearer the real one scores the higher SSIM. Catches SSIM
    computed on the [0, 255] scale against [-1, 1] frames (data range), or padding scored."""
    from adapt.evaluate import frame_metrics, future_frame_scores

    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 1, 3, 3, 32, 32), dtype=torch.uint8, generator=generator)  # ctx 1, future 2
    batch = {"frames": frames, "future_mask": torch.tensor([[True, False], [True, True]])}
    real = frames[:, :, 1:].float() / 127.5 - 1.0
    predicted = real.clone()
    predicted[0, :, 1] = -1.0  # wrong only where window 0 is padded
    scores = future_frame_scores(batch, 1, predicted)
    assert scores["mse"].tolist() == [0.0] * 3 and scores["ssim"] == pytest.approx([1.0] * 3, abs=1e-5)
    noise = torch.randn(real.shape, generator=generator)
    near, far = (frame_metrics([future_frame_scores(batch, 1, real + s * noise)]) for s in (0.1, 0.5))
    assert near["ssim"] > far["ssim"] + 0.1 and near["psnr"] > far["psnr"] + 10


def test_eval_without_data_for_open_loop_is_refused(invoke, tmp_path):
    save_model(WorldActionModel(model_config("tiny"), [load_embodiment("ur5e")]), tmp_path / "policy")
    result = invoke("eval", "--policy", tmp_path / "policy", "--open-loop")
    assert result.exit_code == 2 and "needs --data" in result.output


def test_scripted_expert_through_the_eval_harness_lifts(invoke, tmp_path):
    """The harness proof: the scripted demonstrator, run by `adapt eval`'s own loop (reset, task text,
    stage tracker, action execution), lifts the cube. Catches a harness that cannot succeed (wrong
    controller or action scale, a tracker that never reaches `hold`, a scene reset after the script starts)."""
    out = tmp_path / "expert"
    result = invoke("eval", "--policy", "scripted", "--robot", "panda", "--episodes", "2", "--seed", "7", "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "results.json").read_text())
    assert [e["seed"] for e in report["episodes"]] == [7, 8]
    assert report["success_rate"] == 1.0 and report["mean_progress"] == 1.0
    assert report["success_ci95"][0] > 0.3  # Wilson interval of 2/2
    # it grasps the cube (within reach of its centre), never closing on air
    assert all(e["closest_m"] < 0.03 and e["empty_grasps"] == 0 for e in report["episodes"])
    assert "no failed episodes" in result.output


def test_eval_intervals_are_wilson_and_bootstrap():
    """Catches a normal-approximation interval (zero width at 0/n) and a bootstrap that ignores the data."""
    from adapt.evaluate import EpisodeResult, EvalReport

    report = EvalReport("Lift", "panda", [EpisodeResult(i, i < 17, 0.25 * (i % 5), [], 1) for i in range(50)])
    low, high = report.success_interval()
    assert (round(low, 3), round(high, 3)) == (0.224, 0.478)  # Wilson, 17 of 50
    p_low, p_high = report.progress_interval()
    assert p_low < report.mean_progress < p_high and p_high - p_low < 0.25
    nothing = EvalReport("Lift", "panda", [EpisodeResult(i, False, 0.0, [], 1) for i in range(10)])
    assert nothing.success_interval()[0] == 0.0 and 0.25 < nothing.success_interval()[1] < 0.35


def test_failure_summary_tells_reaching_from_grasping_and_giving_up_from_retrying():
    """Catches a failure line that counts successes, mixes up far-away episodes with missed grasps, counts a
    retried miss as given up, or credits a clean success as one after a miss."""
    from adapt.evaluate import EpisodeResult, EvalReport

    episodes = [
        EpisodeResult(0, True, 1.0, [], 50, closest_m=0.004),
        EpisodeResult(1, False, 0.0, [], 200, closest_m=0.30, empty_grasps=1),
        EpisodeResult(2, False, 0.0, [], 200, closest_m=0.12),
        EpisodeResult(3, False, 0.25, [], 200, closest_m=0.02, empty_grasps=2),
        EpisodeResult(4, True, 1.0, [], 120, closest_m=0.006, empty_grasps=1),
    ]
    assert EvalReport("Lift", "panda", episodes).failures() == (
        "3 failed: 2 never came within 5 cm of the object, 2 closed the gripper on nothing (1 once, never again);"
        " median closest approach 12.0 cm; 1 of 2 successes after a missed grasp"
    )


def test_tracker_counts_each_grasp_that_closes_on_nothing():
    """Catches counting every closed step instead of each closing, or a grasp on the object counted as empty."""
    from adapt.sim.closed_loop import _StageTracker

    class Sim:  # a gripper 10 cm above a resting cube, opened and closed by the test
        things = [type("Thing", (), {"bottom": 0.02})()]
        env = type("Env", (), {"_check_success": staticmethod(lambda: False)})()
        grip, hands = -1.0, 1

        def position(self, thing):
            return np.array([0.0, 0.0, 0.82])

        def eef(self, hand=0):
            return np.array([0.0, 0.0, 0.92]), np.eye(3)

        def gripper(self, hand=0):
            return self.grip

        def holds(self, thing, floor, hand=0):
            return False

    sim = Sim()
    tracker = _StageTracker("Lift", sim)
    for grip in (-1.0, 0.3, 1.0, 1.0, 1.0, -0.9, 0.2, 0.7, -1.0, 0.99):  # closes empty twice; 0.2/0.7: holding
        sim.grip = grip
        tracker.update()
    assert tracker.empty_grasps == 2 and tracker.closest == pytest.approx(0.10)


def test_scripted_expert_refuses_joint_space_robots(invoke, tmp_path):
    result = invoke("eval", "--policy", "scripted", "--robot", "ur5e", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "ee_delta" in result.output


def test_predictions_picture_draws_a_no_motion_prediction_as_the_last_frame(synthetic_dataset, tmp_path):
    """predictions.png's last strip draws the prediction on the last context frame. An untrained model that
    denoises the change and outputs it clean predicts no change, so each of those frames must be the last
    context frame itself, while its decoded strip is the untrained decoder's blur. Catches the decoded
    frames drawn instead of their change, and the change taken from another frame."""
    from PIL import Image

    from adapt.data import LeRobotDataset
    from adapt.data.codec import compute_stats
    from adapt.data.windows import WindowDataset, window_loader
    from adapt.train.plots import plot_predictions

    spec = load_embodiment("ur5e")
    dataset = LeRobotDataset(synthetic_dataset("ur5e"), spec)
    config = model_config("tiny").model_copy(update={"video_target": "change", "video_prediction": "clean"})
    model = WorldActionModel(config, [spec])
    windows = WindowDataset(dataset, config.window(), compute_stats(dataset))
    batch = next(iter(window_loader(windows, batch_size=2, workers=0, shuffle=False, seed=0)))
    plot_predictions(model, batch, tmp_path / "predictions.png", steps=2, rows=2)
    picture = np.asarray(Image.open(tmp_path / "predictions.png")).astype(int)
    size, ctx, future = config.image_size, config.context, config.future
    assert picture.shape[:2] == (2 * size, (ctx + 3 * future) * size + 3 * 4)
    last = batch["frames"][:, 0, ctx - 1].permute(0, 2, 3, 1).numpy().astype(int)  # (B, H, W, 3)
    decoded_start, drawn_start = ctx * size + future * size + 8, ctx * size + 2 * future * size + 12
    for row in range(2):
        lines = picture[row * size : (row + 1) * size]
        for f in range(future):
            drawn = lines[:, drawn_start + f * size : drawn_start + (f + 1) * size]
            decoded = lines[:, decoded_start + f * size : decoded_start + (f + 1) * size]
            assert np.abs(drawn - last[row]).max() <= 1  # uint8 rounding
            assert np.abs(decoded - last[row]).mean() > 10


def test_two_armed_expert_lifts_the_pot_through_the_eval_harness(invoke, tmp_path):
    """`adapt eval --task TwoArmLift` on a two-armed robot (Baxter, an end-effector servo per arm): the scripted
    demonstrator's both hands reach their handles, grasp, lift the pot level and hold it; the video shows every
    camera (the front view and both wrists) beside the prediction. Catches a tracker that follows one hand only
    (reach would pass with the other hand away), a lift stage below robosuite's 10 cm, hands' commands in the
    wrong layout (robosuite's: both arms, then both grippers), and a rollout video missing a wrist."""
    import decord

    out, episode = _scripted_episode(invoke, tmp_path, "baxter_osc", "TwoArmLift", cameras=3, seed=7, max_steps=200)
    assert episode["success"] and episode["stages"] == ["reach", "grasp", "lift", "hold"]
    assert episode["steps"] < 200 and episode["closest_m"] < 0.03 and episode["empty_grasps"] == 0
    frames = decord.VideoReader(str(out / episode["video"]))
    assert frames[0].shape == (32, 4 * 32, 3)  # front view | right wrist | left wrist | predicted future


def test_two_pandas_hand_the_hammer_over_through_the_eval_harness(invoke, tmp_path):
    """`adapt eval --task TwoArmHandover` on two Pandas as one robot: the scripted demonstrator's first hand
    reaches the hammer's handle, picks it up, lifts it and hands it to the second (robosuite's success: the
    second hand holds the handle, the first nothing). Catches stages that read the wrong hand, a lift stage below
    robosuite's 10 cm, and the two robots' commands handed to robosuite in the wrong layout."""
    _, episode = _scripted_episode(
        invoke, tmp_path, "bimanual_panda", "TwoArmHandover", cameras=1, seed=3, max_steps=400
    )
    assert episode["success"] and episode["stages"] == ["reach", "grasp", "lift", "hand over"]
    assert episode["steps"] < 400 and episode["closest_m"] < 0.03 and episode["empty_grasps"] == 0


def _scripted_episode(invoke, tmp_path, robot: str, task: str, cameras: int, seed: int, max_steps: int):
    """One episode of the scripted expert through `adapt eval` on a bundled robot with its first `cameras` cameras
    at 32 x 32 pixels; returns the evaluation folder and the episode's results."""
    import yaml

    from adapt.embodiment import bundled_embodiments

    raw = yaml.safe_load(bundled_embodiments()[robot].read_text())
    raw["cameras"] = [dict(c, height=32, width=32) for c in raw["cameras"][:cameras]]
    (tmp_path / f"{robot}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    out = tmp_path / "expert"
    args = ["--robot", tmp_path / f"{robot}.yaml", "--task", task, "--episodes", "1", "--seed", str(seed)]
    result = invoke("eval", "--policy", "scripted", *args, "--max-steps", str(max_steps), "--out", out)
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "results.json").read_text())["episodes"][0]
