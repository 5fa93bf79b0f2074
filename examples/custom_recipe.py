"""A custom recipe in Python: the same API the `adapt` command uses.

Adapts a base model to a robot with a recipe built in code rather than read from `recipes/`: LoRA of
rank 8 on the attention projections only, new heads seeded from a donor embodiment of the base (the
Panda's hidden layers, matching gripper dimensions), both losses. Then it loads the adapter as a
policy and computes one action chunk.

    python examples/custom_recipe.py --data adapt-demo/ur5e_play --out runs/ur5e-custom

(`adapt demo` or `adapt data generate --robot ur5e --kind play --minutes 3 --out DIR` makes data.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import adapt
from adapt.policy import Policy


def custom_recipe(steps: int) -> adapt.Recipe:
    return adapt.Recipe(
        name="attention-r8-donor",
        description="LoRA r8 on attention only; new heads copied from the base's Panda heads.",
        data="play",
        lora=adapt.LoraSettings(rank=8, alpha=16, targets=["attention"]),
        init_heads="donor",
        donor="panda",
        steps=steps,
        batch_size=8,
        lr=1e-3,
        warmup_steps=min(20, steps // 2),
        checkpoint_every=max(steps // 2, 1),
    )


def main(argv: list[str] | None = None) -> np.ndarray:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="Base checkpoint folder (default: the bundled base).")
    parser.add_argument("--embodiment", default="ur5e", help="Spec name or file of the robot.")
    parser.add_argument("--data", required=True, help="Play dataset of that robot (LeRobot layout).")
    parser.add_argument("--out", type=Path, required=True, help="Run folder.")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)

    from adapt.demo import bundled_base

    base = args.base or bundled_base()
    adapter = adapt.finetune(base, args.embodiment, [args.data], custom_recipe(args.steps), args.out, overwrite=True)
    print(f"adapter: {adapter}")

    policy = Policy.load(adapter)  # the fast inference path, InferenceConfig's defaults
    observation = {c.name: np.zeros((c.height, c.width, 3), np.uint8) for c in policy.spec.cameras}
    observation["state"] = np.zeros(policy.spec.state_dim, np.float32)
    chunk = policy.act(observation)
    print(f"first action chunk {chunk.shape}: {np.round(chunk[0], 3)}")
    return chunk


if __name__ == "__main__":
    main()
