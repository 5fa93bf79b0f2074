"""`adapt report`: one self-contained page of runs and evaluations, checked in a real headless browser (Debian's
chromium through selenium): it loads without console errors, its videos decode and play, and every number it
shows equals the JSON it was made from."""

from __future__ import annotations

import json
import shutil

import pytest

webdriver = pytest.importorskip("selenium.webdriver")
pytest.importorskip("robosuite")
if not (shutil.which("chromium") and shutil.which("chromedriver")):
    pytest.skip("needs Debian's chromium and chromium-driver (the README's test setup)", allow_module_level=True)


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def test_report_of_a_run_and_an_evaluation_loads_plays_and_shows_the_json_numbers(
    invoke, synthetic_dataset, tmp_path, browser
):
    """Bugs caught: a page that needs the network or the run folder (data URIs missing), videos in a codec or
    container the browser cannot play, numbers rounded or taken from another file than the run's, a run's
    provenance missing from the page, markup broken by a path or task with HTML characters."""
    run = tmp_path / "run <a&b>"
    result = invoke(
        "pretrain",
        "--data",
        synthetic_dataset("ur5e"),
        "--out",
        run,
        "--size",
        "tiny",
        "--steps",
        "2",
        "--tokenizer-steps",
        "1",
        "--workers",
        "0",
    )
    assert result.exit_code == 0, result.output
    evaluation = tmp_path / "expert"
    result = invoke(
        "eval", "--policy", "scripted", "--robot", "panda", "--episodes", "2", "--seed", "7", "--out", evaluation
    )
    assert result.exit_code == 0, result.output
    expected = json.loads((evaluation / "results.json").read_text())
    page = tmp_path / "report.html"
    result = invoke("report", run, evaluation, "--out", page)
    assert result.exit_code == 0, result.output
    shutil.rmtree(run)  # self-contained: nothing read from the folders once written
    shutil.rmtree(evaluation)

    browser.get(page.as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert browser.find_element("tag name", "h2").text == "run <a&b>"
    provenance = browser.find_element("css selector", "table.provenance").text
    assert "pretrain" in provenance and "steps reached 2" in provenance
    images = browser.execute_script("return [...document.images].map(i => i.naturalWidth)")
    assert len(images) == 2 and min(images) > 100  # loss curves and predictions, decoded
    played = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const videos = [...document.querySelectorAll('video')];
        Promise.all(videos.map(v => v.play().then(() => new Promise(r => setTimeout(r, 300)))
            .then(() => [v.duration, v.currentTime, v.videoWidth]).catch(e => String(e)))).then(done);"""
    )
    assert len(played) == 2 and all(isinstance(p, list) for p in played), played
    lengths = [e["steps"] / 20 for e in expected["episodes"]]  # seconds of rollout at the spec's 20 fps
    for (duration, position, width), length in zip(played, lengths, strict=True):
        assert abs(duration - length) < 0.11 and position > 0 and width > 0, played
    cell = {k: browser.find_element("css selector", f"table.evaluation td.{k}").text for k in ("success", "success-ci")}
    assert cell["success"] == f"2/2 = {expected['success_rate']:.2f}"
    assert cell["success-ci"] == "{:.2f}-{:.2f}".format(*expected["success_ci95"])
