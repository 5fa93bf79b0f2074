"""Reading a DreamZero checkpoint folder as it is released (no conversion step):

    config.json                          VLAConfig: action_head_cfg.config.diffusion_model_cfg sizes the DiT
    model.safetensors                    or model.safetensors.index.json and its shards
    experiment_cfg/metadata.json         normalisation statistics and modalities per embodiment tag
    tokenizer/                           the umT5 tokenizer (copied in by the user: nothing is downloaded)

The model is built on the meta device and the DiT's tensors are assigned into it, so a 14B base needs its
weights' memory once, not twice; the encoders' tensors are read only while an encoder runs. Before any
tensor is read, every key is mapped (`adapt.model.dreamzero.keys`) and checked against the architecture the
config describes: one error lists what is missing, unexpected or mis-shaped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import safe_open

from adapt.errors import AdaptError
from adapt.files import read_json_object
from adapt.model.dreamzero.config import DreamZeroConfig
from adapt.model.dreamzero.encoder_cache import EncoderCache
from adapt.model.dreamzero.encoders import PREFIX, QKV, T5_TIED, encoder_key, encoder_state_dict
from adapt.model.dreamzero.keys import ENCODERS, check_keys, to_adapt, weight_files
from adapt.model.dreamzero.streamed import CheckpointWeights, StreamedEncoders

VIEW_SIZES = {(880, 8): (176, 320), (50, 16): (80, 160)}
"""(frame_seqlen, VAE spatial stride) -> per-view size of DreamZero's released configs (14B: 352 x 640
mosaic; 5B: 160 x 320). Other layouts name theirs in `action_head_cfg.config.view_size`."""


def recognises(folder: Path) -> bool:
    """Whether `folder` holds a DreamZero (VLA) checkpoint rather than one of ours."""
    try:
        raw = read_json_object(Path(folder) / "config.json", "model config")
    except AdaptError:
        return False
    return raw.get("model_type") == "vla" or "action_head_cfg" in raw


def read_config(folder: Path) -> DreamZeroConfig:
    """The `DreamZeroConfig` a DreamZero `config.json` describes; a config of another family is named."""
    path = Path(folder) / "config.json"
    raw = read_json_object(path, "model config")
    head = raw.get("action_head_cfg", {}).get("config", {}) if isinstance(raw.get("action_head_cfg"), dict) else {}
    dit = head.get("diffusion_model_cfg") if isinstance(head, dict) else None
    if (
        raw.get("model_type") != "vla"
        or not isinstance(dit, dict)
        or "CausalWanModel" not in str(dit.get("_target_", ""))
    ):
        raise AdaptError(
            f"{path}: not a DreamZero checkpoint (needs model_type 'vla' and action_head_cfg.config."
            "diffusion_model_cfg with _target_ ...CausalWanModel)"
        )
    model_type = dit.get("model_type", "i2v")
    stride = 16 if model_type == "ti2v" else 8
    frame_tokens = dit.get("frame_seqlen")
    view = head.get("view_size") or VIEW_SIZES.get((frame_tokens, stride))
    if view is None:
        raise AdaptError(
            f"{path}: frame_seqlen {frame_tokens} is not a released DreamZero layout; "
            "give the per-view size as action_head_cfg.config.view_size: [height, width]"
        )
    try:
        config = DreamZeroConfig(
            size=str(raw.get("_name_or_path") or Path(folder).name),
            model_type=model_type,
            dim=dit["dim"],
            ffn_dim=dit["ffn_dim"],
            num_layers=dit["num_layers"],
            num_heads=dit["num_heads"],
            in_dim=dit["in_dim"],
            out_dim=dit["out_dim"],
            text_dim=dit.get("text_dim", 4096),
            text_len=dit.get("text_len", 512),
            freq_dim=dit.get("freq_dim", 256),
            eps=dit.get("eps", 1e-6),
            register_hidden=dit.get("hidden_size", 1024),
            max_state_dim=dit.get("max_state_dim", 64),
            max_action_dim=dit.get("action_dim", head.get("action_dim", 32)),
            frames_per_block=dit.get("num_frame_per_block", 2),
            actions_per_block=dit.get("num_action_per_block", 24),
            states_per_block=dit.get("num_state_per_block", 1),
            max_blocks=dit.get("max_chunk_size", 4),
            view_height=view[0],
            view_width=view[1],
            vae_stride=(4, stride),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise AdaptError(f"{path}: diffusion_model_cfg does not describe a DreamZero DiT ({error})") from None
    if frame_tokens is not None and frame_tokens != config.frame_tokens:
        raise AdaptError(f"{path}: frame_seqlen {frame_tokens} disagrees with view size {view} ({config.frame_tokens})")
    return config


def donor_names(folder: Path) -> tuple[str | None, dict[str, list[str]]]:
    """The embodiment tag of `experiment_cfg/metadata.json` and the names of its state and action
    dimensions (`<sub-key>[i]`, in the order DreamZero concatenates them); none when the file is absent."""
    path = Path(folder) / "experiment_cfg" / "metadata.json"
    if not path.is_file():
        return None, {"state": [], "action": []}
    raw = read_json_object(path, "DreamZero metadata")
    if len(raw) != 1:
        raise AdaptError(f"{path}: expected the statistics of one embodiment tag, found {sorted(raw)}")
    tag, meta = next(iter(raw.items()))
    names: dict[str, list[str]] = {}
    try:
        for part in ("state", "action"):
            modalities = meta["modalities"][part]
            names[part] = [f"{key}[{i}]" for key, m in modalities.items() for i in range(int(m["shape"][0]))]
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise AdaptError(f"{path}: modalities of '{tag}' unreadable ({error})") from None
    return tag, names


def load(folder: Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    """A `DreamZeroWAM` with the checkpoint's DiT and shared registers in `dtype` (default float32) and no
    embodiment heads (add them with `add_embodiment(spec, donor="dreamzero")`). The frozen encoders stay in the
    checkpoint's files, read for each call that needs them and dropped after (`adapt.model.dreamzero.streamed`)."""
    from adapt.model.dreamzero.model import DreamZeroWAM

    folder = Path(folder)
    config = read_config(folder)
    with torch.device("meta"):
        model = DreamZeroWAM(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found: dict[str, tuple[int, ...]] = {}
    dit: dict[Path, dict[str, str]] = {}  # file -> {checkpoint key: our name}
    encoders: dict[str, tuple[Path, str]] = {}  # our name -> (file, checkpoint key)
    encoder_shapes: dict[str, torch.Tensor] = {}  # checkpoint key -> a meta tensor of its shape
    for file in weight_files(folder):
        try:
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    shape = tuple(f.get_slice(key).get_shape())
                    if key.startswith(ENCODERS):
                        encoder_shapes[key] = torch.empty(shape, device="meta")
                        name = encoder_key(key)  # None: unused by DreamZero, or unknown (named below)
                        for part in ("qkv" if QKV in name else [None]) if name else []:
                            encoders[name.replace(QKV, part) if part else name] = (file, key)
                        continue
                    name = to_adapt(key)
                    found[name or f"?{key}"] = shape
                    if name:
                        dit.setdefault(file, {})[key] = name
        except (OSError, ValueError, RuntimeError) as error:
            raise AdaptError(f"{file}: not a readable safetensors file ({error})") from None
    found.update({name: tuple(t.shape) for name, t in encoder_state_dict(encoder_shapes).items()})
    check_keys(found, expected, folder)
    tied, shared = (PREFIX + name for name in T5_TIED)
    encoders[tied] = encoders[shared]
    model.load_state_dict(_read(dit), assign=True, strict=False)
    model.tokenizer.stream = StreamedEncoders(model.tokenizer, CheckpointWeights(encoders))
    model.tokenizer.constants(torch.device("cpu"))
    _, model.donor_names = donor_names(folder)
    model.encoder_cache = EncoderCache(fingerprint(folder))
    model.tokenizer.load_tokenizer(folder)
    return model.to(device, dtype or torch.float32).eval()


def _read(wanted: dict[Path, dict[str, str]]) -> dict[str, torch.Tensor]:
    """{file: {checkpoint key: name}} -> {name: tensor}, each file opened once."""
    out = {}
    for file, keys in wanted.items():
        with safe_open(str(file), framework="pt") as f:
            out.update({name: f.get_tensor(key) for key, name in keys.items()})
    return out


def fingerprint(folder: Path) -> str:
    """sha256 over the weight files' names, sizes and first and last MiB: enough to tell two bases apart,
    without reading 45 GB at every adapter save and load."""
    digest = hashlib.sha256()
    for file in weight_files(Path(folder)):
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}".encode())
        with open(file, "rb") as f:
            digest.update(f.read(1 << 20))
            f.seek(max(size - (1 << 20), 0))
            digest.update(f.read(1 << 20))
    return digest.hexdigest()
