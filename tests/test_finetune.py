"""Few-shot adaptation end to end on the tiny preset: play data for a new robot, video-only demos,
resume after a crash, DDP on two CPU processes, adapter format (stock peft), export, bad input."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from peft import PeftModel
from safetensors.torch import load_file

from adapt.adapter import load_adapter, merge
from adapt.data import LeRobotDataset
from adapt.data.codec import compute_stats
from adapt.embodiment import load_embodiment
from adapt.errors import AdaptError
from adapt.model import WorldActionModel, load_model, model_config, save_model
from adapt.recipe import load_recipe
from adapt.train.finetune import finetune
from adapt.train.fit import checkpoint_training_time
from adapt.train.options import TrainOptions
from adapt.train.plots import read_metrics

FAST = ["--steps", "4", "--checkpoint-every", "2", "--workers", "0"]


@pytest.fixture
def base(tmp_path, synthetic_dataset) -> Path:
    """An untrained tiny base with heads for panda and ur5e, and their statistics. Its adaLN gates and
    video output are randomized (a fresh model starts them at zero: every block the identity)."""
    torch.manual_seed(0)
    specs = [load_embodiment("panda"), load_embodiment("ur5e")]
    model = WorldActionModel(model_config("tiny"), specs)
    for layer in (*(b.modulation for b in model.backbone.blocks), model.video_out):
        torch.nn.init.normal_(layer.weight, std=0.1)
    for spec in specs:
        model.stats[spec.name] = compute_stats(LeRobotDataset(synthetic_dataset(spec.name, seed=7), spec))
    return save_model(model, tmp_path / "base")


@pytest.fixture
def panda_only_base(tmp_path, base) -> Path:
    model = load_model(base)
    del model.heads["ur5e"], model.specs["ur5e"], model.stats["ur5e"]
    return save_model(model, tmp_path / "panda_base")


def batch_of(model, dataset_dir, spec_name):
    from adapt.data.windows import WindowDataset, window_loader

    dataset = LeRobotDataset(dataset_dir, model.specs[spec_name])
    windows = WindowDataset(dataset, model.config.window(), model.stats[spec_name])
    return next(iter(window_loader(windows, batch_size=3, workers=0, shuffle=False)))


def test_play_data_adapts_a_new_robot_and_the_adapter_is_peft_format(
    invoke, panda_only_base, synthetic_dataset, tmp_path, assert_picture
):
    data = synthetic_dataset("ur5e")
    run = tmp_path / "run"
    result = invoke("finetune", "--base", panda_only_base, "--embodiment", "ur5e", "--data", data, "--out", run, *FAST)
    assert result.exit_code == 0, result.output
    assert "trainable parameters" in result.output
    assert "Tip:" not in result.output and "available: False" not in result.output  # Lightning's noise is dropped
    progress = [line for line in result.output.splitlines() if " step 4/4: " in line]  # output to a file: lines
    assert len(progress) == 1 and " loss " in progress[0] and "steps/s" in progress[0] and "v_num" not in result.output
    adapter = run / "adapter"
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "heads.safetensors",
        "recipe.yaml",
        "embodiments/ur5e.yaml",
        "stats/ur5e.json",
        "adapt_adapter.json",
    ):
        assert (adapter / name).is_file(), name
    assert_picture(run / "loss_curves.png", (400, 250))
    assert_picture(run / "predictions.png", (2 * 32, 2 * 32))
    assert all(k.startswith("heads.ur5e.") for k in load_file(adapter / "heads.safetensors"))

    ours = load_adapter(adapter)
    batch = batch_of(ours, data, "ur5e")
    sample = ours.sample(batch, steps=2, generator=torch.Generator().manual_seed(0))

    # stock peft over the backbone + our heads gives the same outputs
    stock = load_model(panda_only_base)
    stock.add_embodiment(load_embodiment("ur5e"))
    stock.stats = ours.stats
    stock.load_state_dict(load_file(adapter / "heads.safetensors"), strict=False)
    stock.backbone = PeftModel.from_pretrained(stock.backbone, str(adapter))
    stock.eval()
    again = stock.sample(batch, steps=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again["actions"], sample["actions"], rtol=0, atol=0)

    merged = merge(load_adapter(adapter))
    merged_sample = merged.sample(batch, steps=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(merged_sample["actions"], sample["actions"], rtol=0, atol=1e-5)
    torch.testing.assert_close(merged_sample["future"], sample["future"], rtol=0, atol=1e-5)

    exported = invoke("export", run, "--merge", "--out", tmp_path / "exported")
    assert exported.exit_code == 0, exported.output
    standalone = load_model(tmp_path / "exported")
    assert sorted(standalone.heads) == ["panda", "ur5e"]
    out = standalone.sample(batch, steps=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out["actions"], sample["actions"], rtol=0, atol=1e-5)

    # the run, the adapter and the export each say how they were made (the recipe said 1,500 steps for 4)
    from adapt.model import fingerprint
    from adapt.provenance import data_fingerprint

    record = json.loads((run / "provenance.json").read_text())
    assert record == json.loads((adapter / "provenance.json").read_text())
    assert record["settings"]["steps"] == 4 and record["steps_reached"] == 4 and record["settings"]["seed"] == 0
    assert record["command"][1:3] == ["finetune", "--base"] and "ur5e" in record["command"]
    assert record["data"] == [{"path": str(Path(data).resolve()), "fingerprint": data_fingerprint(Path(data))}]
    assert record["base"]["fingerprint"] == fingerprint(panda_only_base) and record["versions"]["torch"]
    assert yaml.safe_load((adapter / "recipe.yaml").read_text())["steps"] == 4
    card = (adapter / "README.md").read_text()
    assert "More Information Needed" not in card and "| robot | `ur5e` |" in card and "| steps | 4 at batch" in card
    export_record = json.loads((tmp_path / "exported" / "provenance.json").read_text())
    assert export_record["kind"] == "export" and export_record["base"]["fingerprint"] == fingerprint(panda_only_base)


def test_video_only_adaptation_trains_lora_and_never_the_action_heads(invoke, base, synthetic_dataset, tmp_path):
    """The recipe freezes the action heads, and even unfrozen no gradient would reach them: a video-only
    sample's action is pure noise whose loss is masked, and its tokens never feed the video loss. (Run with
    `--no-predictions`: no predictions picture is drawn or named, the loss curves still are.)"""
    demos = synthetic_dataset("ur5e", video_only=True, task="stack the blocks")
    run = tmp_path / "run"
    args = ["--base", base, "--embodiment", "ur5e", "--data", demos, "--recipe", "video-only", "--out", run, *FAST]
    result = invoke("finetune", *args, "--no-predictions")
    assert result.exit_code == 0, result.output
    assert (run / "loss_curves.png").is_file() and not (run / "predictions.png").exists()
    assert "predictions.png" not in result.output
    before, after = load_model(base), load_adapter(run / "adapter")
    for name, p in before.heads["ur5e"].named_parameters():
        assert torch.equal(p, after.heads["ur5e"].get_parameter(name)), name
    lora = load_file(run / "adapter" / "adapter_model.safetensors")
    assert lora and any(v.any() for k, v in lora.items() if "lora_B" in k)  # LoRA did train

    model = load_model(base).train()
    model.requires_grad_(True)
    batch = batch_of(model, synthetic_dataset("ur5e", seed=5), "ur5e")
    batch["has_action"] = torch.zeros_like(batch["has_action"])  # the same windows, labelled video-only
    model.loss(batch, generator=torch.Generator().manual_seed(0))["loss"].backward()
    heads = model.heads["ur5e"]
    touched = [n for n, p in heads.named_parameters() if "action" in n and p.grad is not None and p.grad.any()]
    assert not touched, touched
    assert model.video_out.weight.grad.abs().sum() > 0  # the video branch did learn from the same batch


def test_rehearsal_trains_the_shared_lora_on_the_base_robots_data_and_leaves_its_heads_alone(
    invoke, panda_only_base, synthetic_dataset, tmp_path
):
    """`--data DIR=panda` beside the new robot's play: the base's own robot's windows train the shared LoRA
    through its frozen heads (rehearsal). Catches rehearsal data silently dropped, the base robot's heads or
    statistics overwritten by the adaptation, and a rehearsal loss that never reaches the log."""
    play, own = synthetic_dataset("ur5e"), synthetic_dataset("panda", seed=3)
    run = tmp_path / "run"
    args = ["--base", panda_only_base, "--embodiment", "ur5e", "--data", play, "--data", f"{own}=panda"]
    result = invoke("finetune", *args, "--out", run, *FAST)
    assert result.exit_code == 0, result.output
    before, after = load_model(panda_only_base), load_adapter(run / "adapter")
    for name, p in before.heads["panda"].named_parameters():
        assert torch.equal(p, after.heads["panda"].get_parameter(name)), name
    np.testing.assert_array_equal(after.stats["panda"].action.mean, before.stats["panda"].action.mean)
    lora = load_file(run / "adapter" / "adapter_model.safetensors")
    assert any(v.any() for k, v in lora.items() if "lora_B" in k)
    logged = [float(row["action_loss/panda"]) for row in read_metrics(run / "logs") if row.get("action_loss/panda")]
    assert logged and all(np.isfinite(logged))


def test_one_seed_makes_one_adapter(panda_only_base, synthetic_dataset, tmp_path):
    """Two runs with the same seed write the same adapter, bit for bit; another seed another one. Catches new
    weights (fresh heads, LoRA) drawn before the run is seeded: every run then starts from other weights, and
    one condition's runs differ by chance alone (two benchmark runs of one condition lifted in 8 and 1 of 30)."""
    data = [str(synthetic_dataset("ur5e"))]

    def weights(seed: int, name: str) -> dict:
        options = TrainOptions(steps=2, checkpoint_every=2, progress=False, seed=seed)
        adapter = finetune(panda_only_base, "ur5e", data, "play-30min", tmp_path / name, options=options, workers=0)
        return load_file(adapter / "heads.safetensors") | load_file(adapter / "adapter_model.safetensors")

    first, again, other = weights(0, "first"), weights(0, "again"), weights(1, "other")
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


