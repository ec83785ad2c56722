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

from lossbench.errors import ToolError


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


def commit_results(results_dir, machine: str, commit: str) -> list:
    """asv's ``Results`` of one full commit hash on ``machine`` (one per environment)."""
    from asv import results as asv_results

    if not (Path(results_dir) / machine).is_dir():
        return []
    found = asv_results.iter_results_for_machine_and_hash(str(results_dir), machine, commit)
    return [res for res in found if res.commit_hash == commit]


def load_commit(results_dir, machine: str, commit: str, need_units: bool = True) -> dict:
    """``{(benchmark, params): Result}`` of one commit on one machine; an error if there are
    none, or results of several environments.

    ``need_units=False``: without ``benchmarks.json`` (``asv find`` does not write it) the
    units and types are ``unknown`` instead of an error.
    """
    try:
        benchmarks = load_benchmarks(results_dir)
    except ToolError:
        if need_units:
            raise
        benchmarks = {}
    found = commit_results(results_dir, machine, commit)
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


def open_for_writing(conf_path: str, machine: str, commit: str):
    """``(Results, benchmarks)``: asv's ``Results`` of ``commit`` on ``machine`` in the
    config's (one) environment, with what it already holds, to add results to and ``save``
    as ``asv run`` would; ``benchmarks``: :func:`load_benchmarks`."""
    from asv import environment, util
    from asv import machine as asv_machine
    from asv import repo as asv_repo
    from asv import results as asv_results

    from lossbench.config import asv_config

    conf = asv_config(conf_path)
    benchmarks = load_benchmarks(conf.results_dir)
    envs = list(environment.get_environments(conf, None, verbose=False))
    if len(envs) != 1:
        raise ToolError(f"{conf_path}: writing results needs one asv environment, not {len(envs)}")
    env = envs[0]
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
    res.load_data(conf.results_dir)
    return res, benchmarks


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
    found = commit_results(folder, machine, source)
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
        res.save(str(folder))
    return copied
