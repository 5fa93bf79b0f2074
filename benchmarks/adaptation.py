"""The toolkit's claim, measured: a pretrained base adapted few-shot to a new robot beats training from scratch.

Source: a Panda base (`--base`, default the bundled `models/base-small`). Target (`--target`): the UR5e,
another kinematic chain (6 joints, another look), by default `ur5e_osc`, driven like the Panda through
end-effector deltas so the action heads can be seeded from the Panda's (`ur5e`, acting in absolute joint
targets, asks a fresh head to learn a new action space too: 300 steps on 3 minutes of play left it 0/10 on
Lift, never within 5 cm of the cube, where `ur5e_osc` came within 5 cm in 4 of 20 episodes and lifted once).
Every condition trains for the same number of optimizer steps (`--steps`) on the target's play data:

- recipes `play-30min` (LoRA + fresh heads), `play-30min` with donor-initialised heads, `heads-only`,
  `full-finetune`, `action-only` (VLA-style: no video loss), and `scratch` (`adapt pretrain` on the
  same data: same architecture, random initialisation, every weight trained);
- 5, 10 and 30 minutes of play for `play-30min` and `scratch` (`--minutes`);
- video-only transfer: PickPlaceCan never occurs in UR5e play; `mixed` adds video-only UR5e
  PickPlaceCan demos (`--video-minutes`), and that task's progress is compared with `play-30min`'s on the
  same play (the only two conditions evaluated on PickPlaceCan);
- keeping the task through adaptation (training on play alone erases the base's Lift, even on the Panda
  itself): `mixed` with 5 minutes of video-only UR5e Lift demos; rehearsal, where 5 minutes of the base's own
  Panda Lift demos (with actions, through the Panda's frozen heads) train the shared LoRA beside the play;
  and both with donor-initialised heads;
- the same body learned from the task itself: `play-30min` and `scratch` on 5 minutes of UR5e Lift demos with
  actions instead of play (`*/lift-demos`), which tells whether the base helps a new body at all, apart from
  turning play into the task, and `play-30min` on them with donor-initialised heads (the UR5e acts in the
  Panda's end-effector deltas, so the Panda's heads already speak its action space);
- play in the task's scene with hindsight labels (`*-lift-hindsight`): 30 minutes of play with the Lift
  scene's one cube, each frame labelled with what the arm does there ("lift the red cube" during the try
  that picks it up), for `play-30min` and `scratch`: whether play carries the task once it happens where
  the task does and says which part of it is the task;
- whether play still helps once the task is shown: `play-30min` on 1 minute of UR5e Lift demos alone, and on
  the same minute beside the 30 minutes of Lift-scene hindsight play, drawn equally often (`balance`);
- how the play moves (`*-calm-tidy`, `*-calm`): the same 30 minutes of Lift-scene hindsight play, moving as a
  demonstration does (`calm`) and closing the fingers only to pick the cube up (`tidy`), for `play-30min` and
  `scratch`; and calm alone for `play-30min` (tidy alone is not a row: a probe lifted 1 of 30, README);
  and `play-30min` on the calm, tidy play trained from two more seeds (`*-seed1`, `*-seed2`; every other
  condition trains from seed 0), since two runs of the same condition lifted in 8 and in 1 of 30 episodes;
  likewise `play-30min/lift-demos` (fresh and donor-initialised heads) and `play-30min` on the (varied)
  Lift-scene hindsight play from seed 1;
- seeded heads on Lift-scene hindsight play (`play-30min-donor`, `heads-only-donor`; `-seed1`; untrained,
  zero-shot) and what might keep more of the base's success with them: calm, tidy play, a minute of Lift
  demos beside the play, and calm, tidy play that still misses first grasps on purpose and recovers
  (`*-retries`: the base retries after closing on nothing, the adapters on tidy play did not).

Metrics per condition: closed-loop success and progress (`--episodes` per task, 95 % Wilson and
bootstrap intervals), open-loop action MSE on held-out UR5e play, training wall time.

Resumable: data and runs live under `--work`; each condition's result is appended to the JSON as it
finishes (runs of other `--only` conditions side by side keep each other's rows), a rerun with the same
settings (and the same base weights) skips finished conditions and resumes an interrupted run from its
checkpoint (its training time then counts the attempts before, up to that checkpoint); other settings start
afresh, except that scratch's results survive a change of base of the same size (scratch never loads the
base's weights).
Outputs: `benchmarks/results/adaptation.json`, `adaptation.png` (success and progress per condition)
and `adaptation_minutes.png` (success versus minutes of target data).

Run: `.venv/bin/python benchmarks/adaptation.py` (about 13 hours on 2 CPU cores: ~15-27 minutes of training
and 7-17 of evaluation per condition; size it with --minutes/--steps/--episodes), `--quick` for a smoke run
(tiny data, a few steps, 2 episodes). A broad base's claims (play adapts it to the UR5e, Lift and Stack;
video-only demos of an unseen task transfer, the UR5e's own or another arm's; `claim_conditions`):
`--conditions claims --base runs/base-broad/model --out benchmarks/results/base-broad`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from report import machine, success_difference, write_report

from adapt.data import LeRobotDataset
from adapt.evaluate import evaluate_open_loop
from adapt.model.checkpoint import fingerprint
from adapt.policy import Policy
from adapt.predictor import ChunkPredictor
from adapt.recipe import load_recipe
from adapt.resources import bundled_dir
from adapt.sim import generate
from adapt.sim.closed_loop import evaluate_closed_loop
from adapt.train.finetune import finetune
from adapt.train.fit import checkpoint_training_time
from adapt.train.options import PretrainConfig, TrainOptions
from adapt.train.pretrain import pretrain

TARGET = "ur5e_osc"
"""The default target robot (`--target`)."""
UNSEEN_TASK = "PickPlaceCan"
SOURCE = "panda"
"""The base's robot, whose Lift demos rehearsal replays."""
TASK_DEMO_MINUTES = 5.0
"""Minutes of target Lift demos (video-only, or with actions for `*/lift-demos`) and of source Lift demos for
rehearsal; at most --video-minutes."""
PLAY_OPTIONS = ("hindsight", "scene", "calm", "tidy", "retries")
"""A condition's keys that say how its play was generated (`adapt.sim.generate`'s options of the same names)."""
HEADLINE = ("play-30min", "scratch")
"""The claim's two sides, compared over minutes of data and on task demos."""
SEEDED_PLAY = ("play-30min-donor", "heads-only-donor")
"""Seeded heads on Lift-scene play: with LoRA, and with the backbone frozen (the base's behaviour kept whole)."""
RESULTS = Path(__file__).parent / "results"


