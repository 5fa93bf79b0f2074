"""Shared fixtures: a CLI runner and helpers that write specs (good and broken) into tmp folders."""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml
from typer.testing import CliRunner

from adapt.cli import app
from adapt.embodiment import bundled_embodiments

TWO_LINK_URDF = """<?xml version="1.0"?>
<robot name="two_link">
  <link name="base_link"><inertial><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="link1">
    <inertial><origin xyz="0.25 0 0"/><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial>
    <visual><geometry><mesh filename="package://two_link_description/meshes/link1.stl"/></geometry></visual>
  </link>
  <link name="link2"><inertial><origin xyz="0.2 0 0"/><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="tool0"/>
  <joint name="shoulder" type="revolute">
    <parent link="base_link"/><child link="link1"/><origin xyz="0 0 0.1"/><axis xyz="0 0 1"/>
    <limit lower="-2.0" upper="2.0" velocity="1.5" effort="10"/>
  </joint>
  <joint name="elbow" type="revolute">
    <parent link="link1"/><child link="link2"/><origin xyz="0.5 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-2.5" upper="2.5" velocity="3.0" effort="10"/>
  </joint>
  <joint name="tool_fixed" type="fixed"><parent link="link2"/><child link="tool0"/><origin xyz="0.4 0 0"/></joint>
</robot>
"""
"""A planar 2-link arm (lengths 0.5 m and 0.4 m, 0.1 m above the base) with an analytic FK; its mesh
points into a ROS package we do not have, as vendors' URDFs often do."""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner):
    """Run `adapt ARGS...` in-process; returns the click Result (exit_code, output, stderr)."""

    def run(*args: str):
        argv = ["adapt", *(str(a) for a in args)]
        with mock.patch.object(sys, "argv", argv):  # as a shell would start it (provenance records the command)
            return runner.invoke(app, argv[1:])

    return run


@pytest.fixture
def panda_raw() -> dict:
    """The bundled panda spec as plain data (its description is a package:// reference, valid anywhere)."""
    return yaml.safe_load(bundled_embodiments()["panda"].read_text())


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec dict to tmp_path/NAME.yaml and return the path."""

    def write(raw: dict, name: str = "spec") -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return write


@pytest.fixture
def two_link_urdf(tmp_path) -> Path:
    path = tmp_path / "two_link.urdf"
    path.write_text(TWO_LINK_URDF)
    return path


def synthetic_episode(spec, length: int, seed: int, size: int = 32, task: str = "push the red block"):
    """A red square gliding over black (a learnable, non-constant video) and a smooth random-walk state;
    actions are the next state's joints + gripper (absolute targets), so they follow from the frames."""
    import numpy as np

    from adapt.data import Episode

    rng = np.random.default_rng(seed)
    frames = np.zeros((length, size, size, 3), np.uint8)
    pos, vel = rng.uniform(4, size - 5, 2), rng.normal(size=2)
    for t in range(length):
        pos = np.clip(pos + vel, 3, size - 4)
        vel = np.where((pos <= 3) | (pos >= size - 4), -vel, vel)
        r, c = pos.astype(int)
        frames[t, r - 3 : r + 3, c - 3 : c + 3] = (230, 60, 40)
    views = {camera.name: frames for camera in spec.cameras}
    if spec.video_only:
        return Episode(task, views)
    state = (np.cumsum(rng.normal(size=(length, spec.state_dim)), axis=0) * 0.05).astype(np.float32)
    action = np.roll(state, -1, axis=0)[:, : spec.action_dim]
    if action.shape[1] < spec.action_dim:
        action = np.pad(action, ((0, 0), (0, spec.action_dim - action.shape[1])))
    return Episode(task, views, state, np.ascontiguousarray(action, dtype=np.float32))


@pytest.fixture
def synthetic_dataset(tmp_path):
    """Factory: write a small LeRobot v3 dataset for a bundled embodiment and return its folder."""
    from adapt.data import DatasetWriter
    from adapt.embodiment import load_embodiment, spec_from_dict

    def make(name: str, episodes=3, length=48, seed=0, task="push the red block", video_only=False, spec=None):
        spec = spec or load_embodiment(name)
        if video_only:  # the robot's cameras only, as a demo exported without actions
            cameras = [c.model_dump() for c in spec.cameras]
            spec = spec_from_dict({"name": spec.name, "video_only": True, "cameras": cameras})
        root = tmp_path / f"{name}_{seed}{'_video' if video_only else ''}"
        with DatasetWriter(root, spec) as writer:
            for e in range(episodes):
                writer.add(synthetic_episode(spec, length, seed * 100 + e, task=task))
        return root

    return make


@pytest.fixture(autouse=True, scope="session")
def frame_cache_in_tmp(tmp_path_factory):
    """Training's frame cache (adapt.data.frame_cache) goes to a temp folder, not the user's ~/.cache."""
    import os

    os.environ["ADAPT_CACHE"] = str(tmp_path_factory.mktemp("adapt_cache"))


@pytest.fixture(autouse=True, scope="session")
def lightning_logs_to_the_real_stderr():
    """Lightning binds its log handler to sys.stderr when first imported; imported inside a CliRunner it
    would keep the runner's stream, closed after that command, and later commands' logs would fail."""
    import lightning  # noqa: F401


@pytest.fixture
def assert_picture():
    return _assert_picture


