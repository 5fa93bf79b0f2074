"""`adapt plan`: the trainable set is the one finetune trains, the activation estimate is what autograd keeps,
FLOPs are what a FLOP counter counts, sharding and checkpointing act on the right lines, the CLI answers."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import default_collate
from torch.utils.flop_counter import FlopCounterMode

from adapt.data.batch import make_window
from adapt.embodiment import load_embodiment
from adapt.model import build_model, load_model, model_config
from adapt.model.dreamzero.config import DREAMZERO_PRESETS
from adapt.model.footprint import cpu_bf16_units
from adapt.plan import Run, activation_parts, memory, plan, plan_model, saved_for_backward
from adapt.recipe import load_recipe
from adapt.train.finetune import set_trainable

BASE_SMALL = Path(__file__).parents[1] / "models" / "base-small"
RECIPES = ["play-30min", "full-finetune", "heads-only"]


@pytest.fixture(scope="module")
def ur5e():
    return load_embodiment("ur5e", check_description=False)


def real_model(base: str, recipe: str, spec):
    """A real (CPU) model of preset `base` with fresh heads for `spec` and `recipe` applied by finetune's code."""
    torch.manual_seed(0)
    config = model_config(base) if base in ("tiny", "small") else DREAMZERO_PRESETS[base]
    model = build_model(config, [spec])
    set_trainable(model, load_recipe(recipe), spec.name, [spec.name])
    return model


def batch_of(config, spec, b: int) -> dict:
    rng = np.random.default_rng(0)
    s, t, chunk = config.image_size, config.context + config.future, spec.action.chunk
    windows = [
        make_window(
            rng.integers(0, 256, (len(spec.cameras), t, s, s, 3), dtype=np.uint8),
            np.ones(config.context, bool),
            np.ones(config.future, bool),
            rng.standard_normal(spec.state_dim),
            rng.standard_normal((chunk, spec.action_dim)),
            np.ones(chunk, bool),
            "lift the red cube",
            spec.name,
            (spec.state_dim, chunk, spec.action_dim),
        )
        for _ in range(b)
    ]
    return default_collate(windows)


@pytest.mark.parametrize("recipe", RECIPES)
def test_trainable_count_is_the_one_set_trainable_gives_a_real_model(recipe, ur5e):
    """The plan's model is built on the meta device and LoRA is added there: a plan that counted LoRA
    analytically wrong, missed the new heads or trained the frozen tokenizer would differ from finetune's count."""
    model = real_model("tiny", recipe, ur5e)
    p = plan("tiny", recipe, ur5e)
    assert p.trainable == sum(x.numel() for x in model.parameters() if x.requires_grad)
    assert p.parameters["total"] == sum(x.numel() for x in model.parameters())


def test_a_checkpoint_folder_is_planned_from_its_config_with_its_own_heads(ur5e):
    """A checkpoint base is sized from config.json and its embodiments (no weights read): a plan that ignored
    the base's existing heads or rebuilt a preset instead would count other parameters than the loaded model."""
    model = load_model(BASE_SMALL)
    model.add_embodiment(ur5e)
    p = plan(BASE_SMALL, "play-30min", ur5e)
    assert p.parameters["total"] - p.parameters["lora"] == sum(x.numel() for x in model.parameters())
    assert p.parameters["heads"] == sum(x.numel() for x in model.heads.parameters())


def estimated_saved(model, recipe: str, spec, precision: str, attention: str = "fused") -> float:
    """The plan's activations plus autocast copies of `model` at batch 2: what autograd should save."""
    r = load_recipe(recipe)
    p = plan_model(model, spec, r.mode, 2, attention=attention, rank=r.lora.rank if r.lora else 0)
    run = Run(precision=precision)
    return activation_parts(p, run)["total"] + memory(p, run).autocast_copies


