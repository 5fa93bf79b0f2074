"""Adaptation cost: trainable-parameter fraction, step time and peak memory of LoRA vs full fine-tune.

A `small` base with `panda` heads gets fresh `ur5e` heads, then each recipe (`play-30min`: LoRA + heads,
`heads-only`, `full-finetune`) sets what trains through the code path `adapt finetune` uses
(`adapt.train.finetune.set_trainable`). Per recipe, in a fresh process of its own (so its peak RSS is
its own) and from the same seed, weights and batch:

- trainable parameters out of the total, as `adapt finetune` prints them (LoRA weights count in the
  total), and which parts they are in (target <= 5% for play-30min);
- one training step (forward + backward + AdamW at the recipe's lr and weight decay, in the recipe's
  loss mode) at the recipe's batch size: median seconds over `--repeats` steps after warm-up;
- memory: the process's peak RSS and how far training raised it above the RSS before the first step
  (CUDA: `max_memory_allocated`), and the measured bytes of trainable weights, gradients and AdamW state;

then the ratios LoRA / full and heads-only / full, measured in this one run. `--demo` also times
`adapt demo` when the CLI has it.

Run: `.venv/bin/python benchmarks/finetune.py` (a few minutes on 2 cores), `--quick` for a smoke run,
`--device cuda` on a GPU. Results go to `benchmarks/results/finetune.json` (`finetune-cuda.json`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from model import load_spec, make_batch, measure_train, parameter_counts, run_isolated
from report import machine, resolve_device, write_report

from adapt.model import PRESETS, WorldModel, build_model, model_config
from adapt.recipe import load_recipe
from adapt.train.finetune import set_trainable

SOURCE, TARGET = "panda", "ur5e"
RECIPES = ("play-30min", "heads-only", "full-finetune")
LORA, FULL, HEADS = "play-30min", "full-finetune", "heads-only"
TARGET_FRACTION = 0.05
"""Issue target: play-30min on small trains at most this fraction of the parameters."""


def adapted_model(size: str, recipe_name: str, device: str) -> WorldModel:
    """The base (`SOURCE` heads, seed 0) with new `TARGET` heads and the recipe's trainable set."""
    torch.manual_seed(0)
    model = build_model(model_config(size), [load_spec(SOURCE)])
    model.add_embodiment(load_spec(TARGET))
    set_trainable(model, load_recipe(recipe_name), TARGET, [TARGET])
    return model.to(device)


def trainable_parts(model: WorldModel) -> dict[str, int]:
    """Trainable parameters by part: `heads.<name>`, `backbone` (LoRA weights apart) or the module name."""
    parts: dict[str, int] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        first, _, rest = name.partition(".")
        part = f"heads.{rest.split('.')[0]}" if first == "heads" else first
        if first == "backbone" and "lora_" in name:
            part = "backbone (LoRA)"
        parts[part] = parts.get(part, 0) + p.numel()
    return dict(sorted(parts.items(), key=lambda kv: -kv[1]))


