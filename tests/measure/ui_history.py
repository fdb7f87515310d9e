"""The Dagster UI as a user sees it after `make run`: the regression checks of `published_evaluation` with their
evidence, and a variant's history of evaluation runs, rendered by a real headless browser.

    .venv/bin/python -m tests.measure.ui_history [--variant tiny-bf16-cpu] [--out .yardstick/measure/ui]

Needs Chromium (`apt-get install chromium`) and the `playwright` package (`.venv/bin/pip install playwright`;
its own browser download is not used: Chromium is started from --chromium). Starts `dagster-webserver` on the
project's workspace with this checkout's $DAGSTER_HOME and warehouse (what `make run` wrote), opens the pages,
saves a screenshot of each under --out and prints what each shows of the checks and the runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from resources.launchers.readiness import free_port

ROOT = Path(__file__).resolve().parents[2]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="tiny-bf16-cpu")
    parser.add_argument("--home", default=str(ROOT / ".yardstick"), help="YARDSTICK_HOME that `make run` used")
    parser.add_argument("--out", default=str(ROOT / ".yardstick" / "measure" / "ui"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    return parser.parse_args()


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"dagster-webserver not ready at {url} after {timeout_s:.0f} s")


def main() -> None:
    from playwright.sync_api import sync_playwright

    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    home = Path(args.home).resolve()
    env = {**os.environ, "YARDSTICK_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    webserver = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen([str(webserver), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    # Each page: its address, then the links or tabs clicked in turn (by their text) before the screenshot.
    pages = {
        "serving_check": (f"{url}/assets/published_evaluation?view=checks",
                          ["serving_did_not_regress", "Execution history"]),
        "serving_evidence": (f"{url}/assets/published_evaluation?view=checks",
                             ["serving_did_not_regress", "Execution history", "@metadata of the failed row"]),
        "accuracy_check": (f"{url}/assets/published_evaluation?view=checks",
                           ["accuracy_did_not_regress", "Execution history"]),
        "variant_runs": (f"{url}/assets/published_evaluation?view=partitions&partition={args.variant}",
                         ["~View all historical events"]),
        "evaluation_run": (f"{url}/assets/published_evaluation?view=events", [args.variant]),
    }
    try:
        wait_ready(url, process)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True,
                                                 args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            for name, (address, clicks) in pages.items():
                page.goto(address)
                page.wait_for_load_state("networkidle")
                time.sleep(3)   # the asset pages load their panels after the network settles
                skip = page.get_by_role("button", name="Skip")
                if skip.count():   # the first visit's "Join the Dagster community" dialog
                    skip.first.click()
                for text in clicks:
                    if text.startswith("@"):   # the metadata button of the first check run that failed (WARN)
                        page.get_by_role("row").filter(has_text="Failed").first.get_by_role("button").last.click()
                    else:
                        page.get_by_text(text.lstrip("~"), exact=not text.startswith("~")).first.click()
                    page.wait_for_load_state("networkidle")
                    time.sleep(2)
                shot = out / f"{name}.png"
                page.screenshot(path=str(shot), full_page=True)
                text = page.inner_text("body")
                found = {word: word in text for word in ("accuracy_did_not_regress", "serving_did_not_regress",
                                                         "Warning", "Failed", "Succeeded", "compared_with",
                                                         "findings", "flipped", "throughput", "evidence",
                                                         "regression_throughput_drop", args.variant,
                                                         "run_id", "grader_version", "model_sha")}
                print(f"{name}: {address}\n  screenshot {shot}\n  shows: "
                      f"{', '.join(word for word, shown in found.items() if shown) or 'none of the expected words'}")
            browser.close()
    finally:
        os.killpg(process.pid, 15)
        process.wait(30)


if __name__ == "__main__":
    main()
