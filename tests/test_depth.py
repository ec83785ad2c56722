"""The depth experiment: CIFAR-10 loader, exact backward, the `depth` command and its plot."""

import copy
import csv
import math
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import softmaxloss
from lossbench import depth, reference
from lossbench.commands import main as cli_main
from lossbench.commands.depth import parse_depths
from lossbench.depth import data

# ---------------------------------------------------------------------------------------------
# A tiny CIFAR-10 directory in the official format


def _write_cifar(root, rows=4, test_rows=3, seed=0):
    """Writes cifar-10-batches-py/ under ``root``; returns (folder, train_x, train_y)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    xs, ys = [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, size=(rows, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, size=rows)]
        xs.append(x)
        ys += y
        batch = {b"batch_label": b"training batch", b"labels": y, b"data": x}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    test = {
        b"labels": [int(v) for v in rng.integers(0, 10, size=test_rows)],
        b"data": rng.integers(0, 256, size=(test_rows, 3072), dtype=np.uint8),
    }
    (folder / "test_batch").write_bytes(pickle.dumps(test))
    names = b"airplane automobile bird cat deer dog frog horse ship truck".split()
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    return folder, np.concatenate(xs), np.array(ys), test


@pytest.mark.parametrize("form", ["folder", "parent"])
def test_cifar10_loader_reads_both_folder_forms(tmp_path, form):
    folder, train_x, train_y, test = _write_cifar(tmp_path)
    ds = data.load("cifar10", folder if form == "folder" else tmp_path)
    assert ds.classes == 10 and ds.features == 3072
    np.testing.assert_array_equal(ds.train_x, train_x)
    np.testing.assert_array_equal(ds.train_y, train_y)
    np.testing.assert_array_equal(ds.test_x, test[b"data"])
    np.testing.assert_array_equal(ds.test_y, test[b"labels"])
    assert ds.label_names[0] == "airplane" and ds.label_names[9] == "truck"
    # standardisation: per-feature mean 0, std 1 over the training split (checked by numpy)
    x, y = ds.batch("train", np.arange(len(train_y)))
    ref = train_x.astype(np.float64)
    np.testing.assert_allclose(x, (ref - ref.mean(0)) / ref.std(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(y, train_y)


def _expect_data_error(path, *fragments):
    with pytest.raises(data.DataError) as info:
        data.load("cifar10", path)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_cifar10_missing_and_malformed_directories(tmp_path):
    missing = tmp_path / "nope"
    _expect_data_error(missing, str(missing), "cifar-10-batches-py")
    empty = tmp_path / "empty"
    empty.mkdir()
    _expect_data_error(empty, str(empty), "batches.meta", "data_batch_1")

    folder, *_ = _write_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    _expect_data_error(tmp_path, "data_batch_3", "missing")

    (folder / "data_batch_3").write_bytes(b"this is not a pickle")
    _expect_data_error(folder, "data_batch_3", "pickle")

    bad = {b"labels": [0, 1], b"data": np.zeros((2, 100), dtype=np.uint8)}
    (folder / "data_batch_3").write_bytes(pickle.dumps(bad))
    _expect_data_error(folder, "data_batch_3", "3072")

    bad = {b"labels": [0, 11], b"data": np.zeros((2, 3072), dtype=np.uint8)}
    (folder / "data_batch_3").write_bytes(pickle.dumps(bad))
    _expect_data_error(folder, "data_batch_3", "labels")

    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}))
    _expect_data_error(folder, "batches.meta", "label_names")


def test_cli_bad_data_dir_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "no-such-dir"
    proc = subprocess.run(
        [sys.executable, "-m", "lossbench", "depth", "--dataset", "cifar10"]
        + ["--data-dir", str(missing), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and str(missing) in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "bad", ["0", "-1", "1.5", "a", "", "1,,2", "2,2", " , "], ids=lambda s: repr(s)
)
def test_invalid_depths_refused(tmp_path, capsys, bad):
    with pytest.raises(ValueError, match="--depths"):
        parse_depths(bad)
    rc = cli_main(["depth", "--dataset", "synthetic", "--depths", bad, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "--depths" in err and err.count("\n") == 1


def test_parse_depths_accepts_positive_integers():
    assert parse_depths("1,2,4,8") == [1, 2, 4, 8]
    assert parse_depths(" 3 ") == [3]


@pytest.mark.parametrize(
    "args",
    [
        ["--dtype", "float8"],
        ["--logit-scale", "0"],
        ["--logit-scale", "nan"],
        ["--batch", "0"],
        ["--steps", "-1"],
        ["--data-dir", "."],  # only with cifar10
    ],
)
def test_other_bad_arguments_refused(tmp_path, capsys, args):
    rc = cli_main(["depth", "--dataset", "synthetic", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and args[0] in err


# ---------------------------------------------------------------------------------------------
# The exact backward against an independent computation


def test_exact_loss_grad_matches_float64_autograd():
    """(Was ``..._matches_the_package_reference``: the exact backward now runs the
    reference's math, so it is checked against F.cross_entropy in float64 instead.)"""
    gen = torch.Generator().manual_seed(1)
    z = (torch.randn(7, 5, generator=gen, dtype=torch.float64) * 30).requires_grad_()
    t = torch.randint(0, 5, (7,), generator=gen)
    F.cross_entropy(z, t).backward()
    ours = depth.exact_loss_grad(z.detach().numpy().astype(np.longdouble), t.numpy())
    np.testing.assert_allclose(ours.astype(float), z.grad.numpy(), rtol=0, atol=1e-16)


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_exact_gradients_match_float64_autograd(scale):
    model = depth.make_mlp(12, 16, 3, 4, seed=2)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(20, 12, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (20,), generator=gen)
    logits = model(x) * scale
    logits.retain_grad()
    F.cross_entropy(logits, y).backward()
    dlogits, layers = depth.exact_gradients(model, x, y.numpy(), scale)
    np.testing.assert_allclose(dlogits.astype(float), logits.grad.numpy(), rtol=0, atol=1e-15)
    lins = depth.linears(model)
    assert len(layers) == len(lins) == 4
    for flat, lin in zip(layers, lins, strict=True):
        ref = torch.cat([lin.weight.grad.flatten(), lin.bias.grad]).numpy()
        np.testing.assert_allclose(flat.astype(float), ref, rtol=0, atol=1e-13 * abs(ref).max())


# ---------------------------------------------------------------------------------------------
# The command


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _num(s):
    return float(s) if s != "" else None


def _run_depth(tmp_path, *extra, dataset="digits", depths="1,3"):
    out = tmp_path / "out"
    argv = ["depth", "--dataset", dataset, "--depths", depths, "--out", str(out)]
    argv += ["--steps", "20", "--batch", "64", "--width", "16", "--seed", "5", *extra]
    assert cli_main(argv) == 0
    return out, _read_csv(out / "depth.csv")


def test_cli_writes_csv_rows_and_columns(tmp_path, capsys):
    out, rows = _run_depth(tmp_path)
    _assert_real_png(out / "depth.png")
    stdout = capsys.readouterr().out
    assert "float32" in stdout and "float64" in stdout and "depth.csv" in stdout
    names = list(softmaxloss.IMPLEMENTATIONS)
    cols = list(rows[0])
    for c in ("depth", "layer", "back", "manual_vs_autograd_rel", "manual_vs_autograd_eps"):
        assert c in cols
    for name in names:
        assert f"{name}_vs_exact_rel" in cols and f"{name}_vs_exact_eps" in cols
    # one row per dtype, depth and layer: logits + d hidden + output
    assert len(rows) == 2 * ((1 + 2) + (3 + 2))
    for dtype in ("float32", "float64"):
        sel = [r for r in rows if r["dtype"] == dtype and r["depth"] == "3"]
        assert sorted(r["layer"] for r in sel) == ["1", "2", "3", "4", "logits"]
        assert {r["back"]: r["layer"] for r in sel} == {
            "0": "logits", "1": "4", "2": "3", "3": "2", "4": "1"
        }  # fmt: skip
    for r in rows:  # eps column = rel column / eps of the dtype
        eps = torch.finfo(getattr(torch, r["dtype"])).eps
        rel, in_eps = _num(r["manual_vs_exact_rel"]), _num(r["manual_vs_exact_eps"])
        assert math.isclose(in_eps, rel / eps, rel_tol=1e-12)


def _independent_layer_errors(dtype, fn, seed=5, depth_=3):
    """Per-layer normwise errors of ``fn`` in ``dtype`` against float64 F.cross_entropy."""
    ds = data.load("digits", seed=seed)
    model = depth.make_mlp(ds.features, 16, depth_, ds.classes, seed)
    depth.train(model, ds, 20, 64, 1e-3, seed)
    x64, y = ds.batch("test", np.arange(64))
    y = torch.from_numpy(y)
    net = copy.deepcopy(model).to(dtype)
    x = torch.from_numpy(x64).to(dtype)
    ref_net = copy.deepcopy(net).double()
    F.cross_entropy(ref_net(x.double()), y).backward()
    fn(net(x), y).backward()
    errs = {}
    for i, (a, b) in enumerate(zip(depth.linears(net), depth.linears(ref_net), strict=True)):
        g = torch.cat([a.weight.grad.flatten(), a.bias.grad]).double()
        ref = torch.cat([b.weight.grad.flatten(), b.bias.grad])
        errs[str(i + 1)] = float((g - ref).abs().max() / ref.abs().max())
    return errs


def test_cli_numbers_match_an_independent_float64_check(tmp_path):
    _, rows = _run_depth(tmp_path, "--dtype", "float32", depths="3")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the command measures single-threaded: same float32 sums
    try:
        expected = _independent_layer_errors(torch.float32, softmaxloss.IMPLEMENTATIONS["manual"])
    finally:
        torch.set_num_threads(threads)
    for r in rows:
        if r["layer"] == "logits":
            continue
        # float64 F.cross_entropy backprop is ~1e-16 from exact: far below float32's 1e-7
        assert abs(float(r["manual_vs_exact_rel"]) - expected[r["layer"]]) < 1e-12, r["layer"]
        assert 0 < float(r["manual_vs_exact_rel"]) < 1e-4


def test_float64_twins_agree_to_a_few_eps_and_stable_impls_are_accurate(tmp_path):
    _, rows = _run_depth(tmp_path, "--dtype", "float64", depths="1,4")
    for r in rows:
        assert float(r["manual_vs_autograd_eps"]) < 4
        assert float(r["naive_manual_vs_naive_autograd_eps"]) < 16
        for name in ("manual", "autograd", "fused", "torch"):
            assert 0 <= float(r[f"{name}_vs_exact_eps"]) < 1e3, (name, r)


def _png_size(path):
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    return len(raw), width, height


def _assert_real_png(path):
    size, width, height = _png_size(path)
    assert size > 20_000 and width > 600 and height > 300
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert pixels.std() > 0.05  # not a blank canvas


def test_large_logits_break_the_naive_pair_and_are_recorded_as_inf(tmp_path, capsys):
    out, rows = _run_depth(tmp_path, "--logit-scale", "1000", depths="2")
    _assert_real_png(out / "depth.png")  # non-finite panels drawn too
    assert "inf" in capsys.readouterr().out
    assert rows  # nothing dropped: every layer of every dtype is there
    assert len(rows) == 2 * (2 + 2)
    for r in rows:
        for col in ("naive_manual_vs_exact_eps", "naive_manual_vs_naive_autograd_eps"):
            assert r[col] == "inf", (col, r)
        for name in ("manual", "autograd", "fused", "torch"):
            assert math.isfinite(float(r[f"{name}_vs_exact_eps"])), (name, r)
            assert reference.capped(float(r[f"{name}_vs_exact_eps"])) < reference.ERROR_CAP
        assert reference.capped(float(r["naive_manual_vs_exact_eps"])) == reference.ERROR_CAP


def test_impl_refusing_a_dtype_is_skipped_with_a_note(tmp_path, capsys):
    _, rows = _run_depth(tmp_path, "--dtype", "bfloat16", dataset="synthetic", depths="1")
    out = capsys.readouterr().out
    assert "note: naive_manual skipped in bfloat16" in out
    for r in rows:
        assert r["naive_manual_vs_exact_eps"] == "" and r["naive_autograd_vs_exact_eps"] == ""
        assert math.isfinite(float(r["manual_vs_exact_eps"]))


def test_registered_impl_is_measured(tmp_path, monkeypatch):
    monkeypatch.setitem(
        softmaxloss.IMPLEMENTATIONS, "twice_manual", lambda z, t: 2 * F.cross_entropy(z, t)
    )
    monkeypatch.setitem(
        softmaxloss.IMPLEMENTATIONS, "twice_autograd", lambda z, t: 2 * F.cross_entropy(z, t)
    )
    _, rows = _run_depth(tmp_path, "--dtype", "float64", dataset="synthetic", depths="1")
    for r in rows:
        # the exact gradient of 2 * loss is twice the reference's: relative error 1
        assert math.isclose(float(r["twice_manual_vs_exact_rel"]), 1.0, rel_tol=1e-12)
        assert float(r["twice_manual_vs_twice_autograd_eps"]) == 0.0


def _png_size(path):
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    return len(raw), width, height


# ---------------------------------------------------------------------------------------------
# The asv depth benchmark's one call


def _independent_first_layer_error(fn, depth_, logit_scale):
    """first_layer_error's recipe, with float64 F.cross_entropy backprop as the reference."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = data.load_synthetic(seed=0, n_train=512, n_test=128)
        model = depth.make_mlp(ds.features, 32, depth_, ds.classes, seed=0)
        depth.train(model, ds, steps=30, batch=128, lr=1e-2, seed=0)
        x64, y = ds.batch("test", np.arange(128))
        y = torch.from_numpy(y)
        net = copy.deepcopy(model).float()
        x = torch.from_numpy(x64).float()
        ref_net = copy.deepcopy(net).double()
        F.cross_entropy(ref_net(x.double()) * logit_scale, y).backward()
        fn(net(x) * logit_scale, y).backward()
    finally:
        torch.set_num_threads(threads)
    a, b = depth.linears(net)[0], depth.linears(ref_net)[0]
    g = torch.cat([a.weight.grad.flatten(), a.bias.grad]).double()
    ref = torch.cat([b.weight.grad.flatten(), b.bias.grad])
    return float((g - ref).abs().max() / ref.abs().max()) / torch.finfo(torch.float32).eps


@pytest.mark.parametrize("name", ["manual", "fused_inplace"])
def test_first_layer_error_matches_an_independent_float64_check(name):
    fn = softmaxloss.IMPLEMENTATIONS[name]
    got = depth.first_layer_error(fn, "float32", 2, 4.0)
    expected = _independent_first_layer_error(fn, 2, 4.0)
    # float64 backprop is ~1e-16 from exact: ~1e-9 float32 eps
    assert abs(got - expected) < 1e-6 and 0 < got < 1e4
    assert depth.first_layer_error(fn, "float32", 2, 4.0) == got  # seeded: the same number


def test_first_layer_error_of_the_overflowing_naive_pair_is_inf():
    fn = softmaxloss.IMPLEMENTATIONS["naive_manual"]
    assert depth.first_layer_error(fn, "float32", 1, 1e4) == math.inf


def test_the_table_shows_logits_output_and_first_layer_of_each_depth():
    """``format_table``: per dtype, for each depth the logits, the output layer (``d+1``) and
    the first layer, never a hidden one; a non-finite difference reads ``inf``."""
    names = ["manual", "autograd"]
    rows = [
        {"dtype": "float32", "logit_scale": 1.0, "depth": 2, "layer": layer,
         "manual_vs_autograd_eps": value, "manual_vs_exact_eps": 1.0, "autograd_vs_exact_eps": 2.0}
        for layer, value in [("logits", 0.5), ("3", 1.5), ("2", 99.0), ("1", math.inf)]
    ]  # fmt: skip
    text = depth.format_table(rows, names)
    lines = text.splitlines()
    assert lines[0].startswith("float32, logit scale 1: gradient differences in eps")
    body = [line.split() for line in lines[3:]]
    assert body == [["2", "logits", "0.5", "1", "2"], ["2", "output", "1.5", "1", "2"],
                    ["2", "first", "inf", "1", "2"]]  # fmt: skip
    assert "99" not in text