def conditions(minutes: list[float], steps: int) -> list[dict]:
    """Every condition: name, recipe (or `scratch`), minutes of play (None: task demos instead), extra data;
    `steps` each unless a row says otherwise.

    The headline comparison (LoRA + new heads against scratch on the most play) comes first, so a run stopped
    early has measured the claim; the sweeps over recipes and minutes follow."""
    most = max(minutes)
    lift_play = {"hindsight": True, "scene": "Lift"}
    fewer = sorted(minutes, reverse=True)[1:]
    rows = [{"name": f"{r}/{most:g}min", "recipe": r, "minutes": most} for r in HEADLINE]
    rows += [
        {"name": f"{r}/{most:g}min", "recipe": r, "minutes": most}
        for r in ("play-30min-donor", "heads-only", "full-finetune", "action-only")
    ]
    rows += [{"name": f"mixed+video/{most:g}min", "recipe": "mixed", "minutes": most, "video": UNSEEN_TASK}]
    rows += [
        {"name": f"mixed+lift-video/{most:g}min", "recipe": "mixed", "minutes": most, "video": "Lift"},
        {"name": f"play-30min+rehearsal/{most:g}min", "recipe": "play-30min", "minutes": most, "rehearsal": True},
        {
            "name": f"mixed-donor+lift-video+rehearsal/{most:g}min",
            "recipe": "mixed-donor",
            "minutes": most,
            "video": "Lift",
            "rehearsal": True,
        },
    ]
    demo_recipes = (*HEADLINE, "play-30min-donor")
    rows += [{"name": f"{r}/lift-demos", "recipe": r, "minutes": None, "demos": True} for r in demo_recipes]
    rows += [{"name": f"{r}/{most:g}min-lift-hindsight", "recipe": r, "minutes": most, **lift_play} for r in HEADLINE]
    demo = min(1.0, most)  # a minute of demos (less in a --quick run)
    one = {"recipe": "play-30min", "demos": True, "demo_minutes": demo}
    rows += [
        {"name": f"play-30min/{demo:g}min-lift-demos", "minutes": None, **one},
        {"name": f"play-30min-donor/{demo:g}min-lift-demos", "minutes": None, **one, "recipe": "play-30min-donor"},
        {  # redrawn: whether the minute of demos beats the peers should not rest on one training run
            "name": f"play-30min-donor/{demo:g}min-lift-demos-seed1",
            "minutes": None,
            **one,
            "recipe": "play-30min-donor",
            "train_seed": 1,
        },
        {
            "name": f"play-30min/{most:g}min-lift-hindsight+{demo:g}min-lift-demos",
            "minutes": most,
            **lift_play,
            **one,
            "balance": True,
        },
    ]
    calm_tidy = {**lift_play, "calm": True, "tidy": True}
    rows += [
        {"name": f"{r}/{most:g}min-lift-hindsight-calm-tidy", "recipe": r, "minutes": most, **calm_tidy}
        for r in HEADLINE
    ]
    calm = {**lift_play, "calm": True}
    rows += [{"name": f"play-30min/{most:g}min-lift-hindsight-calm", "recipe": "play-30min", "minutes": most, **calm}]
    rows += [  # the same training from other seeds: how much one run's success owes to its draw
        {"name": f"play-30min/{most:g}min-lift-hindsight-calm-tidy-seed{seed}", "recipe": "play-30min", "minutes": most}
        | calm_tidy
        | {"train_seed": seed}
        for seed in (1, 2)
    ]
    repeat = {"recipe": "play-30min", "minutes": None, "demos": True, "train_seed": 1}
    rows += [{"name": "play-30min/lift-demos-seed1", **repeat}]  # the one margin that excluded 0, redrawn
    rows += [{"name": "play-30min-donor/lift-demos-seed1", **repeat, "recipe": "play-30min-donor"}]
    seeded_play = {"minutes": most, **lift_play}  # does play carry the task once the heads start from the base's?
    rows += [{"name": f"{r}/{most:g}min-lift-hindsight", "recipe": r, **seeded_play} for r in SEEDED_PLAY]
    seed1 = {"recipe": "play-30min-donor", **seeded_play, "train_seed": 1}
    rows += [{"name": f"play-30min-donor/{most:g}min-lift-hindsight-seed1", **seed1}]
    # the seeded heads as copied: one step at learning rate 0 writes an adapter with the UR5e data's statistics
    untrained = {"recipe": "play-30min-donor", "minutes": None, "demos": True, "steps": 1, "lr": 0.0}
    rows += [{"name": "play-30min-donor/lift-demos-zero-shot", **untrained}]
    varied = {"recipe": "play-30min", "minutes": most, **lift_play, "train_seed": 1}
    rows += [{"name": f"play-30min/{most:g}min-lift-hindsight-seed1", **varied}]  # calm, tidy play's reference
    # retention levers for the seeded heads on Lift-scene play: calm, tidy play; a minute of demos beside the play
    seeded = {**seeded_play, "recipe": "play-30min-donor"}
    rows += [{"name": f"play-30min-donor/{most:g}min-lift-hindsight-calm-tidy", **seeded, **calm_tidy}]
    rows += [
        {"name": f"play-30min-donor/{most:g}min-lift-hindsight-calm-tidy-seed1", **seeded, **calm_tidy, "train_seed": 1}
    ]
    beside = {**one, **seeded, "balance": True}
    rows += [{"name": f"play-30min-donor/{most:g}min-lift-hindsight+{demo:g}min-lift-demos", **beside}]
    longer = {**seeded, **calm_tidy, "steps": 2 * steps}  # is the seeded adapter on play short of updates?
    rows += [{"name": f"play-30min-donor/{most:g}min-lift-hindsight-calm-tidy-{2 * steps}steps", **longer}]
    retried = {**seeded, **calm_tidy, "retries": True}  # does play that recovers from misses teach to retry?
    rows += [{"name": f"play-30min-donor/{most:g}min-lift-hindsight-calm-tidy-retries", **retried}]
    rows += [{"name": f"{r}/{m:g}min", "recipe": r, "minutes": m} for m in fewer for r in HEADLINE]
    compared = (f"play-30min/{most:g}min", f"mixed+video/{most:g}min")  # the unseen task, with and without
    for row in rows:  # the video-only demos, on the same play
        row["tasks"] = ["Lift", UNSEEN_TASK] if row["name"] in compared else ["Lift"]
    return rows


