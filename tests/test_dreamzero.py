"""The `dreamzero` family: DreamZero's checkpoint names and shapes, its DiT's forward against DreamZero's own
code, and loading checkpoints in DreamZero's folder layout."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_dreamzero_checkpoint
from safetensors.torch import load_file, save_file

from adapt.adapter import load_adapter, merge
from adapt.embodiment import load_embodiment
from adapt.errors import AdaptError
from adapt.inference_config import InferenceConfig
from adapt.model import load_model
from adapt.model.dreamzero import dit as dit_module
from adapt.model.dreamzero.config import DREAMZERO_PRESETS
from adapt.model.dreamzero.dit import DreamZeroDiT
from adapt.model.dreamzero.encoder_cache import EncoderCache
from adapt.model.dreamzero.export import LORA_TARGETS
from adapt.model.dreamzero.keys import to_adapt, to_dreamzero
from adapt.model.dreamzero.model import DreamZeroWAM
from adapt.model.dreamzero.registers import DreamZeroHeads
from adapt.model.dreamzero.rollout import DreamZeroRollout, Sampling
from adapt.policy import Policy
from adapt.predictor import ChunkPredictor


def dreamzero_shapes(size: str) -> dict[str, tuple[int, ...]]:
    """DreamZero checkpoint key -> shape of our DiT and shared registers of preset `size`, built on the meta device."""
    config = DREAMZERO_PRESETS[size]
    with torch.device("meta"):
        modules = {"backbone": DreamZeroDiT(config), "shared_registers": DreamZeroHeads.shared(config)}
    shapes = {}
    for prefix, module in modules.items():
        for name, parameter in module.named_parameters():
            key = to_dreamzero(f"{prefix}.{name}")
            assert key is not None, f"{prefix}.{name} has no DreamZero name"
            assert to_adapt(key) == f"{prefix}.{name}", key  # the map runs both ways
            shapes[key] = tuple(parameter.shape)
    return shapes


@pytest.mark.parametrize(
    ("size", "parameters", "dim", "ffn", "layers", "in_dim", "out_dim"),
    [
        ("dreamzero-14b", 16_484_292_448, 5120, 13824, 40, 36, 16),
        ("dreamzero-5b", 5_606_692_832, 3072, 14336, 30, 48, 48),
    ],
)
def test_released_sizes_have_dreamzero_key_names_and_shapes(size, parameters, dim, ffn, layers, in_dim, out_dim):
    """The 14B and 5B DiTs carry every key DreamZero's checkpoints hold, under its names, at its shapes (a wrong
    rename, a swapped norm or a missing image projection would load nothing or the wrong tensor)."""
    shapes = dreamzero_shapes(size)
    assert sum(torch.Size(s).numel() for s in shapes.values()) == parameters
    m = "action_head.model."
    expected = {
        "patch_embedding.weight": (dim, in_dim, 1, 2, 2),
        "text_embedding.0.weight": (dim, 4096),
        "time_embedding.0.weight": (dim, 256),
        "time_projection.1.weight": (6 * dim, dim),
        "img_emb.proj.1.weight": (1280, 1280),
        "img_emb.proj.3.weight": (dim, 1280),
        "head.head.weight": (4 * out_dim, dim),
        "head.modulation": (1, 2, dim),
        f"blocks.{layers - 1}.modulation": (1, 6, dim),
        f"blocks.{layers - 1}.self_attn.q.weight": (dim, dim),
        "blocks.0.self_attn.norm_k.weight": (dim,),
        "blocks.0.cross_attn.o.bias": (dim,),
        "blocks.0.cross_attn.k_img.weight": (dim, dim),
        "blocks.0.cross_attn.norm_k_img.weight": (dim,),
        "blocks.0.norm3.weight": (dim,),
        "blocks.0.ffn.0.weight": (ffn, dim),
        "blocks.0.ffn.2.weight": (dim, ffn),
        "state_encoder.layer1.W": (1, 64, 1024),
        "state_encoder.layer2.W": (1, 1024, dim),
        "action_encoder.W1.W": (1, 32, dim),
        "action_encoder.W2.W": (1, 2 * dim, dim),
        "action_decoder.layer2.W": (1, 1024, 32),
    }
    assert {k: shapes[m + k] for k in expected} == expected
    assert f"{m}blocks.{layers}.modulation" not in shapes
    assert not any(k.endswith((".norm1.weight", ".norm2.weight")) for k in shapes)  # Wan's norm1/norm2 have no affine


FIXTURE = Path(__file__).parent / "fixtures" / "dreamzero_reference"


def reference_model() -> tuple[DreamZeroDiT, DreamZeroHeads]:
    """Our DiT and registers with the reference weights (seeded, in DreamZero's parameter order), loaded
    through the checkpoint key map."""
    reference = json.loads((FIXTURE / "reference.json").read_text())
    dit, registers = (
        DreamZeroDiT(DREAMZERO_PRESETS["dreamzero-tiny"]),
        DreamZeroHeads.shared(DREAMZERO_PRESETS["dreamzero-tiny"]),
    )
    torch.manual_seed(0)
    weights = {
        to_adapt("action_head.model." + name): torch.randn(shape) * 0.1 for name, shape in reference["parameters"]
    }
    for prefix, module in [("backbone.", dit), ("shared_registers.", registers)]:
        module.load_state_dict({k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}, strict=True)
    return dit.eval(), registers.eval()


def draws(seed: int, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(*shape, generator=generator) for name, shape in shapes.items()}


@torch.no_grad()
def test_forward_matches_dreamzero():
    """Our teacher-forced forward and our KV-cached denoising steps agree with DreamZero's own code on the same
    weights and inputs within 1e-4 (float32): catches any divergence in token order, attention pattern, RoPE
    (video 3-D and register 1-D, with per-block offsets), per-token modulation, cross-attention or registers."""
    expected = load_file(FIXTURE / "outputs.safetensors")
    dit, registers = reference_model()
    train = draws(1, {"x": (2, 4, 5, 4, 6), "clean_x": (2, 4, 5, 4, 6), "y": (2, 8, 5, 4, 6), "context": (2, 8, 32),
                      "clip_feature": (2, 257, 1280), "action": (2, 6, 8), "state": (2, 2, 16)})  # fmt: skip
    assert torch.equal(train["x"], expected["inputs.x"])  # the random generator still draws the reference inputs
    context = dit.context(train["context"], train["clip_feature"])
    times = {
        "": ([[900, 300, 300, 650, 650], [50, 720, 720, 120, 120]], [[300] * 3 + [650] * 3, [720] * 3 + [120] * 3]),
        "_2": ([[100, 800, 800, 400, 400], [999, 10, 10, 500, 500]], [[800] * 3 + [400] * 3, [10] * 3 + [500] * 3]),
    }
    for suffix, (t_video, t_action) in times.items():
        t_video, t_action = torch.tensor(t_video, dtype=torch.float32), torch.tensor(t_action, dtype=torch.float32)
        velocity, hidden = dit(
            torch.cat([train["x"], train["y"]], 1),
            torch.cat([train["clean_x"], train["y"]], 1),
            t_video,
            registers.action_encoder(train["action"], t_action),
            t_action,
            registers.state_encoder(train["state"]),
            context,
        )
        torch.testing.assert_close(velocity, expected[f"train.video_pred{suffix}"], atol=1e-4, rtol=0)
        torch.testing.assert_close(
            registers.action_decoder(hidden), expected[f"train.action_pred{suffix}"], atol=1e-4, rtol=0
        )

    shape = (1, 4, 2, 4, 6)
    block_0 = {"noise_video": shape, "noise_action": (1, 3, 8), "state": (1, 1, 16)}
    block_1 = {f"{k}_b1": v for k, v in block_0.items()}
    first = {"latents": (1, 4, 5, 4, 6), "ys": (1, 8, 5, 4, 6), "context": (1, 8, 32), "clip_feature": (1, 257, 1280)}
    infer = draws(2, {**first, **block_0, **block_1})
    assert torch.equal(infer["latents"], expected["inputs.latents"])
    latents, ys = infer["latents"], infer["ys"]
    context = dit.context(infer["context"], infer["clip_feature"])
    cache = dit.encode_clean(torch.cat([latents[:, :, :1], ys[:, :, :1]], 1), context, 0)
    torch.testing.assert_close(
        torch.stack(cache[0]), expected["infer.kv_cache_after_first.0"].transpose(2, 3), atol=1e-4, rtol=0
    )

    def denoise(cache, suffix: str, t_video: float, t_action: float, first: int, block: int):
        tv, ta = torch.full((1, 2), t_video), torch.full((1, 3), t_action)
        y = ys[:, :, first : first + 2]
        noisy = torch.cat([infer[f"noise_video{suffix}"], y], 1)
        actions = registers.action_encoder(infer[f"noise_action{suffix}"], ta)
        states = registers.state_encoder(infer[f"state{suffix}"])
        velocity, hidden = dit.denoise(noisy, tv, actions, ta, states, context, cache, first, block)
        return velocity, registers.action_decoder(hidden)

    for suffix, t_video, t_action in [("", 500.0, 500.0), ("_2", 700.0, 300.0)]:  # suffix: which reference
        velocity, actions = denoise(cache, "", t_video, t_action, 1, 0)
        torch.testing.assert_close(velocity, expected[f"infer.video_pred{suffix}"], atol=1e-4, rtol=0)
        torch.testing.assert_close(actions, expected[f"infer.action_pred{suffix}"], atol=1e-4, rtol=0)
    cache = dit.encode_clean(torch.cat([latents[:, :, 1:3], ys[:, :, 1:3]], 1), context, 1, cache)
    torch.testing.assert_close(
        torch.stack(cache[1]), expected["infer.kv_cache_after_b1_update.1"].transpose(2, 3), atol=1e-4, rtol=0
    )
    velocity, actions = denoise(cache, "_b1", 500.0, 500.0, 3, 1)
    torch.testing.assert_close(velocity, expected["infer.b1_video_pred"], atol=1e-4, rtol=0)
    torch.testing.assert_close(actions, expected["infer.b1_action_pred"], atol=1e-4, rtol=0)


@torch.no_grad()
def test_closed_loop_matches_dreamzero():
    """Six chunks of one session through `DreamZeroRollout` give DreamZero's own actions, video latents, what
    its VAE was given and both key/value caches (task and negative prompt) within 1e-4: catches a cache that
    keeps predicted frames instead of observed ones, a reset missed or made at the wrong chunk (new task, one
    frame, full window), the wrong first frame, observed frames put together otherwise (first frame in front,
    short calls repeated), a schedule, guidance, decoupled video noise or skipped DiT step unlike DreamZero's."""
    spec = importlib.util.spec_from_file_location("make_closed_loop", FIXTURE / "make_closed_loop.py")
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    expected = load_file(FIXTURE / "closed_loop.safetensors")
    dit, registers = reference_model()
    model = DreamZeroWAM(DREAMZERO_PRESETS["dreamzero-tiny"])
    model.backbone.load_state_dict(dit.state_dict())
    model.tokenizer = encoders = reference.StandInEncoders()
    rollout = DreamZeroRollout(model.eval(), registers, Sampling(**reference.SAMPLING))
    noise = torch.Generator().manual_seed(reference.NOISE_SEED)
    inputs = reference.session_inputs()
    assert torch.equal(inputs["frames.0"], expected["frames.0"])  # the generator still draws the reference inputs
    for i, task in enumerate(reference.TASKS):
        calls = len(encoders.vae_inputs)
        video = inputs[f"frames.{i}"].permute(0, 3, 1, 2)[None]  # (1, T, 3, H, W) uint8
        actions, latents = rollout.next_chunk(video, inputs[f"state.{i}"][:, 0], task, noise)
        assert rollout.start == int(expected[f"chunk.{i}.start_frame"]), i
        for j, given in enumerate(encoders.vae_inputs[calls:]):
            torch.testing.assert_close(given, expected[f"chunk.{i}.vae_input.{j}"], atol=1e-6, rtol=0)
        assert f"chunk.{i}.vae_input.{len(encoders.vae_inputs) - calls}" not in expected, i
        torch.testing.assert_close(actions, expected[f"chunk.{i}.actions"], atol=1e-4, rtol=0)
        torch.testing.assert_close(latents, expected[f"chunk.{i}.video"], atol=1e-4, rtol=0)
        for k, name in enumerate(("cache", "negative_cache")):
            for layer, kv in enumerate(rollout.caches[k]):
                theirs = expected[f"chunk.{i}.{name}.{layer}"].transpose(2, 3)
                torch.testing.assert_close(torch.stack(kv), theirs, atol=1e-4, rtol=0)


def test_a_dreamzero_policy_keeps_one_session_and_feeds_it_what_the_robot_saw(dreamzero_base):
    """Through `Policy.step`: an episode's first plan sends the current frame alone (a new session), each later
    plan the frames of the steps executed since (4 executed, repeated to the block's 8 as DreamZero repeats a
    short call's), the session's window fills and starts again, a new episode starts a new session, and `act`
    sends what arrived since the last chunk. Catches a policy that replans from a fresh context (DreamZero's
    cache never sees the robot's frames), sends stale or future frames, or carries a session over into the next
    episode."""
    model = load_model(dreamzero_base)
    spec = load_embodiment("ur5e")
    model.add_embodiment(spec)
    policy = Policy(ChunkPredictor(model, "ur5e", InferenceConfig(steps=2, execute=4, blend=0)))
    sent = []

    def record(rollout):
        step = rollout.step

        def recorded(batch, generator=None):
            out = step(batch, generator)
            sent.append((batch["frames"][0, 0, :, 0, 0, 0].tolist(), rollout.start))
            return out

        rollout.step = recorded

    record(policy.rollout)
    for k in range(13):
        observation = {c.name: np.full((c.height, c.width, 3), 10 * k, np.uint8) for c in spec.cameras}
        action = policy.step(observation | {"state": np.zeros(spec.state_dim, np.float32), "task": "lift the cube"})
        assert np.isfinite(action).all()
    assert sent == [
        ([0], 3),  # a new session: the current frame is latent frame 0, the block after it is predicted
        ([10, 10, 20, 20, 30, 30, 40, 40], 5),  # steps 1-4 observed, each repeated: the block enters the cache
        ([50, 50, 60, 60, 70, 70, 80, 80], 3),  # the window (2 blocks) was full: a new one starts from step 5
        ([90, 90, 100, 100, 110, 110, 120, 120], 5),
    ]
    policy.reset()
    record(policy.rollout)
    policy.step(observation | {"state": np.zeros(spec.state_dim, np.float32), "task": "lift the cube"})
    assert sent[-1] == ([120], 3)
    later = {c.name: np.full((c.height, c.width, 3), 200, np.uint8) for c in spec.cameras}
    policy.act(later | {"state": np.zeros(spec.state_dim, np.float32), "task": "lift the cube"})
    assert sent[-1] == ([200] * 8, 5)  # `act` (a server's call): what arrived since the last chunk, as a block


def pad(x: torch.Tensor, size: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, size - x.shape[-1]))


