"""`adapt pretrain` end to end on the tiny preset: two embodiments, checkpoint, plots, resume."""

from __future__ import annotations

import json

import torch

from adapt.model import load_model
from adapt.train.plots import read_metrics


def last_step(run) -> int:
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    return checkpoint["global_step"]


def test_pretrain_two_embodiments_then_resume(invoke, synthetic_dataset, tmp_path, assert_picture):
    ur5e, baxter = synthetic_dataset("ur5e"), synthetic_dataset("baxter", episodes=2)
    run = tmp_path / "run"
    args = ["pretrain", "--data", str(ur5e), "--data", f"{baxter}=baxter", "--out", str(run), "--size", "tiny"]
    args += ["--tokenizer-steps", "2", "--batch-size", "4", "--workers", "0", "--checkpoint-every", "3"]
    result = invoke(*args, "--steps", "6")
    assert result.exit_code == 0, result.output
    assert last_step(run) == 6
    assert_picture(run / "loss_curves.png", (400, 250))
    assert_picture(run / "predictions.png", (2 * 32, 2 * 32))  # context and predicted frames of 32 px
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


def test_pretrain_rejects_data_without_an_embodiment(invoke, synthetic_dataset, tmp_path):
    """A dataset that names no robot (no robot_type) and no `DIR=SPEC`: pretraining cannot know its heads."""
    data = synthetic_dataset("ur5e")
    info = json.loads((data / "meta" / "info.json").read_text())
    del info["robot_type"]
    (data / "meta" / "info.json").write_text(json.dumps(info))
    run = tmp_path / "run"
    result = invoke("pretrain", "--data", str(data), "--out", str(run), "--size", "tiny", "--workers", "0")
    assert result.exit_code == 2, result.output
    message = "".join(result.output.split())
    assert "info.json:norobot_type;nametheembodimentas" in message and f"{data}=SPEC".replace(" ", "") in message
    assert not run.exists()


def test_video_every_trains_the_video_loss_on_every_nth_step_only(invoke, synthetic_dataset, tmp_path):
    """`--video-every 2`: every other step is action-only, its loss the action loss alone (a wiring bug would
    train video on every step, or never). Lightning's CSV repeats the last logged video loss on the steps
    that log none, so the total loss tells which steps computed it."""
    run = tmp_path / "run"
    args = ["pretrain", "--data", str(synthetic_dataset("ur5e")), "--out", str(run), "--size", "tiny"]
    args += ["--tokenizer-steps", "2", "--batch-size", "4", "--workers", "0", "--steps", "8", "--video-every", "2"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    rows = {int(r["step"]): r for r in read_metrics(run / "logs") if r.get("action_loss")}
    assert sorted(rows) == [2, 3, 4, 5, 6, 7]
    for step, row in rows.items():
        action, total = float(row["action_loss"]), float(row["loss"])
        expected = action + float(row["video_loss"]) if step % 2 else action
        assert abs(total - expected) < 1e-5, (step, row)


def test_one_seed_makes_one_model(synthetic_dataset, tmp_path):
    """Two pretraining runs with one seed write the same weights, bit for bit. Catches a model from scratch
    drawn before the run is seeded (each scratch run of a benchmark condition would start elsewhere)."""
    from safetensors.torch import load_file

    from adapt.train.options import PretrainConfig, TrainOptions
    from adapt.train.pretrain import pretrain

    data = [str(synthetic_dataset("ur5e"))]
    options = TrainOptions(steps=2, checkpoint_every=2, progress=False, seed=3)
    first, again = (
        load_file(
            pretrain(data, tmp_path / name, PretrainConfig("tiny", tokenizer_steps=1, workers=0), options=options)
            / "model.safetensors"
        )
        for name in ("first", "again")
    )
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)


def test_video_target_continues_a_base_under_the_other_target(invoke, synthetic_dataset, tmp_path):
    """`--init BASE --video-target change --video-prediction clean` trains and saves a model whose config says
    so (a flag that did not reach the config would save a model that samples the wrong thing); an unknown
    choice is refused before any data is read."""
    data = str(synthetic_dataset("ur5e"))
    common = ["--data", data, "--size", "tiny", "--batch-size", "4", "--workers", "0"]
    first = invoke("pretrain", *common, "--out", str(tmp_path / "frames"), "--tokenizer-steps", "1", "--steps", "2")
    assert first.exit_code == 0, first.output
    assert load_model(tmp_path / "frames" / "model").config.video_target == "frames"
    init = ["--init", str(tmp_path / "frames" / "model"), "--steps", "2"]
    changed = invoke(
        "pretrain",
        *common,
        *init,
        "--out",
        str(tmp_path / "change"),
        "--video-target",
        "change",
        "--video-prediction",
        "clean",
    )
    assert changed.exit_code == 0, changed.output
    config = load_model(tmp_path / "change" / "model").config
    assert (config.video_target, config.video_prediction) == ("change", "clean")
    wrong = invoke("pretrain", *common, *init, "--out", str(tmp_path / "wrong"), "--video-target", "delta")
    assert wrong.exit_code == 2 and "unknown video target 'delta'; choose one of frames, change" in wrong.output
    assert not (tmp_path / "wrong").exists()


def test_donor_heads_for_new_robots_start_from_an_init_robot_of_the_same_action_space(invoke, tmp_path):
    """`--init-heads donor`: a robot the --init model lacks gets heads copied from one of its robots acting in the
    same action space (the Kinova3 from the Panda: both end-effector deltas), so it starts acting as that robot
    does; `fresh` (the default) leaves them random. Bugs caught: the option ignored (fresh heads either way), a
    donor of another action space, `donor` accepted without a model to copy from."""
    from adapt.embodiment import load_embodiment
    from adapt.model import build_model, model_config, save_model
    from adapt.train.pretrain import _initial_model

    torch.manual_seed(0)
    base = save_model(build_model(model_config("tiny"), [load_embodiment("panda")]), tmp_path / "base")
    kinova = load_embodiment("kinova3")
    seeded = _initial_model(base, "tiny", [kinova], {}, "donor")
    fresh = _initial_model(base, "tiny", [kinova], {}, "fresh")

    def output_layer(model, robot):
        return model.heads[robot].action_decoder.net[2].weight

    assert torch.equal(output_layer(seeded, "kinova3"), output_layer(seeded, "panda"))
    assert not torch.equal(output_layer(fresh, "kinova3"), output_layer(fresh, "panda"))
    result = invoke("pretrain", "--data", base, "--init-heads", "donor", "--out", tmp_path / "run")
    assert result.exit_code == 2 and "--init-heads donor copies heads of the --init model" in result.output
