"""Make a published asv html dir self-contained (no CDN, no network) and check it.

asv 0.6.6's ``index.html`` loads jQuery, flot (+time, selection, categories), orderBars,
stupidtable, blueimp-md5 and bootstrap from CDNs; offline the page redirects to asv's
``error.html``. The same libraries ship in the asv 0.5.1 sdist on PyPI under
``asv/www/vendor/``. This tool

1. obtains them at build time with pip (``pip download asv==0.5.1 --no-deps
   --no-binary :all:``), cached outside git under ``--cache-dir`` (default
   ``.asv/vendor-cache``), never committed;
2. copies them into ``<html_dir>/vendor/`` and rewrites every CDN ``<script src>`` and
   ``<link href>`` in every html page to the local copy, dropping ``integrity``,
   ``crossorigin`` and ``referrerpolicy`` (the local files are other builds of the same
   versions, so the CDN's SRI hashes would not match);
3. verifies that no page or stylesheet still loads anything from another origin.

Idempotent: run it after every ``asv publish`` (publish recreates the html dir). Raises
``OfflineSiteError`` (the command: one line, exit 1) if an asset cannot be obtained, a CDN URL has
no local counterpart, or an external URL is left. Links the reader clicks (``<a href>``,
e.g. asv's logo linking to its GitHub page) load nothing and are left alone.

Command: ``python -m lossbench offline-site [--config asv.conf.json | --html-dir DIR]``
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from lossbench.errors import ToolError

VENDOR_PACKAGE = "asv==0.5.1"
VENDOR_MEMBER_PREFIX = "asv-0.5.1/asv/www/vendor/"
VENDOR_SUBDIR = "vendor"

# CDN URL pattern (matched against the URL's path) -> file in asv 0.5.1's asv/www/vendor/.
CDN_MAP: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/jquery-3\.3\.1\.min\.js$"), "jquery-3.3.1.min.js"),
    (re.compile(r"/flot/0\.8\.3/jquery\.flot\.min\.js$"), "jquery.flot-0.8.3.min.js"),
    (re.compile(r"/flot/0\.8\.3/jquery\.flot\.time\.min\.js$"), "jquery.flot-0.8.3.time.min.js"),
    (
        re.compile(r"/flot/0\.8\.3/jquery\.flot\.selection\.min\.js$"),
        "jquery.flot-0.8.3.selection.min.js",
    ),
    (
        re.compile(r"/flot/0\.8\.3/jquery\.flot\.categories\.min\.js$"),
        "jquery.flot-0.8.3.categories.min.js",
    ),
    (
        re.compile(r"/flot-orderbars@[^/]+/js/jquery\.flot\.orderBars\.js$"),
        "jquery.flot.orderBars.js",
    ),
    (re.compile(r"/stupidtable/[^/]+/stupidtable(\.min)?\.js$"), "stupidtable.js"),
    (re.compile(r"/blueimp-md5/[^/]+/js/md5(\.min)?\.js$"), "md5.js"),
    (re.compile(r"/bootstrap@3\.[^/]+/dist/js/bootstrap\.min\.js$"), "bootstrap-3.1.0.min.js"),
    (re.compile(r"/bootstrap@3\.[^/]+/dist/css/bootstrap\.min\.css$"), "bootstrap-3.1.0.min.css"),
]
VENDOR_FILES = sorted({name for _, name in CDN_MAP})

_EXTERNAL = re.compile(r"^\s*(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//", re.ASCII)
_TAG = re.compile(r"<(script|link)\b[^>]*>", re.IGNORECASE)
_ANY_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9-]*)\b[^>]*>")
_ATTR = re.compile(r"""\s([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_DROP_ATTRS = {"integrity", "crossorigin", "referrerpolicy"}
_LOADING_ATTRS = {"src", "href", "srcset", "data", "poster", "action", "formaction", "background"}
_CSS_EXTERNAL = re.compile(
    r"""(?:url\(\s*['"]?|@import\s+['"])\s*(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//""", re.IGNORECASE
)


class OfflineSiteError(ToolError):
    """A one-line reason the site could not be made self-contained."""


def fetch_vendor(cache_dir: Path) -> Path:
    """Returns a directory holding every file of ``VENDOR_FILES``, downloading once."""
    vendor = Path(cache_dir) / f"{VENDOR_PACKAGE.replace('==', '-')}-vendor"
    if all((vendor / name).is_file() for name in VENDOR_FILES):
        return vendor
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", VENDOR_PACKAGE,
            "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
            "--disable-pip-version-check", "-q", "-d", tmp,
        ]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise OfflineSiteError(
                f"cannot obtain the site's JavaScript/CSS assets: `pip download "
                f"{VENDOR_PACKAGE}` gave no answer in 600 s"
            ) from None
        sdists = list(Path(tmp).glob("asv-*.tar.gz"))
        if proc.returncode != 0 or not sdists:
            last = (proc.stderr.strip().splitlines() or ["no sdist saved"])[-1]
            raise OfflineSiteError(
                f"cannot obtain the site's JavaScript/CSS assets: `pip download {VENDOR_PACKAGE}"
                f" --no-deps --no-binary :all:` failed ({last})"
            )
        staged = Path(tmp) / "vendor"
        staged.mkdir()
        with tarfile.open(sdists[0]) as tar:
            for member in tar.getmembers():
                name = member.name[len(VENDOR_MEMBER_PREFIX) :]
                if (
                    member.name.startswith(VENDOR_MEMBER_PREFIX)
                    and member.isfile()
                    and "/" not in name
                ):
                    src = tar.extractfile(member)
                    assert src is not None
                    (staged / name).write_bytes(src.read())
        missing = [name for name in VENDOR_FILES if not (staged / name).is_file()]
        if missing:
            raise OfflineSiteError(
                f"{sdists[0].name} lacks {', '.join(missing)} under {VENDOR_MEMBER_PREFIX}"
            )
        if vendor.exists():
            shutil.rmtree(vendor)
        staged.rename(vendor)
    return vendor


def _local_name(url: str) -> str | None:
    path = re.sub(r"[?#].*$", "", url)
    for pattern, name in CDN_MAP:
        if pattern.search(path):
            return name
    return None


def _rewrite_tag(tag: str, page: Path, html_dir: Path, rewritten: list[str]) -> str:
    attrs = {m.group(1).lower(): m for m in _ATTR.finditer(tag)}
    key = "src" if "src" in attrs else "href" if "href" in attrs else None
    if key is None:
        return tag
    m = attrs[key]
    url = next(g for g in m.groups()[1:] if g is not None)
    if not _EXTERNAL.match(url):
        return tag
    name = _local_name(url)
    if name is None:
        raise OfflineSiteError(f"{page.name}: no local copy known for external asset {url}")
    local = os.path.relpath(html_dir / VENDOR_SUBDIR / name, page.parent).replace(os.sep, "/")
    rewritten.append(url)
    out = tag[: m.start()] + f' {key}="{local}"' + tag[m.end() :]
    # Drop SRI/CORS attributes: the local files are not byte-identical to the CDN's.
    return _ATTR.sub(lambda a: "" if a.group(1).lower() in _DROP_ATTRS else a.group(0), out)


def external_urls(html_dir: Path) -> list[str]:
    """``page: url`` for everything an html page or a stylesheet would fetch from elsewhere."""
    found = []
    for page in sorted(Path(html_dir).rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        for tag in _ANY_TAG.finditer(text):
            if tag.group(1).lower() == "a":
                continue  # a link the reader may click; it loads nothing
            for a in _ATTR.finditer(tag.group(0)):
                value = next(g for g in a.groups()[1:] if g is not None)
                if a.group(1).lower() in _LOADING_ATTRS and _EXTERNAL.match(value):
                    found.append(f"{page.relative_to(html_dir)}: {value}")
        for m in _CSS_EXTERNAL.finditer(text):
            found.append(f"{page.relative_to(html_dir)}: {text[m.start() : m.end() + 40]}")
    for css in sorted(Path(html_dir).rglob("*.css")):
        text = css.read_text(encoding="utf-8", errors="replace")
        for m in _CSS_EXTERNAL.finditer(text):
            found.append(f"{css.relative_to(html_dir)}: {text[m.start() : m.end() + 40]}")
    return found


def make_offline(html_dir: Path, cache_dir: Path) -> dict:
    """Vendors the assets into ``html_dir`` and rewrites its pages; returns a summary."""
    html_dir = Path(html_dir).resolve()
    if not (html_dir / "index.html").is_file():
        raise OfflineSiteError(f"{html_dir} has no index.html: run `asv publish` first")
    vendor = fetch_vendor(Path(cache_dir))
    dest = html_dir / VENDOR_SUBDIR
    dest.mkdir(exist_ok=True)
    for name in VENDOR_FILES:
        shutil.copyfile(vendor / name, dest / name)
    rewritten: list[str] = []
    pages = sorted(html_dir.rglob("*.html"))
    for page in pages:
        text = page.read_text(encoding="utf-8")
        new = _TAG.sub(lambda m, p=page: _rewrite_tag(m.group(0), p, html_dir, rewritten), text)
        if new != text:
            page.write_text(new, encoding="utf-8")
    left = external_urls(html_dir)
    if left:
        raise OfflineSiteError(f"external URL left after rewriting: {left[0]} ({len(left)} in all)")
    return {"html_dir": str(html_dir), "assets": len(VENDOR_FILES), "pages": len(pages),
            "rewritten": len(rewritten)}  # fmt: skip