def recipe(name: str):
    """A bundled recipe, or `<recipe>-donor`: that recipe with donor-initialised heads."""
    if name.endswith("-donor"):
        return load_recipe(name.removesuffix("-donor")).model_copy(update={"name": name, "init_heads": "donor"})
    return load_recipe(name)


def dataset(work: Path, target: str, kind: str, minutes: float, seed: int, **kwargs) -> Path:
    """Simulated once under `work` (a folder that exists is complete: the writer renames it into place)."""
    task = f"_{kwargs['task']}" if kind == "demo" else ""
    video = "_video" if kwargs.get("video_only") else ""
    scene = f"_{kwargs['scene']}" if kwargs.get("scene") else ""
    labels = "_hindsight" if kwargs.get("hindsight") else ""
    manner = "".join(f"_{k}" for k in ("calm", "tidy", "retries") if kwargs.get(k))
    path = work / "data" / f"{target}_{kind}{task}_{minutes:g}min_seed{seed}{video}{scene}{labels}{manner}"
    if not (path / "meta" / "info.json").is_file():
        print(f"simulating {minutes:g} min of {target} {kind} -> {path}")
        generate(target, kind, path, minutes=minutes, seed=seed, progress=True, **kwargs)
    return path


OTHER_ARM = "jaco"
"""The arm whose video-only PickPlaceCan demos stand for another robot's (`claims`): in no base's pretraining."""


