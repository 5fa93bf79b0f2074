"""Task-text encoders. The built-in one needs no download: words are hashed into learned embeddings.

Any encoder with the same `forward(texts) -> (tokens, mask)` contract (a frozen T5 or CLIP text tower
projected to the model width) can take its place.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import zlib

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)
WORD = re.compile(r"[^\W_]+")
"""A run of letters or digits in any script (Latin, accented, Cyrillic, Arabic, CJK...): one word."""


class HashedTextEncoder(nn.Module):
    """Each lowercase word -> crc32 bucket -> embedding, plus a position embedding; padding is masked.

    Words are runs of letters or digits in any script (NFKC-normalised, so a composed and a decomposed accent
    are one word); a script written without spaces (Chinese, Japanese) makes one word per run. Text with no
    word at all (emoji, punctuation) conditions on nothing, with a warning."""

    def __init__(self, vocab: int, length: int, dim: int):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.words = nn.Embedding(vocab + 1, dim, padding_idx=0)
        self.position = nn.Parameter(torch.zeros(length, dim))
        nn.init.normal_(self.words.weight, std=0.02)

    def ids(self, text: str) -> list[int]:
        words = WORD.findall(unicodedata.normalize("NFKC", text).lower())[: self.length]
        if not words and text.strip():
            log.warning("task text %r has no letters or digits: the model is conditioned on no task", text[:80])
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