class Crash(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 3:
            raise RuntimeError("simulated crash")


def test_an_interrupted_run_leaves_no_adapter_and_resumes_to_the_final_step(
    panda_only_base, synthetic_dataset, tmp_path, caplog
):
    """Also: a damaged last.ckpt (a kill while it was copied) falls back to the intact checkpoint beside it, and the
    training time reported counts the attempt before the resume (as if it had taken 1000 s), once."""
    data, run = [str(synthetic_dataset("ur5e"))], tmp_path / "run"
    options = dict(steps=5, checkpoint_every=2, progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        finetune(
            panda_only_base,
            "ur5e",
            data,
            "play-30min",
            run,
            options=TrainOptions(**options, callbacks=[Crash()]),
            workers=0,
        )
    assert not (run / "adapter").exists()
    with pytest.raises(AdaptError, match="not an adapter folder"):
        load_adapter(run / "adapter")
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:3000])
    (step2,) = (run / "checkpoints").glob("*step=2.ckpt")
    saved = torch.load(step2, weights_only=True, map_location="cpu")
    assert 0 < saved["callbacks"]["TrainingClock"]["training_s"] < 1000
    saved["callbacks"]["TrainingClock"]["training_s"] = 1000.0
    torch.save(saved, step2)
    assert checkpoint_training_time(run / "checkpoints") == 1000.0
    with caplog.at_level("WARNING", logger="adapt.train.fit"):
        finetune(panda_only_base, "ur5e", data, "play-30min", run, options=TrainOptions(**options), workers=0)
    assert "damaged checkpoint(s) last.ckpt" in caplog.text and "step=2.ckpt" in caplog.text
    checkpoint = torch.load(last, weights_only=True, map_location="cpu")
    assert checkpoint["global_step"] == 5
    load_adapter(run / "adapter")
    record = json.loads((run / "adapter" / "provenance.json").read_text())
    assert 1000 < record["training_s"] <= 1000 + record["wall_s"] + 0.1
    assert "min of training over every attempt" in (run / "adapter" / "README.md").read_text()