def claim_conditions(minutes: list[float], steps: int) -> list[dict]:
    """A broad base's claims (`--conditions claims`), on the most minutes of varied UR5e play (30: the Stack
    scene, both cubes, hindsight labels, no task demos; PickPlaceCan never occurs in it), `steps` each:

    - play adapts the base to the new robot: Lift and Stack after `play-30min` (fresh and donor-seeded heads)
      against `scratch` on the same play;
    - video-only demos of the unseen task transfer: PickPlaceCan after `mixed` with `--video-minutes` (15) of
      video-only PickPlaceCan demos, of the UR5e itself or of another arm (`OTHER_ARM`), against `play-30min`
      on the same play without them;
    - breadth pays: the same rows for a base of the same size pretrained as long on Lift alone (`--base`)."""
    most = max(minutes)
    play = {"minutes": most, "hindsight": True}
    both, name = ["Lift", "Stack"], f"{most:g}min-hindsight"
    video = {"recipe": "mixed", **play, "video": UNSEEN_TASK, "tasks": ["Lift", UNSEEN_TASK]}
    return [
        {"name": f"play-30min/{name}", "recipe": "play-30min", **play, "tasks": [*both, UNSEEN_TASK]},
        {"name": f"play-30min-donor/{name}", "recipe": "play-30min-donor", **play, "tasks": both},
        {"name": f"scratch/{name}", "recipe": "scratch", **play, "tasks": both},
        {"name": f"mixed+video/{name}", **video},
        {"name": f"mixed+{OTHER_ARM}-video/{name}", **video, "video_robot": OTHER_ARM},
    ]


