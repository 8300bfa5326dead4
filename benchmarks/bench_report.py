"""How big and how fast is `agentkd report` for a large run? Builds a run of N trajectories, writes its
report, and measures the page in headless Chromium.

    python benchmarks/bench_report.py --source runs/demo --n 10000

The large run is generated from a real one (`--source`, e.g. the README's main job): its run.json, student
files and evaluation reports are copied, and its trajectories (the collection and every evaluation, cascade
steps with their candidates and votes included) are replicated in the same proportions, each copy with its
own task id, until there are N. Without `--source`, a small real run is collected first (factqa, the
reference teacher, a teacher evaluation). Prints: the time to write the report, the page size, the time to
the load event and until the viewer's first page of rows is drawn (median of `--loads` fresh loads), the
time to filter all rows, and the time to open a trajectory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from headless import HeadlessChromium, find_chromium  # noqa: E402

from agentkd.report import gather, write  # noqa: E402
from agentkd.run.layout import RunLayout  # noqa: E402


def small_real_run(where: Path) -> Path:
    run = where / "source"
    python = [sys.executable, "-m", "agentkd.cli"]
    subprocess.run([*python, "collect", "--env", "factqa", "--teacher", "reference", "--n", "40", "--run", str(run)],
                   check=True, capture_output=True)
    subprocess.run([*python, "eval", "--run", str(run), "--policy", "teacher", "--n", "20"], check=True,
                   capture_output=True)
    return run


def replicate(source: Path, target: Path, n: int) -> dict[str, int]:
    """A run folder like `source` with n trajectories in all (same sources, same proportions)."""
    src, dst = RunLayout(source), RunLayout(target)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy(src.config, dst.config)
    if src.student_dir.is_dir():
        dst.student_dir.mkdir()
        for path in (src.student_config, src.student_data, src.train_log):
            if path.is_file():
                shutil.copy(path, dst.student_dir / path.name)
    files = {src.trajectories: dst.trajectories}
    if src.eval_dir.is_dir():
        (dst.eval_dir / "settings").mkdir(parents=True)
        for name, report in src.eval_reports().items():
            shutil.copy(report, dst.eval_report(name))
            files[src.eval_trajectories(name)] = dst.eval_trajectories(name)
            if src.eval_settings(name).is_file():
                shutil.copy(src.eval_settings(name), dst.eval_settings(name))
    lines = {out: [ln for ln in Path(inp).read_text().splitlines() if ln.strip()] for inp, out in files.items()
             if Path(inp).is_file()}
    total = sum(len(v) for v in lines.values())
    wants = {out: max(1, n * len(originals) // total) for out, originals in lines.items()}
    wants[max(lines, key=lambda out: len(lines[out]))] += n - sum(wants.values())  # exactly n in all
    counts = {}
    for out, originals in lines.items():
        want = wants[out]
        with open(out, "w") as handle:
            for copy in range(want):
                record = json.loads(originals[copy % len(originals)])
                record["task"]["id"] = f"{record['task']['id']}-r{copy // len(originals)}"
                handle.write(json.dumps(record) + "\n")
        counts[out.name] = want
    return counts


def measure(page: Path, loads: int) -> dict[str, float]:
    load_s, ready_ms = [], []
    with HeadlessChromium(width=1400, height=1000, timeout_s=120) as browser:
        for _ in range(loads):
            browser.open("about:blank")
            load_s.append(browser.open(page))
            browser.wait_for("document.body.dataset.ready")
            ready_ms.append(browser.evaluate("window.agentkdReportReadyMs"))
        rows = browser.evaluate("document.querySelectorAll('#rows tbody tr').length")
        total = browser.evaluate("Number(document.getElementById('rows').dataset.total)")
        filter_ms = browser.evaluate(
            "(() => { const s = document.getElementById('f-success'); s.value = '0'; const t = performance.now();"
            " s.dispatchEvent(new Event('change')); const ms = performance.now() - t; s.value = '';"
            " s.dispatchEvent(new Event('change')); return ms; })()")
        search_ms = browser.evaluate(
            "(() => { const s = document.getElementById('f-text'); s.value = 'zzz-no-match'; const t = performance.now();"
            " s.dispatchEvent(new Event('change')); const ms = performance.now() - t; s.value = '';"
            " s.dispatchEvent(new Event('change')); return ms; })()")
        browser.wait_for("document.querySelectorAll('#rows tbody tr').length > 0")
        started = time.perf_counter()
        browser.click("#rows tbody tr:last-child")  # includes the DevTools round trips of a real mouse click
        browser.wait_for("!!document.querySelector('#detail .trajectory')")
        open_s = time.perf_counter() - started
        heap = browser.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
        errors = list(browser.errors)
    if errors:
        raise SystemExit(f"JavaScript errors: {errors}")
    return {"load_s": statistics.median(load_s), "ready_ms": statistics.median(ready_ms), "rows_in_dom": rows,
            "rows_total": total, "filter_ms": filter_ms, "search_ms": search_ms, "open_s": open_s,
            "js_heap_mb": heap / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="a real run folder to replicate (default: collect a small one)")
    parser.add_argument("--n", type=int, default=10_000, help="trajectories in the generated run")
    parser.add_argument("--loads", type=int, default=3, help="page loads to take the median of")
    parser.add_argument("--keep", type=Path, help="keep the generated run (and its report) here")
    args = parser.parse_args()
    if not find_chromium():
        raise SystemExit("no Chromium: install Debian's `chromium` (setup.sh does) or set AGENTKD_CHROMIUM")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with tempfile.TemporaryDirectory(prefix="agentkd-bench-report-") as tmp:
        source = args.source or small_real_run(Path(tmp))
        run = args.keep or Path(tmp) / "large"
        counts = replicate(source, run, args.n)
        started = time.perf_counter()
        data = gather(run)
        page = write(data, RunLayout(run).report_html)
        write_s = time.perf_counter() - started
        size = page.stat().st_size
        figures = measure(page, args.loads)
    print(f"run: {sum(counts.values()):,} trajectories ({', '.join(f'{k} {v:,}' for k, v in counts.items())}) "
          f"replicated from {source}")
    print(f"agentkd report: {write_s:.1f} s to read the run and write the page")
    print(f"page: {size / 1e6:.1f} MB ({size / sum(counts.values()) / 1e3:.2f} kB per trajectory)")
    print(f"Chromium (headless, median of {args.loads}): load event {figures['load_s']:.2f} s, viewer ready "
          f"{figures['ready_ms'] / 1000:.2f} s after navigation start; {figures['rows_in_dom']} of "
          f"{figures['rows_total']:,} rows in the DOM")
    print(f"filter all rows (result = failure): {figures['filter_ms']:.1f} ms; text search: "
          f"{figures['search_ms']:.1f} ms; open a trajectory: {figures['open_s'] * 1000:.0f} ms; "
          f"JS heap {figures['js_heap_mb']:.0f} MB")


if __name__ == "__main__":
    main()
