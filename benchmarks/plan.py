"""Does `adapt plan` estimate memory and step time right? Estimates against measured peaks.

1. Memory of one training step of each preset (tiny, small, base) as `benchmarks/model.py` measures it:
   heads for ur5e and panda, the tokenizer frozen, everything else trained, AdamW, batch 16, one embodiment's
   batch. model.py reports how far training raises memory above what the process held just before the first
   step (the weights were already there): gradients + AdamW state + activations (+ bf16 copies under
   autocast, + cuBLAS workspace on CUDA). The estimate of the same is `Memory.total - Memory.weights`.
   Compared with `benchmarks/results/model.json` (CPU, peak RSS, fp32), `model-cuda.json` and
   `model-cuda-bf16.json` (H100, `torch.cuda.max_memory_allocated`, fp32 and bf16 autocast). Target: +-20 %.
2. Re-measured here unless `--no-measure`: the peak of live tensor bytes in one steady-state step (torch
   profiler memory events: no allocator overhead, unlike RSS) for tiny and small at batch 16 and base at
   batch 2, and the bytes autograd saves in one forward (`adapt.plan.saved_for_backward`) against the
   activation estimate.
3. The CPU FLOP rate: `time = overhead + FLOPs / rate` fitted (least squares on relative error) to
   model.json's step times, against `adapt.plan.RATES` / `CPU_OVERHEAD_S`.
4. DreamZero 14B and 5B with play-30min on 1, 4 and 8 devices of 80 GiB: ddp/fsdp x bf16-mixed/bf16-true x
   checkpointing off/on.

Run: `.venv/bin/python benchmarks/plan.py` (about a minute on 2 cores; `--no-measure`: seconds). Results:
`benchmarks/results/plan.json`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from model import load_spec, make_batch
from report import machine, write_report

from adapt.model import build_model, model_config
from adapt.plan import (
    CPU_OVERHEAD_S,
    GIB,
    RATES,
    Run,
    activation_parts,
    fits,
    memory,
    plan,
    plan_model,
    saved_for_backward,
)

RESULTS = Path(__file__).parent / "results"
MIB = 2**20
SOURCES = [
    ("model.json", "cpu", "32-true"),
    ("model-cuda.json", "gpu", "32-true"),
    ("model-cuda-bf16.json", "gpu", "bf16-mixed"),
]
MEASURE = {"tiny": 16, "small": 16, "base": 2}
"""Batch of each preset re-measured here (base at 16 needs 13 GB and half a minute per step on 2 cores)."""


def benchmark_model(size: str, device: str = "meta"):
    """The model benchmarks/model.py trains: heads for ur5e and panda, tokenizer frozen, the rest trained."""
    torch.manual_seed(0)
    specs = [load_spec("ur5e"), load_spec("panda")]
    with torch.device(device):
        model = build_model(model_config(size), specs)
    model.tokenizer.requires_grad_(False)
    return model, specs[0]


def estimate(size: str, batch: int, accelerator: str, precision: str) -> dict:
    """Estimated growth of memory during a step (what model.py measures), by line, in MiB."""
    model, spec = benchmark_model(size)
    p = plan_model(model, spec, "joint", batch, accelerator=accelerator)
    m = memory(p, Run(precision=precision))
    lines = {k: v / MIB for k, v in vars(m).items() if k != "weights"}
    return {
        "growth_mib": sum(lines.values()),
        "lines_mib": lines,
        "flops_per_step": sum(p.flops_per_sample.values()) * batch,
    }


def against_model_json() -> list[dict]:
    rows = []
    for name, accelerator, precision in SOURCES:
        path = RESULTS / name
        if not path.is_file():
            continue
        measured = json.loads(path.read_text())
        for preset in measured["presets"]:
            train = preset.get("train")
            if train is None:
                continue
            est = estimate(preset["size"], train["batch_size"], accelerator, precision)
            rows.append(
                {
                    "source": name,
                    "device": measured["machine"].get("cuda_device") or "cpu",
                    "preset": preset["size"],
                    "precision": precision,
                    "batch_size": train["batch_size"],
                    "measured_mib": train["train_over_before_mib"],
                    "estimate_mib": est["growth_mib"],
                    "ratio": est["growth_mib"] / train["train_over_before_mib"],
                    "estimate_lines_mib": est["lines_mib"],
                    "step_s": train["median_s"],
                    "flops_per_step": est["flops_per_step"],
                }
            )
    return rows


def remeasure(size: str, batch: int) -> dict:
    """Live-tensor peak of a steady-state step (profiler) and bytes autograd saves in a forward, at `batch`."""
    from torch.profiler import ProfilerActivity, profile

    model, spec = benchmark_model(size, "cpu")
    data = make_batch(model.config, spec, batch, "cpu")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    model.train()

    def step() -> None:
        model.loss(data)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # AdamW's state exists from here on, as in model.py's timed steps
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    live = np.cumsum([n for _, n in events])
    state = sum(
        t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)
    )
    saved = saved_for_backward(lambda: model.loss(data), model)
    est = estimate(size, batch, "cpu", "32-true")
    p = plan_model(*benchmark_model(size), "joint", batch, accelerator="cpu")
    acts = activation_parts(p, Run(precision="32-true"))["total"]
    peak = (max(live.max(initial=0), 0) + state) / MIB
    return {
        "preset": size,
        "batch_size": batch,
        "live_peak_mib": peak,
        "estimate_mib": est["growth_mib"],
        "ratio": est["growth_mib"] / peak,
        "saved_for_backward_mib": saved / MIB,
        "activations_estimate_mib": acts / MIB,
        "activations_ratio": acts / saved,
    }


def fit_cpu_rate(rows: list[dict]) -> dict:
    """`time = overhead + FLOPs / rate` through the CPU rows, least squares on relative error."""
    cpu = [r for r in rows if r["device"] == "cpu"]
    if len(cpu) < 2:
        return {}
    flops, seconds = np.array([r["flops_per_step"] for r in cpu]), np.array([r["step_s"] for r in cpu])
    weights = 1 / seconds
    (overhead, inverse), *_ = np.linalg.lstsq(
        np.stack([np.ones_like(flops), flops], 1) * weights[:, None], seconds * weights, rcond=None
    )
    used = RATES[("cpu", 4)] * 1e12
    per_preset = [
        {
            "preset": r["preset"],
            "measured_s": s,
            "fitted_s": overhead + f * inverse,
            "plan_s": CPU_OVERHEAD_S + f / used,
            "measured_tflops": f / s / 1e12,
        }
        for r, f, s in zip(cpu, flops, seconds, strict=True)
    ]
    return {
        "overhead_s": overhead,
        "tflops": 1 / inverse / 1e12,
        "plan_overhead_s": CPU_OVERHEAD_S,
        "plan_tflops": RATES[("cpu", 4)],
        "per_preset": per_preset,
    }


def dreamzero_table(recipe: str = "play-30min") -> list[dict]:
    """GiB per device of DreamZero 14B and 5B at the recipe's batch, and the largest batch (of 16, 8, 4, 2, 1)
    that fits 80 GiB devices."""
    rows = []
    for base in ("dreamzero-14b", "dreamzero-5b"):
        p = plan(base, recipe)
        for strategy in ("ddp", "fsdp"):
            for precision in ("bf16-mixed", "bf16-true"):
                for devices in (1, 4, 8):
                    for ckpt in (False, True):
                        run = Run(devices, strategy, precision, ckpt)
                        m = memory(p, run)
                        batches = [b for b in (16, 8, 4, 2, 1) if fits(memory(p, replace(run, batch_size=b)), 80)]
                        rows.append({
                            "base": base, "recipe": recipe, "strategy": strategy, "precision": precision,
                            "devices": devices, "checkpointing": ckpt, "batch_size": p.batch_size,
                            **{k: v / GIB for k, v in vars(m).items()}, "total": m.total / GIB,
                            "fits_80": fits(m, 80), "largest_batch_fitting_80": max(batches, default=0),
                        })  # fmt: skip
    return rows


def print_report(report: dict) -> None:
    print("\ntraining-step memory above the weights: estimate vs measured (benchmarks/model.py)")
    print(f"{'preset':7}{'source':22}{'precision':11}{'batch':>6}{'measured MiB':>14}{'estimate MiB':>14}{'ratio':>7}")
    for r in report["validation"]:
        print(
            f"{r['preset']:7}{r['source']:22}{r['precision']:11}{r['batch_size']:6d}{r['measured_mib']:14,.1f}"
            f"{r['estimate_mib']:14,.1f}{r['ratio']:7.2f}"
        )
    if report["remeasured"]:
        print("\nre-measured here (CPU): live-tensor peak of a step (profiler) and bytes saved for backward")
        print(
            f"{'preset':7}{'batch':>6}{'live MiB':>11}{'estimate':>10}{'ratio':>7}"
            f"{'saved MiB':>11}{'act. est.':>11}{'ratio':>7}"
        )
        for r in report["remeasured"]:
            print(
                f"{r['preset']:7}{r['batch_size']:6d}{r['live_peak_mib']:11,.1f}{r['estimate_mib']:10,.1f}{r['ratio']:7.2f}"
                f"{r['saved_for_backward_mib']:11,.1f}{r['activations_estimate_mib']:11,.1f}{r['activations_ratio']:7.2f}"
            )
    fit = report["cpu_rate"]
    if fit:
        print(
            f"\nCPU rate fitted to model.json: {fit['tflops']:.3f} TFLOP/s + {fit['overhead_s']:.3f} s per step "
            f"(adapt.plan uses {fit['plan_tflops']:.3f} + {fit['plan_overhead_s']:.3f})"
        )
        for r in fit["per_preset"]:
            print(
                f"  {r['preset']:6} measured {r['measured_s']:8.3f} s  plan {r['plan_s']:8.3f} s "
                f"({r['plan_s'] / r['measured_s']:.2f}x; {r['measured_tflops']:.3f} TFLOP/s measured)"
            )
    print("\nDreamZero + play-30min, GiB per device at batch 16 per device (* fits 72 of 80 GiB),")
    print("and in brackets the largest batch per device (16, 8, 4, 2, 1) that fits; -: not even batch 1")
    print(f"{'base':15}{'strategy':9}{'precision':11}" + "".join(f"{f'{d} dev':>13}{'+ckpt':>13}" for d in (1, 4, 8)))
    rows = report["dreamzero"]
    for key in dict.fromkeys((r["base"], r["strategy"], r["precision"]) for r in rows):
        cells = [r for r in rows if (r["base"], r["strategy"], r["precision"]) == key]
        largest = [f"[{r['largest_batch_fitting_80'] or '-'}]" for r in cells]
        line = "".join(
            f"{r['total']:7,.0f}{'*' if r['fits_80'] else ' '}{b:>5}" for r, b in zip(cells, largest, strict=True)
        )
        print(f"{key[0]:15}{key[1]:9}{key[2]:11}{line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-measure", action="store_true", help="skip the re-measurements on this machine")
    parser.add_argument("--out", type=Path, default=RESULTS / "plan.json")
    args = parser.parse_args()
    host = machine("cpu")
    validation = against_model_json()
    remeasured = [] if args.no_measure else [remeasure(size, b) for size, b in MEASURE.items()]
    report = {
        "machine": host,
        "config": {"remeasure_batches": MEASURE, "measure": not args.no_measure},
        "validation": validation,
        "remeasured": remeasured,
        "cpu_rate": fit_cpu_rate(validation),
        "dreamzero": dreamzero_table(),
    }
    print_report(report)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