def bimanual_conditions(minutes: list[float], steps: int) -> list[dict]:
    """A two-armed target (`--conditions bimanual --target bimanual_panda`, or `baxter_osc`): the one-armed Panda
    base adapted with donor heads (each arm seeded from the Panda's one), against `scratch` on the same data, `steps`
    each, evaluated on TwoArmLift: 5 minutes of TwoArmLift demos (the task shown; the adapter from a second training
    seed too), then the most minutes of two-armed play with hindsight labels (the seed's case: a new bimanual robot
    from its play)."""
    most = max(minutes)
    demos = {"minutes": None, "demos": True, "demo_task": "TwoArmLift", "tasks": ["TwoArmLift"]}
    play = {"minutes": most, "hindsight": True, "tasks": ["TwoArmLift"]}
    return [
        {"name": "play-30min-donor/twoarmlift-demos", "recipe": "play-30min-donor", **demos},
        {"name": "scratch/twoarmlift-demos", "recipe": "scratch", **demos},
        {  # redrawn: whether the adapter beats scratch should not rest on one training run
            "name": "play-30min-donor/twoarmlift-demos-seed1",
            "recipe": "play-30min-donor",
            **demos,
            "train_seed": 1,
        },
        {"name": f"play-30min-donor/{most:g}min-hindsight", "recipe": "play-30min-donor", **play},
        {"name": f"scratch/{most:g}min-hindsight", "recipe": "scratch", **play},
    ]


CONDITION_SETS = {"lift-base": conditions, "claims": claim_conditions, "bimanual": bimanual_conditions}
"""`--conditions`: the bundled Lift base's study, a broad base's claims, or a two-armed target."""
HELD_OUT_MINUTES = 5.0
"""At most this much held-out target play scores the open-loop action error."""


