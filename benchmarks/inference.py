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

How close to the machine's limit: the floating-point work of one fast-path chunk is counted
(`torch.utils.flop_counter`, with the CPU attention kernel counted as `sdpa_flop_count` does on GPU),
the machine's float32 matmul rate is measured in the same run (median GFLOP/s of square matmuls, the
best size taken as the roof), and the achieved GFLOP/s of the fast path is reported as a fraction of
it. A profile of a few fast-path chunks says where the time goes: attention kernels, the linear layers
of attention and MLP (told apart by their weight shapes), the tokenizer's convolutions, other aten ops
(norms, elementwise, copies) and what is left of the wall time: Python and dispatch overhead.

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


def chunk_flops(policy: Policy, obs: dict) -> dict:
    """Floating-point operations of one `act` call, in total and per part of the model."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def attention(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    cpu_attention = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    with FlopCounterMode(display=False, custom_mapping={cpu_attention: attention}) as counter:
        policy.act(obs)
    # modules are named from the outermost one called as a module (the model's methods are not calls)
    names = {"Mlp": "MLP", "Linear": "attention projections, adaLN, video in/out", "Sequential": "tokenizer, time MLP"}
    parts: dict[str, int] = {}
    for module, ops in counter.get_flop_counts().items():
        if module == "Global":
            parts["attention kernels"] = sum(f for op, f in ops.items() if "scaled_dot_product" in str(op))
        elif "." not in module:
            part = names.get(module, "heads and text" if module.endswith(("Encoder", "Decoder")) else module)
            parts[part] = parts.get(part, 0) + sum(ops.values())
    return {"total": counter.get_total_flops(), "parts": parts}


def matmul_roof(device: str, repeats: int = 10) -> dict:
    """Median float32 GFLOP/s of square matmuls by size; the best is this machine's practical roof."""
    rates = {}
    for n in (256, 512, 1024, 2048):
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        times = []
        for _ in range(repeats + 1):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            a @ b
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        rates[n] = 2 * n**3 / statistics.median(times[1:]) / 1e9
    return {"gflops_by_size": rates, "roof_gflops": max(rates.values())}


def profile_chunks(policy: Policy, rng: np.random.Generator, calls: int = 5) -> dict:
    """Share of the wall time of `calls` chunks per kind of work (CPU self time of aten ops by kind)."""
    from torch.profiler import ProfilerActivity, profile

    dim = policy.predictor.model.config.dim
    observations = [observation(policy, rng) for _ in range(calls)]
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for obs in observations:
            policy.act(obs)
    wall_us = (time.perf_counter() - start) * 1e6
    kinds = {k: 0.0 for k in ("attention kernels", "attention linear", "MLP linear", "other linear")}
    kinds |= {"convolution (tokenizer)": 0.0, "other aten ops": 0.0}
    for event in prof.key_averages(group_by_input_shape=True):
        name, us = event.key, event.self_cpu_time_total
        if "scaled_dot_product" in name:
            kinds["attention kernels"] += us
        elif name in ("aten::addmm", "aten::mm"):
            weight = tuple([shape for shape in event.input_shapes if len(shape) == 2][-1])  # (in, out)
            if 4 * dim in weight:
                kinds["MLP linear"] += us
            elif weight in ((dim, 3 * dim), (dim, dim)):
                kinds["attention linear"] += us
            else:
                kinds["other linear"] += us  # adaLN modulation, heads, text, video in/out
        elif "conv" in name:
            kinds["convolution (tokenizer)"] += us
        elif name.startswith("aten::"):
            kinds["other aten ops"] += us
    kinds["Python and dispatch overhead"] = max(wall_us - sum(kinds.values()), 0.0)
    share = {k: v / wall_us for k, v in kinds.items()}
    return {"calls": calls, "wall_ms_per_chunk": wall_us / calls / 1000, "share": share}


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
    rng = np.random.default_rng(1)
    flops = chunk_flops(policies["fast"], observation(policies["fast"], rng))
    roof = matmul_roof(args.device)
    achieved = flops["total"] / fast["median_s"] / 1e9
    roofline = {
        "chunk_gflop": flops["total"] / 1e9,
        "gflop_by_part": {k: v / 1e9 for k, v in flops["parts"].items()},
        "achieved_gflops": achieved,
        **roof,
        "fraction_of_roof": achieved / roof["roof_gflops"],
        "profile": profile_chunks(policies["fast"], rng) if args.device == "cpu" else None,
    }
    report = {
        "machine": host,
        "config": {**vars(args), "out": str(out), "command": " ".join(["benchmarks/inference.py", *sys.argv[1:]])},
        "results": results,
        "fast_vs_naive_speedup": speedup,
        "roofline": roofline,
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
    print(
        f"fast path: {roofline['chunk_gflop']:.3f} GFLOP per chunk, {achieved:.1f} GFLOP/s achieved of "
        f"{roof['roof_gflops']:.1f} GFLOP/s measured matmul roof ({100 * roofline['fraction_of_roof']:.0f}%)"
    )
    if roofline["profile"]:
        shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in roofline["profile"]["share"].items())
        print(f"where a chunk's time goes: {shares}")
    write_report(out, report)


if __name__ == "__main__":
    main()
