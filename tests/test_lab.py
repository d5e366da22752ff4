"""The course as its users meet it: every notebook opened in JupyterLab in a real (headless)
browser, Run All Cells with its default ``smoke`` parameters, saved, and the saved file checked.

It needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` of the dev extra
(``.ci/run`` installs the Debian packages when they are missing). Without them the test skips with
a reason, except where ``DEFECTLIB_REQUIRE_LAB=1`` (``.ci/run`` sets it): a skipped browser test in
CI is a failure. On success it touches ``$DEFECTLIB_LAB_STAMP`` (when set), which ``.ci/run``
checks, and it keeps a screenshot of every notebook after its run in
``$DEFECTLIB_LAB_SCREENSHOTS`` (default: a ``lab-screenshots`` folder under pytest's temporary
directory; the path is printed).

The server gets an environment without ``MPLBACKEND`` (with ``Agg``, which ``.ci/run`` exports,
Lab would draw nothing and a figure check would pass on an empty notebook) and without
``DEFECTLIB_DATA`` (the notebooks must run on their embedded stand-ins, as for a new user).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
TOKEN = "defectlib-lab-test"
PER_NOTEBOOK_S = 420

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def _missing() -> list[str]:
    out = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        out.append("python package selenium (pip install -e '.[dev]')")
    if CHROMIUM is None:
        out.append("chromium (apt-get install chromium)")
    if DRIVER is None:
        out.append("chromedriver (apt-get install chromium-driver)")
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        out.append("jupyterlab in this venv (pip install -e .)")
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    missing = _missing()
    if missing:
        why = "browser test needs " + ", ".join(missing)
        if os.environ.get("DEFECTLIB_REQUIRE_LAB") == "1":
            pytest.fail(why + " (DEFECTLIB_REQUIRE_LAB=1: CI must run it)")
        pytest.skip(why)
    root = tmp_path_factory.mktemp("lab")
    course = root / "course"
    course.mkdir()
    for nb in NOTEBOOKS:                       # the test saves notebooks: never the repository's
        shutil.copy(nb, course / nb.name)
    settings = root / "settings"
    # no news or update pop-ups over the notebook
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DEFECTLIB_DATA")}
    env.update(JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTER_RUNTIME_DIR=str(root / "runtime"))
    port = _free_port()
    cmd = [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={course}",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={root / 'workspaces'}",
           "--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(root / "server.log", "w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for_server(url, server, root / "server.log")
        yield url, course
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_for_server(url: str, server: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    import urllib.request
    end = time.time() + timeout
    while time.time() < end:
        if server.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"jupyter lab did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def browser(lab):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def _screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("DEFECTLIB_LAB_SCREENSHOTS") or tmp_path_factory.getbasetemp() / "lab-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# JavaScript run in the page: JupyterLab's own commands, through the app object Lab exposes
_READY = """
const app = window.jupyterapp;
if (!app || !app.shell) return null;
const w = app.shell.currentWidget;
if (!w || !w.sessionContext || !w.context || !w.context.isReady) return null;
const k = w.sessionContext.session && w.sessionContext.session.kernel;
return {path: w.context.path, kernel: k ? k.status : null};
"""
# started, not awaited (its promise settles when the last cell has run); _STATE is polled instead
_RUN_ALL = """
window.__runAll = 'running';
window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    () => { window.__runAll = 'done'; }, e => { window.__runAll = String(e); });
return true;
"""
_STATE = """
const w = window.jupyterapp.shell.currentWidget;
const cells = w.content.widgets.filter(c => c.model.type === 'code');
const k = w.sessionContext.session.kernel;
return {kernel: k ? k.status : null, total: cells.length,
        counted: cells.filter(c => c.model.executionCount !== null).length,
        running: cells.filter(c => c.node.querySelector('.jp-InputPrompt') &&
                                   c.node.querySelector('.jp-InputPrompt').textContent.includes('*')).length,
        dirty: w.context.model.dirty, run_all: window.__runAll};
"""
_SAVE = """
const done = arguments[arguments.length - 1];
window.jupyterapp.commands.execute('docmanager:save').then(() => done(true), e => done(String(e)));
"""


def _wait(driver, script, until, timeout, what):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = driver.execute_script(script)
        if until(last):
            return last
        time.sleep(1)
    raise AssertionError(f"{what}: not done after {timeout:.0f} s (last state {last})")


@pytest.mark.parametrize("notebook", [p.name for p in NOTEBOOKS])
def test_notebook_runs_in_jupyterlab(notebook, lab, browser, tmp_path_factory):
    import nbformat
    url, course = lab
    browser.get(f"{url}/lab/tree/{notebook}?token={TOKEN}&reset")
    _wait(browser, _READY, lambda s: bool(s) and s["path"] == notebook and s["kernel"] == "idle", 120,
          f"{notebook}: opening with an idle kernel")
    assert browser.execute_script(_RUN_ALL) is True
    state = _wait(browser, _STATE, lambda s: s["run_all"] != "running" and s["kernel"] == "idle"
                  and s["running"] == 0 and s["counted"] == s["total"], PER_NOTEBOOK_S, f"{notebook}: Run All Cells")
    assert state["run_all"] == "done", f"{notebook}: Run All Cells failed: {state['run_all']}"
    assert browser.execute_async_script(_SAVE) is True
    _wait(browser, _STATE, lambda s: not s["dirty"], 30, f"{notebook}: saving")
    shots = _screenshots(tmp_path_factory)
    browser.save_screenshot(str(shots / f"{Path(notebook).stem}.png"))
    print(f"screenshot: {shots / (Path(notebook).stem + '.png')}")

    nb = nbformat.read(course / notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) == state["total"]
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(code) for o in c.outputs
              if o.output_type == "error"]
    assert not errors, f"{notebook}: error outputs {errors}"
    unrun = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not unrun, f"{notebook}: code cells without an execution count: {unrun}"
    figures = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert figures > 0, f"{notebook}: no figure drawn (was MPLBACKEND forced?)"
    stderr = [(i, o.text[:200]) for i, c in enumerate(code) for o in c.outputs
              if o.output_type == "stream" and o.name == "stderr" and "Warning" in o.text]
    assert not stderr, f"{notebook}: warnings on stderr: {stderr}"
    stamp = os.environ.get("DEFECTLIB_LAB_STAMP")
    if stamp and notebook == NOTEBOOKS[-1].name:
        Path(stamp).write_text(f"{len(NOTEBOOKS)} notebooks run in JupyterLab in {CHROMIUM}\n")
