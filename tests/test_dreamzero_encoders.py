"""DreamZero's frozen encoders: key maps both ways, real-size name coverage, and the encode contracts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from adapt.errors import AdaptError
from adapt.model.dreamzero.config import DREAMZERO_PRESETS
from adapt.model.dreamzero.encoders import (
    IMAGE,
    PREFIX,
    TEXT,
    VAE,
    DreamZeroEncoders,
    dreamzero_encoder_state_dict,
    encoder_key,
    encoder_state_dict,
)

PROMPTS = ["pick up the red cup", "put the red block in the bowl then open the drawer"]
"""Tokenised (one word a token, plus `</s>`): 6 of the tiny text_len 8, and a prompt truncated to 8."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder with a real (tiny, word-level) tokenizer in `tokenizer/`, where a user copies umT5's."""
    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.train_from_iterator(PROMPTS, trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>"]))
    words.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    folder = tmp_path_factory.mktemp("dreamzero")
    fast = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(folder / "tokenizer")
    return folder


def _tiny(checkpoint: Path, seed: int) -> DreamZeroEncoders:
    torch.manual_seed(seed)
    encoders = DreamZeroEncoders(DREAMZERO_PRESETS["dreamzero-tiny"])
    encoders.load_tokenizer(checkpoint)
    return encoders


@pytest.fixture(scope="module")
def encoders(checkpoint: Path) -> DreamZeroEncoders:
    return _tiny(checkpoint, seed=0)


def _outputs(encoders: DreamZeroEncoders) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    video = torch.randint(0, 256, (1, 5, 3, 32, 48), dtype=torch.uint8, generator=generator)
    image = torch.randint(0, 256, (2, 3, 40, 56), dtype=torch.uint8, generator=generator)
    latents = encoders.encode_video(video)
    return {
        "latents": latents,
        "video": encoders.decode_video(latents),
        "text": encoders.encode_text(PROMPTS),
        "image": encoders.encode_image(image),
    }


def test_round_trip_through_dreamzero_names_reproduces_every_encoder(encoders, checkpoint):
    """Catches a map that loses, duplicates or mis-shapes a tensor on the way to DreamZero's names and back
    (the tied umT5 embedding, the split `to_qkv`, CLIP's [1, 1, D] class embedding): differently seeded
    encoders loaded from the DreamZero-named tensors must give identical outputs on all three encoders."""
    ours = {PREFIX + k: v for k, v in encoders.state_dict().items()}
    theirs = dreamzero_encoder_state_dict(ours)
    assert all(k.startswith((VAE, TEXT, IMAGE)) for k in theirs)
    assert theirs[IMAGE + "visual.transformer.0.attn.to_qkv.weight"].shape == (3 * 1280, 1280)
    assert theirs[IMAGE + "visual.cls_embedding"].shape == (1, 1, 1280)

    reloaded = _tiny(checkpoint, seed=1)
    before = _outputs(reloaded)
    reloaded.load_state_dict({k[len(PREFIX) :]: v for k, v in encoder_state_dict(theirs).items()}, strict=True)
    expected, got = _outputs(encoders), _outputs(reloaded)
    assert not torch.equal(before["image"], expected["image"])  # the reload did change the weights
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)


