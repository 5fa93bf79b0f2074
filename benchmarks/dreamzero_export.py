"""`adapt export --format dreamzero` loaded by DreamZero's own code: the proof that its action chunk is adapt's.

A tiny DreamZero checkpoint (as released: `config.json`, `model.safetensors`, `experiment_cfg/`) is adapted the
way `adapt finetune` leaves it (a UR5e's registers seeded from DreamZero's, LoRA on the DiT), with random
non-zero LoRA and register weights so that nothing can hide, and exported with `export_adapter`, what
`adapt export --format dreamzero` runs. Then two chunks of one session are computed twice from the same
frames, state and noise: by adapt's rollout, and, in an interpreter of its own with a DreamZero checkout, by
DreamZero's `WANPolicyHead.lazy_joint_video_action` on its `CausalWanModel`, after DreamZero's own LoRA path
(`WANPolicyHead.add_lora_to_model`, peft) and `set_peft_model_state_dict` took the exported LoRA and
`load_state_dict` the exported registers, with the settings `dreamzero_adapter.json` names for DreamZero's
config. Both sides use the stand-in encoders of `tests/fixtures/dreamzero_reference/make_closed_loop.py`
(whose scratch environment and CPU patches this reuses): what is compared is the DiT, its LoRA and the
registers, float32.

Run: `.venv/bin/python benchmarks/dreamzero_export.py --dreamzero PATH --python SCRATCH_PYTHON` (the scratch
interpreter needs what `make_closed_loop.py` lists; about a minute). Results:
`benchmarks/results/dreamzero_export.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from report import machine, write_report
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "dreamzero_reference"
sys.path[:0] = [str(FIXTURE), str(ROOT / "tests")]
import make_closed_loop as reference  # noqa: E402 (the stand-in encoders and DreamZero's CPU patches)
from conftest import write_dreamzero_checkpoint  # noqa: E402 (a tiny checkpoint as DreamZero releases one)

from adapt.data.stats import FieldStats, NormStats  # noqa: E402
from adapt.embodiment import load_embodiment  # noqa: E402
from adapt.lora import add_lora  # noqa: E402
from adapt.model import load_model  # noqa: E402
from adapt.model.dreamzero.export import export_adapter  # noqa: E402
from adapt.model.dreamzero.model import DONOR  # noqa: E402
from adapt.model.dreamzero.rollout import DreamZeroRollout, Sampling  # noqa: E402
from adapt.recipe import load_recipe  # noqa: E402

ROBOT, CHUNKS = "ur5e", 2

THEIRS = """
import json, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
import make_closed_loop as reference

base, exported, inputs_path, out = map(Path, sys.argv[1:5])
settings = json.loads((exported / "dreamzero_adapter.json").read_text())["dreamzero_config"]
constructor = json.loads((reference.HERE / "reference.json").read_text())["constructor"]
constructor["num_action_per_block"] = settings["num_action_per_block"]
inputs = load_file(inputs_path)
import tempfile
with tempfile.TemporaryDirectory() as scratch:
    reference._copy_patched(Path(sys.argv[5]), Path(scratch))
    sys.path.insert(0, scratch)
    from groot.vla.model.dreamzero.modules import wan2_1_submodule
    from groot.vla.model.dreamzero.modules.wan_video_dit_action_casual_chunk import CausalWanModel
    from peft import set_peft_model_state_dict
    from transformers.feature_extraction_utils import BatchFeature
    reference._cpu_float32(wan2_1_submodule)
    model = CausalWanModel(**constructor).eval()
    weights = {k.removeprefix("action_head.model."): v for k, v in load_file(base / "model.safetensors").items()
               if k.startswith("action_head.model.")}
    model.load_state_dict(weights, strict=True)
    head = reference._head(model, [])
    lora = json.loads((exported / "adapter_config.json").read_text())
    head.model = head.add_lora_to_model(model, lora_rank=lora["r"], lora_alpha=lora["lora_alpha"],
                                        lora_target_modules=",".join(lora["target_modules"]))
    loaded = set_peft_model_state_dict(head.model, load_file(exported / "adapter_model.safetensors"))
    assert not loaded.unexpected_keys, loaded.unexpected_keys
    registers = load_file(exported / "registers.safetensors")
    registers = {k.removeprefix("action_head.model."): v for k, v in registers.items()}
    missing, unexpected = head.model.base_model.model.load_state_dict(registers, strict=False)
    assert not unexpected and not [k for k in registers if k in missing], (unexpected, missing)
    head.action_horizon = settings["action_horizon"]
    noises = iter([inputs[f"noise.{i}.{part}"] for i in range(int(inputs["chunks"])) for part in ("video", "action")])
    head.generate_noise = lambda shape, **_: next(noises)
    result = {}
    for i in range(int(inputs["chunks"])):
        data = {"images": inputs[f"frames.{i}"][None], "state": inputs[f"state.{i}"],
                "embodiment_id": torch.full((1,), settings["projector_index"]), "text": torch.tensor([[0]]),
                "text_attention_mask": torch.ones(1, 1), "text_negative": torch.tensor([[2]]),
                "text_attention_mask_negative": torch.ones(1, 1)}
        with torch.no_grad():
            chunk = head.lazy_joint_video_action(None, BatchFeature(data=data))["action_pred"]
        result[f"actions.{i}"] = chunk.float().contiguous()
    save_file(result, out)