def test_dreamzero_checkpoint_adapts_through_the_cli(invoke, dreamzero_base, synthetic_dataset, tmp_path):
    """A tiny checkpoint in DreamZero's layout and key names is loaded, adapted to the UR5e with `play-30min`
    through the CLI, saved, reloaded, merged, gives an action chunk, and exports in DreamZero's form (catches any
    family-specific break between checkpoint, LoRA, heads, adapter files, inference and export; the padded
    registers must act exactly as the robot's own on DreamZero's zero-padded inputs)."""
    data = synthetic_dataset("ur5e", episodes=2, length=40)
    run = tmp_path / "run"
    args = ["finetune", "--base", str(dreamzero_base), "--embodiment", "ur5e", "--data", str(data)]
    result = invoke(*args, "--recipe", "play-30min", "--out", str(run), "--steps", "3", "--workers", "0")
    assert result.exit_code == 0, result.output
    adapter = run / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 4
    model = load_adapter(adapter)
    assert type(model).__name__ == "DreamZeroWAM" and model.heads["ur5e"].action_decoder.layer2.W.shape == (1, 32, 7)
    lora = {n: p for n, p in model.backbone.named_parameters() if "lora_B" in n}
    assert lora and any(p.abs().sum() > 0 for p in lora.values())  # trained: LoRA B starts at zero
    predictor = ChunkPredictor(model, "ur5e", InferenceConfig(steps=2, seed=0))
    frames = np.zeros((2, 1, *predictor.frame_size, 3), dtype=np.uint8)
    state = np.zeros(7, dtype=np.float32)
    chunk = predictor.predict(frames, [True], state, "push the red block", torch.Generator().manual_seed(0))
    merged = ChunkPredictor(merge(load_adapter(adapter)), "ur5e", InferenceConfig(steps=2, seed=0))
    again = merged.predict(frames, [True], state, "push the red block", torch.Generator().manual_seed(0))
    assert chunk.actions.shape == (16, 7) and not np.allclose(chunk.actions, predictor.codec.hold(state)[None])
    np.testing.assert_allclose(again.actions, chunk.actions, atol=1e-4)  # merging LoRA changes nothing

    exported = tmp_path / "for_dreamzero"
    result = invoke("export", str(run), "--out", str(exported), "--format", "dreamzero")
    assert result.exit_code == 0, result.output
    lora = load_file(exported / "adapter_model.safetensors")
    module = r"base_model\.model\.blocks\.[01]\.(self_attn\.[qkvo]|cross_attn\.[qkvo]|ffn\.[02])\.lora_[AB]\.weight"
    assert len(lora) == 2 * 2 * 10 and all(re.fullmatch(module, k) for k in lora)  # 2 blocks x 10 linears x A, B
    assert json.loads((exported / "adapter_config.json").read_text())["target_modules"] == LORA_TARGETS
    meta = json.loads((exported / "experiment_cfg" / "metadata.json").read_text())["ur5e"]
    assert meta["modalities"]["state"] == {
        "joint_position": {"absolute": True, "rotation_type": None, "shape": [6], "continuous": True},
        "gripper": {"absolute": True, "rotation_type": None, "shape": [1], "continuous": True},
    }
    settings = json.loads((exported / "dreamzero_adapter.json").read_text())["dreamzero_config"]
    assert settings["action_horizon"] == settings["num_action_per_block"] == 16  # the UR5e's chunk, not the base's 3
    padded = DreamZeroHeads.shared(model.config)
    padded.load_state_dict(
        {k.removeprefix("action_head.model."): v for k, v in load_file(exported / "registers.safetensors").items()}
    )
    heads, state, actions, t = (
        model.heads["ur5e"],
        torch.randn(2, 1, 7),
        torch.randn(2, 16, 7),
        torch.full((2, 16), 300.0),
    )
    hidden = torch.randn(2, 16, model.config.dim)
    with torch.no_grad():  # zero-padded inputs through the padded registers = the robot's own registers
        torch.testing.assert_close(padded.state_encoder(pad(state, 16)), heads.state_encoder(state))
        torch.testing.assert_close(padded.action_encoder(pad(actions, 8), t), heads.action_encoder(actions, t))
        torch.testing.assert_close(padded.action_decoder(hidden)[..., :7], heads.action_decoder(hidden))


