"""Model cost per preset: parameters, training step time and peak memory, sampling latency vs steps.

For each preset (`tiny`, `small`, `base`):

- parameter counts: total, frame tokenizer, text encoder, backbone, the rest of the shared trunk
  (video in/out, positions, time MLP), and the heads of each embodiment;
- tokens per sample, as the backbone sees them in training (counted at its input, split by kind);
- one training step (forward + backward + AdamW step, tokenizer frozen as after pretraining's first
  phase) at `--batch-size`: median seconds over `--repeats` steps after `--warmup` steps, and peak
  memory: the process's peak RSS (`ru_maxrss`; each preset runs in a fresh process so the peak is its
  own) and how far training raised it above the RSS just before the first step; on CUDA
  `torch.cuda.max_memory_allocated` instead;
- sampling latency of one action chunk at batch 1 for 1, 2, 4, 8, 16 flow steps, with video_final_t
  0 and 0.6 (DreamZero's decoupled inference: the video stops partly noisy; every step costs the same,
  so only the number of steps matters), with the clean-prefix cache and, where `sample` takes
  `cache`, without it at video_final_t 0. A least-squares line through the medians splits each latency
  into a fixed part (tokenizer, prefix, cache) and a per-step part.

Slow measurements stop early: after a warm-up longer than `--budget-s` no further warm-up runs, and
timed runs stop once they have used `--budget-s` (at least one timed run always happens); the number
of runs behind each median is in the JSON. `base` on a 2-core CPU takes minutes per training step.

Run: `.venv/bin/python benchmarks/model.py` (CPU, about 10 minutes on 2 cores), `--quick` for a smoke
run, `--device cuda [--bf16]` on a GPU. Results go to `benchmarks/results/model.json`
(`model-cuda.json` on CUDA).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import inspect
import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from report import machine, resolve_device, write_report
from torch.utils.data import default_collate

from adapt.data.batch import make_window, to_device
from adapt.embodiment import EmbodimentSpec, load_embodiment
from adapt.model import PRESETS, ModelConfig, WorldModel, build_model, model_config

STEPS = (1, 2, 4, 8, 16)
VIDEO_FINAL_T = (0.0, 0.6)
EMBODIMENTS = ("ur5e", "panda")
"""Heads built into each model; the first is the one batches come from."""
MIB = 2**20

# -- inputs ---------------------------------------------------------------------------------------------


def load_spec(name: str) -> EmbodimentSpec:
    """The bundled spec; without MuJoCo (a bare GPU machine) its robot description is not checked."""
    try:
        import mujoco  # noqa: F401
    except ImportError:
        return load_embodiment(name, check_description=False)
    return load_embodiment(name)


def make_batch(config: ModelConfig, spec: EmbodimentSpec, b: int, device: str, seed: int = 0) -> dict:
    """A collated training batch (`adapt.data.batch.make_window`, as the loader yields) of random frames,
    states and actions."""
    rng = np.random.default_rng(seed)
    s, t = config.image_size, config.context + config.future
    chunk = spec.action.chunk if spec.action else 1
    shapes = (spec.state_dim, chunk, spec.action_dim)
    windows = [
        make_window(
            rng.integers(0, 256, (len(spec.cameras), t, s, s, 3), dtype=np.uint8),
            np.ones(config.context, bool),
            np.ones(config.future, bool),
            rng.standard_normal(spec.state_dim) if spec.state_dim else None,
            rng.standard_normal((chunk, spec.action_dim)) if spec.action else None,
            np.ones(chunk, bool),
            "pick up the red cube and place it in the bin",
            spec.name,
            shapes,
        )
        for _ in range(b)
    ]
    return to_device(default_collate(windows), device)


# -- what a model is made of ----------------------------------------------------------------------------


def parameter_counts(model: WorldModel) -> dict:
    """Parameters by part; `trunk` is the shared rest (video in/out, positions, camera roles, time MLP).
    LoRA weights inside a wrapped backbone are counted apart, as `backbone_lora`."""
    counts = {"total": 0, "tokenizer": 0, "text": 0, "backbone": 0, "backbone_lora": 0, "trunk": 0}
    heads = {name: 0 for name in model.heads}
    for name, p in model.named_parameters():
        part = name.split(".")[0]
        counts["total"] += p.numel()
        if part == "heads":
            heads[name.split(".")[1]] += p.numel()
        elif part == "backbone":
            counts["backbone_lora" if "lora_" in name else "backbone"] += p.numel()
        elif part in counts:
            counts[part] += p.numel()
        else:
            counts["trunk"] += p.numel()
    return counts | {"heads": heads}


def tokens_per_sample(model: WorldModel, batch: dict) -> dict:
    """Sequence length at the backbone's input in a training forward pass, and its parts by kind."""
    seen = []
    hook = model.backbone.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape[1]))
    try:
        with torch.no_grad():
            model.loss(batch)
    finally:
        hook.remove()
    c, spec = model.config, model.specs[batch["embodiment"][0]]
    cams = len(spec.cameras)
    parts = {
        "context_video": cams * c.context * c.tokens_per_frame,
        "state": 1,
        "task": c.text_len,
        "future_video": cams * c.future * c.tokens_per_frame,
        "actions": spec.action.chunk if spec.action else 0,
    }
    return {"total": seen[0], **parts, "parts_match_total": sum(parts.values()) == seen[0]}


