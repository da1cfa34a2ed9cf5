"""The widgets of `nbs/07_widgets.ipynb` in a real browser: JupyterLab on 127.0.0.1 (a free port, no token), headless Chromium
driven by Playwright; every cell run, every widget driven as a person would, its picture checked to change, the console checked
to stay free of errors. Needs Chromium (`make test` gets it: tools/get_chromium.sh; or PPAD_CHROMIUM=/path/to/chrome)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = "07_widgets.ipynb"
CHANGE_WAIT_S = 20  # the longest a picture may take to follow its control (the kernel draws it with matplotlib)


def playwright_chromium() -> str | None:
    "Playwright's own Chromium (`python -m playwright install chromium`), when it has been downloaded."
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright: return playwright.chromium.executable_path


def find_chromium() -> str:
    "The Chromium to drive, or a failure that says how to get one (never a silent skip)."
    if os.environ.get("PPAD_SKIP_BROWSER"): pytest.skip("PPAD_SKIP_BROWSER is set: the browser test of the widgets did not run")
    candidates = [os.environ.get("PPAD_CHROMIUM")] + [shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")]
    candidates.append(playwright_chromium())  # `make test` downloads Playwright's own where it cannot install the system's
    found = next((c for c in candidates if c and Path(c).is_file()), None)
    if found is None:
        pytest.fail("Chromium not found, so the widgets could not be tested in a browser. Install it (Debian/Ubuntu: "
                    "sudo apt-get update && sudo apt-get install -y chromium; elsewhere: python -m playwright install chromium; `make test` tries both), or set PPAD_CHROMIUM to a Chromium or Chrome binary; "
                    "PPAD_SKIP_BROWSER=1 skips this test knowingly.", pytrace=False)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(folder: Path):
    "JupyterLab settings for the test: every cell kept in the page (no windowing), no news or update checks (no network)."
    settings = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
                "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False}}
    for name, values in settings.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(values))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "JupyterLab serving a copy of the notebook (the repository's copy is never saved over) on a free loopback port."
    chromium = find_chromium()
    root = tmp_path_factory.mktemp("lab")
    (root / "nbs").mkdir()
    shutil.copy(REPO / "nbs" / NOTEBOOK, root / "nbs" / NOTEBOOK)
    shutil.copytree(REPO / "tests" / "fixtures" / "parity-tiny", root / "tests" / "fixtures" / "parity-tiny")  # the notebook reads ../tests/fixtures
    write_settings(root / "settings")
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces"),
           "JUPYTER_CONFIG_DIR": str(root / "config"), "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "PPAD_DEVICE": "cpu",
           "IN_TEST": "1"}  # the notebook does less work, as under nbdev-test
    port = free_port()
    log = open(root / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                               "--ServerApp.port_retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
                               f"--ServerApp.root_dir={root}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                               "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False", "--allow-root"],
                              cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2): break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(root / 'server.log').read_text()[-3000:]}", pytrace=False)
                time.sleep(0.5)
        from playwright.sync_api import sync_playwright
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            errors = []
            page.on("console", lambda message: errors.append(f"console: {message.text}") if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))
            started = time.time()
            run_all_cells(page, f"{url}/lab/tree/nbs/{NOTEBOOK}")
            print(f"notebook ran in the browser in {time.time() - started:.1f} s")
            yield page, errors
            browser.close()
    finally:
        server.terminate()
        try: server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill(); server.wait()
        log.close()


def kernel_idle(page) -> bool:
    return page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0


def run_all_cells(page, url: str):
    "Open the notebook, wait for its kernel, run every cell from the Run menu, and wait until all have run without an error."
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
    page.wait_for_selector(".jp-NotebookPanel-toolbar .jp-KernelName:has-text('Python 3')", timeout=90_000)
    page.wait_for_selector(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
    for attempt in range(10):  # while JupyterLab is still starting up, the command may not reach the notebook yet
        if page.locator(".jp-Dialog", has_text="Select Kernel").count():  # asked while its kernel was still starting: the default
            page.locator(".jp-Dialog .jp-mod-accept").click()
            page.wait_for_selector(".jp-Dialog", state="detached")
        dialogs = page.locator(".jp-Dialog").all_inner_texts()
        if dialogs: pytest.fail(f"JupyterLab asks: {dialogs}", pytrace=False)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
        try:
            page.wait_for_function("() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))"
                                   ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))", timeout=5_000)
            break
        except Exception: pass
    else: pytest.fail("Run > Run All Cells did not start the notebook", pytrace=False)
    deadline = time.time() + 600
    while True:
        texts = prompts.all_inner_texts()
        if all(t.strip() not in ("", "[ ]:") and "*" not in t for t in texts) and kernel_idle(page): break
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        failed = [e for e in errors if "Traceback" in e or "Error" in e]
        if failed and kernel_idle(page): pytest.fail(f"a cell of {NOTEBOOK} failed in JupyterLab:\n{failed[0][-2000:]}", pytrace=False)
        if time.time() > deadline: pytest.fail(f"{NOTEBOOK} did not finish running: prompts {texts}", pytrace=False)
        time.sleep(0.5)


PICTURE_HASH = """async (img) => {
    const bytes = await (await fetch(img.src)).arrayBuffer();
    const digest = await crypto.subtle.digest("SHA-256", bytes);
    return Array.from(new Uint8Array(digest)).map(b => b.toString(16).padStart(2, "0")).join("");
}"""


def pictures(widget):
    "The SHA-256 of every picture the widget shows (the PNG bytes the browser holds), in page order."
    images = widget.locator("img")
    return [images.nth(i).evaluate(PICTURE_HASH) for i in range(images.count())]


def expect_change(widget, what: str, action, which=None, wait: float = CHANGE_WAIT_S):
    "Do `action`; the pictures at positions `which` (default all) must change within `wait` seconds."
    before = pictures(widget)
    action()
    which = range(len(before)) if which is None else which
    deadline = time.time() + wait
    while True:
        after = pictures(widget)
        if len(after) == len(before) and all(after[i] != before[i] for i in which): return after
        assert time.time() < deadline, f"{what}: the picture did not change within {wait:.0f} s"
        time.sleep(0.25)


def dropdown(widget, description: str):
    return widget.locator(".widget-dropdown", has=widget.page.locator("label", has_text=description)).locator("select")


def next_option(select):
    "Choose the option after the selected one (wrapping), as a person picking another entry would."
    count, current = select.locator("option").count(), select.evaluate("s => s.selectedIndex")
    select.select_option(index=(current + 1) % count)


def drive_explorer(page, wait=CHANGE_WAIT_S):
    explorer = page.locator(".ppad-synthesis-explorer").first
    explorer.scroll_into_view_if_needed()
    expect_change(explorer, "synthesis explorer, region", lambda: next_option(dropdown(explorer, "region")), wait=wait)
    expect_change(explorer, "synthesis explorer, strength", lambda: next_option(dropdown(explorer, "strength")), wait=wait)
    seed = explorer.locator(".widget-text input")
    def type_seed():
        seed.fill(str(int(seed.input_value()) + 5))
        seed.press("Enter")
    expect_change(explorer, "synthesis explorer, seed", type_seed, wait=wait)
    expect_change(explorer, "synthesis explorer, new draw", lambda: explorer.locator("button", has_text="new draw").click(), wait=wait)


def test_every_widget_follows_its_controls(lab):
    page, errors = lab
    started = time.time()
    drive_explorer(page)

    viewer = page.locator(".ppad-region-prompt-viewer").first
    viewer.scroll_into_view_if_needed()
    expect_change(viewer, "region-prompt viewer, image", lambda: next_option(dropdown(viewer, "image")))

    dashboard = page.locator(".ppad-results-dashboard").first
    dashboard.scroll_into_view_if_needed()
    metrics = dashboard.locator(".widget-html").first.inner_text()
    expect_change(dashboard, "results dashboard, report", lambda: next_option(dropdown(dashboard, "report")))  # curves, histogram, detail
    assert dashboard.locator(".widget-html").first.inner_text() != metrics
    expect_change(dashboard, "results dashboard, image", lambda: next_option(dropdown(dashboard, "image")), which=[-1])
    print(f"widgets driven in {time.time() - started:.1f} s")
    assert errors == [], "the browser console showed errors:\n" + "\n".join(errors)


def test_dashboard_shows_full_names_and_pictures_at_their_size(lab):
    page, _ = lab
    dashboard = page.locator(".ppad-results-dashboard").first
    detail = dashboard.locator("img").last
    detail.scroll_into_view_if_needed()
    natural, shown = detail.evaluate("img => [img.naturalWidth, img.getBoundingClientRect().width]")
    assert natural > 0 and abs(shown - natural) <= 1, f"detail picture {natural} px wide, shown at {shown:.0f} px"
    select = dropdown(dashboard, "image")
    longest, width = select.evaluate("""s => {
        const context = document.createElement("canvas").getContext("2d");
        context.font = getComputedStyle(s).font;
        return [Math.max(...Array.from(s.options).map(o => context.measureText(o.text).width)), s.clientWidth];
    }""")
    assert width >= longest + 16, f"image names up to {longest:.0f} px wide in a {width} px dropdown"


def test_the_check_fails_when_a_widget_stops_following(lab):
    "The check has teeth: with one callback disconnected (a cell added as a person would), driving that control fails."
    page, errors = lab
    page.locator(".jp-Notebook .jp-Cell").last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")  # a new cell below
    page.wait_for_selector(".jp-Notebook .jp-Cell.jp-mod-active .cm-content")
    page.locator(".jp-Notebook .jp-Cell.jp-mod-active .cm-content").click()
    page.keyboard.insert_text('explorer.region.unobserve(explorer.update, names="value")')
    page.keyboard.press("Shift+Enter")
    deadline = time.time() + 30
    while not (kernel_idle(page) and "*" not in page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").nth(-1).inner_text()):
        assert time.time() < deadline, "the added cell did not run"
        time.sleep(0.25)
    with pytest.raises(AssertionError, match="synthesis explorer, region: the picture did not change"):
        drive_explorer(page, wait=5)
