"""DreamZero checkpoint keys <-> this package's parameter names, and the checks a checkpoint must pass.

A DreamZero checkpoint (`VLA.save_pretrained`) names its DiT with the original Wan names under
`action_head.model.` (`blocks.{i}.self_attn.q`, `ffn.0`, `modulation`, `head.head`, ...), its shared
registers beside them (`state_encoder.layer1.W`, `action_encoder.W1.W`, `action_decoder.layer2.W`), and
its frozen encoders under `action_head.text_encoder.`, `action_head.image_encoder.model.` and
`action_head.vae.model.`. Our DiT is built from diffusers' Wan modules, so the map is diffusers' own
(`scripts/convert_wan_to_diffusers.py`), written here as prefix pairs, one per module, so that it runs
both ways: a checkpoint loads through `to_adapt` and an adapter exports through `to_dreamzero`.

| DreamZero (original Wan) | adapt |
| --- | --- |
| `action_head.model.patch_embedding.*` | `backbone.patch_embedding.*` |
| `action_head.model.time_embedding.{0,2}.*` | `backbone.condition_embedder.time_embedder.linear_{1,2}.*` |
| `action_head.model.time_projection.1.*` | `backbone.condition_embedder.time_proj.*` |
| `action_head.model.text_embedding.{0,2}.*` | `backbone.condition_embedder.text_embedder.linear_{1,2}.*` |
| `action_head.model.img_emb.proj.{0,1,3,4}.*` | `backbone.condition_embedder.image_embedder.{norm1,...}` |
| `action_head.model.blocks.{i}.self_attn.{q,k,v,o}.*` | `backbone.blocks.{i}.attn1.{to_q,to_k,to_v,to_out.0}.*` |
| `action_head.model.blocks.{i}.cross_attn.{q,k,v,o}.*` | `backbone.blocks.{i}.attn2.{to_q,to_k,to_v,to_out.0}.*` |
| `... .cross_attn.{k_img,v_img,norm_k_img}.*` | `... .attn2.{add_k_proj,add_v_proj,norm_added_k}.*` |
| `... .{self,cross}_attn.norm_{q,k}.*` | `... .{attn1,attn2}.norm_{q,k}.*` |
| `action_head.model.blocks.{i}.norm3.*` (before cross-attention) | `backbone.blocks.{i}.norm2.*` |
| `action_head.model.blocks.{i}.ffn.{0,2}.*` | `backbone.blocks.{i}.ffn.net.{0.proj,2}.*` |
| `action_head.model.blocks.{i}.modulation` | `backbone.blocks.{i}.scale_shift_table` |
| `action_head.model.head.head.*`, `head.modulation` | `backbone.proj_out.*`, `backbone.scale_shift_table` |
| `action_head.model.{state_encoder,action_encoder,action_decoder}.*` | `shared_registers.*` (same names) |

PEFT-wrapped names (`base_model.model.`, `.base_layer`) are read as the plain names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from adapt.errors import AdaptError

DIT = "action_head.model."
ENCODERS = ("action_head.text_encoder.", "action_head.image_encoder.model.", "action_head.vae.model.")
REGISTERS = ("state_encoder.", "action_encoder.", "action_decoder.")

_TOP = [
    ("patch_embedding.", "patch_embedding."),
    ("time_embedding.0.", "condition_embedder.time_embedder.linear_1."),
    ("time_embedding.2.", "condition_embedder.time_embedder.linear_2."),
    ("time_projection.1.", "condition_embedder.time_proj."),
    ("text_embedding.0.", "condition_embedder.text_embedder.linear_1."),
    ("text_embedding.2.", "condition_embedder.text_embedder.linear_2."),
    ("img_emb.proj.0.", "condition_embedder.image_embedder.norm1."),
    ("img_emb.proj.1.", "condition_embedder.image_embedder.ff.net.0.proj."),
    ("img_emb.proj.3.", "condition_embedder.image_embedder.ff.net.2."),
    ("img_emb.proj.4.", "condition_embedder.image_embedder.norm2."),
    ("head.head.", "proj_out."),
    ("head.modulation", "scale_shift_table"),
]
_BLOCK = [
    *[(f"self_attn.{a}.", f"attn1.{b}.") for a, b in [("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("o", "to_out.0")]],
    *[(f"cross_attn.{a}.", f"attn2.{b}.") for a, b in [("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("o", "to_out.0")]],
    ("self_attn.norm_q.", "attn1.norm_q."),
    ("self_attn.norm_k.", "attn1.norm_k."),
    ("cross_attn.norm_q.", "attn2.norm_q."),
    ("cross_attn.norm_k.", "attn2.norm_k."),
    ("cross_attn.k_img.", "attn2.add_k_proj."),
    ("cross_attn.v_img.", "attn2.add_v_proj."),
    ("cross_attn.norm_k_img.", "attn2.norm_added_k."),
    ("norm3.", "norm2."),
    ("ffn.0.", "ffn.net.0.proj."),
    ("ffn.2.", "ffn.net.2."),
    ("modulation", "scale_shift_table"),
]
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.*)$")


def _swap(name: str, table: list[tuple[str, str]], reverse: bool) -> str | None:
    for a, b in table:
        src, dst = (b, a) if reverse else (a, b)
        if name == src or (src.endswith(".") and name.startswith(src)):
            return dst + name[len(src) :]
    return None


def _dit_name(name: str, reverse: bool) -> str | None:
    """One DiT parameter name, original Wan -> diffusers (or back with `reverse`); None if unknown."""
    match = _BLOCK_KEY.match(name)
    if match:
        inner = _swap(match.group(2), _BLOCK, reverse)
        return None if inner is None else f"blocks.{match.group(1)}.{inner}"
    return _swap(name, _TOP, reverse)


def unwrap_peft(key: str) -> str:
    """A PEFT-wrapped parameter name as the plain module's (`base_model.model.` and `.base_layer` dropped)."""
    return key.replace("base_model.model.", "").replace(".base_layer.", ".")