# -- timing and memory -----------------------------------------------------------------------------------


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_timed(fn: Callable[[], object], runs: int, budget_s: float, device: str) -> list[float]:
    """Seconds of up to `runs` calls of `fn`, stopping once they add up to `budget_s` (at least one call
    unless `runs` is 0). Used for warm-up too: a warm-up call longer than the budget is the only one."""
    times: list[float] = []
    while len(times) < runs and (not times or sum(times) < budget_s):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float], **extra) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": len(times), "times_s": times, **extra}


def rss_mib() -> float:
    """Current resident memory of this process (psutil), else its peak so far."""
    try:
        import psutil
    except ImportError:
        return peak_rss_mib()
    return psutil.Process().memory_info().rss / MIB


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def autocast(device: str, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)


def measure_train(
    model: WorldModel,
    batch: dict,
    args: argparse.Namespace,
    *,
    mode: str = "joint",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
) -> dict:
    """Median time and peak memory of forward + backward + AdamW step over the parameters that require
    grad. Memory on CPU is the process's RSS, so call this once per fresh process."""
    device = args.device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, args.bf16):
            loss = model.loss(batch, mode)["loss"]
        loss.backward()
        optimizer.step()

    if device.startswith("cuda"):
        synchronize(device)
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / MIB
    else:
        before = rss_mib()
    warm = run_timed(step, args.warmup, args.budget_s, device)
    times = run_timed(step, args.repeats, args.budget_s, device)
    peak = torch.cuda.max_memory_allocated() / MIB if device.startswith("cuda") else peak_rss_mib()
    state = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
    result = summary(
        times,
        warmup_s=warm,
        batch_size=len(batch["task"]),
        memory=("cuda max_memory_allocated" if device.startswith("cuda") else "process peak RSS (ru_maxrss)"),
        peak_mib=peak,
        before_mib=before,
        train_over_before_mib=peak - before,
        trainable_params=sum(p.numel() for p in params),
        weights_trainable_mib=sum(p.numel() * p.element_size() for p in params) / MIB,
        grads_mib=sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None) / MIB,
        optimizer_state_mib=sum(t.numel() * t.element_size() for t in state) / MIB,
    )
    optimizer.zero_grad(set_to_none=True)
    return result


