"""Task-text encoders. The built-in one needs no download: words are hashed into learned embeddings.

Any encoder with the same `forward(texts) -> (tokens, mask)` contract (a frozen T5 or CLIP text tower
projected to the model width) can take its place.
"""

from __future__ import annotations

import re
import zlib

import torch
from torch import Tensor, nn


class HashedTextEncoder(nn.Module):
    """Each lowercase word -> crc32 bucket -> embedding, plus a position embedding; padding is masked."""

    def __init__(self, vocab: int, length: int, dim: int):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.words = nn.Embedding(vocab + 1, dim, padding_idx=0)
        self.position = nn.Parameter(torch.zeros(length, dim))
        nn.init.normal_(self.words.weight, std=0.02)

    def ids(self, text: str) -> list[int]:
        words = re.findall(r"[a-z0-9]+", text.lower())[: self.length]
        return [zlib.crc32(w.encode()) % self.vocab + 1 for w in words] or [0]

    def forward(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """(tokens (B, L, D), mask (B, L) True where a word is)."""
        ids = torch.zeros(len(texts), self.length, dtype=torch.long, device=self.position.device)
        for row, text in enumerate(texts):
            words = self.ids(text)
            ids[row, : len(words)] = torch.tensor(words)
        mask = ids > 0
        mask[:, 0] = True  # an empty task still has one (padding) token to attend to
        return self.words(ids) + self.position, mask