def measure_recipe(recipe_name: str, args: argparse.Namespace) -> dict:
    """One recipe, in its own process."""
    recipe = load_recipe(recipe_name)
    model = adapted_model(args.size, recipe_name, args.device)
    params = list(model.parameters())
    trainable, total = sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
    batch_size = args.batch_size or recipe.batch_size
    batch = make_batch(model.config, model.specs[TARGET], batch_size, args.device)
    print(f"  {recipe_name}: training step x {args.repeats} at batch {batch_size} ...", flush=True)
    train = measure_train(model, batch, args, mode=recipe.mode, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return {
        "recipe": recipe_name,
        "mode": recipe.mode,
        "lora": recipe.lora.model_dump() if recipe.lora else None,
        "trainable": trainable,
        "total": total,
        "trainable_fraction": trainable / total,
        "trainable_parts": trainable_parts(model),
        "params": parameter_counts(model),
        "train": train,
    }


def ratios(recipes: dict[str, dict], numerator: str, denominator: str) -> dict | None:
    """numerator / denominator of every compared figure, when both recipes were measured."""
    a, b = recipes.get(numerator), recipes.get(denominator)
    if a is None or b is None or "error" in a or "error" in b:
        return None
    ta, tb = a["train"], b["train"]
    return {
        "trainable": a["trainable"] / b["trainable"],
        "step_time": ta["median_s"] / tb["median_s"],
        "peak_memory": ta["peak_mib"] / tb["peak_mib"],
        "train_memory_over_before": ta["train_over_before_mib"] / max(tb["train_over_before_mib"], 1e-9),
        "grads_plus_optimizer_state": (ta["grads_mib"] + ta["optimizer_state_mib"])
        / (tb["grads_mib"] + tb["optimizer_state_mib"]),
    }


def measure_demo(timeout_s: float, extra: list[str]) -> dict:
    """Wall time of `adapt demo` in a scratch folder."""
    adapt = Path(sys.executable).with_name("adapt")
    command = [str(adapt)] if adapt.is_file() else [sys.executable, "-m", "adapt.cli"]
    with tempfile.TemporaryDirectory(prefix="adapt-demo-") as tmp:
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [*command, "demo", *extra], cwd=tmp, capture_output=True, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired:
            return {"timed_out": True, "wall_s": time.perf_counter() - start}
        wall = time.perf_counter() - start
    return {
        "command": " ".join([*command, "demo", *extra]),
        "wall_s": wall,
        "returncode": done.returncode,
        "output_tail": (done.stdout + done.stderr)[-2000:],
    }


# -- report ---------------------------------------------------------------------------------------------


def print_table(report: dict) -> None:
    recipes = report["recipes"]
    cfg = report["config"]
    precision = "bf16 autocast" if cfg["bf16"] else "fp32"
    print(f"\n{cfg['size']} base ({SOURCE} heads) adapted to {TARGET}; {cfg['device']}, {precision}")
    header = f"{'recipe':15}{'trainable':>11}{'total':>11}{'%':>7}{'batch':>6}{'step s':>9}{'runs':>5}"
    print(header + f"{'peak MiB':>10}{'+train MiB':>11}{'grads+AdamW MiB':>16}")
    for name, r in recipes.items():
        if "error" in r:
            print(f"{name:15} FAILED ({r['error']})")
            continue
        t = r["train"]
        print(
            f"{name:15}{r['trainable']:>11,}{r['total']:>11,}{100 * r['trainable_fraction']:7.2f}"
            f"{t['batch_size']:6d}{t['median_s']:9.3f}{t['runs']:5d}{t['peak_mib']:10.0f}"
            f"{t['train_over_before_mib']:11.0f}{t['grads_mib'] + t['optimizer_state_mib']:16.2f}"
        )
    print(f"(peak MiB: {next(iter(recipes.values())).get('train', {}).get('memory', '')})")
    print("\ntrainable parameters by part")
    for name, r in recipes.items():
        if "error" not in r:
            print(f"  {name:15}" + ", ".join(f"{part} {n:,}" for part, n in r["trainable_parts"].items()))
    for key, label in (("lora_vs_full", f"{LORA} / {FULL}"), ("heads_vs_full", f"{HEADS} / {FULL}")):
        r = report["ratios"].get(key)
        if r:
            print(
                f"\n{label}: trainable {r['trainable']:.3f}, step time {r['step_time']:.2f}, "
                f"peak memory {r['peak_memory']:.2f}, memory added by training {r['train_memory_over_before']:.2f}, "
                f"grads + AdamW state {r['grads_plus_optimizer_state']:.3f}"
            )
    target = report["target"]
    if target["fraction"] is not None:
        verdict = "meets" if target["met"] else "ABOVE"
        limit = f"{100 * TARGET_FRACTION:g}%"
        print(f"\n{LORA} trainable fraction {100 * target['fraction']:.2f}% ({verdict} the {limit} target)")
    demo = report["demo"]
    if demo is None:
        print("adapt demo: not measured (pass --demo)")
    elif demo.get("timed_out"):
        print(f"adapt demo: timed out after {demo['wall_s']:.0f} s")
    else:
        print(f"adapt demo: {demo['wall_s']:.1f} s wall (exit status {demo['returncode']})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="small", choices=list(PRESETS), help="model preset of the base")
    p.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated bundled recipes")
    p.add_argument("--batch-size", type=int, default=None, help="training batch (default: the recipe's)")
    p.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    p.add_argument("--repeats", type=int, default=10, help="timed training steps; the median is reported")
    p.add_argument("--budget-s", type=float, default=30.0, help="stop repeating after this long")
    p.add_argument("--device", default="cpu", help="cpu, cuda, or auto (cuda when available)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--demo", action="store_true", help="also time `adapt demo`")
    p.add_argument("--demo-args", default="", help="extra arguments for `adapt demo`")
    p.add_argument("--demo-timeout-s", type=float, default=3600.0)
    p.add_argument("--out", type=Path, help="JSON report (default results/finetune.json, finetune-cuda.json)")
    p.add_argument("--quick", action="store_true", help="smoke run: batch 4, few repeats")
    args = p.parse_args(argv)
    args.device = resolve_device(p, args.device)
    if args.quick:
        args.batch_size, args.warmup, args.repeats, args.budget_s = 4, 1, 3, 5.0
    args.recipes = [r for r in args.recipes.split(",") if r]
    results = Path(__file__).parent / "results"
    args.out = args.out or results / ("finetune.json" if args.device == "cpu" else "finetune-cuda.json")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    host = machine(args.device)
    recipes = {}
    for name in args.recipes:
        print(f"{name} (fresh process) ...", flush=True)
        recipes[name] = run_isolated(measure_recipe, name, args)
    lora = recipes.get(LORA, {})
    fraction = lora.get("trainable_fraction")
    report = {
        "machine": host,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        | {"source": SOURCE, "target": TARGET, "command": " ".join(sys.argv)},
        "recipes": recipes,
        "ratios": {"lora_vs_full": ratios(recipes, LORA, FULL), "heads_vs_full": ratios(recipes, HEADS, FULL)},
        "target": {
            "recipe": LORA,
            "size": args.size,
            "max_fraction": TARGET_FRACTION,
            "fraction": fraction,
            "met": None if fraction is None else fraction <= TARGET_FRACTION,
        },
        "demo": measure_demo(args.demo_timeout_s, args.demo_args.split()) if args.demo else None,
    }
    print_table(report)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