def measure_sampling(model: WorldModel, batch: dict, args: argparse.Namespace) -> dict:
    """Latency of `model.sample` (one action chunk, batch 1) per number of steps, video_final_t and cache."""
    model.eval()
    one = {k: v[:1] for k, v in batch.items()}
    settings = [(vft, True) for vft in VIDEO_FINAL_T]
    if "cache" in inspect.signature(model.sample).parameters:
        settings.append((0.0, False))
    results = []
    for vft, cache in settings:
        kwargs = {"video_final_t": vft} | ({"cache": False} if not cache else {})

        def call(steps: int, kwargs=kwargs) -> Callable[[], object]:
            def run():
                with autocast(args.device, args.bf16):
                    return model.sample(one, steps=steps, **kwargs)

            return run

        run_timed(call(1), 1, args.budget_s, args.device)  # training already warmed the kernels up
        by_steps = {}
        for steps in args.steps:
            by_steps[steps] = summary(run_timed(call(steps), args.sample_repeats, args.budget_s, args.device))
        fixed, per_step = fit_line(list(by_steps), [r["median_s"] for r in by_steps.values()])
        results.append(
            {"video_final_t": vft, "cache": cache, "steps": by_steps, "fixed_s": fixed, "per_step_s": per_step}
        )
    return {"batch_size": 1, "chunk": model.specs[one["embodiment"][0]].action.chunk, "settings": results}


