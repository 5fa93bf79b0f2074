"""Bad input through the CLI, command by command: each case must end with exit status 2 (a user error,
not the unexpected-error path's 1), a message naming the file, field or option and what to do, no
traceback, and nothing written where the command would have written.

Each case would catch a boundary that lets a user's mistake through as a raw exception (exit 1 with
"unexpected ...") or that fails only after loading everything (then the output folder exists)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from adapt.data.reader import read_info
from adapt.embodiment import bundled_embodiments, load_embodiment
from adapt.errors import InvalidFileError
from adapt.model import model_config, save_model
from adapt.model.dit.wam import WorldActionModel

FIXTURE_ADAPTER = Path(__file__).parent / "fixtures" / "earlier_format" / "adapter"
FIXTURE_BASE = FIXTURE_ADAPTER.parent / "base"
FAST = ["--steps", "4", "--checkpoint-every", "2", "--workers", "0"]


@dataclass
class World:
    """Lazily made inputs for one case: datasets, a tiny base, a copied adapter, scratch paths."""

    tmp: Path
    make_dataset: object

    def dataset(self, robot: str = "ur5e") -> Path:
        return self.make_dataset(robot, episodes=2, length=24)

    def copy_dataset(self, robot: str = "ur5e") -> Path:
        return Path(shutil.copytree(self.dataset(robot), self.tmp / f"copy_{robot}"))

    def base(self) -> Path:
        torch.manual_seed(0)
        return save_model(WorldActionModel(model_config("tiny"), [load_embodiment("panda")]), self.tmp / "base")

    def adapter(self, **meta_changes) -> Path:
        adapter = Path(shutil.copytree(FIXTURE_ADAPTER, self.tmp / "adapter"))
        meta = json.loads((adapter / "adapt_adapter.json").read_text())
        meta.update(meta_changes)
        (adapter / "adapt_adapter.json").write_text(json.dumps(meta))
        return adapter

    def finetune(self, out: Path, *options: str, data: Path | None = None) -> list:
        """`adapt finetune` of the tiny base to ur5e on a small dataset (or `data`), writing `out`, plus `options`."""
        data = data or self.dataset()
        return [
            "finetune",
            "--base",
            self.base(),
            "--embodiment",
            "ur5e",
            "--data",
            data,
            "--out",
            out,
            *FAST,
            *options,
        ]

    def file(self, name: str = "a_file") -> Path:
        path = self.tmp / name
        path.write_text("not a folder")
        return path


def _edit_info(w: World, edit) -> Path:
    data = w.copy_dataset()
    info_path = data / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    edit(info)
    info_path.write_text(json.dumps(info))
    return data


def _edit_episodes(w: World, edit) -> Path:
    """A copied v3 dataset whose meta/episodes rows went through `edit(rows)`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = w.copy_dataset()
    file = next((data / "meta" / "episodes").rglob("*.parquet"))
    rows = pq.read_table(file).to_pylist()
    edit(rows)
    pq.write_table(pa.Table.from_pylist(rows), file)
    return data


def _latin1_spec(w: World) -> Path:
    path = w.tmp / "spec.yaml"
    path.write_bytes(bundled_embodiments()["panda"].read_bytes().replace(b"panda arm", b"panda \xe9 arm", 1))
    return path


def _alias_bomb(w: World, name: str) -> Path:
    """The billion laughs: nine levels of nine aliases each, a billion strings once expanded (before the bound, a
    spec like this kept `adapt embodiment validate` running past 120 s at 5.5 GB and growing)."""
    lines = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = w.tmp / name
    path.write_text("\n".join(lines) + "\nname: *a9\n")
    return path


