"""The LightningModule that trains a World Action Model: pretraining and adaptation share it.

Pretraining first fits the frame tokenizer on reconstruction for `tokenizer_steps`, then calibrates
its latent scale and trains the rest on flow matching with the tokenizer frozen. Adaptation starts
with the tokenizer frozen (`tokenizer_steps=0`) and only the parameters its recipe left trainable.
"""

from __future__ import annotations

import lightning as L
import torch

from adapt.model.protocol import Mode, WorldModel

TOKENIZER_FRAMES = 48
"""Frames per embodiment and step that the tokenizer phase reconstructs."""


class WAMModule(L.LightningModule):
    def __init__(
        self,
        model: WorldModel,
        *,
        mode: Mode = "joint",
        lr: float = 3e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 50,
        tokenizer_steps: int = 0,
        video_weight: float = 1.0,
        action_weight: float = 1.0,
        video_every: int = 1,
        save_frozen: bool = True,
    ):
        """`save_frozen=False` (adaptation): checkpoints hold what trains and the buffers, not the frozen base
        weights a resumed run reads from the base again (a 5B base would write 11 GB per checkpoint)."""
        super().__init__()
        self.model, self.mode, self.video_every = model, mode, video_every
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.tokenizer_steps = tokenizer_steps
        self.weights = {"video": video_weight, "action": action_weight}
        if tokenizer_steps == 0:
            model.tokenizer.requires_grad_(False)
        self.save_frozen = self.strict_loading = save_frozen
        self._ddp_params_and_buffers_to_ignore = [  # streamed encoder weights: on the meta device, never trained
            name for name, p in self.named_parameters(remove_duplicate=False) if p.is_meta
        ]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if not self.save_frozen:
            frozen = {name for name, p in self.named_parameters(remove_duplicate=False) if not p.requires_grad}
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}

    def on_train_start(self) -> None:
        if self.global_step > self.tokenizer_steps:  # resumed after the tokenizer phase: keep it frozen
            self.model.tokenizer.requires_grad_(False)

    def training_step(self, batches: dict, batch_index: int):
        """`batches`: one collated window batch per embodiment (CombinedLoader)."""
        batches = {name: b for name, b in batches.items() if b is not None}
        if self.global_step < self.tokenizer_steps:
            return self._tokenizer_step(batches)
        if self.global_step == self.tokenizer_steps and self.tokenizer_steps:
            self._freeze_tokenizer(batches)
        mode = self.mode_at(self.global_step)
        kinds = {"joint": ["video", "action"], "video_only": ["video"], "action_only": ["action"]}[mode]
        totals = dict.fromkeys(kinds, 0.0)  # a loss this step does not compute is not logged as a zero
        loss = None
        for name, batch in batches.items():
            losses = self.model.loss(batch, mode)
            for key in kinds:
                totals[key] = totals[key] + losses[key].detach()
                self.log(f"{key}_loss/{name}", losses[key].detach(), batch_size=len(batch["task"]))
            weighted = self.weights["video"] * losses["video"] + self.weights["action"] * losses["action"]
            if weighted.requires_grad:
                loss = weighted if loss is None else loss + weighted
        for key, total in totals.items():
            self.log(f"{key}_loss", total, prog_bar=True, batch_size=1)
        if loss is not None:
            self.log("loss", loss.detach(), prog_bar=True, batch_size=1)
        return loss

    def mode_at(self, step: int) -> Mode:
        """The loss of optimizer step `step`: with `video_every` N > 1 a joint run computes the video loss on
        every N-th step only and trains the action pathway alone on the others (`action_only`: no future
        video tokens, ~2.4x cheaper a step on the CPU), spending more of a CPU budget on what acts.
        The video steps are the N-th, 2N-th, ... (step N-1, 2N-1, ...): some of them fall on the steps
        Lightning logs (every 10th, the 10th, 20th, ...), so the video loss stays in the curves."""
        if self.mode == "joint" and self.video_every > 1 and step % self.video_every != self.video_every - 1:
            return "action_only"
        return self.mode

    def _tokenizer_step(self, batches: dict) -> torch.Tensor:
        """Reconstruction of at most TOKENIZER_FRAMES frames per embodiment, drawn at random from the batch:
        the frames of one window are near-duplicates, and coding all of them (16 windows x 2 cameras x 6
        frames) made a tokenizer step cost more than a transformer step on a CPU."""
        loss = 0.0
        for batch in batches.values():
            frames = batch["frames"].flatten(0, 2)
            pick = torch.randperm(len(frames), device=frames.device)[:TOKENIZER_FRAMES]
            loss = loss + self.model.tokenizer.reconstruction_loss(frames[pick])
        self.log("tokenizer_loss", loss.detach(), prog_bar=True, batch_size=1)
        return loss

    def _freeze_tokenizer(self, batches: dict) -> None:
        frames = torch.cat([b["frames"].flatten(0, 2) for b in batches.values()])
        self.model.tokenizer.calibrate(frames)
        self.model.tokenizer.requires_grad_(False)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        total = max(self.trainer.max_steps, 1)
        warmup = min(self.warmup_steps, total // 4 + 1)

        def schedule(step: int) -> float:  # linear warmup, then cosine to 10%
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return 0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