def test_bad_dreamzero_checkpoints_are_refused_with_what_is_wrong(dreamzero_base, tmp_path):
    """A missing shard, a mis-shaped key, a missing key and a config of another family are each named (a silent
    partial load would adapt a broken base)."""
    sharded = write_dreamzero_checkpoint(tmp_path / "sharded", shards=2)
    assert type(load_model(sharded)).__name__ == "DreamZeroWAM"
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(AdaptError, match="shard.*missing.*model-00002-of-00002.safetensors"):
        load_model(sharded)

    broken = tmp_path / "broken"
    shutil.copytree(dreamzero_base, broken)
    weights = load_file(broken / "model.safetensors")
    weights["action_head.model.blocks.0.self_attn.q.weight"] = torch.zeros(3, 3)
    del weights["action_head.model.head.head.bias"]
    save_file(weights, broken / "model.safetensors")
    with pytest.raises(AdaptError) as error:
        load_model(broken)
    message = str(error.value)
    assert "1 missing: backbone.proj_out.bias" in message
    assert "1 wrong shape: backbone.blocks.0.attn1.to_q.weight: [3, 3], expected [64, 64]" in message

    other = tmp_path / "other"
    shutil.copytree(dreamzero_base, other)
    config = json.loads((other / "config.json").read_text())
    config["action_head_cfg"]["config"]["diffusion_model_cfg"]["_target_"] = "some.other.Model"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(AdaptError, match="not a DreamZero checkpoint"):
        load_model(other)