def test_a_run_whose_checkpoints_are_all_damaged_is_named_with_the_way_out(tmp_path):
    from adapt.train.fit import resume_point

    assert resume_point(tmp_path) is None  # nothing to resume: a fresh run
    (tmp_path / "last.ckpt").write_bytes(b"PK\x03\x04 cut short")
    (tmp_path / "epoch=0-step=2.ckpt").write_bytes(b"")
    with pytest.raises(AdaptError, match=r"every checkpoint is damaged \(last.ckpt .*epoch=0-step=2.ckpt.*--no-resume"):
        resume_point(tmp_path)


def test_ddp_on_two_cpu_processes_writes_the_same_adapter_format(panda_only_base, synthetic_dataset, tmp_path):
    """Also catches a balanced (weighted) sampler that Lightning cannot shard across processes."""
    adapt = shutil.which("adapt", path=str(Path(sys.executable).parent))
    run = tmp_path / "run"
    command = [
        adapt,
        "finetune",
        "--base",
        str(panda_only_base),
        "--embodiment",
        "ur5e",
        "--data",
        str(synthetic_dataset("ur5e")),
        "--data",
        str(synthetic_dataset("ur5e", episodes=1, seed=1)),
        "--balance",
        "--out",
        str(run),
        *FAST,
        "--accelerator",
        "cpu",
        "--devices",
        "2",
        "--strategy",
        "ddp",
    ]
    env = dict(os.environ, PL_DISABLE_FORK="1", OMP_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Starting with 2 processes" in done.stdout + done.stderr  # Lightning's DDP launcher, gloo backend
    meta = json.loads((run / "adapter" / "adapt_adapter.json").read_text())
    assert meta["target"] == "ur5e"
    load_adapter(run / "adapter")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("dims", "has (8,) dims per step but spec 'ur5e' has state dim 7"),
        ("video_to_play", "has no actions, but recipe 'play-30min' needs actions"),
        ("recipe_field", "colour: unknown field"),
        ("lora_target", "LoRA target 'attn.nothing' matches no linear layer"),
        ("base_missing", "not a model checkpoint"),
        ("base_corrupt", "cannot load weights"),
        ("out_exists", "already exists; choose another --out or pass --overwrite"),
        ("video_only_new_robot", "the base has none for 'ur5e'"),
    ],
)
def test_bad_input_is_refused_before_training(case, message, invoke, panda_only_base, synthetic_dataset, tmp_path):
    base, data, recipe = panda_only_base, str(synthetic_dataset("ur5e")), "play-30min"
    run = tmp_path / "run"
    if case == "dims":
        data = f"{synthetic_dataset('panda')}=ur5e"
    elif case == "video_to_play":
        data = str(synthetic_dataset("ur5e", video_only=True))
    elif case in ("recipe_field", "lora_target"):
        raw = load_recipe("play-30min").model_dump(mode="json")
        if case == "recipe_field":
            raw["colour"] = "blue"
        else:
            raw["lora"]["targets"] = ["attn.nothing"]
        recipe = tmp_path / "mine.yaml"
        recipe.write_text(json.dumps(raw))
    elif case == "base_missing":
        base = tmp_path / "nowhere"
    elif case == "base_corrupt":
        weights = base / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:500])
    elif case == "out_exists":
        (run / "adapter").mkdir(parents=True)
    elif case == "video_only_new_robot":
        data, recipe = str(synthetic_dataset("ur5e", video_only=True)), "video-only"
    result = invoke(
        "finetune", "--base", base, "--embodiment", "ur5e", "--data", data, "--recipe", recipe, "--out", run, *FAST
    )
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not (run / "checkpoints").exists()


