"""Datasets: write -> read round trips (v3 and a hand-written v2.1), windows and masks, statistics,
and every kind of bad input ending in an error that names the file/episode/column (or a counted skip)."""

from __future__ import annotations

import json
import logging
import signal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from lightning.fabric.utilities.seed import seed_everything
from torch.utils.data import Dataset

from adapt.data import DatasetWriter, Episode, FeatureMap, LeRobotDataset
from adapt.data.codec import ActionCodec, compute_stats
from adapt.data.stats import NormStats
from adapt.data.window_config import WindowConfig
from adapt.data.windows import WindowDataset, window_loader
from adapt.embodiment import load_embodiment, spec_from_dict
from adapt.errors import AdaptError

SIZE = 32


def make_episode(spec, length: int, seed: int, task: str = "lift the cube") -> Episode:
    """Frames whose brightness encodes the frame index (so decoded frames can be checked), random arrays."""
    rng = np.random.default_rng(seed)
    ramp = (np.arange(length) * 7 + seed * 40) % 200 + 20
    frames = {
        c.name: np.broadcast_to(ramp[:, None, None, None], (length, SIZE, SIZE, 3)).astype(np.uint8).copy()
        for c in spec.cameras
    }
    if spec.video_only:
        return Episode(task, frames)
    state = rng.normal(size=(length, spec.state_dim)).astype(np.float32)
    action = rng.normal(size=(length, spec.action_dim)).astype(np.float32)
    return Episode(task, frames, state, action)


@pytest.fixture
def ur5e():
    return load_embodiment("ur5e")


@pytest.fixture
def episodes(ur5e):
    return [make_episode(ur5e, length, seed) for seed, length in enumerate((30, 41, 25))]


@pytest.fixture
def dataset_v3(tmp_path, ur5e, episodes):
    with DatasetWriter(tmp_path / "v3", ur5e) as writer:
        for episode in episodes:
            writer.add(episode)
    return tmp_path / "v3"


def assert_round_trip(dataset, episodes, spec):
    assert [e.length for e in dataset.episodes] == [e.length for e in episodes]
    for read, written in zip(dataset.episodes, episodes, strict=True):
        np.testing.assert_array_equal(read.state, written.state)
        np.testing.assert_array_equal(read.action, written.action)
        for camera in spec.cameras:
            frames = dataset.frames(read, camera.name, np.arange(read.length), (SIZE, SIZE)).astype(int)
            error = np.abs(frames - written.frames[camera.name])
            assert error.max() <= 6 and error.mean() < 2  # H.264 at crf 18


def test_v3_round_trip(dataset_v3, ur5e, episodes):
    info = json.loads((dataset_v3 / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == 96 and info["total_episodes"] == 3
    dataset = LeRobotDataset(dataset_v3, ur5e)
    assert dataset.tasks == ["lift the cube"]
    assert_round_trip(dataset, episodes, ur5e)


def test_v3_stats_are_lerobots(dataset_v3, episodes):
    """LeRobot's training reads meta/stats.json and fails without it: wrong or missing figures there would train
    every LeRobot policy on our data with a wrong normalisation."""
    stats = json.loads((dataset_v3 / "meta" / "stats.json").read_text())
    state = np.concatenate([e.state for e in episodes]).astype(np.float64)
    np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats["observation.state"]["q99"], np.quantile(state, 0.99, axis=0), rtol=1e-6)
    action = np.concatenate([e.action for e in episodes])
    np.testing.assert_allclose(stats["action"]["max"], action.max(0), rtol=1e-6)
    assert stats["action"]["count"] == [96]
    image = stats["observation.images.agentview"]
    assert np.shape(image["mean"]) == (3, 1, 1) and image["count"] == [96]  # per channel, as LeRobot's
    pixels = np.concatenate([e.frames["agentview"] for e in episodes]).reshape(-1, 3) / 255
    np.testing.assert_allclose(np.ravel(image["mean"]), pixels.mean(0), atol=0.05)  # sampled frames


def write_v21(root, spec, episodes, fps=20):
    """A LeRobot v2.1 dataset written independently of our writer: one parquet and one mp4 per episode."""
    import av

    (root / "meta").mkdir(parents=True)
    features = {f"observation.images.{c.name}": {"dtype": "video", "shape": [SIZE, SIZE, 3]} for c in spec.cameras}
    features |= {
        "observation.state": {"dtype": "float32", "shape": [spec.state_dim]},
        "action": {"dtype": "float32", "shape": [spec.action_dim]},
    }
    info = {
        "codebase_version": "v2.1",
        "fps": fps,
        "chunks_size": 1000,
        "features": features,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
    }
    (root / "meta" / "info.json").write_text(json.dumps(info))
    lines = [json.dumps({"episode_index": i, "tasks": [e.task], "length": e.length}) for i, e in enumerate(episodes)]
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines))
    for i, episode in enumerate(episodes):
        data = root / f"data/chunk-000/episode_{i:06d}.parquet"
        data.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            pa.table(
                {
                    "index": np.arange(episode.length),
                    "observation.state": list(episode.state),
                    "action": list(episode.action),
                }
            ),
            data,
        )
        for camera, frames in episode.frames.items():
            video = root / f"videos/chunk-000/observation.images.{camera}/episode_{i:06d}.mp4"
            video.parent.mkdir(parents=True, exist_ok=True)
            with av.open(str(video), "w") as container:
                stream = container.add_stream("libx264", rate=fps)
                stream.height = stream.width = SIZE
                stream.pix_fmt, stream.options = "yuv420p", {"crf": "18"}
                for frame in frames:
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                container.mux(stream.encode())