def _assert_picture(path: Path, min_size: tuple[int, int]) -> None:
    """`path` is a PNG of at least `min_size` (width, height) with something drawn on it: a plot or a frame
    grid that rendered blank (one flat colour) fails, as does a missing or unreadable file."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG", f"{path}: {image.format}"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1], f"{path}: {image.size}"
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert pixels.std() > 5 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 16, f"{path} is blank"


DREAMZERO_WORDS = (
    "a multi-view video shows that robot push the red block . split into four views : top-left view is primary"
)
"""Words of the prompts the tests send, so the tiny tokenizer has them (anything else is <unk>)."""


def write_dreamzero_checkpoint(
    folder: Path, shards: int = 1, seed: int = 0, preset: str = "dreamzero-tiny", dtype: str = "float32"
) -> Path:
    """A DreamZero checkpoint as DreamZero releases them: `config.json` (VLAConfig), `model.safetensors`
    (or an index and `shards` shards) with DreamZero's key names (DiT and registers under `action_head.model.`,
    encoders under theirs), `experiment_cfg/metadata.json` (one embodiment tag: joint_position 7, gripper 1)
    and a `tokenizer/` folder (a real word-level tokenizer built with `tokenizers`, as umT5's is not here).
    The tiny preset holds a freshly initialised model; a real-size one (benchmarks/dreamzero_real_size.py) is
    written a shard at a time from random weights (normal, std 0.02; norms' weights 1), never whole in memory."""
    import json

    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from adapt.model.dreamzero.config import DREAMZERO_PRESETS
    from adapt.model.dreamzero.encoders import dreamzero_encoder_state_dict
    from adapt.model.dreamzero.keys import to_dreamzero
    from adapt.model.dreamzero.model import DreamZeroWAM

    torch.manual_seed(seed)
    config, dtype = DREAMZERO_PRESETS[preset], getattr(torch, dtype)
    with torch.device("cpu" if preset == "dreamzero-tiny" else "meta"):
        state = DreamZeroWAM(config).state_dict()
    tensors = {to_dreamzero(k): v for k, v in state.items() if k.startswith(("backbone.", "shared_registers."))}
    tensors |= dreamzero_encoder_state_dict({k: v for k, v in state.items() if k.startswith("tokenizer.")})
    generator = torch.Generator().manual_seed(seed)

    def value(key: str) -> torch.Tensor:
        t = tensors[key]
        if not t.is_meta:
            return t.to(dtype).contiguous()
        if t.ndim == 1 and "norm" in key and key.endswith(("weight", "gamma")):
            return torch.ones(t.shape, dtype=dtype)
        return (torch.randn(t.shape, generator=generator) * 0.02).to(dtype)

    folder.mkdir(parents=True)
    keys = sorted(tensors)
    if shards == 1:
        save_file({k: value(k) for k in keys}, folder / "model.safetensors")
    else:
        weight_map = {}
        for i in range(shards):
            name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = keys[i::shards]
            save_file({k: value(k) for k in part}, folder / name)
            weight_map |= dict.fromkeys(part, name)
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    dit = {
        "_target_": "groot.vla.model.dreamzero.modules.wan_video_dit_action_casual_chunk.CausalWanModel",
        "model_type": config.model_type, "frame_seqlen": config.frame_tokens, "dim": config.dim, "in_dim": config.in_dim,
        "ffn_dim": config.ffn_dim, "out_dim": config.out_dim, "text_dim": config.text_dim, "text_len": config.text_len,
        "freq_dim": 256, "eps": 1e-6, "num_heads": config.num_heads, "num_layers": config.num_layers,
        "max_chunk_size": config.max_blocks, "num_frame_per_block": config.frames_per_block,
        "num_action_per_block": config.actions_per_block, "num_state_per_block": 1,
        "hidden_size": config.register_hidden, "max_state_dim": config.max_state_dim, "action_dim": config.max_action_dim,
    }  # fmt: skip
    head = {"diffusion_model_cfg": dit, "view_size": [config.view_height, config.view_width], "lora_rank": 4}
    vla = {"model_type": "vla", "action_head_cfg": {"_target_": "WANPolicyHead", "config": head}, "action_dim": 8}
    (folder / "config.json").write_text(json.dumps(vla, indent=2))
    part = {"max": [1.0], "min": [-1.0], "mean": [0.0], "std": [1.0], "q01": [-1.0], "q99": [1.0]}
    modalities = {"joint_position": {"shape": [7]}, "gripper": {"shape": [1]}}
    meta = {
        "agibot": {
            "statistics": {p: {k: part for k in modalities} for p in ("state", "action")},
            "modalities": {"state": modalities, "action": modalities},
            "embodiment_tag": "agibot",
        }
    }
    (folder / "experiment_cfg").mkdir()
    (folder / "experiment_cfg" / "metadata.json").write_text(json.dumps(meta))
    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>", *dict.fromkeys(DREAMZERO_WORDS.split())])}
    words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    words.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    tokenizer.save_pretrained(folder / "tokenizer")
    return folder


@pytest.fixture(scope="session")
def dreamzero_base(tmp_path_factory) -> Path:
    """A tiny DreamZero checkpoint folder (see `write_dreamzero_checkpoint`), written once per session."""
    return write_dreamzero_checkpoint(tmp_path_factory.mktemp("dreamzero") / "DreamZero-tiny")
