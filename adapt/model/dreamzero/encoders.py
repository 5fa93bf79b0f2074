"""DreamZero's three frozen encoders, built from diffusers and transformers, and their checkpoint key maps.

| DreamZero module (checkpoint prefix) | here | contract |
| --- | --- | --- |
| `WanVideoVAE`, `WanVideoVAE38` (`action_head.vae.model.`) | diffusers `AutoencoderKLWan` | video <-> latents |
| `WanTextEncoder`, umT5-XXL (`action_head.text_encoder.`) | transformers `UMT5EncoderModel` | prompt -> (512, 4096) |
| `WanImageEncoder`, ViT-H/14 (`action_head.image_encoder.model.`) | transformers `CLIPVisionModel` | (257, 1280) |

DreamZero stores them under their original names (Wan's VAE, Wan's T5, open-clip's visual tower); the maps
below rename them onto the libraries' modules, both ways (`encoder_state_dict`, `dreamzero_encoder_state_dict`).
The VAE map is diffusers' own (`scripts/convert_wan_to_diffusers.py`, `convert_vae` and `convert_vae_22`)
written as prefix pairs. Three tensors change shape on the way: CLIP's fused `attn.to_qkv` is split into
`q_proj`, `k_proj`, `v_proj` (DreamZero chunks its output in that order), `cls_embedding` [1, 1, D] becomes
`class_embedding` [D] and `pos_embedding` [1, N, D] becomes `position_embedding.weight` [N, D].
umT5's FFN is `fc2(fc1(x) * gelu_tanh(gate(x)))` in Wan's `t5.py`, so the GELU branch `ffn.gate.0` is
transformers' `wi_0` and `ffn.fc1` is `wi_1`.

The whole model keeps these encoders under its `tokenizer` attribute, so our names start with `tokenizer.`.
"""

from __future__ import annotations

import html
import math
import re
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan
from torch import Tensor, nn
from transformers import CLIPVisionConfig, CLIPVisionModel, PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

from adapt.errors import AdaptError
from adapt.model.dreamzero.config import DreamZeroConfig

PREFIX = "tokenizer."
VAE, TEXT, IMAGE = "action_head.vae.model.", "action_head.text_encoder.", "action_head.image_encoder.model."
UNUSED = (IMAGE + "visual.head", IMAGE + "log_scale")
"""In DreamZero checkpoints but never used by DreamZero (CLIP's projection head and logit scale): not loaded."""
QKV = "{q,k,v}"
"""`encoder_key` names the three tensors one fused `to_qkv` feeds with this in place of `q`, `k` or `v`."""

# ----------------------------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class EncoderSizes:
    """Depths and inner widths of the encoders; the widths the DiT sees come from `DreamZeroConfig`
    (`out_dim` = VAE z_dim, `text_dim`, `image_dim`, `image_tokens`, `vae_stride`)."""

    vae_dim: int
    """Wan VAE base channels (Wan2.1: 96; Wan2.2: 160), multiplied by (1, 2, 4, 4) down the encoder."""
    vae_decoder_dim: int
    """Base channels of the decoder (Wan2.2: 256; else `vae_dim`)."""
    text_layers: int
    text_heads: int
    text_ffn: int
    """Width of each of umT5's two gated FFN branches (umT5-XXL: 10240)."""
    text_vocab: int
    """Rows of the token embedding; the tokenizer may not have more tokens."""
    image_layers: int
    """CLIP blocks; DreamZero reads the output of all but the last one."""
    image_heads: int
    image_ffn: int
    image_patch: int
    """Patch side in pixels; the CLIP input side is patch x sqrt(image_tokens - 1) (ViT-H/14: 14 x 16 = 224)."""


