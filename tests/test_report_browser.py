"""The report of a small real run, rendered in headless Chromium: plots and rows in the DOM, filters, a
trajectory opened with a mouse click, a screenshot, and no JavaScript error.

The run is real: factqa collected with the reference teacher, the teacher evaluated, and a cascade evaluated
through the real cascade and evaluation code; only the cascade's student is a scripted sampler (agreeing on
a step's first action, disagreeing on its second, so both the student's and the teacher's steps appear),
because loading a model would make this test minutes long. Chromium is Debian's `chromium` package
(setup.sh installs it); the test is skipped, saying so, where there is none. The screenshot goes to the
test's tmp folder, or to $AGENTKD_REPORT_SCREENSHOT (CI keeps it as an artifact).
"""

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from headless import HeadlessChromium, find_chromium
from scripted_students import DisagreeingOnSecondSteps

from agentkd.records import Usage

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_chromium() is None, reason="no headless Chromium: install Debian's `chromium` package "
                       "(./setup.sh does, as root or with sudo) or point AGENTKD_CHROMIUM at a Chrome/Chromium binary"),
]

TRAIN, TEST = 6, 3


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    from agentkd.collect.job import CollectJob, prepare_collect
    from agentkd.env.loading import load_environment
    from agentkd.evaluate import evaluate
    from agentkd.evaluate.job import EvalJob, prepare_eval
    from agentkd.policies.cascade import CascadePolicy
    from agentkd.policies.reference import ReferencePolicy
    from agentkd.policies.registry import teacher_spec
    from agentkd.specs import EnvSpec

    run = tmp_path_factory.mktemp("report") / "run"
    teacher = teacher_spec("reference")
    collect = prepare_collect(CollectJob(run=run, env=EnvSpec(target="factqa", given="factqa"), teacher=teacher, n=TRAIN))
    asyncio.run(collect.run())
    asyncio.run(prepare_eval(EvalJob(run=run, policy=teacher, name="teacher", split="test", n=TEST)).run())
    env = load_environment("factqa")
    student = DisagreeingOnSecondSteps(env, lambda n: Usage(prompt_tokens=200 * n, completion_tokens=30 * n, calls=1))
    cascade = CascadePolicy(student, ReferencePolicy(), samples=3, agreement="code")
    asyncio.run(evaluate(env, cascade, env.tasks("test", TEST), run, "cascade", "test", {"policy": "scripted cascade"},
                         concurrency=2, prices={"student": (0.1, 0.4)}))
    return run


def test_the_report_renders_in_chromium_and_a_trajectory_opens(real_run, tmp_path):
    from agentkd.report import write_report

    page = write_report(real_run)
    total = TRAIN + TEST + TEST
    with HeadlessChromium(width=1400, height=1000) as browser:
        browser.open(page)
        browser.wait_for("document.body.dataset.ready === '1'")

        plots = browser.evaluate("Array.from(document.querySelectorAll('svg.plot')).map(s => s.dataset.plot)")
        assert {"pareto", "share", "kinds"} <= set(plots), plots
        assert browser.evaluate("document.querySelectorAll('svg.plot circle.point, svg.plot path.point').length") == 2
        assert browser.evaluate("document.querySelector('#fig-share svg').getBoundingClientRect().height") > 100
        assert browser.evaluate("document.querySelectorAll('#rows tbody tr').length") == total
        assert browser.evaluate("document.getElementById('count').textContent") == f"{total} of {total} trajectories"

        # filter to the cascade's episodes that had a deferred step, then open one with the mouse
        browser.evaluate("(() => { const f = document.getElementById('f-source'); f.value = 'cascade';"
                         " f.dispatchEvent(new Event('change', {bubbles: true}));"
                         " const d = document.getElementById('f-deferred'); d.value = '1';"
                         " d.dispatchEvent(new Event('change', {bubbles: true})); return true; })()")
        assert browser.evaluate("document.querySelectorAll('#rows tbody tr').length") == TEST
        browser.click("#rows tbody tr:first-child")
        browser.wait_for("!!document.querySelector('#detail .trajectory')")
        steps = browser.evaluate("Array.from(document.querySelectorAll('#detail .step .badge[class*=role-]'))"
                                 ".map(b => b.textContent)")
        assert steps[:2] == ["student", "teacher"], steps
        assert browser.evaluate("document.querySelector('#detail .step.role-teacher details.candidates').open") is True
        text = browser.evaluate("document.getElementById('detail').innerText")
        assert "deferred: the student's samples disagreed" in text and "vote (code): rejected" in text
        assert "final answer:" in text and "expected:" in text and "observation" in text
        assert browser.evaluate("location.hash").startswith("#t")
        assert browser.evaluate("document.querySelector('#rows tr.open') !== null")

        shot = browser.screenshot(tmp_path / "report.png")
        assert shot.stat().st_size > 10_000
        if os.environ.get("AGENTKD_REPORT_SCREENSHOT"):
            shutil.copy(shot, Path(os.environ["AGENTKD_REPORT_SCREENSHOT"]))
        assert browser.errors == [], browser.errors


def test_a_javascript_error_would_fail_the_test(tmp_path):
    """The error watch itself works: a page that throws is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>console.error('bad'); undefinedFunction();</script></body></html>")
    with HeadlessChromium() as browser:
        browser.open(page)
        browser.wait_for("document.readyState === 'complete'")
        browser.evaluate("new Promise(r => setTimeout(r, 50))")
    assert any("console.error: bad" in e for e in browser.errors), browser.errors
    assert any("undefinedFunction" in e for e in browser.errors), browser.errors
