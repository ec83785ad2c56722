"""asv's result files, read through asv's own API (``asv.results``).

One result file per (machine, commit, environment) lies in ``<results_dir>/<machine>/``;
``<results_dir>/benchmarks.json`` gives each benchmark's type, unit and version. A failed
combination reads ``None``, a skipped one (``NotImplementedError``) ``NaN``.
:func:`combinations` is the one walk over a result file's values; :func:`load_commit` turns
one commit's file into one :class:`Result` per benchmark and parameter combination.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from lossbench.errors import ToolError, UsageError
from lossbench.files import move_aside, remove_stale_temporaries


@dataclass(frozen=True)
class Result:
    """One benchmark at one parameter combination of one commit."""

    benchmark: str
    params: tuple[str, ...]
    value: float | None  # None: failed; NaN: skipped
    unit: str
    kind: str  # asv's type: time, track, peakmem, mem
    version: str | None
    samples: tuple[float, ...] | None = None

    @property
    def failed(self) -> bool:
        return self.value is None

    @property
    def skipped(self) -> bool:
        return self.value is not None and math.isnan(self.value)

    @property
    def label(self) -> str:
        """``name(p1, p2, ...)`` as asv prints it (and as ``-b`` regexes match it)."""
        return f"{self.benchmark}({', '.join(self.params)})" if self.params else self.benchmark


def ratio(before: float, after: float) -> float:
    """``after / before``; from a zero: 1 when both are zero, else infinity."""
    if before > 0:
        return after / before
    return 1.0 if after == before else math.inf


def load_benchmarks(results_dir) -> dict:
    """``benchmarks.json``: benchmark name -> its description (type, unit, params, version)."""
    from asv import util

    path = Path(results_dir) / "benchmarks.json"
    try:
        data = util.load_json(str(path))
    except (OSError, util.UserError) as exc:
        raise ToolError(f"no benchmark list {path} ({exc})") from None
    return {name: info for name, info in data.items() if name != "version"}


def combinations(res):
    """``(benchmark, params, value, samples)`` for every combination in an asv ``Results``."""
    for key in sorted(res.get_all_result_keys()):
        params = res.get_result_params(key)
        values = res.get_result_value(key, params)
        samples = res.get_result_samples(key, params) or itertools.repeat(None)
        for combo, value, sample in zip(itertools.product(*params), values, samples, strict=False):
            yield key, tuple(combo), value, sample


def commit_results(results_dir, machine: str, commit: str, env_name: str | None = None) -> list:
    """asv's ``Results`` of one full commit hash on ``machine`` (one per environment; only
    ``env_name``'s when given). A file asv cannot read is a ``ToolError`` naming it
    (:func:`quarantine` moves such files aside before a run)."""
    from asv import results as asv_results
    from asv import util

    if not (Path(results_dir) / machine).is_dir():
        return []
    try:
        found = list(
            asv_results.iter_results_for_machine_and_hash(str(results_dir), machine, commit)
        )
    except (util.UserError, ValueError, KeyError, TypeError) as exc:
        raise ToolError(
            f"a result file of {commit[:8]} in {results_dir} is damaged ({exc})"
        ) from None
    return [res for res in found if res.commit_hash == commit and env_name in (None, res.env_name)]


def load_commit(
    results_dir, machine: str, commit: str, need_units: bool = True, env_name: str | None = None
) -> dict:
    """``{(benchmark, params): Result}`` of one commit on one machine (in environment
    ``env_name`` when given); an error if there are none, or results of several
    environments.

    ``need_units=False``: without ``benchmarks.json`` (``asv find`` does not write it) the
    units and types are ``unknown`` instead of an error.
    """
    try:
        benchmarks = load_benchmarks(results_dir)
    except ToolError:
        if need_units:
            raise
        benchmarks = {}
    found = commit_results(results_dir, machine, commit, env_name)
    if not found:
        raise ToolError(f"no asv results for {commit[:8]} on machine {machine!r}")
    if len(found) > 1:
        names = ", ".join(sorted(res.env_name for res in found))
        raise ToolError(f"{commit[:8]}: results of several environments ({names})")
    res = found[0]
    out = {}
    for name, combo, value, sample in combinations(res):
        info = benchmarks.get(name, {})
        out[name, combo] = Result(
            benchmark=name,
            params=combo,
            value=None if value is None else float(value),
            unit=info.get("unit", "unknown"),
            kind=info.get("type", name.rsplit(".", 1)[-1].split("_", 1)[0]),
            version=res.benchmark_version.get(name),
            samples=None if sample is None else tuple(sample),
        )
    return out


def environment(conf_path: str):
    """asv's one ``Environment`` of the config; ``UsageError`` when its matrix makes several
    (the gate and the paired timings compare one environment's results)."""
    from asv import environment as asv_environment

    from lossbench.config import asv_config

    conf = asv_config(conf_path, create=False)
    envs = list(asv_environment.get_environments(conf, None, verbose=False))
    if len(envs) != 1:
        names = ", ".join(env.name for env in envs)
        raise UsageError(
            f"{conf_path} makes {len(envs)} asv environments ({names}): the gate compares "
            "one; use a config whose matrix makes one"
        )
    return envs[0]


def open_for_writing(conf_path: str, machine: str, commit: str):
    """``(Results, benchmarks)``: asv's ``Results`` of ``commit`` on ``machine`` in the
    config's (one) environment, with what it already holds, to add results to and
    :func:`save` as ``asv run`` would; ``benchmarks``: :func:`load_benchmarks`."""
    from asv import machine as asv_machine
    from asv import repo as asv_repo
    from asv import results as asv_results
    from asv import util

    from lossbench.config import asv_config

    conf = asv_config(conf_path)
    benchmarks = load_benchmarks(conf.results_dir)
    env = environment(conf_path)
    try:
        found = asv_machine.Machine.load(machine_name=machine, interactive=False)
    except (KeyError, util.UserError):
        raise ToolError(f"asv knows no machine {machine!r} here (~/.asv-machine.json)") from None
    params = dict(found.__dict__)
    params["python"] = env.python
    params.update(env.requirements)
    date = asv_repo.get_repo(conf).get_date(commit)
    res = asv_results.Results(
        params, env.requirements, commit, date, env.python, env.name, env.env_vars
    )
    try:
        res.load_data(conf.results_dir)
    except (util.UserError, ValueError, KeyError, TypeError) as exc:
        raise ToolError(
            f"the result file of {commit[:8]} in {conf.results_dir} is damaged ({exc})"
        ) from None
    return res, benchmarks


def save(res, results_dir) -> None:
    """``res.save(results_dir)``, the file replaced whole or not at all
    (:mod:`lossbench.asv_atomic`); ``ToolError`` naming it when it cannot be written."""
    from lossbench.asv_atomic import install

    install()
    res.save(str(results_dir))


def add(res, info: dict, values: list, samples: list, number: list | None = None) -> None:
    """Adds one benchmark's ``values`` and ``samples`` (one per parameter combination of
    ``info``, its entry of benchmarks.json) to asv's ``res``, as ``asv run`` would."""
    from asv.runner import BenchmarkResult

    number = [None] * len(values) if number is None else number
    result = BenchmarkResult(values, samples, number, errcode=0, stderr="", profile=None)
    res.add_result(info, result, record_samples=True)


def copy_commit(conf_path: str, machine: str, source: str, dest: str) -> int:
    """Copies ``source``'s results of every benchmark that is not a timing (``time_``:
    timings are measured, never copied) to ``dest`` where ``dest`` has none of that
    benchmark, for two commits with the same package (``lossbench.gate.package_key``).
    Only results measured with today's benchmark code (asv's ``version``). Returns the
    benchmarks copied."""
    from lossbench.config import results_dir

    folder = results_dir(conf_path)
    found = commit_results(folder, machine, source, environment(conf_path).name)
    if len(found) != 1:
        return 0
    src = found[0]
    res, benchmarks = open_for_writing(conf_path, machine, dest)
    have = set(res.get_all_result_keys())
    copied = 0
    for key in sorted(src.get_all_result_keys()):
        info = benchmarks.get(key)
        if info is None or info.get("type") == "time" or key in have:
            continue
        if src.benchmark_version.get(key) != info["version"]:
            continue
        params = src.get_result_params(key)
        values = list(src.get_result_value(key, params))
        samples = src.get_result_samples(key, params) or [None] * len(values)
        add(res, info, values, list(samples))
        copied += 1
    if copied:
        save(res, folder)
    return copied


# ---- damaged files and holes -------------------------------------------------------------


def _damage(path: Path) -> str | None:
    """Why asv cannot read ``path`` (a result file, ``benchmarks.json`` or
    ``machine.json``), or None."""
    from asv import results as asv_results
    from asv import util

    try:
        data = util.load_json(str(path))
    except (OSError, util.UserError, ValueError) as exc:
        return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    if not isinstance(data, dict):
        return "not a JSON object"
    if path.name in ("benchmarks.json", "machine.json"):
        return None
    try:
        asv_results.Results.load(str(path))
    except (util.UserError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"{type(exc).__name__}: {exc}"[:120]
    return None


def quarantine(results_dir, machine: str, commits=None) -> list[tuple[Path, Path, str]]:
    """Moves aside (:func:`lossbench.files.move_aside`, never deletes) every file asv would
    fail to read: ``benchmarks.json`` (asv writes it again), the machine's ``machine.json``
    and the machine's result files (of ``commits`` only, when given), so that the next run
    measures those commits again instead of failing on them; removes the temporary files a
    killed write left. Returns ``(file, moved to, why)`` for each file moved. Call it under
    ``lossbench.runner.checkout_lock``."""
    results_dir = Path(results_dir)
    folder = results_dir / machine
    files = [results_dir / "benchmarks.json", folder / "machine.json"]
    if folder.is_dir():
        prefixes = None if commits is None else tuple(c[:8] for c in commits)
        files += [
            p
            for p in sorted(folder.glob("*.json"))
            if p.name != "machine.json" and (prefixes is None or p.name.startswith(prefixes))
        ]
    moved = []
    for path in files:
        if path.is_file() and (why := _damage(path)) is not None:
            moved.append((path, move_aside(path), why))
    for where in (results_dir, folder):
        remove_stale_temporaries(where)
    return moved


def reopen_holes(results_dir, machine: str, commits, pattern: str) -> list[str]:
    """Removes from the stored results of ``commits`` every benchmark whose name matches
    ``pattern`` and that holds no value at all (every combination skipped or failed: asv
    stores NaN or null), so that ``asv run --skip-existing-successful`` measures it again.
    What it removes holds no measurement; what has one stays. Returns ``commit:benchmark``
    for each removed."""
    import re

    from asv import results as asv_results

    from lossbench.asv_atomic import install

    out = []
    folder = Path(results_dir) / machine
    for commit in commits:
        for path in sorted(folder.glob(f"{commit[:8]}-*.json")) if folder.is_dir() else []:
            res = asv_results.Results.load(str(path))
            if res.commit_hash != commit:
                continue
            holes = []
            for key in sorted(res.get_all_result_keys()):
                if re.match(pattern, key) is None:
                    continue
                values = res.get_result_value(key, res.get_result_params(key))
                if all(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
                    holes.append(key)
            if holes:
                for key in holes:
                    res.remove_result(key)
                install()
                res.save(str(results_dir))
                out += [f"{commit[:8]}:{key}" for key in holes]
    return out


def repair(results_dir, machine: str, commits=None, *, holes: str | None = None) -> list[str]:
    """Before a run that writes results: :func:`quarantine` (of ``commits``, or every file
    of the machine) or, with ``holes`` (a regex of benchmark names, those whose tool is
    here now), :func:`reopen_holes` of ``commits``. Returns a line for each thing done."""
    if holes is not None:
        return [
            f"{hole}: stored with no value (its tool was missing): measured again"
            for hole in reopen_holes(results_dir, machine, commits or [], holes)
        ]
    return [
        f"{path} could not be read ({why}): moved aside to {moved.name}"
        for path, moved, why in quarantine(results_dir, machine, commits)
    ]