_UMT5_XXL_VIT_H = dict(
    text_layers=24, text_heads=64, text_ffn=10240, text_vocab=256384,
    image_layers=32, image_heads=16, image_ffn=5120, image_patch=14,
)  # fmt: skip
ENCODER_SIZES: dict[tuple[int, int], EncoderSizes] = {
    (4, 8): EncoderSizes(vae_dim=96, vae_decoder_dim=96, **_UMT5_XXL_VIT_H),
    (4, 16): EncoderSizes(vae_dim=160, vae_decoder_dim=256, **_UMT5_XXL_VIT_H),
}
"""Real sizes per VAE stride (Wan2.1's VAE, Wan2.2's), for configs with umT5-XXL's text width (4096), as every
released DreamZero checkpoint has whatever its folder is called; other configs (`dreamzero-tiny`) get
`TINY_SIZES`."""
TINY_SIZES = EncoderSizes(
    vae_dim=8, vae_decoder_dim=8, text_layers=2, text_heads=2, text_ffn=64, text_vocab=256,
    image_layers=2, image_heads=2, image_ffn=64, image_patch=2,
)  # fmt: skip
"""Test-size encoders with the real layouts (4 VAE levels of 2 residual blocks, as the key map assumes)."""

_WAN21_STATS = (
    [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
     0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921],
    [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
     3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160],
)  # fmt: skip
_WAN22_STATS = (
    [-0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
     0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
     -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
     -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667],
    [0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
     0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
     0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
     0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744],
)  # fmt: skip
"""Per-channel latent mean and std of Wan2.1's and Wan2.2's VAEs (`WanVideoVAE`, `WanVideoVAE38`). A VAE
with fewer channels (the tiny one) takes the first z_dim of each, so normalisation is still exercised."""
_VAE_LAYOUTS = {
    (4, 8): ({}, _WAN21_STATS),
    (4, 16): (dict(is_residual=True, patch_size=2, in_channels=12, out_channels=12, scale_factor_spatial=16),
              _WAN22_STATS),
}  # fmt: skip
"""`vae_stride` -> diffusers' `AutoencoderKLWan` options (Wan2.2's are `vae22_diffusers_config`) and statistics."""
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def to_unit_range(frames: Tensor) -> Tensor:
    """uint8 frames -> float in [-1, 1]; float frames are taken as already there (DreamZero's image condition
    is the first frame followed by exact zeros, which no uint8 value maps to)."""
    return frames.float() * (2 / 255) - 1 if frames.dtype == torch.uint8 else frames.float()


def _vae(config: DreamZeroConfig, sizes: EncoderSizes) -> AutoencoderKLWan:
    layout = _VAE_LAYOUTS.get(tuple(config.vae_stride))
    if layout is None:
        raise AdaptError(f"vae_stride {tuple(config.vae_stride)}: a Wan VAE has (4, 8) (Wan2.1) or (4, 16) (Wan2.2)")
    options, (mean, std) = layout
    if config.out_dim > len(mean):
        raise AdaptError(f"out_dim {config.out_dim}: Wan's VAE has latent statistics for {len(mean)} channels at most")
    return AutoencoderKLWan(
        base_dim=sizes.vae_dim, decoder_base_dim=sizes.vae_decoder_dim, z_dim=config.out_dim,
        latents_mean=mean[: config.out_dim], latents_std=std[: config.out_dim], **options,
    )  # fmt: skip


def _text_encoder(config: DreamZeroConfig, sizes: EncoderSizes) -> UMT5EncoderModel:
    """umT5: per-layer relative position bias (32 buckets, max distance 128), gated tanh-GELU FFN, no bias."""
    umt5 = UMT5Config(
        vocab_size=sizes.text_vocab, d_model=config.text_dim, d_kv=config.text_dim // sizes.text_heads,
        d_ff=sizes.text_ffn, num_layers=sizes.text_layers, num_heads=sizes.text_heads,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.0,
        layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu",
    )  # fmt: skip
    return UMT5EncoderModel(umt5)


