"""The backfill workflow's wiring, read from its YAML (it is not run on GitHub from here).

What the workflow depends on must agree with the commands it calls: the plan's outputs, the
machine kinds' fixed identities, the merge of every shard artifact.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "backfill.yml"
KINDS = ROOT / ".github" / "backfill-kinds.json"


@pytest.fixture(scope="module")
def wf():
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def steps_text(job) -> str:
    return "\n".join(str(s.get("run", "")) + json.dumps(s.get("with", {})) for s in job["steps"])


def test_started_by_hand_with_range_shards_torch(wf):
    inputs = wf["on"]["workflow_dispatch"]["inputs"]
    assert {"range", "shards", "torch"} <= set(inputs)


def test_plan_outputs_feed_the_matrix(wf):
    plan, shard = wf["jobs"]["plan"], wf["jobs"]["shard"]
    assert set(plan["outputs"]) == {"shards", "torch", "kinds"}
    assert "backfill-plan" in steps_text(plan) and "--github-output" in steps_text(plan)
    matrix = shard["strategy"]["matrix"]
    for key, output in (("shard", "shards"), ("torch", "torch"), ("kind", "kinds")):
        assert matrix[key] == f"${{{{ fromJSON(needs.plan.outputs.{output}) }}}}"
    assert shard["strategy"]["fail-fast"] is False
    text = steps_text(shard)
    assert "history --commits-file" in text and "--export" in text
    uploads = [s for s in shard["steps"] if str(s.get("uses", "")).startswith("actions/upload")]
    assert any(u["with"]["path"] == "shards/" for u in uploads)


def test_machine_kinds_fix_the_identity_of_cpu_runners():
    kinds = {k["name"]: k for k in json.loads(KINDS.read_text())}
    cpu, gpu = kinds["cpu"], kinds["gpu"]
    flags = cpu["identity"][0::2]
    # every field asv keys a series on, except the name given with --machine
    assert sorted(flags) == ["--arch", "--cpu", "--num_cpu", "--os", "--ram"]
    assert all(isinstance(v, str) and v for v in cpu["identity"][1::2])
    assert cpu["machine"] != gpu["machine"]
    assert "self-hosted" in gpu["runner"] and gpu["launch"] == "spawn"
    assert gpu["bench"] == "'cuda'"


def test_publish_merges_every_shard_with_the_checked_merge(wf):
    publish = wf["jobs"]["publish"]
    assert set(publish["needs"]) == {"plan", "shard"}
    download = next(
        s for s in publish["steps"] if str(s.get("uses", "")).startswith("actions/download")
    )
    assert download["with"]["pattern"] == "shard-*" and download["with"]["merge-multiple"]
    text = steps_text(publish)
    merge_at = text.index("merge-results --into .asv/results")
    assert merge_at < text.index("make site")
    assert any(
        str(s.get("uses", "")).startswith("actions/upload-pages-artifact") for s in publish["steps"]
    )
    assert any(
        str(s.get("uses", "")).startswith("actions/deploy-pages")
        for s in wf["jobs"]["deploy"]["steps"]
    )
