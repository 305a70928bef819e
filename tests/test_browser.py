"""An executed notebook as a researcher reopens it: JupyterLab in a headless Chromium, 1400 x 1000.

Optional: skipped, with the reason, where Chromium (the system's package) or the ``playwright`` Python
package is absent; playwright never downloads a browser here. What nbclient cannot see is checked in
the page: the saved progress bar draws as a widget at its final value (the notebook is trusted), no
output is a red stderr box, and no table or figure is wider than the output area.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

CHROMIUM = os.environ.get("TSPLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
WINDOW = {"width": 1400, "height": 1000}

try:
    import playwright.sync_api  # noqa: F401
    _PLAYWRIGHT = True
except ImportError:
    _PLAYWRIGHT = False

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM, reason="no Chromium on this machine (the system package 'chromium')"),
    pytest.mark.skipif(not _PLAYWRIGHT, reason="the playwright Python package is not installed"),
]

# The notebook panel shown (other tabs stay in the page, hidden).
CURRENT = """(() => [...document.querySelectorAll('.jp-NotebookPanel')]
    .find(p => !p.classList.contains('lm-mod-hidden')) || document)"""
# Per output of the notebook shown: its kind, the output area's width and how wide its content is.
MEASURE = """() => [...(CURRENT()).querySelectorAll('.jp-OutputArea-output')].map(o => {
    const img = o.querySelector('img');
    const table = o.querySelector('table');
    const bar = o.querySelector('.widget-hprogress .progress-bar');
    return {mime: o.getAttribute('data-mime-type') || '',
            area: o.clientWidth,
            content: img ? img.naturalWidth : table ? table.scrollWidth : o.scrollWidth,
            shown: img ? img.width : o.clientWidth,
            bar: bar ? bar.style.width : null, text: o.innerText.slice(0, 80)};
})""".replace("CURRENT", CURRENT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(root: Path, env: dict) -> tuple[subprocess.Popen, str]:
    """JupyterLab serving ``root`` on the loopback, no token; its URL once it answers."""
    port = _free_port()
    settings = root.parent / "lab-settings"
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
         f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={settings}",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError("JupyterLab did not answer within 60 s")


WIDGETS_SETTLED = """() => ![...document.querySelectorAll('.jp-OutputArea-output')]
    .some(o => o.innerText.startsWith('Loading widget'))"""
WIDGET_MISSING = """() => [...document.querySelectorAll('.jp-OutputArea-output')]
    .some(o => o.innerText.startsWith('Error displaying widget'))"""


def open_notebook(page, url: str, name: str) -> list[dict]:
    """Open ``name`` in JupyterLab, wait until its outputs are drawn; their measures (``MEASURE``).

    The widget manager restores a saved notebook's widgets once its kernel has started; when the
    kernel's own (empty) restore wins that race, a view says "model not found" until the page is
    loaded again, so it is loaded once more in that case."""
    for attempt in range(2):
        page.goto(f"{url}/lab/tree/{name}?reset")  # this notebook alone, no tabs restored
        page.wait_for_selector(".jp-OutputArea-output", state="attached", timeout=60_000)
        page.wait_for_function(WIDGETS_SETTLED, timeout=60_000)
        page.wait_for_function("[...document.querySelectorAll('.jp-OutputArea-output img')].every(i => i.complete)")
        page.wait_for_timeout(1_000)
        if not page.evaluate(WIDGET_MISSING):
            break
    return page.evaluate(MEASURE)


NOTEBOOK = [
    "steps = 5",
    "from tqdm.auto import tqdm\nfor _ in tqdm(range(steps), desc='work'):\n    pass",
    "import warnings\nfrom tsplab.notebook import one_line_warnings\none_line_warnings()\n"
    "print('tsplab: information goes to stdout')",
    "import numpy as np, pandas as pd\nfrom tsplab import tables\n"
    "table = pd.DataFrame([{**{f'mAP@{t:.2f}': 0.123456 for t in np.arange(0.5, 1.0, 0.05)}, 'average': 0.1}],"
    " index=pd.Index(['tac', 'tsp'][:1], name='method'))\ntables.styled(tables.headline_first(table, 'average'))",
    "%matplotlib inline\nimport pandas as pd\nfrom tsplab import plots\n"
    "cells = pd.DataFrame({'condition': ['a', 'b'], 'seed': [0, 0], 'status': 'finished',"
    " **{f'metric {i}': [1.0, 2.0] for i in range(8)}})\n"
    "plots.plot_study_metrics(cells, [f'metric {i}' for i in range(8)]);",
]


def test_reopened_notebook_draws_its_widgets_and_fits_the_output_area(tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    from tsplab import pipeline
    from tsplab.pipeline import NotebookStep, run_notebook

    env = {**os.environ, "JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    monkeypatch.setenv("JUPYTER_DATA_DIR", env["JUPYTER_DATA_DIR"])  # the notary's database, shared with the lab
    source = tmp_path / "source"
    source.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in NOTEBOOK]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, source / "look.ipynb")
    monkeypatch.setattr(pipeline, "notebooks_dir", lambda: source)
    root = tmp_path / "run"
    run_notebook(NotebookStep("look.ipynb", dict(steps=7)), root)

    process, url = start_lab(root, env)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=WINDOW)
            outputs = open_notebook(page, url, "look.ipynb")
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert [o["bar"] for o in outputs if o["bar"] is not None] == ["100%"], outputs  # drawn, at its final value
    assert not [o for o in outputs if o["mime"] == "application/vnd.jupyter.stderr"]
    assert all(o["content"] <= o["area"] for o in outputs), outputs  # nothing cut off or scaled down
    assert len([o for o in outputs if o["mime"] == "image/png"]) == 1