def _image_encoder(config: DreamZeroConfig, sizes: EncoderSizes) -> CLIPVisionModel:
    """open-clip's ViT with exact GELU; the image side follows from `image_tokens` = (side / patch)^2 + 1."""
    grid = math.isqrt(config.image_tokens - 1)
    if grid * grid != config.image_tokens - 1:
        raise AdaptError(f"image_tokens {config.image_tokens}: must be a square number of patches plus one class token")
    clip = CLIPVisionConfig(
        hidden_size=config.image_dim, intermediate_size=sizes.image_ffn, num_hidden_layers=sizes.image_layers,
        num_attention_heads=sizes.image_heads, image_size=grid * sizes.image_patch, patch_size=sizes.image_patch,
        hidden_act="gelu", layer_norm_eps=1e-5, attention_dropout=0.0,
    )  # fmt: skip
    return CLIPVisionModel(clip)


def _clean(text: str) -> str:
    """DreamZero's `whitespace` cleaning (html unescaped twice, runs of whitespace collapsed); its `ftfy`
    mojibake repair is left out, which changes nothing for well-formed text."""
    return re.sub(r"\s+", " ", html.unescape(html.unescape(text))).strip()


# --------------------------------------------------------------------------------------------- encoders


class DreamZeroEncoders(nn.Module):
    """Frozen; attributes vae, text_encoder, image_encoder; `tokenizer` (not a module) set by `load_tokenizer`;
    `stream` set by a released checkpoint's `load`: the weights then stay in its files until a call needs
    them (`adapt.model.dreamzero.streamed`)."""

    def __init__(self, config: DreamZeroConfig):
        super().__init__()
        self.config = config
        sizes = ENCODER_SIZES.get(tuple(config.vae_stride), TINY_SIZES) if config.text_dim == 4096 else TINY_SIZES
        self.vae = _vae(config, sizes)
        self.text_encoder = _text_encoder(config, sizes)
        self.image_encoder = _image_encoder(config, sizes)
        self.tokenizer: PreTrainedTokenizerFast | None = None
        self.stream = None
        self.constants(device=None)
        self.register_load_state_dict_post_hook(DreamZeroEncoders._after_load)
        self.requires_grad_(False)
        self.eval()

    def constants(self, device: torch.device | None) -> None:
        """Non-persistent buffers: latent and CLIP statistics, and CLIP's position ids (transformers')."""
        stats = [self.vae.config.latents_mean, self.vae.config.latents_std, CLIP_MEAN, CLIP_STD]
        for name, values in zip(["latents_mean", "latents_std", "clip_mean", "clip_std"], stats, strict=True):
            shape = (1, -1, 1, 1, 1) if name.startswith("latents") else (1, 3, 1, 1)
            self.register_buffer(name, torch.tensor(values, device=device).view(shape), persistent=False)
        embeddings = self.image_encoder.embeddings
        embeddings.position_ids = torch.arange(embeddings.num_positions, device=device).expand(1, -1)

    def _after_load(self, incompatible: object) -> None:
        """Built on the meta device and loaded with `assign=True`, the weights are real but the buffers no
        checkpoint holds are still meta: build those where the weights now are."""
        device = self.vae.quant_conv.weight.device
        if device.type != "meta" and self.latents_mean.device.type == "meta":
            self.constants(device)

    def train(self, mode: bool = True) -> DreamZeroEncoders:
        """Always in eval mode: the encoders are frozen, also when the model around them trains."""
        return super().train(False)

    def _apply(self, fn, recurse: bool = True) -> DreamZeroEncoders:
        """Streamed weights stay on the meta device through `.to()`, `.cuda()`, `.half()`: they take the dtype
        `fn` gives an empty tensor of theirs (the device they are read to is the buffers')."""
        if self.stream is None:
            return super()._apply(fn, recurse)
        for m in self.modules():
            for leaf, p in m._parameters.items():
                if p is not None:
                    moved = torch.empty_like(p, dtype=fn(torch.empty(0, dtype=p.dtype)).dtype) if p.is_meta else fn(p)
                    m._parameters[leaf] = nn.Parameter(moved, requires_grad=False)
            for leaf, b in m._buffers.items():
                if b is not None:
                    m._buffers[leaf] = fn(b)
        return self

    def _dtype(self, module: nn.Module) -> torch.dtype:
        return next(module.parameters()).dtype

    def _weights(self, part: str) -> AbstractContextManager:
        """`part`'s weights in place for a call: a no-op for resident encoders; read from the checkpoint (umT5 a
        block at a time) and dropped after, for streamed ones."""
        return nullcontext() if self.stream is None else self.stream.around(part)

    @torch.no_grad()
    def encode_video(self, frames: Tensor) -> Tensor:
        """uint8 frames (B, T, 3, H, W), T = 1 + 4k, or float frames already in [-1, 1] -> float32 latents
        (B, z, 1 + k, H / s, W / s): `(mu - mean) / std` of the VAE's posterior mean, as DreamZero's
        `VideoVAE_.encode` (untiled)."""
        st, ss = self.config.vae_stride
        t, c, h, w = frames.shape[1:] if frames.ndim == 5 else (0, 0, 0, 0)
        if c != 3 or (t - 1) % st or h % ss or w % ss:
            raise AdaptError(
                f"video of shape {tuple(frames.shape)}: expected (B, 1 + {st}k, 3, H, W) with H and W multiples of {ss}"
            )
        with self._weights("vae"):
            x = to_unit_range(frames).movedim(2, 1).to(self._dtype(self.vae))
            mu = self.vae.encode(x).latent_dist.mode()
        return (mu.float() - self.latents_mean) / self.latents_std

    @torch.no_grad()
    def decode_video(self, latents: Tensor) -> Tensor:
        """Normalised latents (B, z, F, h, w) -> frames float in [-1, 1] (B, 1 + 4 (F - 1), 3, h s, w s)."""
        z = latents.float() * self.latents_std + self.latents_mean
        with self._weights("vae"):
            return self.vae.decode(z.to(self._dtype(self.vae))).sample.float().movedim(1, 2)

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> Tensor:
        """(B, text_len, text_dim): umT5 states, zero after each prompt's tokens (its `</s>` included), as
        DreamZero's `encode_prompt` (which, batched, zeroes every row after the *current* prompt's length:
        identical at its batch size of 1)."""
        if self.tokenizer is None:
            raise AdaptError("no tokenizer: call load_tokenizer(<checkpoint folder>) before encoding text")
        batch = self.tokenizer(
            [_clean(p) for p in prompts], padding="max_length", truncation=True,
            max_length=self.config.text_len, return_tensors="pt",
        )  # fmt: skip
        device = self.latents_mean.device
        mask = batch["attention_mask"].to(device)
        with self._weights("text_encoder"):
            states = self.text_encoder(input_ids=batch["input_ids"].to(device), attention_mask=mask).last_hidden_state
        lengths = mask.sum(dim=1, keepdim=True)
        keep = torch.arange(mask.shape[1], device=device)[None] < lengths
        return (states * keep[..., None].to(states.dtype)).to(self.latents_mean.dtype)

    @torch.no_grad()
    def encode_image(self, frames: Tensor) -> Tensor:
        """uint8 (B, 3, H, W) -> (B, image_tokens, image_dim): bicubic resize of the [-1, 1] frame, CLIP
        normalisation, then the output of all but the last block (`use_31_block`; no post-norm)."""
        side = self.image_encoder.config.image_size
        x = F.interpolate(frames.float() * (2 / 255) - 1, size=(side, side), mode="bicubic", align_corners=False)
        x = ((x * 0.5 + 0.5) - self.clip_mean) / self.clip_std
        with self._weights("image_encoder"):
            out = self.image_encoder(pixel_values=x.to(self._dtype(self.image_encoder)), output_hidden_states=True)
        return out.hidden_states[-2].to(self.latents_mean.dtype)

    def load_tokenizer(self, folder: Path) -> None:
        """The umT5 tokenizer from `<folder>/tokenizer/` (google/umt5-xxl's files, copied there by the user)."""
        path = Path(folder) / "tokenizer"
        if not path.is_dir():
            raise AdaptError(
                f"{path}: no tokenizer folder. DreamZero's text encoder needs google/umt5-xxl's tokenizer, which adapt "
                f"does not download: copy its files (tokenizer.json, tokenizer_config.json, special_tokens_map.json) "
                f"into {path}/"
            )
        try:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
        except (OSError, ValueError, TypeError) as error:
            raise AdaptError(f"{path}: not a readable tokenizer folder ({error})") from None
        vocab = self.text_encoder.config.vocab_size
        if len(tokenizer) > vocab or tokenizer.pad_token is None:
            raise AdaptError(
                f"{path}: {len(tokenizer)} tokens (pad token {tokenizer.pad_token!r}); the text encoder needs a pad "
                f"token and at most {vocab} tokens. Is this google/umt5-xxl's tokenizer?"
            )
        self.tokenizer = tokenizer


