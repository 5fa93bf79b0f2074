"""A real-size DreamZero base on this machine: load it, plan a LoRA adaptation, run two steps of it.

The checkpoint is dreamzero-5b-shaped (Wan2.2-TI2V-5B DiT, umT5-XXL, Wan2.2 VAE, CLIP ViT-H; 12.4 B
parameters in all) with random weights, written as DreamZero ships one: bf16, sharded with an index,
`config.json`, `experiment_cfg/metadata.json` and a `tokenizer/` folder (a word-level stand-in: umT5's cannot be
downloaded here). Then, each in a fresh process whose peak RSS the kernel reports at its exit:

1. `load_model(..., dtype=bfloat16)`: seconds and peak RSS (the encoders stay in the files; safetensors maps
   the DiT's shards, so their pages are read at first use, in step 1);
2. `adapt plan --json` for the run below (cpu, bf16-true, batch 1, activation checkpointing): its memory lines;
3. `adapt finetune` of play-30min at batch 1 (`--precision bf16-true --activation-checkpointing`) for 2 steps on
   half a minute of UR5e play, twice with the same seed: *cold*, the encoder cache empty (each window's VAE and
   CLIP, and umT5 a block at a time, read from the checkpoint as they run), then *warm*, every encoder output
   from the cache (no encoder weight read). Step times come from the moments each step's checkpoint appears
   (`--checkpoint-every 1`; an adaptation's checkpoint holds only what trains). `--limit S` kills a run past S
   seconds and reports how far it got. On a CPU without bf16 units (`bf16_units` in the JSON) the DiT's blocks
   compute in float32 from the bf16 weights (`adapt.model.dreamzero.dit.blocks_compute_in_float32`); before
   they did, torch's bf16 reference kernels made one step take longer than 40 minutes here.

Run with nothing else on the machine: `.venv/bin/python benchmarks/dreamzero_real_size.py --work DIR` (DIR needs
~27 GB free for the checkpoint; it is reused by later runs). Results: `benchmarks/results/dreamzero_real_size.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import machine, write_report

from adapt.model.footprint import cpu_bf16_units

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import write_dreamzero_checkpoint  # noqa: E402 (a DreamZero checkpoint as DreamZero releases one)

ADAPT = str(Path(sys.executable).with_name("adapt"))
GIB = 2**30
ROBOT = "ur5e_osc"


def measured(cmd: list[str], env: dict, checkpoints: Path | None = None, limit: float | None = None) -> dict:
    """Run `cmd`: its peak RSS as the kernel counts it at exit (`wait4`'s ru_maxrss; /proc's VmHWM lags while a
    process runs), and, when given, the moment each `step=N` checkpoint appears. Past `limit` seconds it is
    killed (`finished` false) and what it reached is reported."""
    start = time.monotonic()
    steps = {}
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if limit and time.monotonic() - start > limit:
                process.kill()
                continue
            time.sleep(0.5)
            for file in checkpoints.glob("*step=*.ckpt") if checkpoints and checkpoints.is_dir() else []:
                steps.setdefault(int(file.stem.split("step=")[1].split("-")[0]), time.monotonic() - start)
        process.returncode = os.waitstatus_to_exitcode(status)
        finished = not (limit and process.returncode == -9)
        peak = usage.ru_maxrss * 1024
        log.seek(0)
        output = log.read()
    if process.returncode and finished:
        sys.exit(f"{' '.join(cmd)} failed ({process.returncode}):\n{output[-4000:]}")
    return {"seconds": round(time.monotonic() - start, 1), "peak_rss_gib": round(peak / GIB, 2), "steps": steps,
            "output": output, "finished": finished}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="checkpoint, data, cache and runs (~27 GB)")
    parser.add_argument("--preset", default="dreamzero-5b")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--limit", type=float, default=None, help="seconds a finetune run may take before it is killed")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dreamzero_real_size.json")
    args = parser.parse_args()
    work = args.work.resolve()
    checkpoint, data, cache = work / args.preset, work / "play", work / "cache"
    env = {**os.environ, "ADAPT_CACHE": str(cache)}
    report = {"machine": machine(), "preset": args.preset, "limit_seconds": args.limit}
    report["machine"]["bf16_units"] = cpu_bf16_units()

    if not (checkpoint / "config.json").is_file():
        partial = work / f".{args.preset}.partial"
        if partial.exists():
            subprocess.run(["rm", "-rf", str(partial)], check=True)
        start = time.monotonic()
        write_dreamzero_checkpoint(partial, shards=args.shards, preset=args.preset, dtype="bfloat16")
        partial.rename(checkpoint)
        report["write_seconds"] = round(time.monotonic() - start, 1)
    sizes = sorted(checkpoint.glob("*.safetensors"))
    report["checkpoint"] = {"shards": len(sizes), "gib": round(sum(f.stat().st_size for f in sizes) / GIB, 2)}
    if not (data / "meta" / "info.json").is_file():
        generate = [ADAPT, "data", "generate", "--robot", ROBOT, "--kind", "play", "--hindsight", "--minutes", "0.5"]
        subprocess.run([*generate, "--seed", "1", "--out", str(data)], check=True, env=env)
    recipe = work / "play-30min-batch1.yaml"
    recipe.write_text(
        (ROOT / "recipes" / "play-30min.yaml").read_text().replace("batch_size: 16", "batch_size: 1")
        .replace("name: play-30min", "name: play-30min-batch1")
    )  # fmt: skip

    load = "import json, time, torch; from adapt.model import load_model; t = time.monotonic(); m = load_model"
    load += f"('{checkpoint}', dtype=torch.bfloat16); print(json.dumps({{'load_seconds': time.monotonic() - t}}))"
    loaded = measured([sys.executable, "-c", load], env)
    report["load"] = {"seconds": round(json.loads(loaded["output"].strip().splitlines()[-1])["load_seconds"], 1),
                      "peak_rss_gib": loaded["peak_rss_gib"]}  # fmt: skip
    print("load:", report["load"])

    plan = [ADAPT, "plan", "--base", str(checkpoint), "--recipe", str(recipe), "--embodiment", ROBOT]
    plan += ["--accelerator", "cpu", "--precision", "bf16-true", "--json"]
    planned = json.loads(subprocess.run(plan, check=True, env=env, capture_output=True, text=True).stdout)
    row = next(r for r in planned["memory_gib"] if r["devices"] == 1 and r["checkpointing"])
    report["plan"] = {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}
    report["plan"]["step_seconds"] = planned["step"]["seconds"]
    print("plan:", report["plan"])

    finetune = [ADAPT, "finetune", "--base", str(checkpoint), "--embodiment", ROBOT, "--data", str(data)]
    finetune += ["--recipe", str(recipe), "--steps", "2", "--checkpoint-every", "1", "--workers", "0"]
    finetune += ["--precision", "bf16-true", "--activation-checkpointing", "--accelerator", "cpu", "--seed", "0"]
    finetune += ["--no-predictions"]  # sampling a 5B model's predictions here takes longer than its two steps
    for name in ("cold", "warm"):
        out = work / "runs" / name
        subprocess.run(["rm", "-rf", str(out)], check=True)
        entries = len(list(cache.rglob("*.safetensors")))
        run = measured([*finetune, "--out", str(out)], env, out / "checkpoints", args.limit)
        times = [run["steps"].get(s) for s in (1, 2)]
        report[name] = {
            "finished": run["finished"],
            "wall_seconds": run["seconds"],
            "peak_rss_gib": run["peak_rss_gib"],
            "step_2_seconds": round(times[1] - times[0], 1) if None not in times else None,
            "first_checkpoint_at_seconds": times[0],
            "encoder_cache_entries_added": len(list(cache.rglob("*.safetensors"))) - entries,
            "rss_vs_plan": round(run["peak_rss_gib"] / report["plan"]["total"], 3),
        }
        print(f"{name}:", report[name])
        if not run["finished"]:
            break  # the warm run needs the cold one's cache entries
    write_report(args.out, report)


if __name__ == "__main__":
    main()
