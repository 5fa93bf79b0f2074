"""Closed-loop inference speed: action chunks per second of `Policy.act`, fast path versus naive path.

The model is the `small` preset with new UR5e heads and the `play-30min` recipe's LoRA on its
backbone (the shape of an adapter from `adapt finetune`; timing does not depend on the weight values,
so no training happens here). Each configuration gets its own copy of that model and a `Policy`:

- `fast`: `InferenceConfig()`, the defaults (3 steps, video left at noise 0.6, LoRA merged, context
  encoded once and cached);
- `naive`: `InferenceConfig.naive()` (16 steps, video fully denoised, LoRA unmerged, no cache);
- one-change ablations of `fast` (unmerged LoRA, no cache, video fully denoised, 16 steps), so the
  JSON says where the speed-up comes from;
- `fast+compile` with `--compile` (torch.compile of the backbone; compile time reported apart).

Each round of calls gets a fresh observation (random uint8 frames at the spec's camera size, random
state), so frame resizing and the context encoding are in the measurement, as on a robot. Latency is
the median over `--repeats` rounds of `BLOCK - 1` timed calls after `--warmup`, with the rounds of all
configurations interleaved (a shared CPU's slow spells hit them alike); chunks/s is 1 / median; the
action rate is the control rate the policy sustains when it replans every `execute` steps (execute /
latency).

Run: `.venv/bin/python benchmarks/inference.py` (CPU, about 2 minutes on 2 cores), `--quick` for a
smoke run, `--device cuda` on a GPU. Results go to `benchmarks/results/inference.json`
(`inference-cuda.json` on CUDA).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from report import machine, resolve_device, write_report

from adapt.embodiment import load_embodiment
from adapt.model import WorldModel, build_model, model_config
from adapt.policy import InferenceConfig, Policy
from adapt.predictor import ChunkPredictor
from adapt.recipe import load_recipe
from adapt.train.finetune import set_trainable

SOURCE, TARGET = "panda", "ur5e"
TARGET_HZ, TARGET_SPEEDUP = 10.0, 3.0
"""Issue targets on a 2-core CPU for `small`: fast path >= 10 chunks/s and >= 3x the naive path."""
BLOCK = 3
"""Calls per configuration per round: one to warm the CPU caches, the rest timed."""


def adapted_model(size: str) -> WorldModel:
    """A base with `SOURCE` heads, new `TARGET` heads and play-30min's LoRA on the backbone."""
    torch.manual_seed(0)
    spec = lambda name: load_embodiment(name, check_description=False)  # noqa: E731
    model = build_model(model_config(size), [spec(SOURCE)])
    model.add_embodiment(spec(TARGET))
    set_trainable(model, load_recipe("play-30min"), TARGET, [TARGET])
    return model.eval()


def configurations(compile_too: bool) -> dict[str, InferenceConfig]:
    fast = InferenceConfig()
    configs = {
        "fast": fast,
        "naive": InferenceConfig.naive(),
        "fast, LoRA unmerged": replace(fast, merge_lora=False),
        "fast, no context cache": replace(fast, cache_context=False),
        "fast, video fully denoised": replace(fast, video_final_t=0.0),
        "fast, 16 steps": replace(fast, steps=16),
    }
    if compile_too:
        configs["fast+compile"] = replace(fast, compile=True)
    return configs


def make_policy(model: WorldModel, config: InferenceConfig) -> Policy:
    """A policy on its own copy of `model` (the predictor merges LoRA and compiles as `config` says)."""
    return Policy(ChunkPredictor(copy.deepcopy(model), TARGET, config), task="lift the cube")


def observation(policy: Policy, rng: np.random.Generator) -> dict:
    obs = {c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in policy.spec.cameras}
    obs["state"] = rng.standard_normal(policy.spec.state_dim).astype(np.float32)
    return obs