# ---------------------------------------------------------------------------------------------- key maps
# Rules are (DreamZero name, our name) templates: `{i}`, `{j}` stand for block indices, and a template that
# ends in "." is a prefix whose remainder (`weight`, `bias`, `gamma`, ...) is kept. First match wins.

_RESNET = [("residual.0.", "norm1."), ("residual.2.", "conv1."), ("residual.3.", "norm2."), ("residual.6.", "conv2."),
           ("shortcut.", "conv_shortcut.")]  # fmt: skip


def _resnet(theirs: str, ours: str) -> list[tuple[str, str]]:
    return [(theirs + a, ours + b) for a, b in _RESNET]


def _resample(theirs: str, ours: str) -> list[tuple[str, str]]:
    return [(theirs + part, ours + part) for part in ("resample.", "time_conv.")]


def _flat_decoder(n: int) -> list[tuple[str, str]]:
    """Wan2.1's decoder.upsamples.{n}: level n // 4 holds 3 residual blocks, then (but the last) an upsampler."""
    level, slot = divmod(n, 4)
    if slot < 3:
        return _resnet(f"decoder.upsamples.{n}.", f"decoder.up_blocks.{level}.resnets.{slot}.")
    return _resample(f"decoder.upsamples.{n}.", f"decoder.up_blocks.{level}.upsamplers.0.")