def fit_line(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares intercept and slope (slope 0 with a single point)."""
    if len(x) < 2:
        return y[0], 0.0
    mx, my = statistics.fmean(x), statistics.fmean(y)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sum((a - mx) ** 2 for a in x)
    return my - slope * mx, slope


# -- one preset, in a fresh process ----------------------------------------------------------------------


def measure_preset(size: str, args: argparse.Namespace) -> dict:
    """Everything about one preset; meant to run in its own process (clean peak RSS)."""
    torch.manual_seed(0)
    config = model_config(size)
    specs = [load_spec(name) for name in args.embodiments]
    model = build_model(config, specs).to(args.device)
    model.tokenizer.requires_grad_(False)  # frozen after pretraining's tokenizer phase, and in adaptation
    batch = make_batch(config, specs[0], args.batch_size, args.device)
    report = {
        "size": size,
        "config": config.model_dump(),
        "params": parameter_counts(model),
        "tokens_per_sample": tokens_per_sample(model, batch),
        "torch_threads": torch.get_num_threads(),
    }
    print(f"  {size}: training step x {args.repeats} at batch {args.batch_size} ...", flush=True)
    report["train"] = measure_train(model, batch, args)
    print(f"  {size}: sampling at batch 1, steps {args.steps} ...", flush=True)
    report["sample"] = measure_sampling(model, batch, args)
    report["process_peak_rss_mib"] = peak_rss_mib()
    return report


def run_isolated(fn: Callable, *args) -> dict:
    """`fn(*args)` in a fresh spawned process; an {"error": ...} dict if it fails or is killed."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        try:
            return pool.submit(fn, *args).result()
        except Exception as error:  # a crash, or the OOM killer ending the worker
            return {"error": f"{type(error).__name__}: {error}"}


# -- report ---------------------------------------------------------------------------------------------


def millions(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def print_table(report: dict) -> None:
    presets = [p for p in report["presets"] if "error" not in p]
    for p in report["presets"]:
        if "error" in p:
            print(f"\n{p['size']}: FAILED ({p['error']})")
    if not presets:
        return
    heads = list(presets[0]["params"]["heads"])
    print("\nparameters")
    cols = ["total", "tokenizer", "text", "backbone", "trunk"] + [f"heads {h}" for h in heads]
    print(f"{'preset':8}" + "".join(f"{c:>13}" for c in cols) + f"{'tokens/sample':>15}")
    for p in presets:
        n = p["params"]
        values = [n[c] for c in cols[:5]] + [n["heads"][h] for h in heads]
        tokens = p["tokens_per_sample"]["total"]
        print(f"{p['size']:8}" + "".join(f"{millions(v):>13}" for v in values) + f"{tokens:>15}")

    device, batch = report["config"]["device"], report["config"]["batch_size"]
    precision = "bf16 autocast" if report["config"]["bf16"] else "fp32"
    print(f"\ntraining step (forward + backward + AdamW), batch {batch}, {device}, {precision}")
    print(f"{'preset':8}{'median s':>10}{'min s':>9}{'runs':>6}{'samples/s':>11}{'peak MiB':>11}{'+train MiB':>12}")
    for p in presets:
        t = p["train"]
        print(
            f"{p['size']:8}{t['median_s']:10.3f}{t['min_s']:9.3f}{t['runs']:6d}{batch / t['median_s']:11.1f}"
            f"{t['peak_mib']:11.0f}{t['train_over_before_mib']:12.0f}"
        )
    print(f"(peak MiB: {presets[0]['train']['memory']}; +train: above the memory just before the first step)")

    for p in presets:
        s = p["sample"]
        settings = s["settings"]
        names = [f"vft {x['video_final_t']:g}" + ("" if x["cache"] else " no cache") for x in settings]
        print(f"\nsampling one action chunk ({s['chunk']} actions), batch 1, {p['size']}: median ms")
        print(f"{'steps':>6}" + "".join(f"{n:>18}" for n in names))
        for steps in settings[0]["steps"]:
            print(f"{steps:>6}" + "".join(f"{x['steps'][steps]['median_s'] * 1e3:18.1f}" for x in settings))
        print(f"{'fixed':>6}" + "".join(f"{x['fixed_s'] * 1e3:18.1f}" for x in settings))
        print(f"{'/step':>6}" + "".join(f"{x['per_step_s'] * 1e3:18.1f}" for x in settings))
        if not settings[-1]["cache"]:
            cached, plain = settings[0], settings[-1]
            top = max(cached["steps"])
            ratio = plain["steps"][top]["median_s"] / cached["steps"][top]["median_s"]
            print(f"  no cache / cache at {top} steps: {ratio:.2f}x")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=",".join(PRESETS), help=f"comma-separated presets ({', '.join(PRESETS)})")
    p.add_argument("--batch-size", type=int, default=16, help="training batch")
    p.add_argument("--warmup", type=int, default=2, help="untimed training steps / sampling calls first")
    p.add_argument("--repeats", type=int, default=10, help="timed training steps; the median is reported")
    p.add_argument("--sample-repeats", type=int, default=10, help="timed sampling calls per setting")
    p.add_argument("--steps", default=",".join(map(str, STEPS)), help="sampling steps to measure")
    p.add_argument("--budget-s", type=float, default=20.0, help="stop repeating a measurement after this long")
    p.add_argument("--embodiments", default=",".join(EMBODIMENTS), help="heads to build; batches use the first")
    p.add_argument("--device", default="cpu", help="cpu, cuda, or auto (cuda when available)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for training and sampling")
    p.add_argument("--out", type=Path, help="JSON report (default results/model.json, model-cuda.json on CUDA)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny and small, batch 4, few repeats")
    args = p.parse_args(argv)
    args.device = resolve_device(p, args.device)
    if args.quick:
        args.sizes, args.batch_size, args.warmup, args.repeats, args.sample_repeats = "tiny,small", 4, 1, 3, 3
        args.steps, args.budget_s = "1,4", 5.0
    args.sizes = [s for s in args.sizes.split(",") if s]
    unknown = [s for s in args.sizes if s not in PRESETS]
    if unknown:
        p.error(f"unknown preset(s) {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    args.steps = [int(s) for s in args.steps.split(",")]
    args.embodiments = args.embodiments.split(",")
    results = Path(__file__).parent / "results"
    args.out = args.out or results / ("model.json" if args.device == "cpu" else "model-cuda.json")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    host = machine(args.device)  # load average before the runs; other processes skew CPU timings
    presets = []
    for size in args.sizes:
        print(f"{size} (fresh process) ...", flush=True)
        result = run_isolated(measure_preset, size, args)
        presets.append({"size": size} | result)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report = {"machine": host, "config": config | {"command": " ".join(sys.argv)}, "presets": presets}
    print_table(report)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
