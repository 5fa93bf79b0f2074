"""One self-contained HTML page about training runs and evaluations, side by side: how each was made
(`provenance.json`), how training went (loss curves, predicted-against-real strips), how the policy did (the
closed-loop table with its intervals, how the failures failed, rollout videos).

Everything is embedded (pictures and videos as data URIs, no script, no network), so the page can be attached
to a message or an issue and opened anywhere as it is.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from adapt.atomic import atomic_write_text
from adapt.errors import AdaptError
from adapt.evaluate import EpisodeResult, EvalReport

PICTURES = {"loss_curves.png": "loss curves", "predictions.png": "predicted against real"}
"""Pictures a training run leaves in its folder, with their captions."""
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
.runs { display: grid; grid-template-columns: repeat(var(--columns), minmax(0, 1fr)); gap: 1.5em; }
section { border: 1px solid #ccc; border-radius: 6px; padding: 0 1em 1em; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { white-space: nowrap; }
img, video { max-width: 100%; }
figure { margin: 0.5em 0; }
.videos { display: flex; flex-wrap: wrap; gap: 0.5em; }
.videos figure { width: 220px; }
"""


def write_report(folders: list[Path], out: Path, *, videos: int = 4) -> Path:
    """Write the page for `folders` (each a training run's `--out`, or an evaluation's folder with its
    `results.json`) to `out`; at most `videos` rollout videos per evaluation (failures and successes both)."""
    if not folders:
        raise AdaptError("give at least one run or evaluation folder")
    sections = [_section(Path(folder), videos) for folder in folders]
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>adapt report</title>"
        f"<style>{STYLE}</style></head><body><h1>adapt report</h1>"
        f"<div class='runs' style='--columns: {min(len(sections), 3)}'>{''.join(sections)}</div></body></html>\n"
    )
    atomic_write_text(Path(out), page)
    return Path(out)


def _section(folder: Path, videos: int) -> str:
    if not folder.is_dir():
        raise AdaptError(f"{folder}: not a folder (give a run's --out or an evaluation's folder)")
    evaluations = sorted(p.parent for p in [folder / "results.json", *folder.glob("*/results.json")] if p.is_file())
    provenance = folder / "provenance.json"
    if not provenance.is_file() and not evaluations:
        raise AdaptError(f"{folder}: no provenance.json or results.json; is it a run or an evaluation folder?")
    parts = [f"<h2>{_text(folder.name)}</h2>", f"<p><code>{_text(folder.resolve())}</code></p>"]
    if provenance.is_file():
        parts.append(_provenance(_read_json(provenance)))
    for name, caption in PICTURES.items():
        if (folder / name).is_file():
            parts.append(_figure(folder / name, caption))
    for evaluation in evaluations:
        parts.append(_evaluation(evaluation, folder, videos))
    return f"<section>{''.join(parts)}</section>"


def _provenance(record: dict) -> str:
    settings = record.get("settings", {})
    recipe = settings.get("recipe")
    rows = [
        ("kind", record.get("kind")),
        ("command", " ".join(map(str, record.get("command", [])))),
        ("started", record.get("started")),
        ("ended", record.get("ended")),
        ("wall time", f"{record['wall_s'] / 60:.1f} min" if "wall_s" in record else None),
        (
            "training time",
            f"{record['training_s'] / 60:.1f} min, resumed attempts included" if "training_s" in record else None,
        ),
        ("steps reached", record.get("steps_reached")),
        ("robot", settings.get("embodiment") or settings.get("robot")),
        ("recipe", recipe.get("name") if isinstance(recipe, dict) else recipe),
        ("base", _base(record.get("base"))),
        ("data", "<br>".join(_text(d["path"]) for d in record.get("data", [])) or None),
        ("seed", settings.get("seed")),
        ("versions", ", ".join(f"{k} {v}" for k, v in record.get("versions", {}).items())),
        ("machine", ", ".join(f"{k} {v}" for k, v in record.get("machine", {}).items())),
    ]
    cells = "".join(
        f"<tr><th>{name}</th><td>{value if name == 'data' else _text(value)}</td></tr>"
        for name, value in rows
        if value not in (None, "")
    )
    return f"<table class='provenance'>{cells}</table>"