def _base_with_other_weights(w: World) -> Path:
    """The adapter's base with one weight changed in its model.safetensors and config.json left as it was
    (before, the fingerprint was read from config.json, and the adapter loaded on these weights)."""
    from safetensors.torch import load_file, save_file

    base = Path(shutil.copytree(FIXTURE_BASE, w.tmp / "swapped"))
    weights = load_file(base / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1
    save_file(weights, base / "model.safetensors")
    return base


def _in_degrees(w: World) -> Path:
    """A UR5e dataset whose joint positions were recorded in degrees (the spec's limits are in radians)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = w.copy_dataset()
    for file in (data / "data").rglob("*.parquet"):
        table = pq.read_table(file)
        state = np.asarray(table["observation.state"].to_pylist(), np.float32)
        state[:, :6] = np.degrees(state[:, :6]) + 90.0  # a pose around 90 degrees: every frame beyond 2 pi
        column = pa.array(list(state), type=table.schema.field("observation.state").type)
        pq.write_table(
            table.set_column(table.column_names.index("observation.state"), "observation.state", column), file
        )
    return data


def _cut_short(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:100])
    return path


def _garbage_videos(w: World) -> Path:
    folder = w.tmp / "videos"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(b"\x00\x01garbage" * 50)
    return folder


# name -> (build the arguments, words the message must contain, the output path that must not appear)
CASES = {
    "spec not UTF-8": (lambda w: ["embodiment", "validate", _latin1_spec(w)], ["spec.yaml", "not UTF-8", "line 1"]),
    "recipe not UTF-8": (
        lambda w: ["recipe", "show", (w.tmp / "r.yaml", (w.tmp / "r.yaml").write_bytes(b"name: x\n# \xe9\n"))[0]],
        ["r.yaml", "not UTF-8", "line 2"],
    ),
    "spec is a folder": (lambda w: ["embodiment", "validate", w.tmp], ["embodiment spec file not found"]),
    "spec that is an alias bomb": (
        lambda w: ["embodiment", "validate", _alias_bomb(w, "bomb.yaml")],
        ["bomb.yaml", "more than 16 alias references", "line 3"],
    ),
    "recipe that is an alias bomb": (
        lambda w: ["recipe", "show", _alias_bomb(w, "bomb_recipe.yaml")],
        ["bomb_recipe.yaml", "more than 16 alias references"],
    ),
    "spec too large": (
        lambda w: ["embodiment", "validate", (w.tmp / "big.yaml", (w.tmp / "big.yaml").write_text("#" * 2**21))[0]],
        ["big.yaml", "2,097,152 bytes", "at most 1,048,576"],
    ),
    "embodiment new --out under a file": (
        lambda w: (
            ["embodiment", "new", "--from", "package://robosuite/models/assets/robots/panda/robot.xml"]
            + ["--name", "p", "--out", w.file() / "p.yaml"]
        ),
        ["Invalid value for '--out'", "a_file is a file, not a folder; choose another --out"],
    ),
    "data stats --out under a file": (
        lambda w: ["data", "stats", w.dataset(), "--embodiment", "ur5e", "--out", w.file() / "s.json"],
        ["Invalid value for '--out'", "a_file is a file, not a folder; choose another --out"],
    ),
    "finetune --out under a file": (
        lambda w: w.finetune(w.file() / "run"),
        ["Invalid value for '--out'", "a_file is a file, not a folder; choose another --out"],
    ),
    "export --out under a file": (
        lambda w: ["export", w.adapter(), "--out", w.file() / "merged"],
        ["Invalid value for '--out'", "a_file is a file, not a folder; choose another --out"],
    ),
    "data generate --out under a file": (
        lambda w: (
            ["data", "generate", "--robot", "panda", "--kind", "demo", "--episodes", "1"] + ["--out", w.file() / "d"]
        ),
        ["Invalid value for '--out'", "a_file is a file, not a folder; choose another --out"],
    ),
    "info.json not JSON": (
        lambda w: ["data", "inspect", (d := w.copy_dataset(), (d / "meta" / "info.json").write_text("{nope"))[0]],
        ["info.json", "not valid JSON", "line 1 column 2"],
    ),
    "info.json without fps": (
        lambda w: ["data", "inspect", _edit_info(w, lambda i: i.pop("fps"))],
        ["info.json", "fps", "Field required"],
    ),
    "info.json fps not a number": (
        lambda w: ["data", "stats", _edit_info(w, lambda i: i.update(fps="fast")), "--embodiment", "ur5e"],
        ["info.json", "fps", "'fast'"],
    ),
    "info.json fps zero": (
        lambda w: ["data", "inspect", _edit_info(w, lambda i: i.update(fps=0))],
        ["info.json", "fps", "greater than 0"],
    ),
    "v3 dataset without meta/episodes": (
        lambda w: ["data", "inspect", (d := w.copy_dataset(), shutil.rmtree(d / "meta" / "episodes"))[0]],
        ["v3.0 dataset lists its episodes in meta/episodes"],
    ),
    "v3 episodes without episode_index": (
        lambda w: ["data", "inspect", _edit_episodes(w, lambda rows: [r.pop("episode_index") for r in rows])],
        ["meta/episodes", "episode row 0 has no integer 'episode_index'"],
    ),
    "v3 episode with an empty tasks list": (
        lambda w: ["data", "inspect", _edit_episodes(w, lambda rows: rows[1].update(tasks=[]))],
        ["meta/episodes", "episode 1 has 'tasks' []", "a list of its task texts"],
    ),
    "video_path with an unknown placeholder": (
        lambda w: ["data", "inspect", _edit_info(w, lambda i: i.update(video_path="videos/{camera}/{file_index}.mp4"))],
        ["meta/info.json", "video_path", "cannot be filled in", "KeyError('camera')", "{video_key}"],
    ),
    "v2 dataset without episodes.jsonl": (
        lambda w: ["data", "inspect", _edit_info(w, lambda i: i.update(codebase_version="v2.1"))],
        ["v2.1 dataset lists its episodes in meta/episodes.jsonl, which is missing"],
    ),
    "finetune --accelerator gpu without a GPU": (
        lambda w: w.finetune(w.tmp / "run", "--accelerator", "gpu"),
        ["--accelerator gpu", "gpu"],
        "run",
    ),
    "finetune --devices beyond the cores": (
        lambda w: w.finetune(w.tmp / "run", "--devices", "64"),
        ["--devices 64 would start 64 training processes"],
        "run",
    ),
    "finetune --strategy unknown": (
        lambda w: w.finetune(w.tmp / "run", "--strategy", "warp"),
        ["--strategy warp", "warp"],
        "run",
    ),
    "pretrain --devices beyond the cores": (
        lambda w: (
            ["pretrain", "--data", w.dataset(), "--size", "tiny", "--tokenizer-steps", "1"]
            + ["--out", w.tmp / "run", *FAST, "--devices", "64"]
        ),
        ["--devices 64 would start 64 training processes"],
        "run",
    ),
    "pretrain unknown size": (
        lambda w: (
            ["pretrain", "--data", w.dataset(), "--size", "huge", "--tokenizer-steps", "1"]
            + ["--out", w.tmp / "run", *FAST]
        ),
        ["unknown model size 'huge'"],
        "run",
    ),
    "pretrain on an empty folder": (
        lambda w: (
            ["pretrain", "--data", (w.tmp / "empty", (w.tmp / "empty").mkdir())[0], "--size", "tiny"]
            + ["--tokenizer-steps", "1", "--out", w.tmp / "run", *FAST]
        ),
        ["empty", "not a LeRobot dataset (missing meta/info.json)"],
        "run",
    ),
    "inspect a dataset recorded in degrees": (
        lambda w: ["data", "inspect", _in_degrees(w), "--embodiment", "ur5e", "--contact-sheet", w.tmp / "s.png"],
        ["state of joint shoulder_pan_joint: 100% of frames outside its limits", "other units"],
    ),
    "finetune on a dataset recorded in degrees": (
        lambda w: w.finetune(w.tmp / "run", data=_in_degrees(w)),
        ["state of joint elbow_joint: 100% of frames outside its limits", "--allow-outside-limits"],
        "run",
    ),
    "adapter naming an embodiment outside its folder": (
        lambda w: ["export", w.adapter(embodiments=["../../x"]), "--base", FIXTURE_BASE, "--out", w.tmp / "merged"],
        ["embodiments names 'embodiments/../../x.yaml', outside the folder"],
        "merged",
    ),
    "adapter on its base with other weights": (
        lambda w: ["export", w.adapter(), "--base", _base_with_other_weights(w), "--out", w.tmp / "merged"],
        ["was trained on another base", "weights fingerprint differs"],
        "merged",
    ),
    "export onto the adapter it exports": (
        lambda w: ["export", (a := w.adapter()), "--base", FIXTURE_BASE, "--out", a, "--overwrite"],
        ["--out", "is the adapter", "choose an --out apart from it"],
    ),
    "finetune into its own base": (
        lambda w: w.finetune(w.tmp / "base" / "run"),
        ["--out", "lies inside the base", "choose an --out apart from it"],
        "base/run",
    ),
    "adapter heads cut short": (
        lambda w: [
            "export",
            (a := w.adapter(), _cut_short(a / "heads.safetensors"))[0],
            "--base",
            FIXTURE_BASE,
            "--out",
            w.tmp / "merged",
        ],
        ["heads.safetensors", "the adapter heads file is damaged"],
        "merged",
    ),
    "dataset whose video_path leads outside it": (
        lambda w: w.finetune(w.tmp / "run", data=_edit_info(w, lambda i: i.update(video_path="../../{video_key}.mp4"))),
        ["meta/info.json video_path names '../../observation.images", "outside the folder"],
        "run",
    ),
    "adapter whose base is gone: export": (
        lambda w: ["export", w.adapter(base="/nowhere/base"), "--out", w.tmp / "merged"],
        ["/nowhere/base is not here", "pass the base it was trained on with --base"],
        "merged",
    ),
    "adapter whose base is gone: eval": (
        lambda w: ["eval", "--policy", w.adapter(base="/nowhere/base"), "--episodes", "1", "--out", w.tmp / "e"],
        ["/nowhere/base is not here", "--base"],
        "e",
    ),
    "adapter description without its base": (
        lambda w: ["export", w.adapter(base=None), "--out", w.tmp / "merged"],
        ["adapt_adapter.json", "not a valid adapter description", "no base"],
        "merged",
    ),
    "base config.json not JSON": (
        lambda w: (
            ["finetune", "--base", (b := w.base(), (b / "config.json").write_text("{"))[0]]
            + ["--embodiment", "ur5e", "--data", w.dataset(), "--out", w.tmp / "run", *FAST]
        ),
        ["config.json", "not valid JSON"],
        "run",
    ),
    "eval with both --policy and --server": (
        lambda w: ["eval", "--policy", w.base(), "--server", "ws://127.0.0.1:9", "--out", w.tmp / "e"],
        ["give either --policy", "or --server", "not both"],
        "e",
    ),
    "eval through a server that is not there": (
        lambda w: ["eval", "--server", "ws://127.0.0.1:9", "--episodes", "1", "--out", w.tmp / "e"],
        ["cannot reach the policy server at ws://127.0.0.1:9"],
        "e",
    ),
    "serve with an empty token": (
        lambda w: ["serve", "--policy", w.adapter(), "--base", FIXTURE_BASE, "--token", ""],
        ["--token is empty", "no client could use the server"],
    ),
    "plan with infinite GPU memory": (
        lambda w: ["plan", "--base", "dreamzero-14b", "--gpu-memory", "inf"],
        ["--gpu-memory inf: expected a finite number"],
    ),
    "serve an adapter whose base is gone": (
        lambda w: ["serve", "--policy", w.adapter(base="/nowhere/base"), "--schema"],
        ["/nowhere/base is not here", "--base"],
    ),
    "import-videos from a missing folder": (
        lambda w: ["data", "import-videos", w.tmp / "nope", "--task", "wave", "--out", w.tmp / "o"],
        ["nope: not a folder"],
        "o",
    ),
    "import-videos from a folder without videos": (
        lambda w: ["data", "import-videos", w.tmp, "--task", "wave", "--out", w.tmp / "o"],
        ["no video files"],
        "o",
    ),
    "import-videos of a damaged video": (
        lambda w: ["data", "import-videos", _garbage_videos(w), "--task", "wave", "--out", w.tmp / "o"],
        ["clip.mp4: not a readable video", "--skip-bad"],
        "o",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_by_name_with_status_2_and_nothing_written(case, invoke, synthetic_dataset, tmp_path):
    build, words, *unwritten = CASES[case]
    world = World(tmp_path / "work", synthetic_dataset)
    world.tmp.mkdir()
    result = invoke(*build(world))
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2, text
    assert "Traceback" not in text and "unexpected" not in text, text
    squeezed = "".join(c for c in text if not c.isspace() and c not in "│╭╮╰╯─")  # rich wraps in boxes
    for word in words:
        assert "".join(word.split()) in squeezed, f"{word!r} not in: {text}"
    for name in unwritten:
        assert not (world.tmp / name).exists(), f"{name} was written"


def test_dataset_metadata_problems_are_all_named_in_one_pass(synthetic_dataset, tmp_path):
    data = Path(shutil.copytree(synthetic_dataset("ur5e", episodes=1, length=12), tmp_path / "d"))
    info = json.loads((data / "meta" / "info.json").read_text())
    info.update(fps=float("nan"), features=[], data_path=None)
    (data / "meta" / "info.json").write_text(json.dumps(info))  # json writes NaN, as Python's reader accepts
    with pytest.raises(InvalidFileError) as caught:
        read_info(data)
    assert {p.field for p in caught.value.problems} == {"fps", "features", "data_path"}


def test_a_second_run_into_a_busy_folder_is_refused_and_a_killed_run_frees_it(invoke, synthetic_dataset, tmp_path):
    """Two `adapt finetune` runs on one --out both trained to the end and left one run's adapter beside the other's
    last.ckpt; the second must be refused at once. A run killed with SIGKILL must not leave the folder locked."""
    import subprocess
    import sys

    from adapt.train.run_lock import run_lock

    world = World(tmp_path / "work", synthetic_dataset)
    world.tmp.mkdir()
    run = world.tmp / "run"
    hold = (  # the context manager is kept in a name: dropped, it would be closed and free the folder at once
        "import sys, time; from adapt.train.run_lock import run_lock; lock = run_lock(sys.argv[1]); lock.__enter__();"
        " print('held', flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        result = invoke(*world.finetune(run))
        assert result.exit_code == 2, result.output
        assert f"another run is training into this folder (pid {holder.pid} on" in " ".join(result.output.split())
        assert not (run / "checkpoints").exists()
    finally:
        holder.kill()
        holder.wait()
    with run_lock(run):  # the killed holder's lock went with it
        pass
