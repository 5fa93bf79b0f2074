"""Simulated data: play, multitask and demo datasets read back in the spec's format, bad requests fail
clearly, and the CLI generates and inspects. Specs are copies of bundled ones with 32x32 cameras (and
one camera where two are not needed), since rendering is most of the cost."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("robosuite")

from adapt.data import LeRobotDataset  # noqa: E402
from adapt.data.inspect import inspect_dataset  # noqa: E402
from adapt.embodiment import bundled_embodiments, load_embodiment  # noqa: E402
from adapt.errors import AdaptError  # noqa: E402
from adapt.sim import generate  # noqa: E402
from adapt.sim.generate import PLAY_SECONDS, SHORTEST_SECONDS, _play_lengths  # noqa: E402

SIZE = 32


def tiny_spec(folder: Path, robot: str, cameras: int = 2) -> Path:
    """A copy of a bundled robot spec with `cameras` cameras of SIZE x SIZE pixels."""
    raw = yaml.safe_load(bundled_embodiments()[robot].read_text())
    raw["cameras"] = [dict(c, height=SIZE, width=SIZE) for c in raw["cameras"][:cameras]]
    path = folder / f"{robot}_tiny.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def ur5e_spec(tmp_path_factory) -> Path:
    return tiny_spec(tmp_path_factory.mktemp("specs"), "ur5e")


@pytest.fixture(scope="module")
def ur5e_play(tmp_path_factory, ur5e_spec) -> Path:
    return generate(ur5e_spec, "play", tmp_path_factory.mktemp("play") / "ds", minutes=0.05, seed=3)


def test_play_has_requested_length_and_spec_dims(ur5e_play, ur5e_spec):
    spec = load_embodiment(ur5e_spec)
    dataset = LeRobotDataset(ur5e_play, spec)
    assert sum(e.length for e in dataset.episodes) == round(0.05 * 60 * 20)
    episode = dataset.episodes[0]
    assert episode.state.shape == (episode.length, spec.state_dim) == (60, 7)
    assert episode.action.shape == (episode.length, spec.action_dim) == (60, 7)
    limits = np.array([j.position for j in spec.joints])
    assert np.all((episode.action[:, :6] >= limits[:, 0]) & (episode.action[:, :6] <= limits[:, 1]))
    assert set(np.unique(episode.action[:, 6])) <= {-1.0, 1.0}
    assert np.all(np.abs(episode.state[:, 6]) <= 1.0)
    assert np.ptp(episode.state[:, :6], axis=0).max() > 0.05, "the arm should move"
    # joint_position actions are the next step's joint positions
    np.testing.assert_allclose(episode.action[:-1, :6], episode.state[1:, :6], atol=1e-5)
    assert "play with the" in episode.task
    for camera in spec.cameras:
        frames = dataset.frames(episode, camera.name, np.arange(0, 60, 10), (SIZE, SIZE))
        assert frames.std() > 10, f"{camera.name} should show a scene"
        assert np.abs(np.diff(frames.astype(float), axis=0)).mean() > 0.1, f"{camera.name} should change"


@pytest.mark.parametrize("minutes", [0.05, 0.5, 0.7, 3.0, 30.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_play_lengths_add_up_to_the_request(minutes, seed):
    fps = 20
    lengths = _play_lengths(fps, round(minutes * 60 * fps), None, seed)
    assert sum(lengths) == round(minutes * 60 * fps)
    assert max(lengths) < (PLAY_SECONDS[1] + SHORTEST_SECONDS) * fps
    assert len(lengths) == 1 or min(lengths) >= SHORTEST_SECONDS * fps


def test_play_is_reproducible_from_its_seed(ur5e_play, ur5e_spec, tmp_path):
    again = generate(ur5e_spec, "play", tmp_path / "again", minutes=0.05, seed=3)
    spec = load_embodiment(ur5e_spec)
    first, second = LeRobotDataset(ur5e_play, spec).episodes[0], LeRobotDataset(again, spec).episodes[0]
    np.testing.assert_allclose(first.state, second.state, atol=1e-6)
    assert first.task == second.task


def test_hindsight_play_labels_the_try_that_lifts_a_cube_and_changes_nothing_else(tmp_path):
    """`--hindsight` labels play frame by frame: runs of "lift the <cube>" frames in which the fingers open on
    the way to the cube and close once, on it, to the end of the run; a missed try before it (this seed misses
    once: the fingers closed just before the run starts) stays play, and the run after it starts with the
    fingers the miss closed; the episode's "play with ..." text around each run; the same states and actions
    as unlabelled play of the same seed. Bugs caught: labels shifted by a sub-task (a run would not end holding
    the cube), a miss labelled as lifting (two closings in a run), the reopening after a miss left to play (the
    run would start open), labelling that disturbs the RNG, a label naming something else than the scene's
    cube."""
    spec = tiny_spec(tmp_path, "ur5e_osc", cameras=1)
    options = {"minutes": 0.3, "seed": 2, "workers": 1, "scene": "Lift"}
    plain = generate(spec, "play", tmp_path / "plain", **options)
    labelled = generate(spec, "play", tmp_path / "labelled", hindsight=True, **options)
    loaded = load_embodiment(spec)
    before, after = LeRobotDataset(plain, loaded).episodes[0], LeRobotDataset(labelled, loaded).episodes[0]
    np.testing.assert_array_equal(before.action, after.action)
    np.testing.assert_array_equal(before.state, after.state)
    assert before.frame_tasks is None and after.task == before.task and after.task.startswith("play with the ")
    labels, gripper = after.frame_tasks.tolist(), after.state[:, -1]
    closings = [t for t in range(1, len(gripper)) if gripper[t - 1] < 0 <= gripper[t]]
    grouped = itertools.groupby(range(len(labels)), lambda t: labels[t])
    runs = [list(frames) for label, frames in grouped if label.startswith("lift the ")]
    assert len(runs) >= 2, labels
    missed_before = 0
    for run in runs[1:]:  # the first may start with the episode
        first, last = run[0], run[-1]
        assert labels[first] == f"lift the {after.task.removeprefix('play with the ')}"
        assert labels[first - 1] == after.task and (last + 1 == len(labels) or labels[last + 1] == after.task)
        assert gripper[first : last + 1].min() < -0.5 and gripper[last - 5 : last + 1].min() > 0  # opens, then closed
        assert sum(first <= t <= last for t in closings) == 1
        if any(first - 30 <= t < first for t in closings):  # the try after a miss
            missed_before += 1
            assert gripper[first] > 0  # it starts by opening the fingers the miss closed: the recovery is lifting
    assert missed_before == 1
    with pytest.raises(AdaptError, match="hindsight labels are for --kind play"):
        generate(spec, "demo", tmp_path / "demo", episodes=1, hindsight=True)


def test_two_armed_hindsight_play_labels_the_lifts_of_the_pot(tmp_path):
    """Two Pandas as one robot play in TwoArmLift's scene: runs of "lift the pot with both arms" in which both
    hands open on the way and end closed on their handles, play elsewhere, every command within the
    controller's range. Bugs caught: a try that lifted nothing labelled as lifting (a hand open at its end),
    labels shifted by a part, the one-armed play (one hand's commands only) run on a two-armed robot."""
    spec = tiny_spec(tmp_path, "bimanual_panda", cameras=1)
    data = generate(spec, "play", tmp_path / "play", minutes=0.3, seed=4, workers=1, hindsight=True)
    episode = LeRobotDataset(data, load_embodiment(spec)).episodes[0]
    labels, grippers = episode.frame_tasks.tolist(), episode.state[:, -2:]
    assert episode.task == "play with the pot" and set(labels) == {episode.task, "lift the pot with both arms"}
    grouped = itertools.groupby(range(len(labels)), lambda t: labels[t])
    runs = [list(frames) for label, frames in grouped if label.startswith("lift the ")]
    for run in runs:
        assert grippers[run].min(axis=0).max() < -0.5 and grippers[run[-5:]].min() > 0  # both open, then closed
    assert np.abs(episode.action).max() <= 1.0 and np.abs(episode.action[:, 6:12]).max() > 0.1  # the left arm moves


def test_play_in_the_lift_scene_plays_with_its_one_cube_and_bad_scenes_are_named(tmp_path):
    """`--scene Lift`: play with the Lift scene's single cube (the default is the Stack scene's two), with
    hindsight labels naming that cube. Bugs caught: the scene option ignored (two cubes named), a scene
    or kind mistake simulating anyway instead of a named error."""
    spec = tiny_spec(tmp_path, "ur5e_osc", cameras=1)
    path = generate(spec, "play", tmp_path / "lift", minutes=0.3, seed=0, workers=1, hindsight=True, scene="lift")
    episode = LeRobotDataset(path, load_embodiment(spec)).episodes[0]
    assert episode.task.startswith("play with the ") and " and the " not in episode.task
    cube = episode.task.removeprefix("play with the ")
    assert {label for label in episode.frame_tasks.tolist() if label.startswith("lift")} == {f"lift the {cube}"}
    with pytest.raises(AdaptError, match=r"no play scene 'Stak'.*Did you mean 'Stack'"):
        generate(spec, "play", tmp_path / "bad", minutes=0.1, scene="Stak")
    with pytest.raises(AdaptError, match="--scene is for --kind play"):
        generate(spec, "demo", tmp_path / "bad", episodes=1, scene="Lift")


def test_calm_tidy_play_closes_the_fingers_only_to_lift_and_moves_with_little_noise(tmp_path):
    """`--calm --tidy`: every closing of the fingers starts a try that lifts the cube (hindsight labels it
    "lift the <cube>"), where varied play of the same seed also closes them elsewhere (pushes, reaches,
    deliberate misses); its commands are steadier (a demonstration's noise, sd <= 0.03): the noise estimated
    from their second differences where nothing clips (P-control is smooth, so those are mostly noise) is
    less than half that of varied play of the same seed. Bugs caught: either flag not reaching the episode's
    script, and the flags taken by a kind they do not apply to."""
    spec = tiny_spec(tmp_path, "ur5e_osc", cameras=1)
    options = {"minutes": 0.5, "seed": 0, "workers": 1, "scene": "Lift", "hindsight": True}
    loaded = load_embodiment(spec)
    varied, calm_tidy = (
        LeRobotDataset(generate(spec, "play", tmp_path / name, calm=on, tidy=on, **options), loaded).episodes[0]
        for name, on in (("varied", False), ("calm_tidy", True))
    )

    def closings_off_lift(episode) -> tuple[int, int]:
        labels, gripper = episode.frame_tasks.tolist(), episode.state[:, -1]
        closing = [t for t in range(1, len(gripper)) if gripper[t - 1] < 0 <= gripper[t]]
        return sum(not labels[t].startswith("lift the ") for t in closing), len(closing)

    def command_noise(episode) -> float:
        move = episode.action[:, :3]
        second = move[2:] - 2 * move[1:-1] + move[:-2]
        free = np.all(np.abs(move) < 0.95, axis=1)
        unclipped = free[2:] & free[1:-1] & free[:-2]
        return float(np.median(np.abs(second[unclipped])) / 0.6745 / np.sqrt(6))

    off_lift, closings = closings_off_lift(calm_tidy)
    assert off_lift == 0 and closings >= 2
    assert closings_off_lift(varied)[0] >= 1
    assert command_noise(calm_tidy) < min(0.02, 0.5 * command_noise(varied))
    with pytest.raises(AdaptError, match="--calm and --tidy are for --kind play"):
        generate(spec, "demo", tmp_path / "demo", episodes=1, tidy=True)


def test_tidy_play_with_retries_misses_on_purpose_and_labels_the_recovery_as_the_task(tmp_path):
    """`--tidy --retries`: a first grasp aimed off on purpose closes the fingers outside any "lift the <cube>"
    run (that try is play), and the try after it is such a run that starts with the fingers still closed,
    opens them, and ends closed on the cube. Bugs caught: the flag not reaching the episode's style (no
    deliberate miss: no closing off a lift run), the reopening left at the end of the missed try (the run
    would start open), --retries taken by play that is not tidy (it misses on purpose already)."""
    spec = tiny_spec(tmp_path, "ur5e_osc", cameras=1)
    options = {"minutes": 0.5, "seed": 1, "workers": 1, "scene": "Lift", "hindsight": True, "calm": True}
    path = generate(spec, "play", tmp_path / "retries", tidy=True, retries=True, **options)
    episode = LeRobotDataset(path, load_embodiment(spec)).episodes[0]
    labels, gripper = episode.frame_tasks.tolist(), episode.state[:, -1]
    closings = [t for t in range(1, len(gripper)) if gripper[t - 1] < 0 <= gripper[t]]
    grouped = itertools.groupby(range(len(labels)), lambda t: labels[t])
    runs = [list(frames) for label, frames in grouped if label.startswith("lift the ")]
    assert sum(not labels[t].startswith("lift the ") for t in closings) >= 1
    recoveries = [run for run in runs if gripper[run[0]] > 0]
    assert recoveries
    for run in recoveries:
        assert gripper[run].min() < -0.5 and gripper[run[-5:]].min() > 0
    with pytest.raises(AdaptError, match="--retries is for --kind play --tidy"):
        generate(spec, "play", tmp_path / "untidy", retries=True, **options)


def test_demo_video_only_has_no_state_or_action(tmp_path):
    spec = tiny_spec(tmp_path, "panda", cameras=1)
    path = generate(spec, "demo", tmp_path / "demo", episodes=1, task="lift", video_only=True)
    report = inspect_dataset(path)
    assert report.state_dim is None and report.action_dim is None
    assert report.episodes == 1 and report.tasks == ["lift the red cube"]
    assert list(report.cameras) == ["observation.images.agentview"]


def test_multitask_chains_subtasks_in_parallel_workers(tmp_path):
    spec = tiny_spec(tmp_path, "panda", cameras=1)
    path = generate(spec, "multitask", tmp_path / "multi", episodes=2, seed=1, workers=2)
    dataset = LeRobotDataset(path, load_embodiment(spec))
    assert len(dataset.episodes) == 2
    assert len(set(dataset.tasks)) == 2
    actions = np.concatenate([e.action for e in dataset.episodes])
    assert actions.shape[1] == 7 and np.all(np.abs(actions) <= 1.0)  # ee_delta: OSC commands in [-1, 1]


@pytest.mark.parametrize(
    ("robot", "kwargs", "message"),
    [
        ("ur5", {"minutes": 1.0}, "Did you mean 'ur5e'"),
        ("human", {"minutes": 1.0}, "video-only"),
        ("baxter_osc", {"minutes": 1.0, "scene": "Stack"}, "has two arms; it plays in TwoArmLift"),
        ("ur5e", {"episodes": 1, "task": "TwoArmLift"}, "needs a robot with two arms; 'ur5e' has one"),
        ("ur5e", {"minutes": 1.0, "episodes": 2}, "either minutes or episodes"),
        ("ur5e", {}, "either minutes or episodes"),
        ("ur5e", {"minutes": -1.0}, "minutes must be > 0"),
        ("ur5e", {"episodes": 1, "task": "Lfit"}, "Did you mean 'Lift'"),
    ],
)
def test_bad_requests_are_user_errors(tmp_path, robot, kwargs, message):
    kind = "demo" if "task" in kwargs else "play"
    with pytest.raises(AdaptError, match=message):
        generate(robot, kind, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_unknown_kind_is_a_user_error(tmp_path):
    with pytest.raises(AdaptError, match="not one of play, multitask, demo"):
        generate("ur5e", "plya", tmp_path / "out", minutes=1.0)


def test_corrections_start_where_the_policy_left_the_arm(tmp_path):
    """Catches corrections recorded from the scene's reset (the policy's lead lost: plain demos) and a lead that
    is recorded (the policy's own actions would be cloned as demonstrations): the first recorded state is where
    the policy drove the arm, not the home pose a demo of the same seed starts from, and the demonstrator's
    recorded takeover lifts the cube (only successes are kept)."""
    import torch

    from adapt.model import WorldActionModel, model_config, save_model

    spec_path = tiny_spec(tmp_path, "panda", cameras=1)
    spec = load_embodiment(spec_path)
    torch.manual_seed(0)
    save_model(WorldActionModel(model_config("tiny"), [spec]), tmp_path / "policy")
    fix = generate(spec_path, "corrections", tmp_path / "fix", episodes=1, seed=2, policy=tmp_path / "policy")
    demo = generate(spec_path, "demo", tmp_path / "demo", episodes=1, seed=2)
    corrected, demonstrated = (LeRobotDataset(p, spec).episodes[0] for p in (fix, demo))
    assert np.abs(corrected.state[0, :7] - demonstrated.state[0, :7]).max() > 0.02, "the policy should move the arm"
    assert corrected.task.startswith("lift the") and np.all(np.abs(corrected.action) <= 1.0)
    with pytest.raises(AdaptError, match="needs --policy"):
        generate(spec_path, "corrections", tmp_path / "x", episodes=1)
    with pytest.raises(AdaptError, match="ee_delta"):
        generate("ur5e", "corrections", tmp_path / "x", episodes=1, policy=tmp_path / "policy")
    with pytest.raises(AdaptError, match="no such model"):
        generate(spec_path, "corrections", tmp_path / "x", episodes=1, policy=tmp_path / "nothing")
    assert not (tmp_path / "x").exists()


def test_cli_generates_then_inspects(invoke, ur5e_spec, tmp_path, assert_picture):
    out = tmp_path / "cli"
    result = invoke("data", "generate", "--robot", ur5e_spec, "--kind", "play", "--minutes", "0.05", "--out", out)
    assert result.exit_code == 0, result.output
    sheet = tmp_path / "sheet.png"
    result = invoke("data", "inspect", out, "--embodiment", ur5e_spec, "--contact-sheet", sheet)
    assert result.exit_code == 0, result.output
    assert "60 frames" in result.output and "fits" in result.output
    assert_picture(sheet, (6 * 96, 96))  # six frames across, a row per episode and camera


def test_simulation_then_torch_compiler_in_one_process():
    """OSMesa and triton each carry an LLVM; adapt.sim loads triton first, so a process that simulates
    and then trains (adapt demo) does not die when torchvision pulls in torch's compiler."""
    import subprocess
    import sys

    code = "import adapt.sim, mujoco, torchvision.ops; print('alive')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "alive" in result.stdout


@pytest.mark.parametrize(
    ("robot", "task", "key"),
    [("panda", "Lift", 0), ("ur5e", "Lift", 0), ("baxter_osc", "TwoArmLift", 2), ("bimanual_panda", "TwoArmLift", 0)],
)
def test_recorded_demo_actions_replay_to_success_under_evals_controller(tmp_path, robot, task, key):
    """The replay proof: a scripted demo's recorded actions, re-executed from the same scene through
    the controller `adapt eval` uses for the spec's action kind (OSC for Panda and each of Baxter's arms, joint
    targets for UR5e), lift the cube (or, both hands together, the pot) again. Catches wrong action semantics
    (relative vs absolute, gripper sign, one hand's values read as the other's), an off-by-one between frames
    and actions, a controller that does not track recorded targets, and (two Pandas as one robot: one robosuite
    robot per arm) the spec's layout of arms then grippers handed to robosuite unsorted."""
    from adapt.sim.env import SimEnv, controller_for
    from adapt.sim.episodes import SimPool, replay, simulate

    spec = load_embodiment(tiny_spec(tmp_path, robot, cameras=1))
    seed = np.random.SeedSequence(5, spawn_key=(key,))
    with SimPool(spec, 5) as pool:
        demo = simulate(pool, "demo", task, seed, 600)
    assert demo is not None and demo.action.shape[1] == spec.action_dim and demo.state.shape[1] == spec.state_dim
    with SimEnv(spec, task, 5, controller=controller_for(spec)) as sim:
        assert replay(sim, seed, demo.action)
        assert not replay(sim, seed, demo.action[:20])  # the first second alone lifts nothing
        if sim.hands == 2:  # the hands' values swapped: each hand does the other's part, and nothing is lifted
            swapped = np.concatenate([demo.action[:, 6:12], demo.action[:, :6], demo.action[:, [13, 12]]], axis=1)
            assert not replay(sim, seed, swapped)


@pytest.mark.parametrize("robot", ["sawyer", "baxter"])
def test_joint_space_robots_with_seven_joint_arms_are_simulated(robot):
    """A robot acting in joint positions is simulated under the joint controller (what `adapt eval` gives it),
    its grippers calibrated while its arms hold still. Catches calibration commands sized for a six-joint arm
    (robosuite refused the 7-joint Sawyer's and the two-armed Baxter's commands)."""
    from adapt.sim.env import SimEnv

    spec = load_embodiment(robot)
    scene = "TwoArmLift" if len(spec.end_effectors) == 2 else "Lift"
    with SimEnv(spec, scene, 0, controller="joint") as sim:
        sim.reset(np.random.default_rng(0), randomize=False)
        assert sim.hands == len(spec.end_effectors)
        assert all(lo != hi for lo, hi in sim._gripper_ranges)
        assert sim.state().shape == (spec.state_dim,)
        before = sim.joint_positions()
        sim.step_spec_action(np.r_[before, np.full(sim.hands, -1.0)])  # hold: the arms stay where they are
        assert np.abs(sim.joint_positions() - before).max() < 0.02


def test_progress_is_written_as_lines_when_the_output_is_a_file(caplog):
    """Simulation and evaluation under nohup print periodic lines instead of a live bar (which shows nothing in a
    file until it ends). Bugs caught: a long run silent in its log; a line for every update (a wall of text);
    the completion line missing; the closed loop's per-episode line failing on the plain writer; a task of
    unknown total (`--episodes N` under nohup) failing the run."""
    from adapt.progress import ProgressLog, progress_bar

    assert isinstance(progress_bar("frames", True), ProgressLog)  # pytest's stderr is not a terminal
    with caplog.at_level(logging.INFO, logger="adapt.progress"), progress_bar("frames", True, every_s=3600) as bar:
        job = bar.add_task("panda demo", total=100)
        for _ in range(10):
            bar.update(job, advance=10, description="panda demo: 2 episodes")
        episode = bar.add_task("Lift episode 1/1", total=200)  # as the closed loop does: hidden once done
        bar.update(episode, completed=200, visible=False)
        bar.print("episode 1 (seed 0): progress 1.00")
    with caplog.at_level(logging.INFO, logger="adapt.progress"), progress_bar("frames", True, every_s=0) as bar:
        job = bar.add_task("panda demo", total=None)  # `--episodes N`: frames not known in advance
        bar.update(job, advance=40, description="panda demo: 1 episodes")
    lines = [r.getMessage().split(",")[0] for r in caplog.records]
    assert lines == [
        "panda demo: 2 episodes: 100/100 frames",
        "episode 1 (seed 0): progress 1.00",
        "panda demo: 1 episodes: 40 frames",
    ]


def test_robomimic_hdf5_round_trip_keeps_frames_state_and_actions(invoke, tmp_path):
    """A dataset exported as robomimic HDF5 and imported back has the same actions, states (joint positions and
    the gripper through the simulator's calibration) and frames. Bugs caught: images stored or read the wrong
    way up; the gripper's finger position mapped with another range than simulated data's; demos read in
    string order (demo_10 before demo_2); joint-space actions taken as end-effector deltas; a damaged file
    reaching the user as a traceback."""
    import h5py

    spec_file = tiny_spec(tmp_path, "panda")
    spec = load_embodiment(spec_file)
    source = generate(spec_file, "play", tmp_path / "play", minutes=0.05, seed=3)
    file = tmp_path / "demos.hdf5"
    result = invoke("data", "export", source, "--format", "robomimic", "--embodiment", spec_file, "--out", file)
    assert result.exit_code == 0, result.output
    original = LeRobotDataset(source, spec).episodes[0]
    with h5py.File(file, "r") as handle:
        demo = handle["data/demo_0"]
        np.testing.assert_array_equal(demo["actions"][:], original.action)
        finger = demo["obs/robot0_gripper_qpos"][:, 0]
        assert finger.min() >= 0.0 and finger.max() <= 0.041  # the Panda's finger joint, metres
        upright = LeRobotDataset(source, spec).frames(original, "agentview", np.arange(3), (SIZE, SIZE))
        np.testing.assert_array_equal(demo["obs/agentview_image"][:3], upright[:, ::-1])

    back = tmp_path / "imported"
    result = invoke("data", "import", file, "--embodiment", spec_file, "--task", "play", "--out", back)
    assert result.exit_code == 0, result.output
    imported = LeRobotDataset(back, spec).episodes[0]
    np.testing.assert_array_equal(imported.action, original.action)
    np.testing.assert_allclose(imported.state, original.state, atol=1e-5)
    frames = LeRobotDataset(back, spec).frames(imported, "agentview", np.arange(60), (SIZE, SIZE)).astype(int)
    reference = LeRobotDataset(source, spec).frames(original, "agentview", np.arange(60), (SIZE, SIZE))
    assert np.abs(frames - reference).mean() < 3  # a second H.264 generation at crf 18

    with h5py.File(file, "a") as handle:  # demos numbered past 9 keep their order
        handle.copy("data/demo_0", "data/demo_10")
        handle["data/demo_10/actions"][0, 0] = 0.5
        handle.copy("data/demo_0", "data/demo_2")
    ordered = tmp_path / "ordered"
    assert invoke("data", "import", file, "--embodiment", spec_file, "--out", ordered).exit_code == 0
    assert [e.action[0, 0] for e in LeRobotDataset(ordered, spec).episodes][2] == np.float32(0.5)

    with h5py.File(file, "a") as handle:
        handle["data"].attrs["env_args"] = (
            '{"env_name": "Lift", "env_kwargs": {"controller_configs": {"type": "JOINT_POSITION"}}}'
        )
    result = invoke("data", "import", file, "--embodiment", spec_file, "--out", tmp_path / "joint")
    assert result.exit_code == 2 and "JOINT_POSITION" in result.output and not (tmp_path / "joint").exists()
    (tmp_path / "junk.hdf5").write_bytes(b"not hdf5" * 10)
    result = invoke("data", "import", tmp_path / "junk.hdf5", "--embodiment", spec_file, "--out", tmp_path / "j")
    assert result.exit_code == 2 and "not a readable HDF5 file" in result.output


def test_a_pot_tipped_up_by_one_handle_is_not_a_two_armed_lift(tmp_path):
    """TwoArmLift succeeds only with the pot 10 cm up *and* within 30 degrees of level (robosuite's reward
    condition). Catches scoring by robosuite's height check alone, which counted as lifted a pot one hand had
    tipped up by its handle (3 of 7 such "successes" in 30 episodes of an adapted policy that never held the pot
    with both hands)."""
    from adapt.sim.env import SimEnv
    from adapt.sim.scenes import succeeded

    spec = load_embodiment(tiny_spec(tmp_path, "bimanual_panda", cameras=1))
    with SimEnv(spec, "TwoArmLift", 0) as sim:
        sim.reset(np.random.default_rng(0), randomize=True)
        env = sim.env
        assert not env._check_success() and not succeeded(env)  # on the table
        table = env.sim.data.site_xpos[env.table_top_id][2]
        joint = env.pot.joints[0]
        at = env.sim.data.get_joint_qpos(joint)[:3] * [1, 1, 0] + [0, 0, table + 0.3]
        for degrees, lifted in ((0, True), (25, True), (60, False), (180, False)):
            half = np.radians(degrees) / 2
            env.sim.data.set_joint_qpos(joint, np.r_[at, np.cos(half), np.sin(half), 0.0, 0.0])
            env.sim.forward()
            assert env._check_success(), degrees  # robosuite's own check passes at every tilt
            assert succeeded(env) is lifted, degrees