_VAE_COMMON = [
    ("conv1.", "quant_conv."),
    ("conv2.", "post_quant_conv."),
    *[
        rule
        for part in ("encoder", "decoder")
        for rule in [
            (f"{part}.conv1.", f"{part}.conv_in."),
            *_resnet(f"{part}.middle.0.", f"{part}.mid_block.resnets.0."),
            (f"{part}.middle.1.", f"{part}.mid_block.attentions.0."),
            *_resnet(f"{part}.middle.2.", f"{part}.mid_block.resnets.1."),
            (f"{part}.head.0.", f"{part}.norm_out."),
            (f"{part}.head.2.", f"{part}.conv_out."),
        ]
    ],
]
_VAE21 = [  # flat lists: the decoder's 4 levels are 3 residual blocks + 1 upsampler each (no upsampler last)
    *_VAE_COMMON,
    *_resnet("encoder.downsamples.{i}.", "encoder.down_blocks.{i}."),
    *_resample("encoder.downsamples.{i}.", "encoder.down_blocks.{i}."),
    *[r for n in range(15) for r in _flat_decoder(n)],
]
_VAE22 = [  # nested lists: level i holds its residual blocks, then (index 2 down, 3 up) its resampler
    *_VAE_COMMON,
    *_resnet("encoder.downsamples.{i}.downsamples.{j}.", "encoder.down_blocks.{i}.resnets.{j}."),
    *_resample("encoder.downsamples.{i}.downsamples.2.", "encoder.down_blocks.{i}.downsampler."),
    *_resnet("decoder.upsamples.{i}.upsamples.{j}.", "decoder.up_blocks.{i}.resnets.{j}."),
    *_resample("decoder.upsamples.{i}.upsamples.3.", "decoder.up_blocks.{i}.upsampler."),
]
_T5 = [
    ("token_embedding.weight", "shared.weight"),
    ("blocks.{i}.norm1.weight", "encoder.block.{i}.layer.0.layer_norm.weight"),
    *[(f"blocks.{{i}}.attn.{p}.weight", f"encoder.block.{{i}}.layer.0.SelfAttention.{p}.weight") for p in "qkvo"],
    ("blocks.{i}.pos_embedding.embedding.", "encoder.block.{i}.layer.0.SelfAttention.relative_attention_bias."),
    ("blocks.{i}.norm2.weight", "encoder.block.{i}.layer.1.layer_norm.weight"),
    ("blocks.{i}.ffn.gate.0.weight", "encoder.block.{i}.layer.1.DenseReluDense.wi_0.weight"),  # the GELU branch
    ("blocks.{i}.ffn.fc1.weight", "encoder.block.{i}.layer.1.DenseReluDense.wi_1.weight"),
    ("blocks.{i}.ffn.fc2.weight", "encoder.block.{i}.layer.1.DenseReluDense.wo.weight"),
    ("norm.weight", "encoder.final_layer_norm.weight"),
]
T5_TIED = ("text_encoder.encoder.embed_tokens.weight", "text_encoder.shared.weight")
"""transformers ties umT5's input embedding to `shared`; both names are in its state dict, one in DreamZero's."""
_CLS, _POS = "embeddings.class_embedding", "embeddings.position_embedding.weight"
_CLIP = [
    ("visual.patch_embedding.weight", "embeddings.patch_embedding.weight"),
    ("visual.cls_embedding", _CLS),
    ("visual.pos_embedding", _POS),
    ("visual.pre_norm.", "pre_layrnorm."),
    ("visual.transformer.{i}.norm1.", "encoder.layers.{i}.layer_norm1."),
    ("visual.transformer.{i}.attn.to_qkv.", "encoder.layers.{i}.self_attn." + QKV + "_proj."),
    ("visual.transformer.{i}.attn.proj.", "encoder.layers.{i}.self_attn.out_proj."),
    ("visual.transformer.{i}.norm2.", "encoder.layers.{i}.layer_norm2."),
    ("visual.transformer.{i}.mlp.0.", "encoder.layers.{i}.mlp.fc1."),
    ("visual.transformer.{i}.mlp.2.", "encoder.layers.{i}.mlp.fc2."),
    ("visual.post_norm.", "post_layernorm."),
]
_PARTS = [(VAE, "vae", _VAE21 + _VAE22), (TEXT, "text_encoder", _T5), (IMAGE, "image_encoder", _CLIP)]


