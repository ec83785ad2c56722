"""The one reader of ``asv.conf.json`` (asv's JSON with ``//`` comments).

Paths in the config are relative to the config file's folder; ``AsvConfig`` holds them
resolved.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from lossbench.errors import UsageError

DEFAULT = Path("asv.conf.json")


@dataclass(frozen=True)
class AsvConfig:
    path: Path
    results_dir: Path
    html_dir: Path
    raw: dict


def load(path=None) -> AsvConfig:
    """Reads ``path`` (default ``asv.conf.json`` in the current folder) once."""
    path = Path(DEFAULT if path is None else path)
    if not path.is_file():
        raise UsageError(f"{path} not found (pass --config, or run from the repository root)")
    from asv import util  # the bench extra; only the suite's commands need it

    try:
        raw = util.load_json(str(path), js_comments=True)
    except (OSError, ValueError, util.UserError) as exc:
        raise UsageError(f"{path}: cannot read the asv config ({exc})") from None
    base = path.resolve().parent
    return AsvConfig(
        path=path,
        results_dir=(base / raw.get("results_dir", "results")).resolve(),
        html_dir=(base / raw.get("html_dir", "html")).resolve(),
        raw=raw,
    )


def results_dir(path=None) -> Path:
    """The config's ``results_dir``, absolute."""
    return load(path).results_dir


PATH_KEYS = ("benchmark_dir", "env_dir", "results_dir", "html_dir")
"""The config's folders; with ``repo`` (unless a URL), relative to the config's folder."""


def absolute_paths(values: dict, base: Path) -> dict:
    """The path entries of ``values`` (``PATH_KEYS`` and a local ``repo``) made absolute
    from ``base``, the config's folder: for a config used from another folder."""
    out = {key: str((base / values[key]).resolve()) for key in PATH_KEYS if key in values}
    repo = values.get("repo")
    if repo is not None and not re.match(r"^[a-z+]+://|^git@", repo):
        out["repo"] = str((base / repo).resolve())
    return out


def asv_config(path, create: bool = True):
    """asv's own ``Config`` of ``path``, its folders absolute (asv resolves them from the
    current folder, which is not always the config's); ``create``: its results folder made
    too (for writing results)."""
    import os

    from asv import config as asv_config_module

    conf = asv_config_module.Config.load(str(path))
    base = Path(path).resolve().parent
    values = {key: getattr(conf, key) for key in (*PATH_KEYS, "repo")}
    for key, value in absolute_paths(values, base).items():
        setattr(conf, key, value)
    if create:
        os.makedirs(conf.results_dir, exist_ok=True)
    return conf


# Added to the longest timeout asv enforces itself, so that asv's own timeout fires first and
# a benchmark that hangs is a failed benchmark; only a hang of asv itself meets this limit.
IDLE_MARGIN = 60.0


def idle_limit(path=None) -> float:
    """Seconds an ``asv run`` of this config may print nothing: the longest timeout asv
    enforces itself (the config's ``install_timeout`` and ``default_benchmark_timeout``,
    asv's defaults 600 and 60; every benchmark's ``timeout`` and ``setup_cache_timeout`` in
    ``benchmarks.json`` where it exists) plus ``IDLE_MARGIN``."""
    conf = load(path)
    limits = [
        float(conf.raw.get("install_timeout", 600.0)),
        float(conf.raw.get("default_benchmark_timeout", 60.0)),
    ]
    listing = conf.results_dir / "benchmarks.json"
    try:
        benchmarks = json.loads(listing.read_text())
    except (OSError, ValueError):
        benchmarks = {}
    for info in benchmarks.values() if isinstance(benchmarks, dict) else ():
        if isinstance(info, dict):
            for key in ("timeout", "setup_cache_timeout"):
                if isinstance(info.get(key), (int, float)):
                    limits.append(float(info[key]))
    return max(limits) + IDLE_MARGIN
