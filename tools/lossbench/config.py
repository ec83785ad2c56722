"""The one reader of ``asv.conf.json`` (asv's JSON with ``//`` comments).

Paths in the config are relative to the config file's folder; ``AsvConfig`` holds them
resolved.
"""

from __future__ import annotations

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


def asv_config(path):
    """asv's own ``Config`` of ``path``, its folders absolute (asv resolves them from the
    current folder, which is not always the config's)."""
    import os

    from asv import config as asv_config_module

    conf = asv_config_module.Config.load(str(path))
    base = Path(path).resolve().parent
    for key in ("results_dir", "html_dir", "env_dir", "benchmark_dir"):
        setattr(conf, key, str(base / getattr(conf, key)))
    if not re.match(r"^[a-z+]+://|^git@", conf.repo):
        conf.repo = str(base / conf.repo)
    os.makedirs(conf.results_dir, exist_ok=True)
    return conf
