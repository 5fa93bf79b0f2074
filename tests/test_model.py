"""The World Action Model: shapes in every mode, learning, masking of video-only data, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from adapt.embodiment import load_embodiment
from adapt.errors import AdaptError
from adapt.model import PRESETS, WorldActionModel, load_model, model_config, save_model
from adapt.model.dit.text import HashedTextEncoder

TINY = model_config("tiny")


def make_batch(spec, b: int = 3, has_action: bool = True, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    chunk = spec.action.chunk if spec.action else 1
    frames = torch.randint(0, 255, (b, len(spec.cameras), TINY.context + TINY.future, 3, 32, 32), generator=g)
    return {
        "frames": frames.to(torch.uint8),
        "context_mask": torch.ones(b, TINY.context, dtype=torch.bool),
        "future_mask": torch.tensor([[True] * TINY.future] * (b - 1) + [[True, True, False, False]]),
        "task": ["lift the cube"] * b,
        "embodiment": [spec.name] * b,
        "state": torch.randn(b, max(spec.state_dim, 1), generator=g),
        "has_state": torch.full((b,), has_action),
        "action": torch.randn(b, chunk, max(spec.action_dim, 1), generator=g),
        "action_mask": torch.ones(b, chunk, dtype=torch.bool),
        "has_action": torch.full((b,), has_action),
    }


@pytest.fixture(scope="module")
def specs():
    return {n: load_embodiment(n) for n in ("ur5e", "baxter", "human")}


@pytest.fixture
def model(specs):
    torch.manual_seed(0)
    return WorldActionModel(TINY, list(specs.values()))


def test_presets_share_one_config_type_and_tiny_is_small():
    assert set(PRESETS) == {"tiny", "small", "base"}
    sizes = {
        n: sum(p.numel() for p in WorldActionModel(c, [load_embodiment("ur5e")]).parameters())
        for n, c in PRESETS.items()
    }
    assert sizes["tiny"] < 5e6 < sizes["base"] and sizes["tiny"] < sizes["small"] < sizes["base"]
    with pytest.raises(AdaptError, match="unknown model size 'huge'"):
        model_config("huge")


@pytest.mark.parametrize("mode", ["joint", "action_only", "video_only"])
def test_loss_and_sample_shapes_in_every_mode(model, specs, mode):
    spec = specs["baxter"]
    losses = model.loss(make_batch(spec), mode)
    assert set(losses) == {"loss", "video", "action"} and torch.isfinite(losses["loss"])
    assert (losses["video"] == 0) == (mode == "action_only")
    assert (losses["action"] == 0) == (mode == "video_only")
    out = model.sample(make_batch(spec), steps=2, video_final_t=0.5, mode=mode)
    if mode == "video_only":
        assert out["actions"] is None
    else:
        assert out["actions"].shape == (3, spec.action.chunk, 16)
    if mode == "action_only":
        assert out["future"] is None
    else:
        cams = len(spec.cameras)
        assert out["future"].shape == (3, cams, TINY.future, TINY.tokens_per_frame, TINY.patch_dim)
        assert model.frames_from_latents(out["future"]).shape == (3, cams, TINY.future, 3, 32, 32)
        assert out["future_estimate"].shape == out["future"].shape


def test_action_only_loss_never_reads_the_future_frames(model, specs):
    """A policy acts before its future is filmed: an action-only step given garbage future frames scores as
    with the real ones, while a joint step's video loss does see them, and only the joint step tokenizes them.
    Catches future frames leaking into the action pathway, and an action-only step paying to tokenize frames
    it never uses (a third of its time on a CPU)."""
    batch = make_batch(specs["ur5e"])
    scrambled = dict(batch, frames=batch["frames"].clone())
    scrambled["frames"][:, :, TINY.context :] = 255 - scrambled["frames"][:, :, TINY.context :]
    encode, tokenized = model.tokenizer.encode, []
    model.tokenizer.encode = lambda frames: tokenized.append(frames.shape[2]) or encode(frames)
    draws = [
        model.loss(b, m, torch.Generator().manual_seed(3)) for m in ("action_only", "joint") for b in (batch, scrambled)
    ]
    assert draws[0]["action"] == draws[1]["action"]
    assert draws[2]["video"] != draws[3]["video"]
    assert tokenized == [TINY.context] * 2 + [TINY.context + TINY.future] * 2


def test_future_estimate_is_the_sample_only_when_the_video_is_fully_denoised(model, specs):
    torch.nn.init.normal_(model.video_out.weight, std=0.05)  # a velocity that is not zero
    batch = make_batch(specs["ur5e"])
    noisy = model.sample(batch, steps=2, video_final_t=0.5)
    assert (noisy["future_estimate"] - noisy["future"]).abs().mean() > 1e-3
    clean = model.sample(batch, steps=2, video_final_t=0.0)
    torch.testing.assert_close(clean["future_estimate"], clean["future"], rtol=0, atol=1e-6)


def test_change_target_samples_the_last_latent_plus_what_a_frames_model_samples(model, specs):
    """One network under both video targets, one noise draw: the change model's future is the frames model's
    plus the last context latent, in every frame and in the estimate. Catches the anchor left off when
    sampling, or taken from another context frame."""
    torch.nn.init.normal_(model.video_out.weight, std=0.05)
    change = WorldActionModel(TINY.model_copy(update={"video_target": "change"}), list(specs.values()))
    change.load_state_dict(model.state_dict())
    batch = make_batch(specs["ur5e"])
    frames, moved = (m.sample(batch, steps=2, generator=torch.Generator().manual_seed(1)) for m in (model, change))
    last = model.latents(batch["frames"][:, :, TINY.context - 1 : TINY.context])
    for key in ("future", "future_estimate"):
        torch.testing.assert_close(moved[key], frames[key] + last, rtol=0, atol=1e-5)
    torch.testing.assert_close(moved["actions"], frames["actions"], rtol=0, atol=1e-6)


def test_change_target_loss_does_not_depend_on_a_scene_that_stays_still(specs):
    """A zero velocity (video_out's initialization) scores |noise - x_0|^2: with the change target x_0 is 0
    for any scene that does not move after now, so two different still scenes score alike, while the frames
    target scores their content. Catches a change target measured from another frame than the last context
    frame (the first one differs here), or not measured from one at all."""
    config = TINY.model_copy(update={"video_target": "change"})
    spec = specs["ur5e"]
    losses = {}
    for name, model_config_ in (("change", config), ("frames", TINY)):
        torch.manual_seed(0)
        model = WorldActionModel(model_config_, [spec])
        for seed in (0, 1):
            batch = make_batch(spec, seed=seed)
            batch["frames"][:, :, TINY.context :] = batch["frames"][:, :, TINY.context - 1 : TINY.context]
            loss = model.loss(batch, "video_only", generator=torch.Generator().manual_seed(2))["video"]
            losses[name, seed] = loss.item()
    assert losses["change", 0] == pytest.approx(losses["change", 1], rel=1e-6)
    assert losses["frames", 0] != pytest.approx(losses["frames", 1], rel=1e-3)


def test_an_untrained_clean_change_model_copies_the_last_frame_and_scores_the_motion(specs):
    """Outputting x_0 = the change, a fresh model (zero output layer) predicts no change: its future, after
    one step or three, and its estimate are the last context latent, and its video loss is the mean squared
    change of the real future. Catches a wrong velocity from x_0 (the sample would drift from the copy) or a
    loss fit to the velocity instead of x_0 (it would depend on the noise)."""
    config = TINY.model_copy(update={"video_target": "change", "video_prediction": "clean"})
    spec = specs["ur5e"]
    model = WorldActionModel(config, [spec])
    batch = make_batch(spec)
    latents = model.latents(batch["frames"])
    last = latents[:, :, TINY.context - 1 : TINY.context].expand_as(latents[:, :, TINY.context :])
    for steps in (1, 3):
        out = model.sample(batch, steps=steps, generator=torch.Generator().manual_seed(steps))
        for key in ("future", "future_estimate"):
            torch.testing.assert_close(out[key], last, rtol=0, atol=1e-5)
    motion = (latents[:, :, TINY.context :] - last).pow(2).mean(dim=(1, 3, 4))  # (B, future)
    expected = motion[batch["future_mask"]].mean()
    for seed in (0, 1):
        loss = model.loss(batch, "video_only", generator=torch.Generator().manual_seed(seed))["video"]
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=0)


def test_video_time_shift_moves_the_video_towards_noise_in_sampling_and_training(model, specs, monkeypatch):
    """Shift 3: two sampling steps visit video times 1 and 3(0.5)/(1 + 2(0.5)) = 0.75 while the actions keep
    1 and 0.5, and training draws each video time u as 3u/(1 + 2u). Catches a shift applied to the actions,
    to one of training and sampling only, or not at all."""
    spec = specs["ur5e"]
    shifted = WorldActionModel(TINY.model_copy(update={"video_time_shift": 3.0}), [spec])
    times: dict[str, list] = {"plain": [], "shifted": []}
    for name, m in (("plain", model), ("shifted", shifted)):
        velocity = m.velocity

        def spy(prefix, future, t_video, actions, t_action, *rest, _name=name, _velocity=velocity, **kw):
            times[_name].append((t_video.tolist(), t_action.tolist()))
            return _velocity(prefix, future, t_video, actions, t_action, *rest, **kw)

        monkeypatch.setattr(m, "velocity", spy)
    shifted.sample(make_batch(spec, b=1), steps=2)
    assert [x for v, a in times["shifted"] for x in (v[0], a[0])] == pytest.approx([1.0, 1.0, 0.75, 0.5])
    times["shifted"].clear()
    for m in (model, shifted):
        m.loss(make_batch(spec), generator=torch.Generator().manual_seed(4))
    (plain_video, plain_action), (video, action) = times["plain"][0], times["shifted"][0]
    u = torch.tensor(plain_video)
    torch.testing.assert_close(torch.tensor(video), 3 * u / (1 + 2 * u))
    assert action == plain_action


def test_cached_prefix_sampling_equals_full_sampling(model, specs):
    for block in model.backbone.blocks:  # leave adaLN-Zero's identity start, so tokens interact
        torch.nn.init.normal_(block.modulation.weight, std=0.05)
    torch.nn.init.normal_(model.video_out.weight, std=0.05)
    batch = make_batch(specs["ur5e"])
    batch["context_mask"][0, 0] = False  # a padded context frame: hidden in both paths
    full = model.sample(batch, steps=3, video_final_t=0.4, cache=False, generator=torch.Generator().manual_seed(2))
    cached = model.sample(batch, steps=3, video_final_t=0.4, cache=True, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(cached["actions"], full["actions"], rtol=0, atol=1e-5)
    torch.testing.assert_close(cached["future"], full["future"], rtol=0, atol=1e-5)


def test_one_sample_dropping_its_hidden_tokens_predicts_what_masking_them_does(model, specs):
    for block in model.backbone.blocks:
        torch.nn.init.normal_(block.modulation.weight, std=0.05)
    spec = specs["ur5e"]
    batch = make_batch(spec, b=1)
    batch["context_mask"][0, 0] = False  # hidden context frame; the task's padding words are hidden too
    with torch.no_grad():
        padded = model.encode_prefix(batch, model.latents(batch["frames"][:, :, : TINY.context]))
        compact = padded.without_hidden()
        assert compact.valid.all() and compact.tokens.shape[1] < padded.tokens.shape[1]
        future = torch.randn(1, len(spec.cameras), TINY.future, TINY.tokens_per_frame, TINY.patch_dim)
        actions, t = torch.randn(1, spec.action.chunk, spec.action_dim), torch.tensor([0.7])
        for prefix in (padded, compact):
            for cache in (None, model.prefix_cache(prefix)):
                video_v, action_v = model.velocity(prefix, future, t, actions, t, cache=cache)
                if prefix is padded and cache is None:
                    reference = video_v, action_v
                torch.testing.assert_close((video_v, action_v), reference, rtol=0, atol=1e-5)


def test_video_only_embodiment_has_no_action_heads(model, specs):
    batch = make_batch(specs["human"], has_action=False)
    assert model.heads["human"].action_encoder is None
    assert model.loss(batch)["action"] == 0
    assert model.sample(batch, steps=2)["actions"] is None


def test_overfitting_one_batch_lowers_video_and_action_loss(model, specs):
    batch = make_batch(specs["ur5e"], b=4)
    model.tokenizer.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    history = []
    for _ in range(60):
        losses = model.loss(batch, generator=torch.Generator().manual_seed(1))  # same noise every step
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    assert history[-1]["video"] < 0.5 * history[0]["video"]
    assert history[-1]["action"] < 0.5 * history[0]["action"]


def test_video_only_batch_gives_no_gradient_to_action_heads(model, specs):
    model.loss(make_batch(specs["ur5e"], has_action=False))["loss"].backward()
    heads = model.heads["ur5e"]
    for part in (heads.action_encoder, heads.action_decoder, heads.state_encoder):
        for name, p in part.named_parameters():
            assert p.grad is None or not p.grad.any(), name
    assert model.video_out.weight.grad is not None and model.video_out.weight.grad.any()


def test_hidden_actions_do_not_reach_the_video_prediction(model, specs):
    """A sample without actions: whatever its (noise) action tokens hold, its video velocity is the same."""
    for block in model.backbone.blocks:  # leave adaLN-Zero's identity start, so tokens interact
        torch.nn.init.normal_(block.modulation.weight, std=0.05)
    torch.nn.init.normal_(model.video_out.weight, std=0.05)
    batch = make_batch(specs["ur5e"], b=2)
    prefix = model.encode_prefix(batch, model.latents(batch["frames"])[:, :, : TINY.context])
    future = torch.randn(2, 2, TINY.future, TINY.tokens_per_frame, TINY.patch_dim)
    t = torch.full((2,), 0.5)
    actions = torch.randn(2, 16, 7)
    other = actions + torch.randn(2, 16, 7)

    def video(a, has):
        return model.velocity(prefix, future, t, a, t, torch.tensor(has))[0]

    torch.testing.assert_close(video(actions, [False, False]), video(other, [False, False]))
    assert not torch.allclose(video(actions, [True, True]), video(other, [True, True]))


def test_two_embodiments_with_different_action_dims_train_in_one_stream(model, specs):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for batch in (make_batch(specs["ur5e"]), make_batch(specs["baxter"]), make_batch(specs["human"], has_action=False)):
        optimizer.zero_grad()
        model.loss(batch)["loss"].backward()
        optimizer.step()
    assert model.heads["ur5e"].action_decoder.net[-1].out_features == 7
    assert model.heads["baxter"].action_decoder.net[-1].out_features == 16


def test_a_batch_of_two_embodiments_or_an_unknown_one_is_refused(model, specs):
    batch = make_batch(specs["ur5e"], b=2)
    with pytest.raises(AdaptError, match="one embodiment"):
        model.loss(dict(batch, embodiment=["ur5e", "baxter"]))
    with pytest.raises(AdaptError, match="no heads for embodiment 'panda'"):
        model.loss(dict(batch, embodiment=["panda", "panda"]))


def test_save_then_load_gives_identical_outputs(model, specs, tmp_path):
    model.eval()
    batch = make_batch(specs["baxter"])
    before = model.sample(batch, steps=3, generator=torch.Generator().manual_seed(5))
    save_model(model, tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt")
    after = loaded.sample(batch, steps=3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(after["actions"], before["actions"], rtol=0, atol=0)
    torch.testing.assert_close(after["future"], before["future"], rtol=0, atol=0)
    assert sorted(loaded.specs) == sorted(specs)
    with pytest.raises(AdaptError, match="already exists"):
        save_model(model, tmp_path / "ckpt")


def test_half_checkpoint_is_half_the_size_and_loads_as_float32(model, tmp_path):
    full = save_model(model, tmp_path / "full") / "model.safetensors"
    half = save_model(model, tmp_path / "half", half=True) / "model.safetensors"
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(tmp_path / "half")
    for (name, p), q in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert q.dtype == p.dtype, name
        torch.testing.assert_close(q, p.half().to(p.dtype) if p.is_floating_point() else p, rtol=0, atol=0)


def test_damaged_checkpoints_are_refused(model, tmp_path):
    save_model(model, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(AdaptError, match="cannot load weights"):
        load_model(tmp_path / "ckpt")
    config = tmp_path / "ckpt" / "config.json"
    config.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(AdaptError, match="not a valid model config"):
        load_model(tmp_path / "ckpt")
    with pytest.raises(AdaptError, match="not a model checkpoint"):
        load_model(tmp_path / "nothing")


def test_hashed_text_encoder_is_deterministic_and_masks_padding():
    encoder = HashedTextEncoder(vocab=64, length=5, dim=8)
    tokens, mask = encoder(["Lift the RED cube!", "lift the red cube", ""])
    torch.testing.assert_close(tokens[0], tokens[1])
    assert mask.tolist() == [[True] * 4 + [False], [True] * 4 + [False], [True] + [False] * 4]


def test_checkpoints_are_written_with_plain_file_permissions(model, tmp_path):
    """The private temp folder does not leak its 0700/0600 modes into the finished checkpoint."""
    import os
    import stat

    previous = os.umask(0o022)
    try:
        path = save_model(model, tmp_path / "ckpt")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    for file in (path / "model.safetensors", path / "config.json", *path.glob("embodiments/*.yaml")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file