def test_v21_round_trip(tmp_path, ur5e, episodes):
    write_v21(tmp_path / "v21", ur5e, episodes)
    dataset = LeRobotDataset(tmp_path / "v21", ur5e)
    assert dataset.version == "v2.1"
    assert_round_trip(dataset, episodes, ur5e)


def test_camera_mapping_is_never_silent(tmp_path, ur5e, episodes, caplog):
    renamed = spec_from_dict(
        ur5e.model_dump()
        | {
            "name": "ur5e_front",
            "cameras": [
                {"name": "front", "role": "primary", "height": SIZE, "width": SIZE, "fps": 20},
                {"name": "robot0_eye_in_hand", "role": "wrist", "height": SIZE, "width": SIZE, "fps": 20},
                {"name": "side", "role": "secondary", "height": SIZE, "width": SIZE, "fps": 20},
            ],
        },
        source=ur5e.source,
    )
    with DatasetWriter(tmp_path / "three", renamed) as writer:
        for episode in episodes:
            frames = episode.frames | {"front": episode.frames["agentview"], "side": episode.frames["agentview"]}
            writer.add(Episode(episode.task, frames, episode.state, episode.action))
    with pytest.raises(AdaptError, match=r"needs cameras \{'agentview': 'observation.images.agentview'\}"):
        LeRobotDataset(tmp_path / "three", ur5e)
    with caplog.at_level(logging.WARNING):
        dataset = LeRobotDataset(
            tmp_path / "three", ur5e, FeatureMap(cameras={"agentview": "observation.images.front"})
        )
    assert "observation.images.side" in caplog.text
    assert dataset.episodes[0].videos["agentview"][0].parts[-3] == "observation.images.front"


