"""Git for the tests that build scratch repositories: one helper, one committer identity."""

from __future__ import annotations

import os
import subprocess

GIT_ID = {
    "GIT_AUTHOR_NAME": "tests",
    "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "tests",
    "GIT_COMMITTER_EMAIL": "tests@example.invalid",
}


def git(repo, *args: str) -> str:
    """``git ARGS`` in ``repo`` as the tests' committer; its output, stripped."""
    env = {**os.environ, **GIT_ID}
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
