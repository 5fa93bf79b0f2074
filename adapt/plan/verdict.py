"""Whether a planned run fits its devices, the fewest changes that would make it fit, and the report
`adapt plan` prints (`--json`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from adapt.plan.cost import Memory, memory, step_seconds, upcasts
from adapt.plan.model import GIB, PRECISIONS, RATES, USABLE, Plan, Run, cpu_bf16_units


def fits(m: Memory, gpu_memory_gib: float) -> bool:
    return m.total <= USABLE * gpu_memory_gib * GIB


@dataclass
class Verdict:
    devices: int
    fits: bool
    """With or without checkpointing."""
    text: str
    would_fit: list[str]


def verdict(p: Plan, run: Run, gpu_memory_gib: float) -> Verdict:
    """Whether `run` fits devices of `gpu_memory_gib`, with or without checkpointing, and if not, what would."""
    plain, ckpt = memory(p, replace(run, checkpointing=False)), memory(p, replace(run, checkpointing=True))
    head = f"{run.devices} device{'s' * (run.devices > 1)}: "
    usable = f"{USABLE * gpu_memory_gib:.0f} GiB usable of {gpu_memory_gib:g}"
    if fits(plain, gpu_memory_gib):
        return Verdict(run.devices, True, head + f"fits, {plain.total / GIB:.1f} GiB per device ({usable})", [])
    if fits(ckpt, gpu_memory_gib):
        text = f"fits with activation checkpointing, {ckpt.total / GIB:.1f} GiB per device ({plain.total / GIB:.0f}"
        return Verdict(run.devices, True, head + text + f" without; {usable})", [])
    found = suggestions(p, run, gpu_memory_gib)
    text = f"does not fit, {plain.total / GIB:,.0f} GiB per device, {ckpt.total / GIB:,.0f} with checkpointing "
    ways = "; or ".join(found) or "nothing up to 64 devices and batch 1"
    return Verdict(run.devices, False, head + text + f"({usable}); would fit: {ways}", found)


def suggestions(p: Plan, run: Run, gpu_memory_gib: float, limit: int = 3) -> list[str]:
    """Changes that make `run` fit: fsdp on as many or more devices (up to 64), bf16-true, checkpointing, a smaller
    batch. Per set of changes the fewest devices, then the largest batch; the fewest changes first."""
    batch = run.batch_size or p.batch_size
    best: dict[frozenset, tuple] = {}
    for candidate in _candidates(run, batch):
        changed = {
            "fsdp": (candidate.strategy, candidate.devices) != (run.strategy, run.devices),
            "precision": candidate.precision != run.precision,
            "checkpointing": candidate.checkpointing and not run.checkpointing,
            "batch": candidate.batch_size != batch,
        }
        knobs = frozenset(k for k, v in changed.items() if v)
        total = memory(p, candidate).total
        key = (len(knobs), candidate.devices, -candidate.batch_size, total)
        if knobs and total <= USABLE * gpu_memory_gib * GIB and (knobs not in best or key < best[knobs][0]):
            best[knobs] = (key, candidate, knobs)
    return [_describe(c, knobs) + f" ({key[3] / GIB:.0f} GiB)" for key, c, knobs in sorted(best.values())[:limit]]


def _candidates(run: Run, batch: int):
    devices = [(run.strategy, run.devices)] + [
        ("fsdp", d)
        for d in (2**k for k in range(1, 7))
        if d >= run.devices and (run.strategy, d) != ("fsdp", run.devices)
    ]
    for strategy, d in devices:
        for precision in dict.fromkeys([run.precision, "bf16-true"]):
            for ckpt in dict.fromkeys([run.checkpointing, True]):
                for b in dict.fromkeys(batch // 2**k for k in range(12) if batch // 2**k > 0):
                    yield Run(d, strategy, precision, ckpt, b)


def _describe(c: Run, knobs: frozenset) -> str:
    text = {
        "fsdp": f"fsdp on {c.devices} devices",
        "precision": c.precision,
        "checkpointing": "activation checkpointing",
    }
    return " + ".join([text[k] for k in text if k in knobs] + [f"batch {c.batch_size}"] * ("batch" in knobs))


def report(
    p: Plan,
    devices: list[int],
    strategy: str,
    precision: str,
    gpu_memory_gib: float = 80.0,
    tflops: float | None = None,
) -> dict:
    """The plan as plain data (`adapt plan --json`): parameters, tokens, step time, memory per device in GiB with
    and without checkpointing for each device count, and a verdict per device count."""
    runs = [Run(d, strategy, precision, ckpt) for d in devices for ckpt in (False, True)]
    rows = []
    for run in runs:
        m = memory(p, run)
        lines = {k: v / GIB for k, v in asdict(m).items()}
        rows.append(
            {
                "devices": run.devices,
                "checkpointing": run.checkpointing,
                **lines,
                "total": m.total / GIB,
                "fits": fits(m, gpu_memory_gib),
            }
        )
    step = {part: f * p.batch_size for part, f in p.flops_per_sample.items()}
    rate = tflops or RATES[(p.accelerator, PRECISIONS[precision].compute)]
    return {
        **{k: getattr(p, k) for k in ("base", "recipe", "embodiment", "accelerator", "attention", "batch_size")},
        "strategy": strategy,
        "precision": precision,
        "parameters": {**p.parameters, "trainable": p.trainable},
        "tokens_per_sample": p.tokens,
        "step": {
            "flops": sum(step.values()),
            "flops_by_part": step,
            "tflops_per_device": rate,
            "seconds": step_seconds(p, runs[0], tflops),
        },
        "gpu_memory_gib": gpu_memory_gib,
        "usable_fraction": USABLE,
        "memory_gib": rows,
        "verdicts": [asdict(verdict(p, run, gpu_memory_gib)) for run in runs[::2]],
        "warnings": warnings(p, precision),
    }


def warnings(p: Plan, precision: str) -> list[str]:
    """What the figures above cannot show: bf16 compute on a CPU without bf16 units (in a family whose blocks do
    not compute in float32 there)."""
    upcast = upcasts(p, Run(precision=precision))
    if p.accelerator != "cpu" or PRECISIONS[precision].compute != 2 or upcast or cpu_bf16_units():
        return []
    return [
        f"this CPU has no bf16 units: {precision} runs torch's reference bf16 kernels, far slower than the float32"
        " rate the step time assumes (a dreamzero-5b bf16-true step took over half an hour on a 2-core AVX2 CPU;"
        " benchmarks/dreamzero_real_size.py); prefer 32-true where the weights fit"
    ]