def dit_forward(model, spec, precision: str):
    """Our DiT backbone on a training sequence of batch 2 (clean prefix, noisy video, actions; the clean-sees-clean
    mask), as `WorldActionModel.velocity` calls it."""
    c, dtype = model.config, torch.bfloat16 if precision == "bf16-true" else torch.float32
    model.to(dtype)
    clean, video = 2 * c.context * c.tokens_per_frame + 1 + c.text_len, 2 * c.future * c.tokens_per_frame
    n = clean + video + spec.action.chunk
    x = torch.randn(2, n, c.dim, dtype=dtype, requires_grad=True)
    cond = torch.randn(2, 3, c.dim, dtype=dtype, requires_grad=True)
    types = torch.tensor([0] * clean + [1] * video + [2] * spec.action.chunk)
    mask = torch.ones(2, 1, n, n, dtype=torch.bool)
    mask[..., :clean, clean:] = False

    def forward():
        with _autocast(precision):
            model.backbone(x, cond, types, mask)

    return forward


def dreamzero_forward(model, spec, precision: str):
    """DreamZero's DiT teacher-forced forward of batch 2 with the embodiment's registers, as `DreamZeroWAM.loss`
    calls it (the frozen encoders' outputs replaced by random features)."""
    c, dit, heads, b = model.config, model.backbone, model.heads[spec.name], 2
    frames, chunk = 1 + c.frames_per_block, spec.action.chunk
    side = (2 * c.view_height // c.vae_stride[1], 2 * c.view_width // c.vae_stride[1])

    def forward():
        with _autocast(precision):
            video = torch.randn(b, c.in_dim, frames, *side)
            context = dit.context(torch.randn(b, c.text_len, c.text_dim), torch.randn(b, c.image_tokens, c.image_dim))
            t = torch.full((b, chunk), 500.0)
            tokens = heads.action_encoder(torch.randn(b, chunk, spec.action_dim), t)
            state = heads.state_encoder(torch.randn(b, 1, spec.state_dim))
            dit(video, video.clone(), torch.full((b, frames), 500.0), tokens, t, state, context)

    return forward


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "bf16-true"])
def test_dit_activation_estimate_is_what_autograd_keeps(recipe, precision, ur5e):
    """Our DiT backbone's forward on real tensors: bytes autograd saves (distinct storages, parameters excluded)
    against the estimate (blocks + final norm + autocast weight copies) within 3 %. Catches a tensor missed or
    double-counted in `adapt.model.dit.footprint.block_kept`, a wrong dtype per precision, or linear inputs kept
    by frozen layers."""
    model = real_model("tiny", recipe, ur5e)
    expected = estimated_saved(model, recipe, ur5e, precision)
    assert saved_for_backward(dit_forward(model, ur5e, precision), model) == pytest.approx(expected, rel=0.03)


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_dreamzero_activation_estimate_is_what_autograd_keeps(recipe, precision, ur5e):
    """DreamZero's DiT (diffusers' Wan blocks, fp32 residual arithmetic, per-token modulation, cross-attention)
    with the embodiment's registers: saved bytes against the estimate within 5 %. Catches a wrong count in
    `adapt.model.dreamzero.footprint.block_kept` (the (B, L, 6, D) fp32 modulation the gates keep, text/image keys,
    LoRA inputs). Not bf16-true: DreamZero's time features and registers are float32 by construction and do not
    run in it."""
    model = real_model("dreamzero-tiny", recipe, ur5e)
    expected = estimated_saved(model, recipe, ur5e, precision)
    assert saved_for_backward(dreamzero_forward(model, ur5e, precision), model) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize(("base", "forward"), [("tiny", dit_forward), ("dreamzero-tiny", dreamzero_forward)])
def test_math_attention_keeps_the_probabilities(base, forward, ur5e):
    """With the math kernel forced (older torch, attention dropout), attention keeps batch x heads x L x keys
    probabilities instead of the fused kernels' outputs; `attention="math"` estimates that within 5 %."""
    model = real_model(base, "play-30min", ur5e)
    expected = estimated_saved(model, "play-30min", ur5e, "32-true", attention="math")
    fused = estimated_saved(model, "play-30min", ur5e, "32-true")
    with sdpa_kernel(SDPBackend.MATH):
        saved = saved_for_backward(forward(model, ur5e, "32-true"), model)
    assert saved == pytest.approx(expected, rel=0.05) and expected > fused


