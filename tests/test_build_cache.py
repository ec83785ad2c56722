"""The C++ build cache (``softmaxloss._cpu_ext``): a build is redone exactly when its key changes.

The mechanism is exercised on a tiny extension (Python's C API only: it builds in a few
seconds, where the real source takes about a minute) in a cache folder of the test's own;
the real source's key is checked without building.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from softmaxloss import _cpu_ext

TINY = """\
#include <Python.h>
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
static PyObject* answer(PyObject*, PyObject*) {{ return PyLong_FromLong({answer}); }}
static PyMethodDef methods[] = {{{{"answer", answer, METH_NOARGS, nullptr}},
                                {{nullptr, nullptr, 0, nullptr}}}};
static PyModuleDef def = {{PyModuleDef_HEAD_INIT, "tiny", nullptr, -1, methods}};
PyMODINIT_FUNC CAT(PyInit_, TORCH_EXTENSION_NAME)() {{ return PyModule_Create(&def); }}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A cache folder holding one build of the tiny source (answer 42)."""
    if _cpu_ext.unavailable_reason() is not None:
        pytest.skip(_cpu_ext.status())
    cache = tmp_path_factory.mktemp("cache")
    source = tmp_path_factory.mktemp("src") / "cross_entropy_cpu.cpp"
    source.write_text(TINY.format(answer=42))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_cpu_ext, "SOURCE", source)
        mp.setenv(_cpu_ext.ENV_DIR, str(cache))
        library = Path(build().__file__)
    return cache, library


@pytest.fixture
def tiny(built, tmp_path, monkeypatch):
    """The tiny source in place of the real one (answer 42, already in the module's cache),
    and a list of the builds made."""
    cache, _ = built
    source = tmp_path / "src" / "cross_entropy_cpu.cpp"
    source.parent.mkdir()
    source.write_text(TINY.format(answer=42))
    monkeypatch.setattr(_cpu_ext, "SOURCE", source)
    monkeypatch.setenv(_cpu_ext.ENV_DIR, str(cache))
    builds = []
    real = _cpu_ext._build_into

    def counted(root, name, key, data):
        builds.append(name)
        return real(root, name, key, data)

    monkeypatch.setattr(_cpu_ext, "_build_into", counted)
    return source, builds


def build(isa="DEFAULT"):
    return _cpu_ext.build.__wrapped__(isa)  # past the per-process cache


def test_the_key_is_the_content_not_the_file(tmp_path):
    copy = tmp_path / "cross_entropy_cpu.cpp"
    copy.write_bytes(_cpu_ext.SOURCE.read_bytes())
    os.utime(copy, (1e9, 1e9))  # another path, another date: pip's reinstall does this
    key = _cpu_ext.build_key("AVX2", copy.read_bytes())
    assert _cpu_ext.name_of(key) == _cpu_ext.name("AVX2")
    changed = copy.read_bytes().replace(b"kWays = 4", b"kWays = 2")
    assert changed != copy.read_bytes()
    assert _cpu_ext.name_of(_cpu_ext.build_key("AVX2", changed)) != _cpu_ext.name("AVX2")
    assert _cpu_ext.name("AVX512") != _cpu_ext.name("AVX2")


def test_the_key_holds_flags_compiler_torch_and_python(monkeypatch):
    key = _cpu_ext.build_key("AVX2", b"x")
    assert {"cflags", "ldflags", "compiler", "torch", "torch_git", "python", "isa"} <= set(key)
    before = _cpu_ext.name_of(key)
    monkeypatch.setattr(_cpu_ext, "CFLAGS", ["-O2"])
    assert _cpu_ext.name_of(_cpu_ext.build_key("AVX2", b"x")) != before


def test_an_unchanged_source_is_not_rebuilt(tiny):
    source, builds = tiny
    first = build()  # built by the module's fixture from another path: loaded, not built
    library = Path(first.__file__)
    stamp = (library.stat().st_ino, library.stat().st_mtime_ns)
    source.write_text(TINY.format(answer=42))  # the same bytes, a new file date
    os.utime(source, None)
    again = build()
    assert (first.answer(), again.answer()) == (42, 42)
    assert builds == []
    assert (library.stat().st_ino, library.stat().st_mtime_ns) == stamp
    assert again.__file__ == first.__file__


def test_a_changed_source_is_rebuilt_beside_the_old_build(tiny):
    source, builds = tiny
    old = build()
    source.write_text(TINY.format(answer=43))
    new = build()
    assert (old.answer(), new.answer()) == (42, 43)
    assert len(builds) == 1 and Path(new.__file__).parent.name == builds[0]
    assert Path(old.__file__).is_file() and Path(new.__file__).is_file()  # side by side


def test_parallel_builders_build_once(tiny, tmp_path, monkeypatch):
    source, _ = tiny
    source.write_text(TINY.format(answer=41))  # a key no one has built
    monkeypatch.setenv(_cpu_ext.ENV_DIR, str(tmp_path / "fresh"))
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from softmaxloss import _cpu_ext
        _cpu_ext.SOURCE = Path({str(source)!r})
        real = _cpu_ext._build_into
        def counted(*args):
            print("built", flush=True)
            return real(*args)
        _cpu_ext._build_into = counted
        print(_cpu_ext.build("DEFAULT").answer())
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=600)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert [out[-1] for out in outs] == ["41"] * 3
    assert sum(out.count("built") for out in outs) == 1, outs


def test_a_failed_build_publishes_nothing(tiny, tmp_path, monkeypatch):
    source, _ = tiny
    monkeypatch.setenv(_cpu_ext.ENV_DIR, str(tmp_path / "fresh"))
    source.write_text("this is not C++\n")
    with pytest.raises(RuntimeError, match="Error building extension"):
        build()
    cache = _cpu_ext.cache_dir()
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_clear_removes_every_build(built, tmp_path, monkeypatch, capsys):
    from softmaxloss.__main__ import main

    shutil.copytree(built[0], tmp_path / "cache")
    builds = sum(p.is_dir() for p in (tmp_path / "cache").iterdir())
    (tmp_path / "cache" / ".softmaxloss_cpu_default_0-left-by-a-killed-build").mkdir()
    monkeypatch.setenv(_cpu_ext.ENV_DIR, str(tmp_path / "cache"))
    assert main(["build-ext", "--clear"]) == 0
    assert capsys.readouterr().out == (
        f"build cache {tmp_path / 'cache'}: {builds} builds removed\n"
    )
    assert list((tmp_path / "cache").iterdir()) == []


def test_the_shared_default_folder_must_be_private(tmp_path, monkeypatch):
    monkeypatch.delenv(_cpu_ext.ENV_DIR, raising=False)
    monkeypatch.setattr(_cpu_ext.tempfile, "gettempdir", lambda: str(tmp_path))
    folder = _cpu_ext.cache_dir()
    assert folder.parent == tmp_path
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)  # another user could plant a library here
    with pytest.raises(PermissionError, match="not private to this user"):
        build()