@cache
def _pattern(template: str) -> re.Pattern[str]:
    pattern = re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{j\}", r"(?P<j>\d+)")
    return re.compile(pattern + ("(?P<rest>.+)" if template.endswith(".") else ""))


def _translate(name: str, rules: list[tuple[str, str]], reverse: bool = False) -> str | None:
    for theirs, ours in rules:
        src, dst = (ours, theirs) if reverse else (theirs, ours)
        match = _pattern(src).fullmatch(name)
        if match:
            groups = match.groupdict()
            for field in ("i", "j"):
                if groups.get(field) is not None:
                    dst = dst.replace("{" + field + "}", groups[field])
            return dst + (groups.get("rest") or "")
    return None


def encoder_key(key: str) -> str | None:
    """A DreamZero checkpoint key -> `tokenizer.<our name>`, or None (not an encoder key, or `UNUSED`). A fused
    `attn.to_qkv` feeds three tensors: its name has `QKV` where `q`, `k`, `v` go (`encoder_state_dict` splits it)."""
    for prefix, part, rules in _PARTS:
        if key.startswith(prefix) and key not in UNUSED:
            name = _translate(key[len(prefix) :], rules)
            return None if name is None else f"{PREFIX}{part}.{name}"
    return None


def encoder_state_dict(checkpoint: dict[str, Tensor]) -> dict[str, Tensor]:
    """DreamZero-named encoder tensors -> ours (`tokenizer.`...), with `to_qkv` split and the CLIP embeddings
    reshaped. Other keys (the DiT's, `UNUSED`) are skipped; an encoder key no rule knows is an error."""
    ours, unknown = {}, []
    for key, tensor in checkpoint.items():
        if not key.startswith((VAE, TEXT, IMAGE)) or key in UNUSED:
            continue
        name = encoder_key(key)
        if name is None:
            unknown.append(key)
        elif QKV in name:
            if tensor.shape[0] % 3:
                raise AdaptError(f"{key}: shape {list(tensor.shape)}, expected a first dimension of 3 x width")
            for part, chunk in zip("qkv", tensor.chunk(3, dim=0), strict=True):
                ours[name.replace(QKV, part)] = chunk
        else:
            ours[name] = _reshape(name, tensor, to_dreamzero=False)
    if unknown:
        listed = ", ".join(unknown[:8]) + (f" ... ({len(unknown) - 8} more)" if len(unknown) > 8 else "")
        raise AdaptError(f"{len(unknown)} DreamZero encoder key(s) match no known Wan/umT5/CLIP name: {listed}")
    tied, shared = (PREFIX + n for n in T5_TIED)
    if shared in ours:
        ours[tied] = ours[shared]
    return ours


