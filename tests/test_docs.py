"""Every Python block of the README and of docs/ runs as written, in reading order, in one folder prepared as a
user's would be (a LeRobot dataset at `data/ur5e_play`; the adapter the adaptation page trains; a server the serving
page talks to). The only edits are sizes (`SIZES`: fewer training steps) and the server's port.

Catches a snippet with an undefined name or a stale API: pasted first by new users, it used to hang or fail."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *(f"docs/{name}.md" for name in ("embodiments", "data", "models", "adaptation", "policy"))]
PAGES.append("docs/serving.md")
SIZES = {"steps=500": "steps=2"}
"""Text replaced before a block runs: the same call, smaller."""


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.S)


def test_every_python_block_runs_as_written(synthetic_dataset, tmp_path, monkeypatch):
    from adapt.predictor import ChunkPredictor
    from adapt.serving.server import PolicyServer, ServerConfig

    shutil.copytree(synthetic_dataset("ur5e", episodes=2, length=40), tmp_path / "data" / "ur5e_play")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADAPT_TOKEN", "docs-token")
    ran = []
    for page in PAGES:
        for number, block in enumerate(python_blocks(page)):
            code = block
            for long, short in SIZES.items():
                code = code.replace(long, short)
            server = None
            if "WebsocketClientPolicy(" in code:  # the serving page's client needs a server to talk to
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", 0))
                    port = probe.getsockname()[1]
                config = ServerConfig(port=port, token="docs-token")
                server = PolicyServer(ChunkPredictor.load("runs/ur5e"), config).start()
                code = code.replace("8000", str(port))
            try:
                exec(compile(code, f"{page}, python block {number}", "exec"), {"__name__": "__docs__"})
            finally:
                if server is not None:
                    server.stop()
            ran.append(page)
    expected = {"README.md", "docs/embodiments.md", "docs/data.md", "docs/adaptation.md", "docs/policy.md"}
    assert set(ran) == expected | {"docs/serving.md"}  # the blocks were found (a changed fence would skip them)


def test_the_results_report_and_the_readme_headline_are_what_the_benchmark_json_makes(monkeypatch):
    """docs/results.md and the README's headline table as committed equal what `benchmarks/results_report.py`
    writes from `benchmarks/results/*.json`. Catches a table edited by hand, or a JSON updated (a benchmark rerun)
    without the report regenerated: a user would read figures the data no longer says."""
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    results_report = importlib.import_module("results_report")
    try:
        assert (ROOT / "docs" / "results.md").read_text() == results_report.report()
        assert (ROOT / "README.md").read_text() == results_report.readme()
    finally:
        for name in ("results_report", "adaptation", "peers", "report"):
            sys.modules.pop(name, None)