@pytest.mark.parametrize("recipe", RECIPES)
def test_step_flops_are_what_a_flop_counter_counts(recipe, ur5e):
    """One real training step of tiny (math attention, so that the counter sees its matmuls) against the plan's
    FLOPs within 5 %. Catches a backward counted for frozen weights (LoRA, heads-only), a missed weight
    gradient (full fine-tune), a wrong attention term or encoder FLOPs left out."""
    model = real_model("tiny", recipe, ur5e)
    r = load_recipe(recipe)
    p = plan_model(model, ur5e, r.mode, 2, rank=r.lora.rank if r.lora else 0)
    batch = batch_of(model.config, ur5e, 2)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.loss(batch, r.mode)["loss"].backward()
    assert counter.get_total_flops() == pytest.approx(sum(p.flops_per_sample.values()) * 2, rel=0.05)


def test_fsdp_shards_weights_gradients_and_optimizer_but_not_activations(ur5e):
    """FSDP on 4 devices holds a quarter of the weights, gradients and AdamW state per device and the same
    activations (each device runs its own batch): a plan that sharded activations, or forgot to shard one line,
    would tell a user that a run fits when it does not."""
    p = plan("small", "full-finetune", ur5e)
    for precision in ("32-true", "bf16-mixed"):
        ddp = memory(p, Run(devices=4, strategy="ddp", precision=precision))
        fsdp = memory(p, Run(devices=4, strategy="fsdp", precision=precision))
        assert fsdp.weights == pytest.approx(ddp.weights / 4)
        assert fsdp.gradients == pytest.approx(ddp.gradients / 4)
        assert fsdp.optimizer == pytest.approx(ddp.optimizer / 4)
        assert fsdp.activations == ddp.activations
        assert ddp.optimizer == pytest.approx(2 * ddp.gradients) == pytest.approx(2 * p.trainable * 4)


@pytest.mark.parametrize("base", ["small", "dreamzero-tiny"])
def test_checkpointing_lowers_activations_to_block_inputs_and_one_block(base, ur5e):
    """Activation checkpointing keeps every block's input and one block's activations: less than all blocks'
    activations, more than one block's. Catches the two columns swapped or checkpointing ignored."""
    p = plan(base, "play-30min", ur5e)
    for precision in ("32-true", "bf16-mixed", "bf16-true"):
        run = Run(precision=precision)
        full, ckpt = activation_parts(p, run), activation_parts(p, Run(precision=precision, checkpointing=True))
        assert full["block"] < ckpt["total"] < full["total"]
        assert memory(p, Run(precision=precision, checkpointing=True)).weights == memory(p, run).weights


def test_a_dreamzero_base_counts_its_encoders_as_read_a_piece_at_a_time(ur5e):
    """A released DreamZero checkpoint's encoders stay in its files (`adapt.model.dreamzero.streamed`): the plan's
    weights are the DiT's and the registers', its encoder line the largest piece read at once, umT5-XXL's token
    embedding (256,384 x 4,096). Catches a plan that counts umT5 as resident (10 GiB too many for dreamzero-5b in
    bf16: "does not fit" on a 24 GiB machine it fits) and one that forgets the piece a cache miss reads; the small
    family's tokenizer stays resident and counted. On a CPU the piece is read in float32 (twice the bytes)."""
    run = Run(precision="bf16-true", checkpointing=True)
    p = plan("dreamzero-5b", "play-30min", ur5e)
    m = memory(p, run)
    assert p.streamed_parameters == p.parameters["tokenizer"] > 6e9
    assert m.encoders == 2 * 256_384 * 4_096
    assert m.weights == 2 * (p.parameters["total"] - p.parameters["tokenizer"])
    assert memory(plan("dreamzero-5b", "play-30min", ur5e, accelerator="cpu"), run).encoders == 2 * m.encoders
    small = plan("small", "play-30min", ur5e, accelerator="cpu")
    assert memory(small, run).encoders == 0 and memory(small, run).weights == 2 * small.parameters["total"]