def test_corrupt_and_truncated_video(dataset_v3, ur5e):
    """A cut file (its index gone) is unreadable; a whole but shorter video (re-encoded from fewer frames)
    opens fine and is caught by the frame count the metadata promises."""
    import decord

    from adapt.data.writer import VideoStream

    video = dataset_v3 / "videos/observation.images.agentview/chunk-000/file-000.mp4"
    content = video.read_bytes()
    frames = decord.VideoReader(str(video)).get_batch(list(range(50))).asnumpy()  # of 30 + 41 + 25 = 96
    video.write_bytes(content[: len(content) // 2])
    with pytest.raises(AdaptError, match="file-000.mp4: not a readable video"):
        LeRobotDataset(dataset_v3, ur5e)
    video.unlink()
    stream = VideoStream(video, fps=20, crf=18, gop=10)
    stream.write(frames)
    stream.close()
    with pytest.raises(AdaptError, match=r"episode 1 needs frames 30\.\.70 but the video has 50 \(truncated\?\)"):
        LeRobotDataset(dataset_v3, ur5e)
    skipping = LeRobotDataset(dataset_v3, ur5e, skip_bad=True)
    assert [e.index for e in skipping.episodes] == [0] and [i for i, _ in skipping.skipped] == [1, 2]


def test_missing_column_named(dataset_v3, ur5e):
    data = dataset_v3 / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(data).drop(["action"]), data)
    with pytest.raises(AdaptError, match=r"file-000.parquet: missing column\(s\) \['action'\]"):
        LeRobotDataset(dataset_v3, ur5e)


def test_dims_disagreeing_with_spec_named(dataset_v3):
    with pytest.raises(AdaptError, match="column 'observation.state' has \\(7,\\) dims per step but spec 'sawyer'"):
        LeRobotDataset(dataset_v3, load_embodiment("sawyer"))


def test_nan_named_or_skipped(tmp_path, ur5e, episodes):
    episodes[1].action[5, 2] = np.nan
    with DatasetWriter(tmp_path / "nan", ur5e) as writer:
        for episode in episodes:
            writer.add(episode)
    with pytest.raises(AdaptError, match="episode 1 action has NaN/inf at step 5, dim 2"):
        LeRobotDataset(tmp_path / "nan", ur5e)
    dataset = LeRobotDataset(tmp_path / "nan", ur5e, skip_bad=True)
    assert [e.index for e in dataset.episodes] == [0, 2] and len(dataset.skipped) == 1


def test_short_episode_named_or_skipped(tmp_path, ur5e, episodes):
    with DatasetWriter(tmp_path / "short", ur5e) as writer:
        for episode in [*episodes, make_episode(ur5e, 3, seed=9)]:
            writer.add(episode)
    dataset = LeRobotDataset(tmp_path / "short", ur5e)
    with pytest.raises(AdaptError, match="episode 3 has 3 control steps, shorter than a window"):
        WindowDataset(dataset, WindowConfig(stride=4))
    windows = WindowDataset(dataset, WindowConfig(stride=4), skip_bad=True)
    assert len(dataset.skipped) == 1 and {e for e, _ in windows.index} == {0, 1, 2}


def test_writer_refuses_wrong_dims_and_leaves_nothing(tmp_path, ur5e):
    episode = make_episode(ur5e, 10, 0)
    episode.state = episode.state[:, :5]
    with pytest.raises(AdaptError, match=r"state must have shape \(10, 7\)"), DatasetWriter(tmp_path / "x", ur5e) as w:
        w.add(episode)
    assert list(tmp_path.iterdir()) == []


def test_windows_shapes_and_masks(dataset_v3, ur5e):
    dataset = LeRobotDataset(dataset_v3, ur5e)
    config = WindowConfig(context=2, future=3, stride=4, height=16, width=16)
    windows = WindowDataset(dataset, config)
    assert len(windows) == (30 - 4) + (41 - 4) + (25 - 4)
    first = windows[0]
    assert first["frames"].shape == (2, 5, 3, 16, 16) and first["frames"].dtype.is_floating_point is False
    assert first["context_mask"].tolist() == [False, True]
    assert first["state"].shape == (7,) and first["action"].shape == (16, 7)
    assert first["has_state"] and first["has_action"] and first["action_mask"].all()
    np.testing.assert_allclose(first["action"].numpy(), dataset.episodes[0].action[:16])
    last = windows[30 - 4 - 1]  # t = 25 in a 30-step episode
    assert last["future_mask"].tolist() == [True, False, False]
    assert last["action_mask"].sum() == 5  # steps 25..29 exist, the rest of the chunk is padding
    # frame brightness encodes the index: the context frame at t - 4 = 21 and the future frame at 29
    brightness = last["frames"][0, :, 0].float().mean(dim=(1, 2))
    assert abs(brightness[0].item() - (21 * 7 % 200 + 20)) < 3 and abs(brightness[2].item() - (29 * 7 % 200 + 20)) < 3


def test_frame_tasks_are_read_per_frame_condition_windows_and_survive_gear_export(invoke, tmp_path, ur5e):
    """Hindsight labels (one task per frame, LeRobot's per-frame task_index) are read back frame by frame,
    a window is conditioned on the task at its time t, and a GEAR export (v2.1, tasks.jsonl) keeps them.
    Bugs caught: windows taking the episode's task; task indices mixed up between episodes that share a
    text; the reader's or the exporter's task table out of step with the indices in the parquet."""
    labels = ["play with the cube"] * 10 + ["lift the cube"] * 12 + ["play with the cube"] * 8
    labelled = make_episode(ur5e, 30, 0, task="play with the cube")
    labelled.frame_tasks = labels
    plain = make_episode(ur5e, 25, 1, task="lift the cube")
    with DatasetWriter(tmp_path / "v3", ur5e) as writer:
        writer.add(plain)
        writer.add(labelled)
    dataset = LeRobotDataset(tmp_path / "v3", ur5e)
    assert dataset.tasks == ["lift the cube", "play with the cube"]
    assert dataset.episodes[0].frame_tasks is None and dataset.episodes[0].task == "lift the cube"
    assert dataset.episodes[1].task == "play with the cube" and dataset.episodes[1].frame_tasks.tolist() == labels
    windows = WindowDataset(dataset, WindowConfig(context=2, future=3, stride=4, height=16, width=16))
    seen = {(e, t): windows[i]["task"] for i, (e, t) in enumerate(windows.index)}
    assert [seen[1, t] for t in range(30 - 4)] == labels[: 30 - 4]
    assert {seen[0, t] for t in range(25 - 4)} == {"lift the cube"}

    out = tmp_path / "gear"
    assert invoke("data", "export", tmp_path / "v3", "--out", out, "--embodiment", "ur5e").exit_code == 0
    assert LeRobotDataset(out, ur5e).episodes[1].frame_tasks.tolist() == labels

    (tmp_path / "v3" / "meta" / "tasks.parquet").unlink()
    with pytest.raises(AdaptError, match=r"tasks\.parquet: missing; episodes label frames with several tasks"):
        LeRobotDataset(tmp_path / "v3", ur5e)


def test_video_only_windows_have_no_state_or_action(tmp_path):
    human = load_embodiment("human")
    with DatasetWriter(tmp_path / "human", human) as writer:
        writer.add(make_episode(human, 20, 0, task="wipe the table"))
    windows = WindowDataset(LeRobotDataset(tmp_path / "human", human), WindowConfig(height=16, width=16))
    item = windows[0]
    assert not item["has_state"] and not item["has_action"] and not item["action_mask"].any()
    assert item["frames"].shape == (1, 6, 3, 16, 16) and item["task"] == "wipe the table"


def test_resampling_when_dataset_fps_differs(tmp_path, ur5e, episodes):
    with DatasetWriter(tmp_path / "fast", ur5e, fps=40) as writer:
        writer.add(episodes[1])
    windows = WindowDataset(LeRobotDataset(tmp_path / "fast", ur5e), WindowConfig(stride=2, height=16, width=16))
    assert len(windows) == 41 // 2 - 2  # 40 fps recording seen at the spec's 20 Hz
    np.testing.assert_allclose(windows[3]["state"].numpy(), episodes[1].state[6])


def test_relative_actions_round_trip(ur5e):
    relative = spec_from_dict(
        ur5e.model_dump() | {"action": ur5e.action.model_dump() | {"relative": True}}, source=ur5e.source
    )
    rng = np.random.default_rng(0)
    actions, state = rng.normal(size=(16, 7)), rng.normal(size=7)
    codec = ActionCodec(relative)
    model_actions = codec.to_relative(actions, state)
    np.testing.assert_allclose(model_actions[:, :6], actions[:, :6] - state[:6])
    np.testing.assert_allclose(model_actions[:, 6], actions[:, 6])  # gripper stays absolute
    np.testing.assert_allclose(codec.to_absolute(model_actions, state), actions)


def test_idle_filter_drops_still_stretches(tmp_path, ur5e):
    episode = make_episode(ur5e, 60, 0)
    episode.state[:] = 0.0
    episode.state[30:, 0] = np.linspace(0, 1, 30)  # still for 30 steps, then moving
    with DatasetWriter(tmp_path / "idle", ur5e) as writer:
        writer.add(episode)
    dataset = LeRobotDataset(tmp_path / "idle", ur5e)
    moving = WindowDataset(dataset, WindowConfig(idle_threshold=0.01))
    assert len(moving) < len(WindowDataset(dataset)) and min(t for _, t in moving.index) >= 30 - 16


def test_stats_match_numpy_and_round_trip(dataset_v3, ur5e, tmp_path):
    dataset = LeRobotDataset(dataset_v3, ur5e)
    stats = compute_stats(dataset)
    actions = np.concatenate([e.action for e in dataset.episodes])
    np.testing.assert_allclose(stats.action.mean, actions.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.action.std, actions.std(0), rtol=1e-4)
    np.testing.assert_allclose(stats.action.q99, np.quantile(actions, 0.99, axis=0), rtol=1e-5)
    normalized = stats.normalize(actions, "action")
    np.testing.assert_allclose(normalized.mean(0), 0, atol=1e-5)
    stats.save(tmp_path / "stats.json")
    loaded = NormStats.load(tmp_path / "stats.json")
    np.testing.assert_allclose(loaded.unnormalize(normalized, "action"), actions, atol=1e-5)
    loaded.mode = "quantile"
    scaled = loaded.normalize(actions, "action")
    assert np.mean((scaled >= -1) & (scaled <= 1)) > 0.95
    np.testing.assert_allclose(loaded.unnormalize(scaled, "action"), actions, atol=1e-5)


def test_dataloader_with_workers_yields_batches(dataset_v3, ur5e):
    windows = WindowDataset(LeRobotDataset(dataset_v3, ur5e), WindowConfig(height=16, width=16))
    batches = list(window_loader(windows, batch_size=32, workers=2))
    assert sum(len(b["task"]) for b in batches) == len(windows)
    assert batches[0]["frames"].shape[1:] == (2, 6, 3, 16, 16) and batches[0]["action"].shape[1:] == (16, 7)


class _WorkerProbe(Dataset):
    """Items that report, from inside a loader worker, its signal handlers and one NumPy draw."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        ctrl_c_ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        sigterm_deadly = signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        return {"handlers": torch.tensor([ctrl_c_ignored, sigterm_deadly]), "draw": torch.tensor(np.random.rand())}


def test_loader_workers_leave_ctrl_c_to_the_training_process_and_draw_from_the_run_seed():
    """Catches workers that die of a terminal's Ctrl-C before the training process stops (a run then ended in
    "DataLoader worker exited unexpectedly" instead of the resume message), workers deaf to SIGTERM (Python's
    exit terminates and joins them: a finished script hung), and a worker start that loses the run seed."""

    def draws():
        seed_everything(3, workers=True, verbose=False)
        return list(window_loader(_WorkerProbe(), batch_size=1, workers=2, shuffle=False))

    first, second = draws(), draws()
    assert all(bool(batch["handlers"].all()) for batch in first)  # Ctrl-C ignored, SIGTERM deadly
    assert [float(b["draw"]) for b in first] == [float(b["draw"]) for b in second]
    assert float(first[0]["draw"]) != float(first[1]["draw"])  # workers 0 and 1 draw their own numbers


def test_frame_cache_equals_decoding_and_follows_the_file(dataset_v3, ur5e, episodes):
    """Catches a cache that returns other frames than decoding would (off-by-one offsets between the
    episodes sharing one mp4, a wrong resize), and a stale entry served after the video changed."""
    from adapt.data.frame_cache import entry_path

    decoded, cached = LeRobotDataset(dataset_v3, ur5e), LeRobotDataset(dataset_v3, ur5e, frame_cache=True)
    cached.build_frame_cache((16, 16))
    for read, from_cache in zip(decoded.episodes, cached.episodes, strict=True):
        rows = np.array([0, read.length - 1, 3, 3, 1])
        for camera in ur5e.cameras:
            np.testing.assert_array_equal(
                cached.frames(from_cache, camera.name, rows, (16, 16)),
                decoded.frames(read, camera.name, rows, (16, 16)),
            )
    video = cached.episodes[0].videos["agentview"][0]
    before = entry_path(video, (16, 16))
    assert before.is_file() and entry_path(video, (32, 32)) != before
    with DatasetWriter(dataset_v3.parent / "again", ur5e) as writer:  # the same folder re-recorded
        for episode in reversed(episodes):
            writer.add(episode)
    (dataset_v3 / "videos").rename(dataset_v3.parent / "old_videos")
    (dataset_v3.parent / "again" / "videos").rename(dataset_v3 / "videos")
    assert entry_path(video, (16, 16)) != before


def test_import_videos_resamples_to_the_spec_and_counts_what_it_skips(invoke, tmp_path):
    """Clips at 40 fps and 48x80 (H.264 and AV1) become 20 fps 128x128 episodes (the human spec's camera);
    an unreadable file is skipped and named with --skip-bad, and refused without it."""
    from adapt.data.video import transcode
    from adapt.data.writer import VideoStream

    folder = tmp_path / "clips"
    sources = {}
    for name, length in (("a.mp4", 40), ("b.mp4", 24)):
        frames = np.zeros((length, 48, 80, 3), np.uint8)
        for t in range(length):
            frames[t, 10:30, 2 * t % 60 : 2 * t % 60 + 20] = (220, 40, 30)
        stream = VideoStream(folder / name, fps=40, crf=12, gop=10)
        stream.write(frames)
        stream.close()
        sources[name] = frames
    transcode(folder / "b.mp4")  # one clip in AV1, as phones and LeRobot write them
    (folder / "c.mp4").write_bytes(b"\x00not a video" * 40)
    out = tmp_path / "imported"
    refused = invoke("data", "import-videos", folder, "--task", "wave", "--out", out)
    assert refused.exit_code == 2 and "c.mp4: not a readable video" in refused.output and not out.exists()

    result = invoke("data", "import-videos", folder, "--task", "wave", "--out", out, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "c.mp4" in result.output
    dataset = LeRobotDataset(out, load_embodiment("human"))
    assert [e.length for e in dataset.episodes] == [20, 12] and dataset.tasks == ["wave"]
    assert not dataset.has_action and not dataset.has_state
    for episode, name in zip(dataset.episodes, ("a.mp4", "b.mp4"), strict=True):
        got = dataset.frames(episode, "egocentric", np.array([0, 5]), (48, 80))
        expected = sources[name][[0, 10]]  # 40 -> 20 fps keeps every second frame
        assert np.abs(got.astype(int) - expected).mean() < 12, name


def test_inspect_names_cameras_that_differ_from_the_spec(invoke, synthetic_dataset, tmp_path):
    """The synthetic datasets hold 32 px frames; the ur5e spec's cameras are 128 px."""
    data = synthetic_dataset("ur5e")
    result = invoke("data", "inspect", data, "--embodiment", "ur5e", "--contact-sheet", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "ur5e: fits, with 2 camera difference(s)" in text
    assert "camera agentview: the dataset's observation.images.agentview is 32x32, the spec says 128x128" in text


def test_av1_videos_are_read_through_pyav_in_every_path(dataset_v3, ur5e, tmp_path, monkeypatch):
    """decord cannot open AV1; the reader falls back to PyAV for random access, the frame cache and the
    frame count, and frames agree with the H.264 originals; a damaged AV1 file is named as damaged."""
    from adapt.data.video import PyAVReader, open_video, transcode

    h264 = LeRobotDataset(dataset_v3, ur5e)
    episode = h264.episodes[1]
    expected = h264.frames(episode, "agentview", np.array([0, 7, 7, 40]), (64, 64))
    jumps = [(2, [20, 3]), (0, [25, 1]), (2, [0])]  # forward, back to the start, forward again: seeks
    expected_jumps = [h264.frames(h264.episodes[e], "agentview", np.array(i), (64, 64)) for e, i in jumps]
    for video in sorted(dataset_v3.rglob("*.mp4")):
        transcode(video)  # SVT-AV1, as LeRobot >= 0.3 writes
    video = dataset_v3 / "videos/observation.images.agentview/chunk-000/file-000.mp4"
    assert isinstance(open_video(video), PyAVReader) and open_video(video).codec == "libdav1d"
    av1 = LeRobotDataset(dataset_v3, ur5e)
    frames = av1.frames(av1.episodes[1], "agentview", np.array([0, 7, 7, 40]), (64, 64))
    assert frames.shape == expected.shape and np.abs(frames.astype(int) - expected).mean() < 6
    for (e, i), want in zip(jumps, expected_jumps, strict=True):
        got = av1.frames(av1.episodes[e], "agentview", np.array(i), (64, 64))
        assert np.abs(got.astype(int) - want).mean() < 6, (e, i)
    monkeypatch.setenv("ADAPT_CACHE", str(tmp_path / "cache"))
    cached = LeRobotDataset(dataset_v3, ur5e, frame_cache=True)
    np.testing.assert_array_equal(
        cached.frames(cached.episodes[1], "agentview", np.array([0, 7, 7, 40]), (64, 64)), frames
    )

    video.write_bytes(video.read_bytes()[:-2000])  # the end of the stream cut off
    with pytest.raises(
        AdaptError, match="file-000.mp4: (not a readable video|the libdav1d stream ended|cannot decode)"
    ):
        LeRobotDataset(dataset_v3, ur5e, frame_cache=True).build_frame_cache((64, 64))


def test_gear_export_for_dreamzero_reads_back_and_wrong_ranges_are_named(invoke, dataset_v3, ur5e, episodes, tmp_path):
    """`adapt data export --format gear`: LeRobot v2.1 with DreamZero's metadata derived from the spec; read back,
    its sub-keys are checked against the spec by name and index range."""
    out = tmp_path / "gear"
    result = invoke("data", "export", dataset_v3, "--out", out, "--embodiment", "ur5e", "--tag", "my_ur5e")
    assert result.exit_code == 0, result.output
    meta = out / "meta"
    assert json.loads((meta / "embodiment.json").read_text()) == {"embodiment_tag": "my_ur5e"}
    modality = json.loads((meta / "modality.json").read_text())
    ranges = {
        g: {k: (v["original_key"], v["start"], v["end"]) for k, v in modality[g].items()} for g in ("state", "action")
    }
    assert ranges["state"] == {"joint_position": ("observation.state", 0, 6), "gripper": ("observation.state", 6, 7)}
    assert ranges["action"] == {"joint_position": ("action", 0, 6), "gripper": ("action", 6, 7)}
    assert modality["video"]["agentview"] == {"original_key": "observation.images.agentview"}
    states = np.concatenate([e.state for e in episodes])
    stats = json.loads((meta / "stats.json").read_text())["observation.state"]
    np.testing.assert_allclose(stats["mean"], states.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["q99"], np.quantile(states.astype(np.float64), 0.99, axis=0), rtol=1e-5)
    relative = json.loads((meta / "relative_stats_dreamzero.json").read_text())
    assert set(relative) == {"joint_position", "gripper"}  # the action parts a state block of that name has
    assert len(list((out / "videos" / "chunk-000" / "observation.images.agentview").glob("episode_*.mp4"))) == 3

    back = LeRobotDataset(out, ur5e)
    assert back.version == "v2.1" and [e.length for e in back.episodes] == [30, 41, 25]
    np.testing.assert_allclose(back.episodes[1].state, episodes[1].state, atol=1e-6)
    np.testing.assert_allclose(back.episodes[2].action, episodes[2].action, atol=1e-6)

    packed = out / "data" / "chunk-000" / "episode_000001.parquet"  # state packed [gripper, joints], as a
    table = pq.read_table(packed)  # GEAR dataset may: mapped back by sub-key name
    state = np.stack(table.column("observation.state").to_numpy(zero_copy_only=False))
    swapped = pa.FixedSizeListArray.from_arrays(pa.array(np.roll(state, 1, axis=1).ravel()), 7)
    pq.write_table(
        table.set_column(table.column_names.index("observation.state"), "observation.state", swapped), packed
    )
    modality["state"]["gripper"].update(start=0, end=1)
    modality["state"]["joint_position"].update(start=1, end=7)
    (meta / "modality.json").write_text(json.dumps(modality))
    np.testing.assert_allclose(LeRobotDataset(out, ur5e).episodes[1].state, episodes[1].state, atol=1e-6)

    modality["state"]["joint_position"]["end"] = 6
    (meta / "modality.json").write_text(json.dumps(modality))
    with pytest.raises(
        AdaptError, match=r"state\.joint_position is observation\.state\[1:6\], but spec 'ur5e' needs 6"
    ):
        LeRobotDataset(out, ur5e)
    modality["state"]["arm"] = modality["state"].pop("joint_position")
    (meta / "modality.json").write_text(json.dumps(modality))
    with pytest.raises(AdaptError, match=r"\['arm'\] are not among them and \['joint_position'\] are missing"):
        LeRobotDataset(out, ur5e)


@pytest.mark.parametrize("balance", [False, True])
def test_balanced_loader_draws_each_dataset_equally_often(synthetic_dataset, balance):
    """Catches a loader that ignores `balance` (the short dataset stays 1/7 of the windows) or weights that
    follow length instead of undoing it; unbalanced, every window is still drawn exactly once per epoch."""
    from adapt.train.data import DataSource, make_loaders, open_sources, statistics

    play = synthetic_dataset("ur5e", episodes=6, seed=1, task="play with the cube")
    demos = synthetic_dataset("ur5e", episodes=1, seed=2, task="lift the cube")
    grouped = open_sources([DataSource.parse(str(play)), DataSource.parse(str(demos))])
    loaders = make_loaders(grouped, statistics(grouped), WindowConfig(height=16, width=16), 8, 0, 0, balance=balance)
    tasks = [task for _ in range(5) for batch in loaders["ur5e"] for task in batch["task"]]
    share = tasks.count("lift the cube") / len(tasks)
    if balance:
        assert 0.4 < share < 0.6
    else:
        assert share == pytest.approx(1 / 7)


def test_a_script_without_a_main_guard_is_told_at_once_instead_of_hanging(tmp_path):
    """Pasted into a plain script, the README's loader and finetune snippets hung forever: spawned workers import the
    script again, die, and the parent waits. Without the guard: one clear error at once; with it: batches."""
    import subprocess
    import sys

    body = (
        "import torch\n"
        "from adapt.data.windows import window_loader\n"
        "loader = window_loader(torch.utils.data.TensorDataset(torch.arange(8.0)), batch_size=4, workers=2)\n"
        "print('batches', len(list(loader)))\n"
    )
    bare, guarded = tmp_path / "bare.py", tmp_path / "guarded.py"
    bare.write_text(body)
    guarded.write_text('if __name__ == "__main__":\n' + "".join(f"    {line}\n" for line in body.splitlines()))
    done = subprocess.run([sys.executable, str(bare)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and 'no `if __name__ == "__main__":` guard' in done.stderr, done.stderr[-2000:]
    done = subprocess.run([sys.executable, str(guarded)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "batches 2" in done.stdout, done.stderr[-2000:]


def test_select_cuts_each_run_of_a_task_out_of_labelled_play(invoke, tmp_path, ur5e):
    """`adapt data select` keeps the runs of frames labelled with the text, one episode each, with their own
    state, actions and frames. Bugs caught: a run's end off by one (the frame after it kept, or its last
    dropped); runs of two episodes merged; short runs kept; frames taken from the wrong place in the video;
    a dataset with no matching run written empty instead of refused."""
    labels = ["reach the cube"] * 5 + ["lift the red cube"] * 12 + ["reach"] * 3 + ["Lift the red cube"] * 4
    first = make_episode(ur5e, 24, 0, task="reach the cube")
    first.frame_tasks = labels
    second = make_episode(ur5e, 30, 1, task="lift the green cube")
    with DatasetWriter(tmp_path / "play", ur5e) as writer:
        writer.add(first)
        writer.add(second)
    result = invoke(
        "data", "select", tmp_path / "play", "--embodiment", "ur5e", "--task", "LIFT", "--min-frames", "10",
        "--out", tmp_path / "lift",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 episodes" in " ".join(result.output.split())
    cut = LeRobotDataset(tmp_path / "lift", ur5e)
    assert [e.length for e in cut.episodes] == [12, 30]
    assert cut.episodes[0].task == "lift the red cube"
    np.testing.assert_array_equal(cut.episodes[0].action, first.action[5:17])
    np.testing.assert_array_equal(cut.episodes[1].state, second.state)
    camera = ur5e.cameras[0].name
    frames = cut.frames(cut.episodes[0], camera, np.arange(12), (SIZE, SIZE)).astype(int)
    assert np.abs(frames - first.frames[camera][5:17]).max() <= 6  # H.264 at crf 18; the ramp moves 7 a frame

    result = invoke(
        "data", "select", tmp_path / "play", "--embodiment", "ur5e", "--task", "stack", "--out", tmp_path / "none"
    )
    assert result.exit_code == 2 and "no run of 20+ frames is labelled with 'stack'" in " ".join(result.output.split())
    assert not (tmp_path / "none").exists()


def test_gear_export_names_each_arm_of_a_two_armed_robot_and_reads_back(invoke, synthetic_dataset, tmp_path):
    """A two-armed robot (`baxter_osc`) in GEAR: each arm's end-effector part and gripper, and each gripper's
    state, are sub-keys of their own named after the end effector (as DreamZero's bimanual datasets name
    left and right); the export reads back to the same state and actions. Catches both arms packed under one
    key (a DreamZero config could not tell the arms apart) and per-arm ranges that do not tile the columns."""
    spec = load_embodiment("baxter_osc")
    data = synthetic_dataset("baxter_osc", episodes=2, length=30)
    out = tmp_path / "gear"
    result = invoke("data", "export", data, "--out", out, "--embodiment", "baxter_osc", "--tag", "baxter")
    assert result.exit_code == 0, result.output
    modality = json.loads((out / "meta" / "modality.json").read_text())
    ranges = {g: {k: (v["start"], v["end"]) for k, v in modality[g].items()} for g in ("state", "action")}
    assert ranges["state"] == {"joint_position": (0, 14), "right_hand_gripper": (14, 15), "left_hand_gripper": (15, 16)}
    assert ranges["action"] == {
        "right_hand_ee_delta": (0, 6),
        "left_hand_ee_delta": (6, 12),
        "right_hand_gripper": (12, 13),
        "left_hand_gripper": (13, 14),
    }
    assert set(modality["video"]) == {"agentview", "robot0_right_eye_in_hand", "robot0_left_eye_in_hand"}
    original, back = LeRobotDataset(data, spec), LeRobotDataset(out, spec)
    for mine, theirs in zip(original.episodes, back.episodes, strict=True):
        np.testing.assert_allclose(theirs.state, mine.state, atol=1e-6)
        np.testing.assert_allclose(theirs.action, mine.action, atol=1e-6)