def test_donor_heads_take_the_rows_of_dimensions_named_alike(dreamzero_base):
    """`donor="dreamzero"` copies the shared registers' hidden layers and the rows of dimensions with the same
    name (the gripper) and leaves the robot's own joints fresh (copying joint rows of another robot by position
    would give the UR5e's shoulder the AgiBot's joint 0)."""
    model = load_model(dreamzero_base)
    heads = model.add_embodiment(load_embodiment("ur5e"), donor="dreamzero")
    shared = model.shared_registers
    assert torch.equal(heads.action_decoder.layer1.W, shared.action_decoder.layer1.W)
    assert torch.equal(heads.state_encoder.layer1.W[0, 6], shared.state_encoder.layer1.W[0, 7])  # gripper[0]
    assert torch.equal(heads.action_decoder.layer2.W[0, :, 6], shared.action_decoder.layer2.W[0, :, 7])
    assert not torch.equal(heads.state_encoder.layer1.W[0, 0], shared.state_encoder.layer1.W[0, 0])


def teacher_forced(dit: DreamZeroDiT, registers: DreamZeroHeads) -> tuple[torch.Tensor, torch.Tensor]:
    """One teacher-forced forward of the tiny DiT on fixed draws: two blocks of noisy frames at their own times,
    their action chunks and states, text and CLIP context."""
    inputs = draws(
        3, {"noisy": (1, 12, 5, 4, 6), "clean": (1, 12, 5, 4, 6), "actions": (1, 6, 8), "states": (1, 2, 16)}
    )
    t_video, t_action = torch.tensor([[900.0, 300, 300, 650, 650]]), torch.tensor([[300.0] * 3 + [650.0] * 3])
    context = draws(4, {"text": (1, 8, 32), "image": (1, 257, 1280)})
    return dit(
        inputs["noisy"], inputs["clean"], t_video, registers.action_encoder(inputs["actions"], t_action), t_action,
        registers.state_encoder(inputs["states"]), dit.context(context["text"], context["image"]),
    )  # fmt: skip


