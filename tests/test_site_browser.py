"""The published asv site works offline: checked in headless Chromium with the network closed.

Builds a scratch asv project (a git repo with one tiny benchmark module over the eager
entries of ``softmaxloss.IMPLEMENTATIONS``: a ``time_`` and an ``eps`` ``track_``
benchmark), runs it in the current Python (``environment_type: existing``, no env build),
publishes it, adds the front-page summary (``lossbench.site_summary``), makes it
self-contained (``lossbench.offline_site``), serves it on 127.0.0.1 and loads the graph
pages in Chromium with every non-loopback host
unresolvable and a dead proxy. A control run on the untouched published site must fail the
same checks, so the browser set-up really is offline.

Screenshots go to ``$SITE_SCREENSHOT_DIR`` when set, and always to ``.asv/screenshots/``.
Skipped only where no Chromium can be found (``.ci/install-chromium`` installs Debian's).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lossbench import offline_site, site_summary

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
MACHINE = "site-test"
TIME_BENCH = "bench_site.Loss.time_forward"
TRACK_BENCH = "bench_site.Loss.track_grad_error"

BENCH_MODULE = '''\
"""Tiny suite for the site test: the registry's eager implementations, one size, two
dtypes (the torch.compile entries compile again in every asv process: 8 compilations in
the set-up, for nothing the browser checks)."""

import torch

import softmaxloss  # the loss and its tools, installed (make install): nothing on sys.path
from lossbench import reference

IMPLS = sorted(n for n in softmaxloss.IMPLEMENTATIONS if not n.startswith("compiled"))


class Loss:
    params = [IMPLS, ["64x10"], ["float32", "float64"]]
    param_names = ["impl", "size", "dtype"]
    timeout = 60

    def setup(self, impl, size, dtype):
        if impl not in softmaxloss.IMPLEMENTATIONS:
            raise NotImplementedError(impl)
        torch.set_num_threads(1)
        n, c = (int(v) for v in size.split("x"))
        gen = torch.Generator().manual_seed(0)
        # Logits ~ N(0, 60^2): large enough that the naive formulas lose precision.
        logits = torch.randn(n, c, generator=gen, dtype=torch.float64) * 60
        self.logits = logits.to(getattr(torch, dtype))
        self.target = torch.randint(0, c, (n,), generator=gen)
        self.fn = softmaxloss.IMPLEMENTATIONS[impl]

    def time_forward(self, impl, size, dtype):
        self.fn(self.logits, self.target)

    def track_grad_error(self, impl, size, dtype):
        err = reference.measure(impl, self.logits, self.target).grad_error_eps
        return reference.capped(err)

    track_grad_error.unit = "eps"
'''

ASV_CONF = """\
{
    "version": 1,
    "project": "softmaxloss-site-test",
    "project_url": "",
    "repo": ".",
    "branches": ["main"],
    "dvcs": "git",
    "environment_type": "existing",
    "benchmark_dir": "benchmarks",
    "results_dir": ".asv/results",
    "html_dir": ".asv/html"
}
"""


def _run(cmd, cwd, env, timeout=600):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    return proc.stdout


def build_scratch_site(root: Path) -> tuple[Path, Path, dict]:
    """Scratch git repo + asv run + publish; returns (project dir, html dir, env)."""
    proj, home = root / "proj", root / "home"
    (proj / "benchmarks").mkdir(parents=True)
    home.mkdir()
    (proj / "benchmarks" / "__init__.py").write_text("")
    (proj / "benchmarks" / "bench_site.py").write_text(BENCH_MODULE)
    (proj / "asv.conf.json").write_text(ASV_CONF)
    (proj / ".gitignore").write_text(".asv/\n")
    env = dict(os.environ, HOME=str(home), GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid")  # fmt: skip
    _run(["git", "init", "-q", "-b", "main"], proj, env)
    _run(["git", "add", "."], proj, env)
    _run(["git", "commit", "-q", "-m", "scratch suite"], proj, env)
    head = _run(["git", "rev-parse", "HEAD"], proj, env).strip()
    asv = [sys.executable, "-m", "asv"]
    _run([*asv, "machine", "--yes", "--machine", MACHINE], proj, env)
    _run([*asv, "run", "--python=same", "--quick", "--set-commit-hash", head,
          "--machine", MACHINE, "--show-stderr"], proj, env)  # fmt: skip
    _run([*asv, "publish", "--config", "asv.conf.json"], proj, env)
    return proj, proj / ".asv" / "html", env


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium(browser: str, url: str, mode: list[str], profile: Path) -> str:
    """One headless Chromium run with every non-loopback host closed; returns stdout."""
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-default-apps", f"--user-data-dir={profile}",
        # Network closed: no name resolves except 127.0.0.1, and any non-loopback request
        # goes to a proxy nobody listens on (Chromium never proxies loopback).
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--proxy-server=http://127.0.0.1:9",
        "--virtual-time-budget=10000", "--window-size=1400,900", *mode, url,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc.stdout


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    browser = find_chromium()
    if browser is None:
        pytest.skip("no Chromium found (chromium/chromium-browser/google-chrome not on PATH): "
                    "install Debian's `chromium` with .ci/install-chromium")  # fmt: skip
    root = tmp_path_factory.mktemp("site")
    proj, html_dir, _ = build_scratch_site(root)
    serve = root / "serve"
    shutil.copytree(html_dir, serve / "raw")  # untouched publish: the offline control
    summary = site_summary.summarize(proj / ".asv" / "results")
    site_summary.inject(html_dir / "index.html", site_summary.render(summary))
    offline_site.make_offline(html_dir, REPO / ".asv" / "vendor-cache")
    first = {p: p.read_bytes() for p in html_dir.rglob("*.html")}
    # Re-applying both is a no-op (make site may run them again on the same dir).
    site_summary.inject(html_dir / "index.html", site_summary.render(summary))
    offline_site.make_offline(html_dir, REPO / ".asv" / "vendor-cache")
    assert {p: p.read_bytes() for p in html_dir.rglob("*.html")} == first
    shutil.copytree(html_dir, serve / "site")
    handler = functools.partial(_QuietHandler, directory=str(serve))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    shots = [REPO / ".asv" / "screenshots"]
    if os.environ.get("SITE_SCREENSHOT_DIR"):
        shots.append(Path(os.environ["SITE_SCREENSHOT_DIR"]))
    try:
        yield {
            "browser": browser,
            "url": f"http://127.0.0.1:{server.server_address[1]}",
            "proj": proj,
            "serve": serve,
            "root": root,
            "shots": shots,
        }
    finally:
        server.shutdown()
        server.server_close()


def _dom(site, path: str) -> str:
    profile = Path(site["root"]) / f"profile-{abs(hash(path))}"
    return chromium(site["browser"], f"{site['url']}/{path}", ["--dump-dom"], profile)


def _screenshot(site, path: str, name: str) -> Path:
    out = Path(site["root"]) / name
    profile = Path(site["root"]) / f"profile-shot-{name}"
    chromium(site["browser"], f"{site['url']}/{path}", [f"--screenshot={out}"], profile)
    assert out.is_file() and out.stat().st_size > 10_000, f"no screenshot written for {path}"
    for dest in site["shots"]:
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, dest / name)
    return out


def _colored_pixels(png: Path) -> int:
    """Saturated pixels right of asv's left panel: flot's series (grey UI elsewhere)."""
    from matplotlib import image

    rgb = image.imread(str(png))[100:800, 260:, :3]
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 0.25).sum())


def _assert_graph_drawn(dom: str, bench: str) -> None:
    assert "continental origin of swallow" not in dom, "asv's error page was shown"
    main = re.search(r'<div id="main-graph".*?</div>\s*</div>', dom, re.DOTALL)
    assert main and 'class="flot-base"' in main.group(0), "flot drew no plot in #main-graph"
    error_box = re.search(r'<div[^>]*\bid="error"[^>]*>', dom)
    assert error_box, "asv's error dialog missing from the page"
    assert not re.search(r'class="[^"]*\bin\b', error_box.group(0)), "asv's error box is shown"
    assert "display: block" not in error_box.group(0), "asv's error box is shown"
    assert re.search(r'id="error-message"[^>]*>\s*</div>', dom), "asv reported an error"
    assert bench in dom


def test_offline_tool_leaves_no_external_url(site):
    raw = offline_site.external_urls(site["serve"] / "raw")
    assert len(raw) >= 10, raw  # asv's publish loads its libraries from CDNs
    assert offline_site.external_urls(site["serve"] / "site") == []
    vendored = sorted(p.name for p in (site["serve"] / "site" / "vendor").iterdir())
    assert vendored == offline_site.VENDOR_FILES


def test_control_unpatched_site_fails_with_network_closed(site):
    # Proves the browser really is offline: asv's own page cannot load its CDN scripts.
    dom = _dom(site, f"raw/index.html#{TIME_BENCH}")
    assert 'class="flot-base"' not in dom
    assert "continental origin of swallow" in dom  # asv's error.html


@pytest.mark.parametrize(
    ("bench", "query", "shot"),
    [
        (TIME_BENCH, "", "site-time.png"),
        # x axis = implementation, log scale, both dtypes: the precision picture at a glance.
        (TRACK_BENCH, "?x-axis=impl&y-axis-scale=log&p-dtype=%27float32%27&p-dtype=%27float64%27",
         "site-track.png"),
    ],
)  # fmt: skip
def test_graph_page_draws_offline(site, bench, query, shot):
    page = f"site/index.html#{bench}{query}"
    _assert_graph_drawn(_dom(site, page), bench)
    png = _screenshot(site, page, shot)
    assert _colored_pixels(png) > 200, "the screenshot shows no plotted series"


def test_precision_graph_has_eps_unit(site):
    import json

    index = json.loads((site["serve"] / "site" / "index.json").read_text())
    assert index["benchmarks"][TRACK_BENCH]["unit"] == "eps"
    assert index["benchmarks"][TIME_BENCH]["unit"] == "seconds"


def _expected_winners(proj: Path, bench: str) -> dict[str, set[str]]:
    """dtype -> implementations at the minimum, read straight from asv's results JSON."""
    import json

    (path,) = (proj / ".asv" / "results" / MACHINE).glob("*-existing-*.json")
    data = json.loads(path.read_text())
    cols = data["result_columns"]
    entry = dict(zip(cols, data["results"][bench], strict=False))
    impls, sizes, dtypes = entry["params"]
    values = iter(entry["result"])
    table: dict[str, dict[str, float]] = {}
    for impl in impls:
        for _ in sizes:
            for dtype in dtypes:
                value = next(values)
                if value is not None:
                    table.setdefault(dtype.strip("'"), {})[impl.strip("'")] = value
    return {d: {i for i, v in row.items() if v == min(row.values())} for d, row in table.items()}


def test_front_page_names_fastest_and_most_precise(site):
    dom = _dom(site, "site/index.html")
    section = re.search(r'<div id="softmaxloss-summary".*?<h2>All benchmarks</h2>', dom, re.DOTALL)
    assert section, "front page lacks the fastest / most precise summary"
    text = section.group(0)
    for bench in (TIME_BENCH, TRACK_BENCH):
        for dtype, winners in _expected_winners(site["proj"], bench).items():
            row = re.search(
                rf'<a href="#{re.escape(bench)}\?[^"]*">.*?</a></td><td>size=64x10, '
                rf"dtype={dtype}</td><td[^>]*><b>([^<]*)</b>",
                text,
            )
            assert row, f"no summary row for {bench} {dtype}"
            assert set(row.group(1).split(", ")) == winners, (bench, dtype)
    assert "eps" in text
    _screenshot(site, "site/index.html", "site-front.png")