def dreamzero_encoder_state_dict(ours: dict[str, Tensor]) -> dict[str, Tensor]:
    """Our encoder tensors (`tokenizer.`...; other keys are skipped) -> DreamZero's names, `q/k/v_proj` fused
    back into `to_qkv`. The Wan2.2 VAE layout is recognised by its nested `down_blocks.{i}.resnets`."""
    wan22 = any(k.startswith(PREFIX + "vae.encoder.down_blocks.") and ".resnets." in k for k in ours)
    rules = {"vae": _VAE22 if wan22 else _VAE21, "text_encoder": _T5, "image_encoder": _CLIP}
    prefixes = {"vae": VAE, "text_encoder": TEXT, "image_encoder": IMAGE}
    theirs = {}
    for name, tensor in ours.items():
        if not name.startswith(PREFIX) or name == PREFIX + T5_TIED[0]:
            continue
        part, _, inner = name[len(PREFIX) :].partition(".")
        fused = re.sub(r"\.self_attn\.[qkv]_proj\.", f".self_attn.{QKV}_proj.", inner)
        key = _translate(fused, rules[part], reverse=True) if part in rules else None
        if key is None:
            raise AdaptError(f"{name}: no DreamZero name for this encoder parameter")
        if fused != inner:
            if ".self_attn.q_proj." in inner:
                tensor = torch.cat([_sibling(ours, name, p) for p in "qkv"], dim=0)
            else:
                continue
        theirs[prefixes[part] + key] = _reshape(name, tensor, to_dreamzero=True)
    return theirs


def _sibling(ours: dict[str, Tensor], name: str, part: str) -> Tensor:
    key = name.replace(".self_attn.q_proj.", f".self_attn.{part}_proj.")
    if key not in ours:
        raise AdaptError(f"{name}: its {key} is missing, so the fused to_qkv cannot be written")
    return ours[key]


def _reshape(name: str, tensor: Tensor, to_dreamzero: bool) -> Tensor:
    """open-clip keeps the class and position embeddings as [1, 1, D] and [1, N, D] parameters."""
    if name.endswith(_CLS):
        return tensor.reshape(1, 1, -1) if to_dreamzero else tensor.reshape(-1)
    if name.endswith(_POS):
        return tensor.unsqueeze(0) if to_dreamzero else tensor.reshape(-1, tensor.shape[-1])
    return tensor
