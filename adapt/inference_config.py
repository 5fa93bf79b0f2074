"""Every speed/quality choice of inference, in a module without torch so that the CLI's options can take
their defaults from it and still answer `--help` at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InferenceConfig:
    """Every speed/quality choice of inference in one place; the defaults are the fast path."""

    steps: int = 3
    """Flow-matching Euler steps per chunk. On held-out Panda episodes the bundled base's open-loop action
    error was the same from 2 to 16 steps, within the spread between seeds (README, Policy)."""
    video_final_t: float = 0.6
    """Noise level the video branch stops at (0: fully denoised; actions are always fully denoised)."""
    guidance: float = 1.0
    """Classifier-free guidance of the video, dreamzero family (1: none; DreamZero serves at 5, which runs the
    DiT twice per step)."""
    merge_lora: bool = True
    """Fold LoRA into the backbone (no adapter overhead per step)."""
    cache_context: bool = True
    """Run the clean context through the backbone once per chunk, not once per step."""
    compile: bool = False
    """torch.compile the backbone's cached forward (pays off on long runs and GPUs)."""
    execute: int = 8
    """Actions of each chunk executed before replanning (receding horizon)."""
    blend: int = 4
    """Leading actions of a new chunk blended with the previous chunk's plan."""
    async_next: bool = False
    """Compute the next chunk in a background thread while the current one executes."""
    device: str = "cpu"
    seed: int = 0

    @classmethod
    def naive(cls, **overrides) -> InferenceConfig:
        """The slow reference: 16 steps, video fully denoised, LoRA unmerged, no context cache."""
        return cls(**{"steps": 16, "video_final_t": 0.0, "merge_lora": False, "cache_context": False, **overrides})