def test_dreamzero_14b_on_one_80_gb_gpu_prints_the_memory_lines_and_a_verdict(invoke):
    """The 14B base with play-30min on 1 x 80 GB runs through the CLI on the meta device (no 14B of memory, no
    weights) and says it does not fit and what would; `--json` carries the same plan. Catches a plan that
    materialises weights, a missing memory line or a verdict without a way out."""
    args = ["plan", "--base", "dreamzero-14b", "--recipe", "play-30min", "--devices", "1", "--gpu-memory", "80"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    for line in ("weights", "gradients", "AdamW", "activations", "total", "verdict"):
        assert line in result.output
    assert "does not fit" in result.output and "would fit:" in result.output
    plan_json = json.loads(invoke(*args, "--json").output)
    assert plan_json["parameters"]["total"] > 20e9 and plan_json["parameters"]["trainable"] < 0.01 * 20e9
    assert [v["devices"] for v in plan_json["verdicts"]] == [1] and not plan_json["verdicts"][0]["fits"]
    assert plan_json["verdicts"][0]["would_fit"]


def test_bf16_on_a_cpu_without_bf16_units_is_flagged_or_computed_in_float32(invoke):
    """torch runs bf16 matmuls on a CPU without bf16 units through reference kernels (a dreamzero-5b step took
    over 40 minutes where the plan's float32 rate says 110 s). A family that computes such blocks in float32
    (dreamzero, bf16-true) plans the float32 copy of one block (of every block without checkpointing) and no
    warning; otherwise bf16 compute on such a CPU is flagged, and only then. Catches the warning lost, given for
    float32 or a GPU, or the float32 copy missing from the memory."""
    slow = not cpu_bf16_units()
    cpu = ["plan", "--accelerator", "cpu", "--json"]

    def planned(base: str, precision: str) -> dict:
        return json.loads(invoke(*cpu, "--base", base, "--precision", precision).output)

    for precision, warned in (("bf16-true", slow), ("bf16-mixed", slow), ("32-true", False)):
        assert bool(planned("tiny", precision)["warnings"]) == warned, precision
        assert all(row["float32_block"] == 0 for row in planned("tiny", precision)["memory_gib"])
    upcast = planned("dreamzero-tiny", "bf16-true")
    assert upcast["warnings"] == []
    block = plan("dreamzero-tiny", accelerator="cpu").block_parameters * 4 / 2**30
    depth = DREAMZERO_PRESETS["dreamzero-tiny"].num_layers
    expected = {False: depth * block * slow, True: block * slow}
    assert {row["checkpointing"]: row["float32_block"] for row in upcast["memory_gib"]} == pytest.approx(expected)
    assert bool(planned("dreamzero-tiny", "bf16-mixed")["warnings"]) == slow  # fp32 weights: autocast's bf16
    gpu = json.loads(invoke("plan", "--base", "dreamzero-tiny", "--precision", "bf16-true", "--json").output)
    assert gpu["warnings"] == [] and all(row["float32_block"] == 0 for row in gpu["memory_gib"])


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--base", "dreamzero14b", "Did you mean 'dreamzero-14b'"),
        ("--recipe", "play-30", "no recipe 'play-30'"),
        ("--strategy", "deepspeed", "unknown strategy 'deepspeed'; choose one of ddp, fsdp"),
        ("--precision", "fp16", "unknown precision 'fp16'"),
        ("--accelerator", "tpu", "unknown accelerator 'tpu'"),
        ("--devices", "0", "--devices '0'"),
    ],
)
def test_bad_inputs_exit_2_with_a_message(option, value, message, invoke):
    """Each bad option ends in exit status 2 and one line naming the value and the choices, never a traceback."""
    args = {"--base": "tiny", option: value}
    result = invoke("plan", *[x for kv in args.items() for x in kv])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def _autocast(precision: str):
    return torch.autocast("cpu", torch.bfloat16) if precision == "bf16-mixed" else contextlib.nullcontext()


def test_bundled_bases_are_taken_by_name_from_any_folder(invoke, tmp_path, monkeypatch):
    """`--base base-small` was "not a model checkpoint" (and `adapt plan` suggested the random `small` preset) unless
    run from the repository: a bundled base is addressable by name everywhere a base is taken."""
    from adapt.model import fingerprint
    from adapt.resources import bundled_dir

    monkeypatch.chdir(tmp_path)
    bundled = bundled_dir("models") / "base-small"
    assert fingerprint("base-small") == json.loads((bundled / "config.json").read_text())["fingerprint"]
    assert list(load_model("base-small").specs) == ["panda"]
    result = invoke("plan", "--base", "base-small", "--accelerator", "cpu", "--devices", "1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["base"] == "base-small"
