"""DreamZero's frozen encoders read from the checkpoint while they run, and dropped after.

A released checkpoint holds umT5-XXL (5.7 B parameters, 10.6 GiB in bf16) beside the DiT (5.6 B for
dreamzero-5b): both resident do not fit a 24 GiB machine, and in adaptation the encoders' outputs come
from the encoder cache anyway (`adapt.model.dreamzero.encoder_cache`), so they have no reason to stay in
memory. `load` therefore leaves the encoders' parameters on the meta device and gives them a
`CheckpointWeights`; each encoder call reads what it needs from the safetensors files just before it runs
and returns it to the meta device afterwards. The VAE and CLIP are read whole for a call; umT5 one block
at a time (its token embedding, 1.05 B parameters, is the largest piece), so a text-cache miss costs the
DiT's memory plus one piece, not plus 11 GiB. On a CPU the pieces are read in float32 whatever the model's
dtype: on the project's 2-core CPU (AVX2, no bf16 units) one of Wan's 3D convolutions ran 155x slower in bf16
than in float32 and a 3072-wide linear layer 5x; on a GPU they keep the model's dtype.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor, nn

from adapt.model.dreamzero.encoders import PREFIX, encoder_state_dict


class CheckpointWeights:
    """Where each encoder parameter lies in a checkpoint's files: our name -> (file, DreamZero key). A fused
    CLIP `to_qkv` feeds three of our names from one key (`encoder_state_dict` splits it)."""

    def __init__(self, sources: dict[str, tuple[Path, str]]):
        self.sources = sources
        self.reads = 0
        """Tensors read so far (tests and benchmarks count them)."""

    def read(self, names: list[str]) -> dict[str, Tensor]:
        """Our names -> their tensors, each checkpoint key read once and each file opened once."""
        wanted: dict[Path, set[str]] = {}
        for name in names:
            file, key = self.sources[name]
            wanted.setdefault(file, set()).add(key)
        theirs = {}
        for file, keys in wanted.items():
            with safe_open(str(file), framework="pt") as f:
                theirs.update({key: f.get_tensor(key) for key in sorted(keys)})
        self.reads += len(theirs)
        ours = encoder_state_dict(theirs)
        return {name: ours[name] for name in names}


BY_PIECE = "text_encoder"
"""The encoder read a piece at a time (umT5); the VAE and CLIP are read whole for a call."""


def pieces(encoders: nn.Module) -> list[nn.Module]:
    """Everything read at one time: the VAE, CLIP, and each piece of umT5 (what `adapt plan` sizes)."""
    return [encoders.vae, encoders.image_encoder, *units(getattr(encoders, BY_PIECE), BY_PIECE).values()]


def units(module: nn.Module, prefix: str) -> dict[str, nn.Module]:
    """The pieces `module` is read in: each entry of a block list, and otherwise the outermost submodules
    that hold parameters of their own (umT5's embedding, final norm; CLIP's embeddings, norms). A module
    reached twice (umT5's embedding is also `encoder.embed_tokens`) is one piece."""
    found: dict[str, nn.Module] = {}
    seen: set[int] = set()

    def visit(name: str, m: nn.Module, in_list: bool = False) -> None:
        if id(m) in seen or not any(True for _ in m.parameters()):
            return
        seen.add(id(m))
        if in_list or any(p is not None for p in m._parameters.values()):
            found[name] = m
            return
        for child_name, child in m.named_children():
            visit(f"{name}.{child_name}", child, isinstance(m, nn.ModuleList))

    visit(prefix, module)
    return found


class StreamedEncoders:
    """Reads the encoders' pieces into place for a call and drops them after (see the module docstring)."""

    def __init__(self, encoders: nn.Module, weights: CheckpointWeights):
        self.encoders = encoders
        self.weights = weights

    def around(self, part: str) -> AbstractContextManager:
        """`part`'s weights in place for one call: umT5 a piece at a time, the others whole."""
        return self.streamed(part) if part == BY_PIECE else self.resident(part)

    @contextmanager
    def resident(self, part: str) -> Iterator[None]:
        """`part` ("vae", "image_encoder") read whole for the duration of the block."""
        module = getattr(self.encoders, part)
        self._read(module, part)
        try:
            yield
        finally:
            drop(module, self.dtype)

    @contextmanager
    def streamed(self, part: str) -> Iterator[None]:
        """`part` ("text_encoder") read one piece at a time, as each piece's forward begins, and dropped as it
        ends."""
        handles = []
        for name, unit in units(getattr(self.encoders, part), part).items():
            handles.append(unit.register_forward_pre_hook(lambda m, _, name=name: self._read(m, name)))
            handles.append(unit.register_forward_hook(lambda m, *_: drop(m, self.dtype)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            drop(getattr(self.encoders, part), self.dtype)

    @property
    def dtype(self) -> torch.dtype:
        """The model's dtype (the buffers follow `.to()`), which dropped weights keep on the meta device."""
        return self.encoders.latents_mean.dtype

    def _read(self, module: nn.Module, name: str) -> None:
        device = self.encoders.latents_mean.device
        params = dict(module.named_parameters())
        tensors = self.weights.read([f"{PREFIX}{name}.{n}" for n in params])
        for n in params:
            owner, _, leaf = n.rpartition(".")
            value = tensors[f"{PREFIX}{name}.{n}"].to(device, torch.float32 if device.type == "cpu" else self.dtype)
            module.get_submodule(owner)._parameters[leaf] = nn.Parameter(value, requires_grad=False)


def drop(module: nn.Module, dtype: torch.dtype) -> None:
    """Every parameter of `module` back to the meta device (same shape, no memory), floating ones in `dtype`."""
    for m in module.modules():
        for leaf, p in m._parameters.items():
            if p is not None and p.device.type != "meta":
                kind = dtype if p.is_floating_point() else p.dtype
                m._parameters[leaf] = nn.Parameter(torch.empty_like(p, device="meta", dtype=kind), requires_grad=False)
