"""`adapt plan`: parameters, memory per device and step time of a training run, before it starts."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.table import Table

from adapt.cli.common import app, out, user_errors
from adapt.errors import AdaptError

LINES = {
    "weights": "weights",
    "encoders": "encoder piece (cache miss)",
    "gradients": "gradients",
    "optimizer": "AdamW",
    "activations": "activations",
    "autocast_copies": "autocast copies",
    "float32_block": "float32 block",
    "communication": "comm. buffers",
    "workspace": "workspace",
    "total": "total",
}
"""Memory lines as the table names them (see `adapt.plan`: bf16 weight copies under autocast; the float32 copy of a
bf16 block on a CPU without bf16 units; DDP's gradient
buckets or FSDP's gathered blocks; cuBLAS workspace)."""


@app.command("plan")
@user_errors
def plan_command(
    base: Annotated[
        str,
        typer.Option(
            help="Preset (tiny, small, base, dreamzero-tiny, dreamzero-5b, dreamzero-14b) or checkpoint folder."
        ),
    ],
    recipe: Annotated[str, typer.Option(help="Bundled recipe name or recipe YAML file.")] = "play-30min",
    embodiment: Annotated[str, typer.Option(help="Spec name or file of the robot (sizes the new heads).")] = "ur5e",
    devices: Annotated[
        list[str], typer.Option(help="Device counts to plan for: repeatable or comma-separated (1,4,8).")
    ] = ["1"],  # noqa: B006 (typer reads the default, nothing mutates it)
    strategy: Annotated[
        str, typer.Option(help="ddp (all replicated) or fsdp (weights, grads, AdamW sharded).")
    ] = "ddp",
    precision: Annotated[
        str | None, typer.Option(help="32-true, bf16-mixed or bf16-true (default: bf16-mixed on gpu, 32-true on cpu).")
    ] = None,
    accelerator: Annotated[str, typer.Option(help="gpu or cpu: the FLOP rate and the cuBLAS workspace.")] = "gpu",
    batch_size: Annotated[int | None, typer.Option(min=1, help="Windows per device (default: the recipe's).")] = None,
    gpu_memory: Annotated[
        float | None,
        typer.Option(min=0.1, help="Memory per device in GiB (default: 80 on gpu, this machine's RAM on cpu)."),
    ] = None,
    tflops: Annotated[
        float | None,
        typer.Option(min=1e-6, help="Achievable TFLOP/s per device (default: 400 bf16 GPU, calibrated CPU)."),
    ] = None,
    attention: Annotated[str, typer.Option(help="fused (flash / memory-efficient kernels) or math.")] = "fused",
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Estimate parameters, trainable parameters, memory per device (weights, gradients, AdamW state, activations
    with and without checkpointing) and step time of adapting BASE with RECIPE, and whether it fits."""
    from adapt.plan import check_options, plan, report

    precision = precision or ("bf16-mixed" if accelerator == "gpu" else "32-true")
    check_options(strategy=strategy, precision=precision, accelerator=accelerator, attention=attention)
    counts = _device_counts(devices)
    if gpu_memory is None:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        gpu_memory = 80.0 if accelerator == "gpu" else round(ram, 1)
    p = plan(base, recipe, embodiment, batch_size=batch_size, accelerator=accelerator, attention=attention)
    r = report(p, devices=counts, strategy=strategy, precision=precision, gpu_memory_gib=gpu_memory, tflops=tflops)
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    _print(r)


def _device_counts(values: list[str]) -> list[int]:
    counts = []
    for value in (v.strip() for text in values for v in text.split(",")):
        if not value.isdigit() or int(value) < 1:
            raise AdaptError(f"--devices {value!r}: expected positive whole numbers such as 1,4,8")
        counts.append(int(value))
    return list(dict.fromkeys(counts))


def _print(r: dict) -> None:
    n, step = r["parameters"], r["step"]
    out.print(
        f"[bold]{r['base']}[/] + {r['recipe']} for {r['embodiment']}: batch {r['batch_size']} per device, "
        f"{r['precision']}, {r['strategy']}, {r['accelerator']}",
        highlight=False,
    )
    names = {"tokenizer": "frozen tokenizer/encoders", "other": "other shared"}
    parts = ", ".join(f"{names.get(k, k)} {_count(v)}" for k, v in n.items() if k not in ("total", "trainable"))
    share = 100 * n["trainable"] / n["total"]
    out.print(f"parameters: {_count(n['total'])} ({parts}); trainable {_count(n['trainable'])} ({share:.2f} %)")
    tokens = dict(r["tokens_per_sample"])
    total, keys = tokens.pop("total"), tokens.pop("cross-attention keys", 0)
    listed = ", ".join(f"{k} {v:,}" for k, v in tokens.items() if v)
    out.print(f"tokens per sample: {total:,} ({listed})" + (f" + {keys:,} cross-attention keys" if keys else ""))
    by_part = ", ".join(f"{k} {_flops(v)}" for k, v in step["flops_by_part"].items())
    out.print(
        f"step: {_flops(step['flops'])} ({by_part}) at {step['tflops_per_device']:g} TFLOP/s per device "
        f"= {step['seconds']:,.3g} s per optimizer step",
        highlight=False,
    )
    rows = r["memory_gib"]
    scale, unit = (1, "GiB") if max(row["total"] for row in rows) >= 1 else (1024, "MiB")
    table = Table(title=f"memory per device ({unit}; devices of {r['gpu_memory_gib']:g} GiB)")
    table.add_column("")
    for row in rows:
        table.add_column(f"{row['devices']} dev" + (" + ckpt" if row["checkpointing"] else ""), justify="right")
    for key, label in LINES.items():
        if key == "total" or any(row[key] for row in rows):
            cells = [_amount(row[key] * scale, row["fits"] if key == "total" else None) for row in rows]
            table.add_row(label, *cells, style="bold" if key == "total" else None)
    out.print(table)
    for v in r["verdicts"]:
        out.print(("[green]" if v["fits"] else "[red]") + "verdict[/] " + v["text"], highlight=False)
    for warning in r["warnings"]:
        out.print(f"[yellow]warning[/] {warning}", highlight=False)


def _amount(value: float, fits: bool | None) -> str:
    text = f"{value:,.1f}" if value >= 0.05 or not value else f"{value:.3f}"
    return text if fits is None else f"[{'green' if fits else 'red'}]{text}[/]"


def _flops(x: float) -> str:
    for unit, size in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if x >= size:
            return f"{x / size:.3g} {unit}"
    return f"{x:.3g} FLOP"


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return str(n)