def test_dreamzero_tensors_compute_what_dreamzero_computes(encoders):
    """Catches a swapped `ffn.gate.0`/`ffn.fc1` or a `to_qkv` split in the wrong order, which a round trip
    through our own two maps cannot: the DreamZero-named tensors, applied as DreamZero's code applies them
    (Wan `t5.py` `T5FeedForward`: fc2(fc1(x) * gelu_tanh(gate(x))); open-clip `SelfAttention`:
    `to_qkv(x).chunk(3)` then attention and `proj`), equal our modules' outputs."""
    theirs = dreamzero_encoder_state_dict({PREFIX + k: v for k, v in encoders.state_dict().items()})
    generator = torch.Generator().manual_seed(2)

    x = torch.randn(2, 5, encoders.config.text_dim, generator=generator)
    t5 = {name: theirs[f"{TEXT}blocks.0.ffn.{name}.weight"] for name in ("gate.0", "fc1", "fc2")}
    reference = (x @ t5["fc1"].T * F.gelu(x @ t5["gate.0"].T, approximate="tanh")) @ t5["fc2"].T
    ffn = encoders.text_encoder.encoder.block[0].layer[1].DenseReluDense
    torch.testing.assert_close(ffn(x), reference)

    h = torch.randn(2, 7, encoders.config.image_dim, generator=generator)
    block = f"{IMAGE}visual.transformer.0.attn."
    q, k, v = (h @ theirs[block + "to_qkv.weight"].T + theirs[block + "to_qkv.bias"]).chunk(3, dim=-1)
    heads = encoders.image_encoder.config.num_attention_heads
    q, k, v = (z.unflatten(-1, (heads, -1)).transpose(1, 2) for z in (q, k, v))
    mixed = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
    reference = mixed @ theirs[block + "proj.weight"].T + theirs[block + "proj.bias"]
    torch.testing.assert_close(encoders.image_encoder.encoder.layers[0].self_attn(h)[0], reference)


def test_encoders_built_on_meta_work_after_an_assigning_load(encoders):
    """Catches constants left on the meta device (latent and CLIP statistics, CLIP's position ids: buffers
    no checkpoint holds) when a model is built on meta and its weights are loaded with `assign=True`."""
    with torch.device("meta"):
        built = DreamZeroEncoders(DREAMZERO_PRESETS["dreamzero-tiny"])
    built.load_state_dict(encoders.state_dict(), assign=True)
    built.tokenizer = encoders.tokenizer
    expected, got = _outputs(encoders), _outputs(built)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)


_FACTS = {  # FACTS.md 2c-2e
    TEXT + "token_embedding.weight": (256384, 4096),
    TEXT + "blocks.0.attn.q.weight": (4096, 4096),
    TEXT + "blocks.0.ffn.gate.0.weight": (10240, 4096),
    TEXT + "blocks.23.ffn.fc2.weight": (4096, 10240),
    TEXT + "blocks.23.pos_embedding.embedding.weight": (32, 64),
    IMAGE + "visual.patch_embedding.weight": (1280, 3, 14, 14),
    IMAGE + "visual.cls_embedding": (1, 1, 1280),
    IMAGE + "visual.pos_embedding": (1, 257, 1280),
    IMAGE + "visual.transformer.0.attn.to_qkv.weight": (3840, 1280),
    IMAGE + "visual.transformer.31.mlp.0.weight": (5120, 1280),
}
_WAN21_VAE = {  # original name: (diffusers name, shape), read off DreamZero's `VideoVAE_(z_dim=16)`
    "conv1.weight": ("quant_conv.weight", (32, 32, 1, 1, 1)),
    "conv2.weight": ("post_quant_conv.weight", (16, 16, 1, 1, 1)),
    "encoder.downsamples.5.time_conv.weight": ("encoder.down_blocks.5.time_conv.weight", (192, 192, 3, 1, 1)),
    "encoder.middle.1.to_qkv.weight": ("encoder.mid_block.attentions.0.to_qkv.weight", (1152, 384, 1, 1)),
    "decoder.upsamples.3.time_conv.weight": ("decoder.up_blocks.0.upsamplers.0.time_conv.weight", (768, 384, 3, 1, 1)),
    "decoder.upsamples.4.shortcut.weight": ("decoder.up_blocks.1.resnets.0.conv_shortcut.weight", (384, 192, 1, 1, 1)),
    "decoder.upsamples.14.residual.6.bias": ("decoder.up_blocks.3.resnets.2.conv2.bias", (96,)),
}
_WAN22_VAE = {  # read off DreamZero's `VideoVAE38_(z_dim=48, dim=160)`
    "conv1.weight": ("quant_conv.weight", (96, 96, 1, 1, 1)),
    "encoder.conv1.weight": ("encoder.conv_in.weight", (160, 12, 3, 3, 3)),
    "encoder.downsamples.1.downsamples.2.time_conv.weight": (
        "encoder.down_blocks.1.downsampler.time_conv.weight", (320, 320, 3, 1, 1)),
    "decoder.upsamples.0.upsamples.3.time_conv.weight": (
        "decoder.up_blocks.0.upsampler.time_conv.weight", (2048, 1024, 3, 1, 1)),
    "decoder.upsamples.2.upsamples.0.shortcut.weight": (
        "decoder.up_blocks.2.resnets.0.conv_shortcut.weight", (512, 1024, 1, 1, 1)),
    "decoder.head.2.weight": ("decoder.conv_out.weight", (12, 256, 3, 3, 3)),
}  # fmt: skip


