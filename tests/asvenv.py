"""One asv environment of the suite's config, built once and lent to the slow tests.

Every slow test that runs asv on a scratch repository would otherwise build the same
virtualenv (torch 2.13.0 and the config's other requirements: about two minutes here, most
of what several of them cost). :func:`seed` hard-links a template of it into the
repository's ``.asv/env`` instead (a second; no disk): asv finds an environment whose
requirements match and only installs the commit it measures, as in a clone that ran asv
before. The template is built once per machine and config (``asv setup`` in a scratch copy
of this checkout), under a file lock, so that parallel test workers build it once; it
lives in ``SOFTMAXLOSS_TEST_ASV_ENVS`` or the system's temporary folder.

Hard links are safe here: pip and Python replace the files they change (a new file, then a
rename), never write into an existing one, so a test's installs never reach the template.
What asv keeps per repository (the project's clone, built wheels, what is installed) is
not part of the template. ``tests/test_gate_power.py::test_make_gate_on_a_fresh_clone``
still builds its environment from nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what asv keeps per repository inside an environment: never shared
PER_REPOSITORY = ("project", "asv-build-cache", "asv-install-status.json")


def _key(config: Path) -> str:
    return hashlib.sha256(config.read_bytes() + sys.version.encode()).hexdigest()[:16]


def copy_checkout(dest: Path) -> None:
    """This checkout's tracked and unignored files (the code under test) into ``dest``."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


def template(config: Path = ROOT / "asv.conf.json") -> Path:
    """The folder holding the config's environment(s), built if missing."""
    base = Path(
        os.environ.get("SOFTMAXLOSS_TEST_ASV_ENVS")
        or Path(tempfile.gettempdir()) / f"softmaxloss-test-asv-envs-{os.getuid()}"
    )
    base.mkdir(parents=True, exist_ok=True)
    out = base / _key(config)
    with open(base / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; the others wait, then use it
        if (out / "done").is_file():
            return out
        shutil.rmtree(out, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(dir=base))
        try:
            repo = scratch / "repo"
            repo.mkdir()
            copy_checkout(repo)
            (scratch / "home").mkdir()
            env = {**os.environ, "HOME": str(scratch / "home")}
            subprocess.run(
                [sys.executable, "-m", "asv", "machine", "--yes"],
                cwd=repo, env=env, check=True, capture_output=True,
            )  # fmt: skip
            # asv setup exits 1 even when it built the environments: judged by what it made
            subprocess.run(
                [sys.executable, "-m", "asv", "setup", "--config", str(repo / config.name)],
                cwd=repo, env=env, capture_output=True, timeout=1800,
            )  # fmt: skip
            envs = repo / ".asv" / "env"
            built = [d for d in envs.iterdir() if (d / "asv-env-info.json").is_file()]
            assert built, f"asv setup built no environment in {envs}"
            os.rename(envs, out)
            (out / "done").write_text("")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return out


def seed(repo: Path) -> None:
    """``repo/.asv/env`` holds the suite's environment (hard links to the template)."""
    dest = Path(repo) / ".asv" / "env"
    dest.mkdir(parents=True, exist_ok=True)
    for env in template().iterdir():
        if env.is_dir() and not (dest / env.name).exists():
            shutil.copytree(
                env,
                dest / env.name,
                symlinks=True,
                copy_function=os.link,
                ignore=lambda folder, names, top=env: (
                    [n for n in names if n in PER_REPOSITORY] if Path(folder) == top else []
                ),
            )