def test_statistics_that_disagree_with_the_base_are_named_and_the_base_ones_kept(
    invoke, base, synthetic_dataset, tmp_path
):
    """A base that already knows the robot keeps its statistics (its heads were trained with them); new data
    whose statistics disagree beyond the tolerance is named, dimension by dimension, before training."""
    data = synthetic_dataset("ur5e")
    shifted = compute_stats(LeRobotDataset(data, load_embodiment("ur5e")))
    shifted.state.mean[3] += 10 * shifted.state.std[3]
    shifted.save(base / "stats" / "ur5e.json")
    run = tmp_path / "run"
    args = ["--base", base, "--embodiment", "ur5e", "--data", data, "--recipe", "heads-only", "--out", run, *FAST]
    result = invoke("finetune", *args)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "warning: ur5e state statistics of the new data differ from the base's in dims [3]" in output
    assert "ur5e action statistics" not in output
    kept = load_adapter(run / "adapter").stats["ur5e"]
    np.testing.assert_array_equal(kept.state.mean, shifted.state.mean)


def test_init_heads_donor_starts_the_new_heads_from_the_base_robots(
    invoke, panda_only_base, synthetic_dataset, tmp_path
):
    """`--init-heads donor` overrides play-30min's fresh heads (the setting that let play carry Lift over, README);
    catches the flag being parsed and then dropped, and an unknown value reaching training."""
    run = tmp_path / "run"
    args = ["--base", panda_only_base, "--embodiment", "ur5e", "--data", synthetic_dataset("ur5e"), "--out", run, *FAST]
    refused = invoke("finetune", *args, "--init-heads", "borrowed")
    assert refused.exit_code == 2 and "choose fresh or donor" in refused.output, refused.output
    assert not (run / "checkpoints").exists()
    assert invoke("finetune", *args, "--init-heads", "donor").exit_code == 0
    heads = load_adapter(run / "adapter").heads
    new, donor = (heads[name].action_decoder.net[0].weight for name in ("ur5e", "panda"))
    assert torch.allclose(new, donor, atol=1e-2)  # 4 steps at a warm-up learning rate barely move them
    assert yaml.safe_load((run / "adapter" / "recipe.yaml").read_text())["init_heads"] == "donor"