def warm_up(policy: Policy, warmup: int, rng: np.random.Generator) -> float:
    """Seconds of the first `warmup` calls (lazy initialisation, torch.compile)."""
    start = time.perf_counter()
    for _ in range(warmup):
        policy.act(observation(policy, rng))
    return time.perf_counter() - start


def time_act(policy: Policy, obs: dict, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    chunk = policy.act(obs)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    assert np.isfinite(chunk).all() and chunk.shape == (policy.chunk, policy.spec.action_dim)
    return seconds


def measure_interleaved(policies: dict[str, Policy], warmup: int, repeats: int, device: str) -> dict:
    """Round r of every configuration runs back to back with round r of the others, on the same fresh
    observations, so a slower or faster spell of a shared CPU hits them all alike and the ratios stay fair.

    A round is `BLOCK` calls of one policy; its first call is not timed: it only brings that policy's
    weights back into the CPU caches after the other configurations' models evicted them (on a robot one
    policy runs alone, its weights warm)."""
    rng = np.random.default_rng(0)
    warmup_s = {name: warm_up(policy, warmup, rng) for name, policy in policies.items()}
    times: dict[str, list[float]] = {name: [] for name in policies}
    any_policy = next(iter(policies.values()))
    for _ in range(repeats):
        observations = [observation(any_policy, rng) for _ in range(BLOCK)]
        for name, policy in policies.items():
            for i, obs in enumerate(observations):
                seconds = time_act(policy, obs, device)
                if i > 0:
                    times[name].append(seconds)
    results = {}
    for name, policy in policies.items():
        median = statistics.median(times[name])
        results[name] = {
            "median_s": median,
            "min_s": min(times[name]),
            "runs": len(times[name]),
            "times_s": times[name],
            "warmup_s": warmup_s[name],
            "chunks_per_s": 1 / median,
            "actions_per_s": policy.config.execute / median,
            "config": asdict(policy.config),
        }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or auto (cuda when available)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--compile", action="store_true", help="Also time the fast path with torch.compile.")
    parser.add_argument("--quick", action="store_true", help="Smoke run: tiny preset, 2 repeats.")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    args.device = resolve_device(parser, args.device)
    if args.quick:
        args.size, args.warmup, args.repeats = "tiny", 1, 2
    suffix = "" if args.device == "cpu" else f"-{args.device}"
    out = args.out or Path(__file__).parent / "results" / f"inference{suffix}.json"

    host = machine(args.device)  # load average before the runs; other processes skew CPU timings
    model = adapted_model(args.size)
    policies = {
        name: make_policy(model, replace(config, device=args.device))
        for name, config in configurations(args.compile).items()
    }
    print(f"timing {args.repeats} calls of each of {len(policies)} configurations, interleaved ...", flush=True)
    results = measure_interleaved(policies, args.warmup, args.repeats, args.device)
    for name, r in results.items():
        print(f"{name:28s} {r['median_s'] * 1000:8.1f} ms  {r['chunks_per_s']:6.2f} chunks/s")
        policies[name].close()

    fast, naive = results["fast"], results["naive"]
    speedup = naive["median_s"] / fast["median_s"]
    report = {
        "machine": host,
        "config": {**vars(args), "out": str(out), "command": " ".join(["benchmarks/inference.py", *sys.argv[1:]])},
        "results": results,
        "fast_vs_naive_speedup": speedup,
        "target": {
            "size": args.size,
            "chunks_per_s": TARGET_HZ,
            "speedup": TARGET_SPEEDUP,
            "met_rate": fast["chunks_per_s"] >= TARGET_HZ,
            "met_speedup": speedup >= TARGET_SPEEDUP,
        },
    }
    print(
        f"fast vs naive: {speedup:.1f}x; fast path {fast['chunks_per_s']:.1f} chunks/s "
        f"({fast['actions_per_s']:.0f} actions/s executing {fast['config']['execute']} per chunk)"
    )
    write_report(out, report)


if __name__ == "__main__":
    main()