def run_condition(row: dict, args: argparse.Namespace, held_out: Path, runs: Path) -> dict:
    """Train and evaluate one condition in `runs/<name>` (a rerun resumes its checkpoint there)."""
    work = args.work
    task_minutes = min(TASK_DEMO_MINUTES, args.video_minutes)
    data = []
    if row["minutes"]:
        play = {k: row[k] for k in PLAY_OPTIONS if k in row}
        data.append(str(dataset(work, args.target, "play", row["minutes"], seed=1, **play)))
    if row.get("demos"):
        minutes = min(row.get("demo_minutes", task_minutes), task_minutes)
        data.append(str(dataset(work, args.target, "demo", minutes, seed=4, task=row.get("demo_task", "Lift"))))
    if row.get("video") == UNSEEN_TASK:
        robot = row.get("video_robot", args.target)
        video = dataset(work, robot, "demo", args.video_minutes, seed=3, task=UNSEEN_TASK, video_only=True)
        data.append(f"{video}={robot}")
    if row.get("video") == "Lift":
        video = dataset(work, args.target, "demo", task_minutes, seed=4, task="Lift", video_only=True)
        data.append(f"{video}={args.target}")
    if row.get("rehearsal"):
        data.append(f"{dataset(work, SOURCE, 'demo', task_minutes, seed=21, task='Lift')}={SOURCE}")
    run = runs / row["name"].replace("/", "_")
    steps = row.get("steps", args.steps)
    every = max(steps // 5, 1)
    options = TrainOptions(
        steps=steps,
        checkpoint_every=every,
        seed=row.get("train_seed", 0),
        progress=False,
        balance=row.get("balance", False),
    )
    earlier = checkpoint_training_time(run / "checkpoints")  # a resumed run: the training before it stopped
    start = time.perf_counter()
    if row["recipe"] == "scratch":
        size = row["size"]
        tokenizer_steps = min(400, args.steps // 4)
        config = PretrainConfig(size=size, tokenizer_steps=tokenizer_steps)
        policy_path = pretrain(data, run, config, options=options, overwrite=True)
    else:
        adapt_recipe = recipe(row["recipe"])
        if "lr" in row:
            adapt_recipe = adapt_recipe.model_copy(update={"lr": row["lr"]})
        policy_path = finetune(args.base, args.target, data, adapt_recipe, run, options=options, overwrite=True)
    train_s = time.perf_counter() - start + earlier
    return dict(row, train_wall_s=train_s) | evaluate_condition(row, args, held_out, policy_path, run)


def trained_policy(row: dict, run: Path) -> Path:
    """Where `run_condition` left a condition's policy: scratch's model, an adaptation's adapter."""
    return run / ("model" if row["recipe"] == "scratch" else "adapter")


def evaluate_condition(row: dict, args: argparse.Namespace, held_out: Path, policy_path: Path, run: Path) -> dict:
    """A trained condition's closed-loop results on each of its tasks and its open-loop error on held-out play."""
    result = {}
    predictor = ChunkPredictor.load(policy_path, args.target)
    for task in row["tasks"]:
        report = evaluate_closed_loop(Policy(predictor), task, args.episodes, run / f"eval_{task}", seed=args.eval_seed)
        result[task] = {
            "success_rate": report.success_rate,
            "success_ci95": list(report.success_interval()),
            "mean_progress": report.mean_progress,
            "progress_ci95": list(report.progress_interval()),
        }
    held_out_data = LeRobotDataset(held_out, predictor.spec)
    result["open_loop"] = evaluate_open_loop(predictor, held_out_data, run / "eval_open_loop")
    return result


BASE_SETTINGS = ("base", "base_fingerprint")


def reusable(previous: dict, settings: dict, size: str) -> list[dict]:
    """The finished results a run with `settings` keeps: all of them when the settings are the same; when only
    the base changed, those of `scratch` at the base's model size (scratch never loads the base's weights, and
    each scratch condition costs as much CPU as an adaptation)."""
    old = previous.get("settings")
    if old is None:
        return []
    old = {"conditions": "lift-base", **old}  # results written before there were other condition sets
    if any(old.get(k) != v for k, v in settings.items() if k not in BASE_SETTINGS):
        return []
    if old["base_fingerprint"] == settings["base_fingerprint"]:  # the same weights, wherever the checkout is
        return previous["results"]
    return [r for r in previous["results"] if r["recipe"] == "scratch" and r.get("size") == size]


def plot(results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [r["name"] for r in results]
    metrics = (("success_rate", "success_ci95"), ("mean_progress", "progress_ci95"))
    task = results[0]["tasks"][0]  # every condition of a set is evaluated on its first task
    for ax, (metric, ci) in zip(axes, metrics, strict=True):
        values = [r[task][metric] for r in results]
        low = [v - r[task][ci][0] for v, r in zip(values, results, strict=True)]
        errors = [low, [r[task][ci][1] - v for v, r in zip(values, results, strict=True)]]
        ax.bar(range(len(names)), values, yerr=errors, capsize=3, color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{task} {metric.replace('_', ' ')} (95% CI)")
    fig.tight_layout()
    fig.savefig(out / "adaptation.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in HEADLINE:
        curve = (r for r in results if r["recipe"] == method and r["minutes"] and not r.get("hindsight"))
        rows = sorted(curve, key=lambda r: r["minutes"])
        if rows:
            x = [r["minutes"] for r in rows]
            y = [r[task]["success_rate"] for r in rows]
            low = [v - r[task]["success_ci95"][0] for v, r in zip(y, rows, strict=True)]
            high = [r[task]["success_ci95"][1] - v for v, r in zip(y, rows, strict=True)]
            ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=method)
    ax.set_xlabel("minutes of target play data")
    ax.set_ylabel(f"{task} success (95% CI)")
    ax.set_ylim(0, 1)
    if ax.lines:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "adaptation_minutes.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=bundled_dir("models") / "base-small")
    parser.add_argument("--target", default=TARGET, help="the robot adapted to (a bundled spec name)")
    parser.add_argument("--minutes", type=float, nargs="+", default=[5.0, 10.0, 30.0])
    parser.add_argument("--video-minutes", type=float, default=15.0)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--eval-seed", type=int, default=5000)
    parser.add_argument("--work", type=Path, default=Path("runs/adaptation"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="0.2 min of data, 4 steps, 2 episodes")
    parser.add_argument(
        "--conditions",
        choices=sorted(CONDITION_SETS),
        default="lift-base",
        help="lift-base: the bundled base's study (default); claims: a broad base's claims (write them to another"
        " --out, e.g. benchmarks/results/base-broad)",
    )
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="run these conditions only, in this order (the others are kept)"
    )
    parser.add_argument(
        "--reevaluate",
        nargs="+",
        metavar="NAME",
        default=[],
        help="evaluate these finished conditions again from their trained runs, keeping their training figures"
        " (after a change to the closed loop or its success check)",
    )
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.video_minutes, args.steps, args.episodes = [0.2], 0.2, 4, 2
        args.work, args.out = args.work.with_name(args.work.name + "-quick"), args.out / "quick"
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.out / "adaptation.json"
    ignored = ("out", "work", "only", "reevaluate")
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in ignored}
    # A base rebuilt at the same path must not reuse the results of the old one.
    settings["base_fingerprint"] = fingerprint(args.base)
    previous = json.loads(path.read_text()) if path.is_file() else {}
    size = json.loads((args.base / "config.json").read_text())["model"]["size"]
    results = reusable(previous, settings, size)
    # Runs (and their checkpoints) are kept per settings, so other settings never resume a stale run.
    runs = args.work / "runs" / hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    held_out = dataset(args.work, args.target, "play", min(*args.minutes, HELD_OUT_MINUTES), seed=2)
    rows = CONDITION_SETS[args.conditions](args.minutes, args.steps)
    order = [row["name"] for row in rows]
    retired = [r["name"] for r in results if r["name"] not in order]
    if retired:  # a condition whose data or definition changed since: its numbers no longer describe it
        print(f"dropping the results of conditions this benchmark no longer has: {', '.join(retired)}")
        results = [r for r in results if r["name"] in order]
    unknown = set(args.only or []) - set(order)
    if unknown:
        parser.error(f"unknown conditions {sorted(unknown)}; the conditions are {order}")
    if args.only:
        rows = sorted((row for row in rows if row["name"] in args.only), key=lambda row: args.only.index(row["name"]))

    def save(results: list[dict]) -> list[dict]:
        """The results with those another run wrote meanwhile, written and plotted (so a stopped run keeps them)."""
        results = with_others(path, settings, size, results, order)
        write_report(path, {"machine": machine(), "settings": settings, "results": results})
        plot(results, args.out)
        return results

    unknown = set(args.reevaluate) - {r["name"] for r in results}
    if unknown:
        parser.error(f"--reevaluate: no finished results named {sorted(unknown)}")
    for name in args.reevaluate:
        row = next(r for r in results if r["name"] == name)
        run = runs / name.replace("/", "_")
        policy = trained_policy(row, run)
        if not policy.is_dir():
            parser.error(f"--reevaluate {name}: no trained policy at {policy} (another checkout's runs?)")
        print(f"{name}: evaluating again from {policy}")
        fresh = evaluate_condition(row, args, held_out, policy, run)
        results = save([r | fresh if r["name"] == name else r for r in results])
    if args.reevaluate and not args.only:  # nothing is trained unless asked for too
        rows = []
    for row in rows:
        if row["recipe"] == "scratch":
            row["size"] = size  # scratch takes the base's architecture, never its weights
        if any(r["name"] == row["name"] for r in results):
            print(f"{row['name']}: done earlier, skipped")
            continue
        print(f"{row['name']}: training {row.get('steps', args.steps)} steps")
        result = run_condition(row, args, held_out, runs)
        results = sorted([*results, result], key=lambda r: order.index(r["name"]))  # reused ones came first
        task = row["tasks"][0]
        done = result[task]
        print(f"{row['name']}: {task} success {done['success_rate']:.2f}, progress {done['mean_progress']:.2f}")
        results = save(results)
    print(table(results))


def with_others(path: Path, settings: dict, size: str, results: list[dict], order: list[str]) -> list[dict]:
    """`results` and the rows another run with the same settings (other `--only` conditions, side by side) wrote
    to `path` since this one started, so that neither run's write drops the other's rows."""
    written = reusable(json.loads(path.read_text()), settings, size) if path.is_file() else []
    mine = {r["name"] for r in results}
    others = [r for r in written if r["name"] not in mine and r["name"] in order]
    return sorted([*results, *others], key=lambda r: order.index(r["name"]))


def margin_over_scratch(row: dict, results: list[dict]) -> tuple[float, float, float] | None:
    """Success on the row's first task minus that of scratch on the same target data and steps, with a 95 %
    interval (Newcombe's hybrid score method: the two Wilson intervals combined); None for scratch itself or
    without a scratch result."""
    same = (
        "minutes",
        "demos",
        "demo_minutes",
        "demo_task",
        "steps",
        *PLAY_OPTIONS,
    )  # the same data and number of updates
    scratch = next((r for r in results if r["recipe"] == "scratch" and all(r.get(k) == row.get(k) for k in same)), None)
    if scratch is None or row["recipe"] == "scratch":
        return None
    task = row["tasks"][0]
    return success_difference(row[task], scratch[task])


def table(results: list[dict]) -> str:
    """The report's markdown table: the first task against scratch, then each other task evaluated (success,
    progress)."""
    task = results[0]["tasks"][0] if results else "Lift"
    others = [t for t in ("Stack", UNSEEN_TASK) if any(t in r for r in results)]
    lines = [
        f"| condition | {task} success (95% CI) | minus scratch's (95% CI) | {task} progress (95% CI) "
        + "".join(f"| {t} success (95% CI), progress " for t in others)
        + "| action MSE | train min |",
        "|---|---|---|---|" + "---|" * len(others) + "---|---|",
    ]
    for r in results:
        lift, mse = r[task], r["open_loop"]["action_mse"]
        margin = margin_over_scratch(r, results)
        versus = "-" if margin is None else f"{margin[0]:+.2f} ({margin[1]:+.2f} to {margin[2]:+.2f})"
        cells = [
            f"{r[t]['success_rate']:.2f} ({r[t]['success_ci95'][0]:.2f}-{r[t]['success_ci95'][1]:.2f}),"
            f" {r[t]['mean_progress']:.2f}"
            if t in r
            else "-"
            for t in others
        ]
        lines.append(
            f"| {r['name']} | {lift['success_rate']:.2f} ({lift['success_ci95'][0]:.2f}-{lift['success_ci95'][1]:.2f}) "
            f"| {versus} | {lift['mean_progress']:.2f} ({lift['progress_ci95'][0]:.2f}-{lift['progress_ci95'][1]:.2f}) "
            + "".join(f"| {c} " for c in cells)
            + f"| {mse:.3f} | {r['train_wall_s'] / 60:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
