"""Can the cube's place be read from what the model sees? A linear probe of the Lift cube's x/y relative to
the gripper (robosuite, scenes dressed as `adapt eval` dresses them, the robot at its start pose) from
the first frame of each camera: the bundled base's frozen tokenizer latents, and raw 64 px pixels.

If the latents carry the position (high held-out R2, centimetre errors) and the policy still misses the
cube, the gap is in the backbone and the action head, not in the observation.

Run: `.venv/bin/python benchmarks/localisation_probe.py` (about a minute); results in
`benchmarks/results/localisation_probe.json`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from report import machine, write_report
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import train_test_split

from adapt.data.resize import resize_frames
from adapt.model import load_model
from adapt.sim.env import SimEnv, controller_for


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path(__file__).parents[1] / "models" / "base-small")
    parser.add_argument("--scenes", type=int, default=240)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "localisation_probe.json")
    args = parser.parse_args(argv)
    model = load_model(args.model).eval()
    spec = model.specs["panda"]
    size = (model.config.image_size,) * 2
    latents = {c.name: [] for c in spec.cameras}
    pixels = {c.name: [] for c in spec.cameras}
    targets = []
    with SimEnv(spec, "Lift", 0, controller=controller_for(spec)) as sim, torch.no_grad():
        for i in range(args.scenes):
            sim.reset(np.random.default_rng(5000 + i), randomize=True)
            frames = sim.render()
            targets.append(sim.position(sim.things[0])[:2] - sim.eef()[0][:2])
            for camera in spec.cameras:
                frame = resize_frames(frames[camera.name][None], size)
                pixels[camera.name].append(frame.reshape(-1).astype(np.float32) / 255)
                latents[camera.name].append(
                    model.latents(torch.from_numpy(frame).permute(0, 3, 1, 2)[None, None]).flatten().numpy()
                )
    y = np.array(targets)
    results = {"target_std_m": y.std(0).tolist(), "probes": []}
    print(f"cube x/y relative to the gripper over {args.scenes} scenes: std {np.round(y.std(0), 3)} m")
    for name, features in (("tokenizer latents", latents), ("64 px pixels", pixels)):
        for camera, rows in features.items():
            x_train, x_test, y_train, y_test = train_test_split(np.array(rows), y, test_size=0.25, random_state=0)
            probe = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x_train, y_train)
            error = np.abs(probe.predict(x_test) - y_test).mean(0)
            r2 = probe.score(x_test, y_test)
            results["probes"].append({"features": name, "camera": camera, "r2": r2, "abs_error_m": error.tolist()})
            print(f"{name:18s} {camera:20s} held-out R2 {r2:.2f}, mean abs error x/y {np.round(error, 3)} m")
    write_report(args.out, {"machine": machine("cpu", model=str(args.model)), **results})
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