def test_adapter_on_another_base_is_refused(invoke, panda_only_base, base, synthetic_dataset, tmp_path):
    run = tmp_path / "run"
    args = ["--base", panda_only_base, "--embodiment", "ur5e", "--data", synthetic_dataset("ur5e"), "--out", run, *FAST]
    assert invoke("finetune", *args).exit_code == 0
    with pytest.raises(AdaptError, match="trained on another base"):
        load_adapter(run / "adapter", base=base)


def test_every_bundled_recipe_loads_and_a_recipe_can_be_built_in_python(tmp_path):
    from adapt.recipe import LoraSettings, Recipe, bundled_recipes, save_recipe

    assert {"play-30min", "video-only", "mixed", "heads-only", "full-finetune", "action-only"} <= set(bundled_recipes())
    modes = {name: load_recipe(name).mode for name in bundled_recipes()}
    assert modes["video-only"] == "video_only" and modes["action-only"] == "action_only"
    recipe = Recipe(name="mine", lora=LoraSettings(rank=8, targets=["attention"]), steps=10)
    save_recipe(recipe, tmp_path / "mine.yaml")
    assert load_recipe(tmp_path / "mine.yaml") == recipe  # a Python recipe is the same data as a YAML one
    with pytest.raises(ValueError, match="nothing to learn"):
        Recipe(name="bad", video_loss=False, action_loss=False)


