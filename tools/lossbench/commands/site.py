"""``site-summary`` and ``offline-site``: the two steps after ``asv publish`` (``make site``)."""

from __future__ import annotations

from pathlib import Path

from lossbench import config, offline_site, site_summary
from lossbench.errors import ToolError


def add_parser(sub):
    p = sub.add_parser(
        "site-summary",
        help="inject the fastest / most precise tables into the published asv front page",
        description=site_summary.__doc__.splitlines()[0],
    )
    p.add_argument("--config", type=Path, default=None, help="asv.conf.json (default)")
    p.add_argument("--results-dir", type=Path, help="asv results (default: the config's)")
    p.add_argument("--html-dir", type=Path, help="the published html dir (default: the config's)")
    p.add_argument("--impl-param", default="impl")
    p.add_argument("--text", action="store_true", help="also print the tables as text")
    p.set_defaults(func=run_summary)

    p = sub.add_parser(
        "offline-site",
        help="make the published asv site self-contained (local JS/CSS, no network)",
        description=offline_site.__doc__.splitlines()[0],
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--config", type=Path, default=None, help="asv.conf.json (default)")
    where.add_argument("--html-dir", type=Path, help="the published html dir")
    p.add_argument("--cache-dir", type=Path, default=Path(".asv/vendor-cache"))
    p.set_defaults(func=run_offline)


def run_summary(args) -> int:
    results_dir, html_dir = args.results_dir, args.html_dir
    if results_dir is None or html_dir is None:
        conf = config.load(args.config)
        results_dir, html_dir = results_dir or conf.results_dir, html_dir or conf.html_dir
    try:
        summary = site_summary.summarize(results_dir, args.impl_param)
        index = Path(html_dir) / "index.html"
        if not index.is_file():
            raise site_summary.SummaryError(f"{index} not found: run `asv publish` first")
        site_summary.inject(index, site_summary.render(summary))
    except (OSError, ValueError) as exc:
        raise ToolError(str(exc)) from None
    if args.text:
        print(site_summary.text_table(summary))
    print(
        f"site-summary: {len(summary.fastest)} speed and {len(summary.precise)} precision rows "
        f"over {len(summary.series)} series ({'; '.join(summary.series)}) -> {index}"
    )
    return 0


def run_offline(args) -> int:
    html_dir = args.html_dir if args.html_dir is not None else config.load(args.config).html_dir
    try:
        info = offline_site.make_offline(html_dir, args.cache_dir)
    except OSError as exc:
        raise ToolError(str(exc)) from None
    print(
        f"offline-site: {info['html_dir']} is self-contained: {info['assets']} assets in "
        f"{offline_site.VENDOR_SUBDIR}/, {info['rewritten']} CDN URLs rewritten in "
        f"{info['pages']} pages, no external URL left"
    )
    return 0