def test_activation_checkpointing_changes_memory_not_results():
    """Recomputing the blocks in the backward pass gives the same gradients (a checkpointed block that dropped
    its mask, RoPE or cache arguments would not), and does recompute them (each block runs twice)."""
    torch.manual_seed(0)
    dit, registers = reference_model()
    calls = []
    dit.blocks[0].register_forward_pre_hook(lambda *_: calls.append(1))
    results, runs = [], []
    for checkpointed in (False, True):
        calls.clear()
        dit.zero_grad()
        dit.gradient_checkpointing = checkpointed
        velocity, hidden = teacher_forced(dit, registers)
        (velocity.square().mean() + hidden.square().mean()).backward()
        results.append([p.grad.clone() for p in dit.blocks.parameters()])
        runs.append(len(calls))
    assert runs == [1, 2]
    for plain, recomputed in zip(*results, strict=True):
        torch.testing.assert_close(recomputed, plain)


def test_bf16_blocks_compute_in_float32_on_a_cpu_without_bf16_units(monkeypatch):
    """On a CPU without bf16 units (this project's machine) bf16 weights stay bf16 but every block computes in
    float32: its linear layers see float32 inputs and weights (bf16 ones took torch's reference kernels, a
    dreamzero-5b step over 40 minutes), the output is the float32 model's on the same rounded weights, and under
    activation checkpointing the recomputed blocks give the same bf16 gradients as without, through the casts
    (an upcast that detached the weights would leave them without gradients)."""
    monkeypatch.setattr(dit_module, "blocks_compute_in_float32", lambda dtype, device: dtype == torch.bfloat16)
    torch.manual_seed(0)
    dit, registers = reference_model()
    narrow, heads = dit.to(torch.bfloat16), registers.to(torch.bfloat16)
    with torch.no_grad():  # float32 on the weights bf16 keeps
        expected, _ = teacher_forced(copy.deepcopy(narrow).float(), copy.deepcopy(heads).float())
    seen = []
    narrow.blocks[1].attn1.to_q.register_forward_hook(lambda m, args, out: seen.append((args[0].dtype, out.dtype)))
    grads = []
    for checkpointed in (False, True):
        narrow.zero_grad()
        narrow.gradient_checkpointing = checkpointed
        velocity, hidden = teacher_forced(narrow, heads)
        (velocity.float().square().mean() + hidden.float().square().mean()).backward()
        grads.append([p.grad for p in narrow.blocks.parameters()])
    assert set(seen) == {(torch.float32, torch.float32)}
    assert {p.dtype for p in narrow.parameters()} == {torch.bfloat16}
    assert velocity.dtype == torch.bfloat16
    torch.testing.assert_close(velocity.float(), expected, atol=0.05, rtol=0.05)
    assert all(g is not None and g.dtype == torch.bfloat16 for g in grads[0])
    assert sum(g.float().abs().sum() for g in grads[0]) > 0
    for plain, recomputed in zip(*grads, strict=True):
        torch.testing.assert_close(recomputed, plain)