@pytest.mark.parametrize(
    ("preset", "count", "vae"), [("dreamzero-14b", 827, _WAN21_VAE), ("dreamzero-5b", 829, _WAN22_VAE)]
)
def test_key_map_covers_every_real_size_parameter(preset, count, vae):
    """Catches a parameter of the real-size encoders with no DreamZero name (or two names), a VAE rule that
    disagrees with the original Wan layout (flat Wan2.1 vs nested Wan2.2 lists), and sizes that differ
    from DreamZero's checkpoints. `count` is what DreamZero's own modules hold at these sizes (VAE 194 or
    196 tensors, umT5 242, CLIP 391) less the unused `visual.head` and `log_scale`."""
    with torch.device("meta"):
        encoders = DreamZeroEncoders(DREAMZERO_PRESETS[preset])
    ours = {PREFIX + k: v for k, v in encoders.state_dict().items()}
    theirs = dreamzero_encoder_state_dict(ours)
    assert len(theirs) == count
    assert all(encoder_key(k) is not None for k in theirs)
    back = encoder_state_dict(theirs)
    assert {k: v.shape for k, v in back.items()} == {k: v.shape for k, v in ours.items()}
    for key, shape in _FACTS.items():
        assert tuple(theirs[key].shape) == shape, key
    for original, (name, shape) in vae.items():
        assert encoder_key(VAE + original) == f"{PREFIX}vae.{name}"
        assert tuple(theirs[VAE + original].shape) == shape, original


def test_encode_and_decode_shapes(encoders):
    """Catches wrong layouts at the boundary: 5 uint8 frames -> 2 latent frames at 1/8 size and back to 5
    frames in [-1, 1]; a CLIP image -> 257 tokens; a video whose length is not 1 + 4k is refused."""
    out = _outputs(encoders)
    assert out["latents"].shape == (1, 4, 2, 4, 6)
    assert out["video"].shape == (1, 5, 3, 32, 48) and out["video"].abs().max() <= 1
    assert out["image"].shape == (2, 257, 1280)
    with pytest.raises(AdaptError, match="1 \\+ 4k"):
        encoders.encode_video(torch.zeros(1, 4, 3, 32, 48, dtype=torch.uint8))


def test_text_is_zero_after_each_prompt(encoders):
    """Catches padding positions that carry umT5 states (DreamZero zeroes them) or a length taken from the
    longest prompt: the 6-token prompt is zero from position 6 on, the truncated one nowhere."""
    text = encoders.encode_text(PROMPTS)
    assert text.shape == (2, 8, 32)
    nonzero = text.abs().sum(-1) > 0
    assert nonzero.tolist() == [[True] * 6 + [False] * 2, [True] * 8]


def test_missing_tokenizer_folder_is_named(encoders, tmp_path):
    """Catches a bare FileNotFoundError (or a silent download attempt) when the user has not copied umT5's
    tokenizer into the checkpoint: the error names the folder and says to copy it there."""
    with pytest.raises(AdaptError, match="tokenizer") as error:
        encoders.load_tokenizer(tmp_path)
    assert str(tmp_path / "tokenizer") in str(error.value) and "copy" in str(error.value)