def test_custom_recipe_example_adapts_and_acts(panda_only_base, synthetic_dataset, tmp_path):
    """examples/custom_recipe.py: a Recipe built in Python, donor heads, then a policy from the adapter."""
    import runpy

    example = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "custom_recipe.py"))
    data = synthetic_dataset("ur5e", seed=3)
    argv = ["--base", str(panda_only_base), "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "2"]
    chunk = example["main"](argv)
    spec = load_embodiment("ur5e")
    assert chunk.shape == (spec.action.chunk, spec.action_dim)
    meta = json.loads((tmp_path / "run" / "adapter" / "adapt_adapter.json").read_text())
    assert meta["target"] == "ur5e"
    assert yaml.safe_load((tmp_path / "run" / "adapter" / "recipe.yaml").read_text())["lora"]["rank"] == 8


KILLED_RUN = """
import os, signal, sys
import lightning as L
import adapt.train.fit as fit
from adapt.train.finetune import finetune
from adapt.train.options import TrainOptions

base, data, run, where, step = sys.argv[1:6]
step = int(step)

class KillAtStep(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if where == "step" and trainer.global_step == step:
            os.kill(os.getpid(), signal.SIGKILL)

def half_written_then_killed(path, data):  # SIGKILL halfway through the temp file of a checkpoint write
    import tempfile
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.write(fd, data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)

if where == "checkpoint":
    calls = iter(range(10**6))
    original = fit.atomic_write_bytes
    fit.atomic_write_bytes = lambda path, data: (
        half_written_then_killed(path, data) if next(calls) == step else original(path, data)
    )
if where == "adapter":
    import adapt.train.finetune as ft
    ft.save_adapter = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
options = TrainOptions(steps=8, checkpoint_every=2, progress=False, callbacks=[KillAtStep()])
finetune(base, "ur5e", [data], "play-30min", run, options=options, workers=0)
"""


@pytest.mark.parametrize(("where", "at"), [("step", 5), ("checkpoint", 2), ("adapter", 0)])
def test_a_run_killed_anywhere_reruns_to_the_end_losing_at_most_one_interval(
    where, at, panda_only_base, synthetic_dataset, tmp_path, caplog
):
    """SIGKILL after step 5, halfway through the third checkpoint write (step 4's), or while the adapter is
    written: no adapter folder that looks valid is left, and the rerun resumes at most one checkpoint
    interval (2 steps) back and finishes."""
    data, run = str(synthetic_dataset("ur5e")), tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(panda_only_base), data, str(run), where, str(at)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert killed.returncode == -9, killed.stderr
    with pytest.raises(AdaptError, match="not an adapter folder"):
        load_adapter(run / "adapter")
    last = run / "checkpoints" / "last.ckpt"
    assert bool(list(last.parent.glob(".*.tmp"))) == (where == "checkpoint")  # the cut write is a temp file
    resumed_from = torch.load(last, weights_only=True, map_location="cpu")["global_step"]  # intact: atomic
    reached = {"step": 5, "checkpoint": 4, "adapter": 8}[where]
    assert reached - 2 <= resumed_from <= reached
    with caplog.at_level("INFO", logger="adapt.train.fit"):
        options = TrainOptions(steps=8, checkpoint_every=2)
        finetune(panda_only_base, "ur5e", [data], "play-30min", run, options=options, workers=0)
    assert f"resuming from {last}" in caplog.text
    assert torch.load(last, weights_only=True, map_location="cpu")["global_step"] == 8
    assert not list(last.parent.glob(".*.tmp"))  # the half-written temp file was cleared
    load_adapter(run / "adapter")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_run_stopped_by_a_signal_says_where_and_how_to_resume(sig, panda_only_base, synthetic_dataset, tmp_path):
    """Ctrl-C (to the whole process group, as a terminal sends it, data loader workers included) or SIGTERM during
    training ended in Lightning's message and exit 1, or in "unexpected RuntimeError: DataLoader worker ... killed
    by signal": one line with the step and the checkpoint to resume from, and the status a shell expects. (A
    run started from a background shell (`cmd &`, CI under `nohup`) inherits SIGINT ignored and Python then
    never raises KeyboardInterrupt: the run is started with Ctrl-C restored, as a terminal starts it.)"""
    run = tmp_path / "run"
    command = [sys.executable, "-m", "adapt.cli", "finetune", "--base", str(panda_only_base), "--embodiment", "ur5e"]
    command += ["--data", str(synthetic_dataset("ur5e")), "--out", str(run), "--steps", "100000"]
    command += ["--checkpoint-every", "2", "--workers", "1"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 240
        while not (run / "checkpoints" / "last.ckpt").is_file() and time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.2)
        os.killpg(process.pid, sig)
        output, _ = process.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 128 + sig, output
    text = " ".join(output.split())
    assert f"training stopped by {sig.name} at step" in text and "rerun the same command to resume from" in text, text
    assert "Traceback" not in output and "unexpected" not in output


def test_a_one_armed_base_seeds_each_arm_of_a_two_armed_robot(invoke, panda_only_base, synthetic_dataset, tmp_path):
    """`adapt finetune` of the single-arm Panda base onto the two-armed `baxter_osc` with donor heads: both arms'
    six end-effector rows and both grippers' rows of the new action decoder start as the Panda's (the second
    arm's from the same Panda rows as the first's), and the adapted policy commands both arms within the spec.
    Catches a second arm left fresh (names matched only verbatim) or seeded from the wrong rows."""
    from adapt.policy import InferenceConfig, Policy
    from adapt.predictor import ChunkPredictor

    run = tmp_path / "run"
    data = synthetic_dataset("baxter_osc", episodes=2, length=40)
    args = ["--base", panda_only_base, "--embodiment", "baxter_osc", "--data", data, "--out", run, *FAST]
    result = invoke("finetune", *args, "--init-heads", "donor", "--allow-outside-limits")  # synthetic joints
    assert result.exit_code == 0, result.output
    adapter = load_adapter(run / "adapter")
    new, donor = (adapter.heads[name].action_decoder.net[2] for name in ("baxter_osc", "panda"))
    rows = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 6]  # right arm, left arm, right gripper, left gripper
    assert torch.allclose(new.weight, donor.weight[rows], atol=1e-2)
    assert torch.allclose(new.bias, donor.bias[rows], atol=1e-2)
    spec = load_embodiment("baxter_osc")
    observation = {c.name: np.zeros((c.height, c.width, 3), np.uint8) for c in spec.cameras}
    observation |= {"state": np.zeros(spec.state_dim, np.float32), "task": "lift the pot with both arms"}
    chunk = Policy(ChunkPredictor(adapter, "baxter_osc", InferenceConfig(steps=1))).act(observation)
    assert chunk.shape == (spec.action.chunk, 14) and np.all(np.abs(chunk) <= 1.0)


def test_an_adaptation_checkpoint_holds_what_trains_and_the_buffers_not_the_frozen_base():
    """`WAMModule(save_frozen=False)` (what finetune builds) leaves the frozen base out of its checkpoints: a
    resumed run reads it from the base again, and a 5B base would otherwise write 10.5 GiB per checkpoint. Catches
    frozen weights written, and a trainable weight or a buffer (the statistics a resumed run needs) left out."""
    from adapt.lora import add_lora
    from adapt.train.module import WAMModule

    model = WorldActionModel(model_config("tiny"), [load_embodiment("ur5e")])
    model.requires_grad_(False)
    model.backbone = add_lora(model.backbone, load_recipe("play-30min").lora)
    model.heads["ur5e"].requires_grad_(True)
    module = WAMModule(model, save_frozen=False)
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    buffers = {n for n, _ in module.named_buffers()}
    assert trainable and any("lora_" in n for n in trainable)
    assert set(checkpoint["state_dict"]) == trainable | (buffers & set(module.state_dict()))
    kept = WAMModule(model)  # pretraining keeps everything
    assert len(kept.state_dict()) > len(checkpoint["state_dict"])