def test_ddp_on_two_cpu_processes_adapts_a_dreamzero_base(dreamzero_base, synthetic_dataset, tmp_path, invoke):
    """DDP with activation checkpointing on 2 CPU processes writes a loadable adapter; FSDP, which Lightning runs
    on GPUs only, is refused before anything loads with a message that says so."""
    adapt = shutil.which("adapt", path=str(Path(sys.executable).parent))
    data, run = synthetic_dataset("ur5e", episodes=2, length=40), tmp_path / "run"
    command = [adapt, "finetune", "--base", str(dreamzero_base), "--embodiment", "ur5e", "--data", str(data)]
    command += ["--out", str(run), "--steps", "2", "--workers", "0", "--accelerator", "cpu", "--devices", "2"]
    refused = invoke(*command[1:], "--strategy", "fsdp")
    assert refused.exit_code == 2 and "The strategy `fsdp` requires a GPU accelerator" in refused.output
    env = dict(os.environ, PL_DISABLE_FORK="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [*command, "--strategy", "ddp", "--activation-checkpointing"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Starting with 2 processes" in done.stdout + done.stderr
    assert type(load_adapter(run / "adapter")).__name__ == "DreamZeroWAM"


def test_frozen_encoders_run_once_per_input(dreamzero_base, monkeypatch, tmp_path):
    """Training on a loaded checkpoint encodes each window, first frame and prompt once: a second pass over the
    same batch runs no encoder and gives the same loss; a changed window is encoded again, alone; another base
    (fingerprint) encodes afresh. Catches a cache that serves stale latents or never hits."""
    monkeypatch.setenv("ADAPT_CACHE", str(tmp_path))  # not the entries other tests left
    model = load_model(dreamzero_base)
    spec = load_embodiment("ur5e")
    model.add_embodiment(spec)
    calls = {"video": 0, "text": 0, "image": 0}
    for kind in calls:
        original = getattr(model.tokenizer, f"encode_{kind}")

        def counted(inputs, _original=original, _kind=kind):
            calls[_kind] += len(inputs)
            return _original(inputs)

        monkeypatch.setattr(model.tokenizer, f"encode_{kind}", counted)
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 255, (2, 2, 9, 3, 16, 24), generator=generator, dtype=torch.uint8)
    batch = {
        "frames": frames, "state": torch.randn(2, 7, generator=generator), "has_state": torch.ones(2, dtype=torch.bool),
        "action": torch.randn(2, 16, 7, generator=generator), "action_mask": torch.ones(2, 16, dtype=torch.bool),
        "has_action": torch.ones(2, dtype=torch.bool), "task": ["push the red block"] * 2, "embodiment": ["ur5e"] * 2,
    }  # fmt: skip
    with torch.no_grad():
        first = model.loss(batch, generator=torch.Generator().manual_seed(1))
        assert calls == {"video": 4, "text": 2, "image": 2}  # windows, first frames for the condition, prompts, images
        again = model.loss(batch, generator=torch.Generator().manual_seed(1))
        assert calls == {"video": 4, "text": 2, "image": 2}
        torch.testing.assert_close(again["loss"], first["loss"])
        frames[1, 0, 4] = 255 - frames[1, 0, 4]  # one later frame of one window: its latents only
        model.loss(batch)
        assert calls == {"video": 5, "text": 2, "image": 2}
        model.encoder_cache = EncoderCache("another base")
        model.loss(batch)
        assert calls == {"video": 9, "text": 4, "image": 4}


