"""Normalization statistics for state and action: computed once, saved as JSON, applied in one place.

Mean and standard deviation come from scikit-learn's `StandardScaler` (fit incrementally, episode by
episode); the robust q01/q99 range from numpy quantiles over the same values. Which one is applied
is the spec's `normalization` field: `mean_std` (z-score) or `quantile` (q01..q99 mapped to -1..1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adapt.atomic import atomic_write_text
from adapt.errors import AdaptError

EPS = 1e-6


@dataclass
class FieldStats:
    """Per-dimension statistics of one vector field (state or action)."""

    mean: np.ndarray
    std: np.ndarray
    q01: np.ndarray
    q99: np.ndarray

    @classmethod
    def fit(cls, chunks: list[np.ndarray]) -> FieldStats:
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler()
        for chunk in chunks:
            scaler.partial_fit(chunk)
        values = np.concatenate(chunks)
        return cls(
            scaler.mean_, np.sqrt(scaler.var_), np.quantile(values, 0.01, axis=0), np.quantile(values, 0.99, axis=0)
        )

    def to_json(self) -> dict:
        return {k: getattr(self, k).astype(float).tolist() for k in ("mean", "std", "q01", "q99")}

    @classmethod
    def from_json(cls, raw: dict) -> FieldStats:
        return cls(**{k: np.asarray(raw[k], dtype=np.float64) for k in ("mean", "std", "q01", "q99")})


@dataclass
class NormStats:
    """Statistics of an embodiment's state and action, and the mode that applies them."""

    mode: str
    state: FieldStats | None
    action: FieldStats | None

    def normalize(self, values: np.ndarray, field: str) -> np.ndarray:
        stats = self._field(field)
        if self.mode == "quantile":
            return 2.0 * (values - stats.q01) / np.maximum(stats.q99 - stats.q01, EPS) - 1.0
        return (values - stats.mean) / np.maximum(stats.std, EPS)

    def unnormalize(self, values: np.ndarray, field: str) -> np.ndarray:
        stats = self._field(field)
        if self.mode == "quantile":
            return (values + 1.0) / 2.0 * np.maximum(stats.q99 - stats.q01, EPS) + stats.q01
        return values * np.maximum(stats.std, EPS) + stats.mean

    def save(self, path: Path) -> None:
        raw = {
            "mode": self.mode,
            "state": self.state and self.state.to_json(),
            "action": self.action and self.action.to_json(),
        }
        atomic_write_text(Path(path), json.dumps(raw, indent=2))

    @classmethod
    def load(cls, path: Path) -> NormStats:
        try:
            raw = json.loads(Path(path).read_text())
            return cls(raw["mode"], *(FieldStats.from_json(raw[f]) if raw[f] else None for f in ("state", "action")))
        except (OSError, KeyError, TypeError, ValueError) as error:
            raise AdaptError(f"{path}: not a valid statistics file ({error})") from None

    def _field(self, field: str) -> FieldStats:
        stats = getattr(self, field)
        if stats is None:
            raise AdaptError(f"no {field} statistics (video-only data)")
        return stats