"""


def adapted_model(base: Path):
    """The base with UR5e registers seeded from DreamZero's and LoRA, every new weight random and non-zero."""
    model = load_model(base)
    spec = load_embodiment(ROBOT)
    model.add_embodiment(spec, donor=DONOR)
    model.backbone = add_lora(model.backbone, load_recipe("play-30min").lora)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, parameter in [*model.heads[ROBOT].named_parameters(), *model.backbone.named_parameters()]:
            if name.startswith(("state_", "action_")) or "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    rng = np.random.default_rng(0)

    def field(dim: int) -> FieldStats:
        low = rng.uniform(-1, 0, dim)
        return FieldStats(low / 2, np.full(dim, 0.5), low, low + 1)

    model.stats[ROBOT] = NormStats("quantile", field(spec.state_dim), field(spec.action_dim))
    return model.eval(), spec


def ours(model, spec, sampling: Sampling) -> tuple[dict, dict]:
    """adapt's chunks and the inputs DreamZero's side is given (its widths: state and actions zero-padded)."""
    c = model.config
    model.tokenizer = reference.StandInEncoders()
    rollout = DreamZeroRollout(model, model.heads[ROBOT], sampling, spec)
    session = reference.session_inputs()
    generator = torch.Generator().manual_seed(reference.NOISE_SEED)
    replay = torch.Generator().manual_seed(reference.NOISE_SEED)  # the same draws, to hand them to DreamZero
    inputs, actions = {"chunks": torch.tensor(CHUNKS)}, {}
    for i in range(CHUNKS):
        state = torch.randn(1, spec.state_dim, generator=torch.Generator().manual_seed(100 + i))
        video = session[f"frames.{i}"].permute(0, 3, 1, 2)[None]
        with torch.no_grad():
            actions[f"actions.{i}"], _ = rollout.next_chunk(video, state, "a", generator)
        h, w = (side // c.vae_stride[1] for side in video.shape[-2:])
        noise_video = torch.randn((1, c.out_dim, c.frames_per_block, h, w), generator=replay)
        noise_action = torch.randn((1, spec.action.chunk, spec.action_dim), generator=replay)
        inputs[f"noise.{i}.video"] = noise_video
        inputs[f"noise.{i}.action"] = torch.nn.functional.pad(noise_action, (0, c.max_action_dim - spec.action_dim))
        inputs[f"frames.{i}"] = session[f"frames.{i}"]
        inputs[f"state.{i}"] = torch.nn.functional.pad(state, (0, c.max_state_dim - spec.state_dim))[:, None]
    return inputs, actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dreamzero", type=Path, required=True, help="a checkout of dreamzero0/dreamzero")
    parser.add_argument("--python", type=Path, required=True, help="the scratch interpreter (see make_closed_loop.py)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dreamzero_export.json")
    args = parser.parse_args()
    sampling = Sampling(**reference.SAMPLING)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        base = write_dreamzero_checkpoint(scratch / "DreamZero-tiny")
        model, spec = adapted_model(base)
        exported = export_adapter(model, ROBOT, scratch / "for_dreamzero", base)
        inputs, mine = ours(model, spec, sampling)
        save_file(inputs, scratch / "inputs.safetensors")
        env = os.environ | {"PYTHONPATH": str(FIXTURE)}
        paths = [base, exported, scratch / "inputs.safetensors", scratch / "theirs.safetensors", args.dreamzero]
        done = subprocess.run(
            [str(args.python), "-c", THEIRS, *map(str, paths)], capture_output=True, text=True, env=env, cwd=scratch
        )
        if done.returncode != 0:
            raise SystemExit(f"DreamZero's side failed:\n{done.stderr[-3000:]}")
        theirs = load_file(scratch / "theirs.safetensors")
        hand = json.loads((exported / "dreamzero_adapter.json").read_text())["dreamzero_config"]
        files = sorted(p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file())
    chunks = []
    for i in range(CHUNKS):
        a, b = mine[f"actions.{i}"][0], theirs[f"actions.{i}"][0]
        chunks.append({
            "adapt_first_action": [round(float(x), 5) for x in a[0]],
            "dreamzero_first_action": [round(float(x), 5) for x in b[0, : spec.action_dim]],
            "max_abs_difference": float((a - b[:, : spec.action_dim]).abs().max()),
            "shape": list(a.shape),
        })  # fmt: skip
    commit = subprocess.run(["git", "-C", str(args.dreamzero), "rev-parse", "HEAD"], capture_output=True, text=True)
    report = {"machine": machine(), "dreamzero_commit": commit.stdout.strip() or None, "robot": ROBOT}
    report |= {"exported_files": files, "dreamzero_config": hand, "chunks": chunks}
    report["max_abs_difference"] = max(c["max_abs_difference"] for c in chunks)
    write_report(args.out, report)
    print(json.dumps(report, indent=1)[:3000])


if __name__ == "__main__":
    sys.exit(main())