def to_adapt(key: str) -> str | None:
    """A DreamZero checkpoint key -> our parameter name; None for keys we do not map (frozen encoders
    are loaded separately, anything else is reported as unexpected)."""
    key = unwrap_peft(key)
    if not key.startswith(DIT):
        return None
    name = key[len(DIT) :]
    if name.startswith(REGISTERS):
        return "shared_registers." + name
    mapped = _dit_name(name, reverse=False)
    return None if mapped is None else "backbone." + mapped


def to_dreamzero(name: str) -> str | None:
    """Our parameter name (backbone or registers) -> DreamZero's checkpoint key; None when it has none."""
    if name.startswith("backbone."):
        mapped = _dit_name(name[len("backbone.") :], reverse=True)
        return None if mapped is None else DIT + mapped
    for prefix in ("shared_registers.", "registers."):
        if name.startswith(prefix):
            return DIT + name[len(prefix) :]
    return None


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a DreamZero checkpoint: `model.safetensors`, or every shard its
    `model.safetensors.index.json` names (a missing shard is named)."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return [single]
    if not index.is_file():
        raise AdaptError(f"{folder}: no model.safetensors or model.safetensors.index.json")
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise AdaptError(f"{index}: not a safetensors index ({error})") from None
    missing = [s for s in shards if not (folder / s).is_file()]
    if missing:
        raise AdaptError(f"{index}: shard(s) missing from {folder}: {', '.join(missing)}")
    return [folder / s for s in shards]


def check_keys(found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], source: Path) -> None:
    """One error listing every missing, unexpected and mis-shaped key (our names: the checkpoint's in
    `found` were mapped through `to_adapt`; unmappable ones are passed as `?<original key>`)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = sorted(k for k in set(found) & set(expected) if tuple(found[k]) != tuple(expected[k]))
    if not (missing or unexpected or shapes):
        return
    lines = []
    for title, names, show in [
        ("missing", missing, lambda k: k),
        ("unexpected", unexpected, lambda k: k.lstrip("?")),
        ("wrong shape", shapes, lambda k: f"{k}: {list(found[k])}, expected {list(expected[k])}"),
    ]:
        if names:
            listed = "; ".join(show(k) for k in names[:8]) + (
                f"; ... ({len(names) - 8} more)" if len(names) > 8 else ""
            )
            lines.append(f"{len(names)} {title}: {listed}")
    raise AdaptError(
        f"{source}: does not match the DreamZero architecture its config.json describes\n  " + "\n  ".join(lines)
    )