def test_a_released_config_reads_as_the_14b_preset_with_its_real_encoders(tmp_path):
    """DreamZero-AgiBot's config.json (14B sizes, frame_seqlen 880) reads as the 14B architecture whatever the
    folder is called, with umT5-XXL, ViT-H and Wan2.1's VAE (a config read by name would get test-size encoders
    and refuse the real weights)."""
    from adapt.model.dreamzero.checkpoint import read_config
    from adapt.model.dreamzero.model import DreamZeroWAM

    dit = {
        "_target_": "groot.vla.model.dreamzero.modules.wan_video_dit_action_casual_chunk.CausalWanModel",
        "model_type": "i2v", "frame_seqlen": 880, "dim": 5120, "in_dim": 36, "ffn_dim": 13824, "out_dim": 16,
        "freq_dim": 256, "eps": 1e-6, "num_heads": 40, "num_layers": 40, "max_chunk_size": 4,
        "num_frame_per_block": 2, "num_action_per_block": 24, "num_state_per_block": 1,
    }  # fmt: skip
    folder = tmp_path / "DreamZero-AgiBot"
    folder.mkdir()
    config = {"model_type": "vla", "action_head_cfg": {"config": {"diffusion_model_cfg": dit, "action_dim": 32}}}
    (folder / "config.json").write_text(json.dumps(config))
    read = read_config(folder)
    assert read.model_copy(update={"size": "dreamzero-14b"}) == DREAMZERO_PRESETS["dreamzero-14b"]
    with torch.device("meta"):
        encoders = DreamZeroWAM(read).tokenizer
    assert sum(p.numel() for p in encoders.parameters()) == pytest.approx(6.44e9, rel=0.01)


def test_bf16_weights_train_and_the_adapter_loads(invoke, dreamzero_base, synthetic_dataset, tmp_path):
    """`--precision bf16-true` (bfloat16 weights, how a 14B run fits one 80 GB GPU): every input is cast to the
    weights' dtype on its way in (a float32 latent, time feature or register input meeting bfloat16 weights
    fails), and the adapter it writes loads and acts."""
    data, run = synthetic_dataset("ur5e", episodes=2, length=40), tmp_path / "run"
    args = ["finetune", "--base", str(dreamzero_base), "--embodiment", "ur5e", "--data", str(data), "--out", str(run)]
    result = invoke(*args, "--steps", "2", "--workers", "0", "--precision", "bf16-true")
    assert result.exit_code == 0, result.output
    predictor = ChunkPredictor(load_adapter(run / "adapter"), "ur5e", InferenceConfig(steps=2, seed=0))
    frames = np.zeros((2, 1, *predictor.frame_size, 3), dtype=np.uint8)
    state = np.zeros(7, dtype=np.float32)
    chunk = predictor.predict(frames, [True], state, "push the red block")
    assert chunk.actions.shape == (16, 7) and not np.allclose(chunk.actions, predictor.codec.hold(state)[None])


