"""Validation loss of a LeRobot checkpoint on held-out episodes: when a peer's training has flattened.

Runs in the peers' environment (`benchmarks/peers/setup.sh`). The loss is the policy's own training loss as its
inference path sees it, on the same batches for every checkpoint (seeded order, noise and diffusion times):
ACT's L1 on the normalised action chunk from the prior's latent (what `select_action` decodes; the VAE's KL term
needs the posterior, which inference never has), Diffusion Policy's noise-prediction MSE. Prints one JSON line.

    python benchmarks/peers/validate.py --checkpoint RUN/checkpoints/000500/pretrained_model --data HELD_OUT
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from lerobot.datasets.factory import resolve_delta_timestamps
from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
from lerobot.policies.factory import get_policy_class, make_pre_post_processors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="held-out LeRobot dataset (never trained on)")
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    kind = json.loads((args.checkpoint / "config.json").read_text())["type"]
    policy = get_policy_class(kind).from_pretrained(str(args.checkpoint)).eval()
    cpu = {"device_processor": {"device": "cpu"}}
    preprocess, _ = make_pre_post_processors(
        policy.config, pretrained_path=str(args.checkpoint), preprocessor_overrides=cpu
    )
    repo = f"local/{args.data.name}"
    meta = LeRobotDatasetMetadata(repo, root=args.data)
    data = LeRobotDataset(
        repo, root=args.data, delta_timestamps=resolve_delta_timestamps(policy.config, meta), video_backend="pyav"
    )
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    losses = []
    with torch.inference_mode():
        for b in range(args.batches):
            picks = order[b * args.batch_size : (b + 1) * args.batch_size].tolist()
            batch = preprocess(torch.utils.data.default_collate([data[i] for i in picks]))
            torch.manual_seed(b)
            losses.append(float(loss(policy, kind, batch)))
    print(json.dumps({"checkpoint": str(args.checkpoint), "loss": sum(losses) / len(losses), "batches": len(losses)}))


def loss(policy, kind: str, batch: dict) -> torch.Tensor:
    if kind != "act":
        return policy.forward(batch)[0]
    batch = dict(batch, **{"observation.images": [batch[k] for k in policy.config.image_features]})
    predicted, _ = policy.model(batch)
    keep = ~batch["action_is_pad"].unsqueeze(-1)
    return (F.l1_loss(batch["action"], predicted, reduction="none") * keep).mean()


if __name__ == "__main__":
    main()
