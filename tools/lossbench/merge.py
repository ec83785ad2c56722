"""The checked merge of shard results into the stored history (an asv ``results_dir``).

asv itself never complains about results it cannot use: ``asv publish`` silently leaves out
a result whose benchmark version differs from ``benchmarks.json``, a graph series is keyed on
every field of ``machine.json`` (two runners of one class whose auto-detected ``cpu`` differs
draw two lines), and two shards that measured the same commit in the same environment write
the same file, the last copy winning. :func:`plan_merge` checks all of that *before* anything
is written and raises :class:`MergeError` with one line naming the file and the mismatch:

1. every shard ran the same benchmark code: identical ``benchmarks.json`` names and versions;
   the stored history's versions are the same too, unless a change is accepted explicitly
   (``accept_new_versions``: asv then graphs only the new version of a changed benchmark);
2. every result row's version equals ``benchmarks.json``'s, and every benchmark it names is
   there (else asv drops it);
3. one machine name, one identity: every ``machine.json`` of that name (shards and store) is
   identical field for field, and every result file's ``params`` repeat those fields;
4. no two shards wrote the same file with different content;
5. a file that is already stored may only be replaced by one that keeps every stored result
   asv still graphs, unchanged (a shard that started from the stored history and added to it).

:func:`apply_merge` then writes new and updated files (each through a temporary file and an
atomic rename), the machine files and, last, ``benchmarks.json``. Nothing is deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lossbench.errors import UsageError
from lossbench.files import write_atomic

BENCHMARKS = "benchmarks.json"
MACHINE = "machine.json"
RESULT_KEYS = ("commit_hash", "env_name", "params", "result_columns", "results")


class MergeError(UsageError):
    """One line: the file and the mismatch that stopped the merge (exit status 2: nothing
    was written)."""


@dataclass
class MergePlan:
    store: Path
    benchmarks: dict
    write_benchmarks: bool
    machines: dict[str, Path] = field(default_factory=dict)  # machine.json to add to the store
    new: dict[str, Path] = field(default_factory=dict)  # rel -> source file
    update: dict[str, Path] = field(default_factory=dict)
    same: list[str] = field(default_factory=list)
    changed_versions: list[str] = field(default_factory=list)
    benchmarks_bytes: bytes | None = None  # the shards' file as written, when kept unchanged

    def summary(self) -> str:
        text = (
            f"{len(self.new)} new result files, {len(self.update)} updated, "
            f"{len(self.same)} already stored"
        )
        if self.changed_versions:
            text += f"; new versions of {len(self.changed_versions)} benchmarks accepted"
        return text


def _short(value) -> str:
    text = str(value)
    return repr(text[:12] + "..." if len(text) > 15 else text)


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise MergeError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    except ValueError as exc:
        raise MergeError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MergeError(f"{path}: not a JSON object")
    return data


def _versions(path: Path) -> dict[str, str]:
    data = _load(path)
    data.pop("version", None)
    try:
        return {name: bench["version"] for name, bench in data.items()}
    except (TypeError, KeyError):
        raise MergeError(f"{path}: not an asv benchmarks.json (no version per benchmark)") from None


def _shard_files(root: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """(result files, machine files) of one results folder, by relative path."""
    results, machines = {}, {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        parts = rel.split("/")
        if rel == BENCHMARKS:
            continue
        if len(parts) != 2 or not rel.endswith(".json"):
            raise MergeError(f"{path}: unexpected file in an asv results folder")
        if parts[1] == MACHINE:
            machines[parts[0]] = path
        else:
            results[rel] = path
    return results, machines


def _rows(path: Path, data: dict) -> dict[str, dict]:
    """benchmark name -> {column: value} of one result file."""
    if not isinstance(data.get("results"), dict):
        raise MergeError(f"{path}: not an asv result file (no results object)")
    columns = data.get("result_columns")
    if not isinstance(columns, list) or "version" not in columns:
        raise MergeError(f"{path}: result_columns has no 'version' column")
    rows = {}
    for name, row in data["results"].items():
        if not isinstance(row, list):
            raise MergeError(f"{path}: result row of {name} is not a list")
        rows[name] = dict(zip(columns, row, strict=False))
    return rows


def _same(a, b) -> bool:
    # NaN != NaN: compare the JSON text (asv writes NaN as NaN).
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _check_result(path: Path, rel: str, data: dict, machine: dict, versions: dict) -> None:
    try:
        _check_result_fields(path, rel, data, machine, versions)
    except (TypeError, AttributeError, KeyError, ValueError) as exc:  # a malformed file
        raise MergeError(f"{path}: not an asv result file ({type(exc).__name__}: {exc})") from None


def _check_result_fields(path: Path, rel: str, data: dict, machine: dict, versions: dict):
    from asv.results import get_filename

    missing = [k for k in RESULT_KEYS if k not in data]
    if missing:
        raise MergeError(f"{path}: not an asv result file (no {', '.join(missing)})")
    name = rel.split("/")[0]
    params = data["params"]
    for key, value in machine.items():
        if key == "version":
            continue
        if str(params.get(key)) != str(value):
            raise MergeError(
                f"{path}: params {key} {params.get(key)!r} != {value!r} in "
                f"{name}/{MACHINE} (asv would draw it as another series)"
            )
    expected = get_filename(name, data["commit_hash"], data["env_name"])
    if Path(expected).as_posix() != rel:
        raise MergeError(f"{path}: commit and environment inside name {expected}, not {rel}")
    for bench, row in _rows(path, data).items():
        if bench not in versions:
            raise MergeError(
                f"{path}: benchmark {bench} is not in {BENCHMARKS} (asv would drop it)"
            )
        if row["version"] != versions[bench]:
            raise MergeError(
                f"{path}: {bench} version {_short(row['version'])} != "
                f"{_short(versions[bench])} in {BENCHMARKS} (asv would drop it)"
            )


def plan_merge(store: Path, shards: list[Path], *, accept_new_versions: bool = False) -> MergePlan:
    """Checks everything; raises MergeError (one line) at the first mismatch."""
    store = Path(store)
    shards = [Path(s) for s in shards]
    if not shards:
        raise MergeError("no shard folders given")
    seen: set[Path] = set()
    for shard in shards:
        if not shard.is_dir():
            raise MergeError(f"{shard}: no such folder")
        if shard.resolve() in seen:
            raise MergeError(f"{shard}: given twice")
        if shard.resolve() == store.resolve():
            raise MergeError(f"{shard}: is the store itself")
        seen.add(shard.resolve())
        if not (shard / BENCHMARKS).is_file():
            raise MergeError(f"{shard}: no {BENCHMARKS} (not an asv results folder)")

    # 1. one benchmark code across shards
    ref = shards[0] / BENCHMARKS
    versions = _versions(ref)
    for shard in shards[1:]:
        other = _versions(shard / BENCHMARKS)
        for bench in sorted(set(versions) | set(other)):
            if bench not in other or bench not in versions:
                where = shard / BENCHMARKS if bench not in other else ref
                raise MergeError(
                    f"{where}: lacks {bench} (the shards ran different benchmark code)"
                )
            if other[bench] != versions[bench]:
                raise MergeError(
                    f"{shard / BENCHMARKS}: {bench} version {_short(other[bench])} != "
                    f"{_short(versions[bench])} in {ref} (the shards ran different benchmark code)"
                )
    merged = _load(ref)
    ref_text = ref.read_bytes()
    stored_path = store / BENCHMARKS
    changed: list[str] = []
    write_benchmarks = True
    if stored_path.is_file():
        stored_versions = _versions(stored_path)
        changed = sorted(
            b for b in versions if b in stored_versions and stored_versions[b] != versions[b]
        )
        if changed and not accept_new_versions:
            b = changed[0]
            raise MergeError(
                f"{stored_path}: {b} version {_short(stored_versions[b])} != "
                f"{_short(versions[b])} in {ref}: asv would stop graphing the stored results"
                f" ({len(changed)} benchmarks differ; accept new versions explicitly if the"
                " benchmark code changed on purpose)"
            )
        stored = _load(stored_path)
        for bench, meta in stored.items():
            merged.setdefault(bench, meta)
        write_benchmarks = not _same(stored, merged)
    final_versions = {b: m["version"] for b, m in merged.items() if b != "version"}

    plan = MergePlan(store, merged, write_benchmarks, changed_versions=changed)
    plan.benchmarks_bytes = ref_text if _same(merged, _load(ref)) else None

    # 3. one identity per machine name (the store's first, then the shards in order)
    identity: dict[str, tuple[dict, Path]] = {}
    if store.is_dir():
        for path in sorted(store.glob(f"*/{MACHINE}")):
            identity[path.parent.name] = (_load(path), path)
    sources: dict[str, list[tuple[Path, Path]]] = {}
    for shard in shards:
        results, machines = _shard_files(shard)
        for name, path in machines.items():
            data = _load(path)
            if data.get("machine") != name:
                raise MergeError(f"{path}: machine {_short(data.get('machine'))} in folder {name}")
            if name not in identity:
                identity[name] = (data, path)
                plan.machines[name] = path
                continue
            known, known_path = identity[name]
            for key in sorted(set(known) | set(data)):
                if str(known.get(key)) != str(data.get(key)):
                    raise MergeError(
                        f"{path}: {key} {data.get(key)!r} != {known.get(key)!r} in "
                        f"{known_path} (asv keys a series on every machine field; the graph "
                        "would split)"
                    )
        for rel, path in results.items():
            name = rel.split("/")[0]
            if name not in machines:
                raise MergeError(f"{path}: no {MACHINE} beside it in {shard / name}")
            # 2. versions, and the file's own machine fields
            _check_result(path, rel, _load(path), identity[name][0], final_versions)
            sources.setdefault(rel, []).append((shard, path))

    # 4. no file from two shards with different content; 5. stored files kept
    for rel, copies in sorted(sources.items()):
        (first_shard, first), *others = copies
        for shard, path in others:
            if path.read_bytes() != first.read_bytes():
                raise MergeError(
                    f"{rel}: written by {first_shard} and {shard} with different content (two "
                    "shards measured the same commit and environment; one would overwrite the "
                    "other)"
                )
        target = store / rel
        if not target.is_file():
            plan.new[rel] = first
            continue
        if target.read_bytes() == first.read_bytes():
            plan.same.append(rel)
            continue
        old = _load(target)
        if any(k not in old for k in RESULT_KEYS):
            raise MergeError(f"{target}: not an asv result file; it would be replaced by {first}")
        new_rows = _rows(first, _load(first))
        for bench, row in _rows(target, old).items():
            if final_versions.get(bench) != row["version"]:
                continue  # asv no longer graphs it; the update may replace it
            if bench not in new_rows or not _same(new_rows[bench], row):
                raise MergeError(
                    f"{target}: stored result {bench} would be replaced by {first} (that shard "
                    "did not start from the stored history; remove the stored file to re-measure)"
                )
        plan.update[rel] = first
    return plan


def apply_merge(plan: MergePlan) -> None:
    for rel, src in {**plan.new, **plan.update}.items():
        write_atomic(plan.store / rel, src.read_bytes())
    for name, src in plan.machines.items():
        if not (plan.store / name / MACHINE).is_file():
            write_atomic(plan.store / name / MACHINE, src.read_bytes())
    if plan.write_benchmarks:
        text = plan.benchmarks_bytes
        if text is None:
            text = (json.dumps(plan.benchmarks, indent=4, sort_keys=True) + "\n").encode()
        write_atomic(plan.store / BENCHMARKS, text)


def merge(store: Path, shards: list[Path], *, accept_new_versions: bool = False) -> MergePlan:
    plan = plan_merge(store, shards, accept_new_versions=accept_new_versions)
    apply_merge(plan)
    return plan