def test_a_released_checkpoint_loads_in_the_dtype_asked(dreamzero_base):
    """`--precision bf16-true` reads a DreamZero base into bfloat16 weights instead of widening every weight to
    float32 first (a 14B base then needs 33 GB at load, not 66): catches a load that widens, and one that changes
    a weight beyond bfloat16's rounding."""
    wide, narrow = load_model(dreamzero_base), load_model(dreamzero_base, dtype=torch.bfloat16)
    assert {p.dtype for p in narrow.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in wide.parameters()} == {torch.float32}
    for (name, a), (_, b) in zip(wide.state_dict().items(), narrow.state_dict().items(), strict=True):
        assert b.dtype == (torch.bfloat16 if a.is_floating_point() else a.dtype), name
        if not a.is_meta:  # the encoders' weights are read when a call needs them (below)
            assert torch.equal(a.to(b.dtype), b), name
    with wide.tokenizer.stream.resident("vae"), narrow.tokenizer.stream.resident("vae"):  # float32 on a CPU
        pairs = zip(wide.tokenizer.vae.named_parameters(), narrow.tokenizer.vae.named_parameters(), strict=True)
        for (name, a), (_, b) in pairs:
            assert b.dtype == torch.float32 and torch.equal(a, b), name
    assert {p.dtype for p in narrow.tokenizer.vae.parameters()} == {torch.bfloat16}  # dropped in the model's dtype
    prompt = ["push the red block"]
    assert narrow.tokenizer.encode_text(prompt).dtype == torch.bfloat16
    assert narrow.tokenizer.encode_image(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)).dtype == torch.bfloat16


def test_a_released_checkpoints_encoders_are_read_only_while_they_run(dreamzero_base):
    """A 5B base's umT5 (10.6 GiB) and its DiT do not fit a 24 GiB machine together, so the encoders stay in the
    checkpoint's files: catches an eager load (weights resident after `load`), a call that leaves them resident,
    umT5 read whole instead of a block at a time, and a streamed read that changes an encoder's output (against
    the same weights loaded the ordinary way)."""
    from adapt.model.dreamzero.encoders import DreamZeroEncoders

    model = load_model(dreamzero_base)
    encoders = model.tokenizer
    resident = lambda: {n for n, p in encoders.named_parameters() if not p.is_meta}  # noqa: E731
    assert not resident() and sum(p.numel() for p in encoders.parameters()) > 0
    eager = DreamZeroEncoders(model.config)
    names = [f"tokenizer.{n}" for n, _ in eager.named_parameters(remove_duplicate=False)]
    eager.load_state_dict({n[len("tokenizer.") :]: t for n, t in encoders.stream.weights.read(names).items()})
    eager.tokenizer = encoders.tokenizer
    seen = []
    for i, block in enumerate(encoders.text_encoder.encoder.block):
        block.register_forward_hook(lambda *_, i=i: seen.append((i, resident())))
    prompt = ["a multi-view video shows that robot push the red block"]
    torch.testing.assert_close(encoders.encode_text(prompt), eager.encode_text(prompt), rtol=0, atol=0)
    assert [i for i, _ in seen] == list(range(len(encoders.text_encoder.encoder.block)))
    for i, names_then in seen:
        assert names_then == {
            f"text_encoder.encoder.block.{i}.{n}" for n, _ in eager.text_encoder.encoder.block[i].named_parameters()
        }
    video = torch.randint(
        0, 255, (1, 5, 3, 2 * model.config.view_height, 2 * model.config.view_width), dtype=torch.uint8
    )
    torch.testing.assert_close(encoders.encode_video(video), eager.encode_video(video), rtol=0, atol=0)
    torch.testing.assert_close(encoders.encode_image(video[:, 0]), eager.encode_image(video[:, 0]), rtol=0, atol=0)
    assert not resident()


def test_activation_checkpointing_reaches_a_lora_wrapped_backbone():
    """`--activation-checkpointing` switches recomputation on in the backbone itself, also when LoRA wrapped it
    in a PeftModel (setting the switch on the wrapper would leave it off, silently)."""
    from adapt.lora import add_lora
    from adapt.recipe import load_recipe
    from adapt.train.fit import _strategy
    from adapt.train.module import WAMModule
    from adapt.train.options import TrainOptions

    dit, _ = reference_model()
    model = torch.nn.Module()
    model.backbone, model.tokenizer = add_lora(dit, load_recipe("play-30min").lora), torch.nn.Identity()
    assert _strategy(WAMModule(model), TrainOptions(activation_checkpointing=True)) == "auto"
    assert dit.gradient_checkpointing