def _base(base: dict | None) -> str | None:
    return None if not base else f"{base['path']} (weights {base['fingerprint'][:12]})"


def _evaluation(folder: Path, top: Path, videos: int) -> str:
    body = _read_json(folder / "results.json")
    if "episodes" not in body or "task" not in body:
        return f"<h3>{_text(folder.name)}</h3><pre>{_text(json.dumps(body, indent=1)[:4000])}</pre>"  # open loop
    fields = set(EpisodeResult.__dataclass_fields__)
    try:
        episodes = [EpisodeResult(**{k: v for k, v in e.items() if k in fields}) for e in body["episodes"]]
    except TypeError as error:
        raise AdaptError(f"{folder / 'results.json'}: an episode is not as adapt eval writes them ({error})") from None
    report = EvalReport(body["task"], body.get("robot", "?"), episodes)
    wins = sum(e.success for e in episodes)
    (s_lo, s_hi), (p_lo, p_hi) = report.success_interval(), report.progress_interval()
    title = folder.name if folder == top else f"{folder.name} ({top.name})"
    table = (
        "<table class='evaluation'><tr><th>task</th><th>robot</th><th>episodes</th><th>success</th>"
        "<th>success 95% CI (Wilson)</th><th>mean progress</th><th>progress 95% CI (bootstrap)</th></tr>"
        f"<tr><td>{_text(report.task)}</td><td>{_text(report.robot)}</td><td>{len(episodes)}</td>"
        f"<td class='success'>{wins}/{len(episodes)} = {report.success_rate:.2f}</td>"
        f"<td class='success-ci'>{s_lo:.2f}-{s_hi:.2f}</td><td class='progress'>{report.mean_progress:.2f}</td>"
        f"<td class='progress-ci'>{p_lo:.2f}-{p_hi:.2f}</td></tr></table>"
    )
    shown = _pick(episodes, videos)
    clips = "".join(
        f"<figure><video controls muted preload='auto' src='{_data_uri(folder / Path(e.video).name, 'video/mp4')}'>"
        f"</video><figcaption>seed {e.seed}: {'success' if e.success else 'failure'}, progress {e.progress:.2f}"
        f"{', stages ' + _text(', '.join(e.stages)) if e.stages else ''}</figcaption></figure>"
        for e in shown
    )
    return (
        f"<h3>{_text(title)}</h3>{table}<p class='failures'>{_text(report.failures())}</p>"
        f"<div class='videos'>{clips}</div>"
    )


def _pick(episodes: list[EpisodeResult], count: int) -> list[EpisodeResult]:
    """Up to `count` episodes with a video: failures and successes alternately, in seed order."""
    with_video = [e for e in episodes if e.video]
    failed, won = [e for e in with_video if not e.success], [e for e in with_video if e.success]
    picked = []
    while len(picked) < count and (failed or won):
        for group in (failed, won):
            if group and len(picked) < count:
                picked.append(group.pop(0))
    return sorted(picked, key=lambda e: e.seed)


def _figure(path: Path, caption: str) -> str:
    return (
        f"<figure><img alt='{caption}' src='{_data_uri(path, 'image/png')}'><figcaption>{caption}</figcaption></figure>"
    )


def _data_uri(path: Path, kind: str) -> str:
    if not path.is_file():
        raise AdaptError(f"{path}: missing (results.json names it)")
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _read_json(path: Path) -> dict:
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise AdaptError(f"{path}: not readable JSON ({error})") from None
    if not isinstance(body, dict):
        raise AdaptError(f"{path}: expected a JSON object")
    return body


def _text(value) -> str:
    return html.escape(str(value))
