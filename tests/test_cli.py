"""The ``quantnas`` command line, called in-process through ``quantnas.cli.main``."""

import json
import math

import numpy as np
import pytest
import yaml
from tiny_runs import CLI_SEARCH, CLI_TRAIN, QUIET, one_error

from quantnas.cli import main
from quantnas.data.images import save_rgb
from quantnas.space import genotype as gt


def smooth_image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    chans = []
    for _ in range(3):
        a, b, c = rng.uniform(1, 6, 3)
        chans.append(0.5 + 0.4 * np.sin(a * x * math.pi + b * y * math.pi + c))
    img = np.stack(chans, axis=-1) + rng.normal(0, 0.02, (h, w, 3))
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def image_folder(root, names=("a", "b"), size=(64, 64)):
    root.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names):
        save_rgb(root / f"{n}.png", smooth_image(*size, seed=i))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_train")
    code = main(["train", "--genotype", "default", f"out_dir={out}", "name=t", *CLI_TRAIN])
    assert code == 0
    return out, out / "t"


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_search")
    assert main(["search", f"out_dir={out}", "name=s", *CLI_SEARCH]) == 0
    return out / "s"


# ------------------------------------------------------------------------------- info
def test_info_paper_example_json(capsys):
    args = ["info", "paper-example", "--channels", "36", "--scale", "4", "--body-cells", "3"]
    assert main([*args, "--lr-size", "32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bitops"] == 1363525632
    assert out["params"] > 0
    assert out["channels"] == 36 and out["body_cells"] == 3
    assert gt.loads(out["genotype"]) == gt.PAPER_EXAMPLE


def test_info_plain_and_scaling(capsys):
    assert main(["info", "paper-example"]) == 0
    text = capsys.readouterr().out
    assert "BitOps" in text and "params" in text
    # BitOps scale with the LR area
    main(["info", "default", "--lr-size", "32", "--json"])
    b32 = json.loads(capsys.readouterr().out)["bitops"]
    main(["info", "default", "--lr-size", "64", "--json"])
    b64 = json.loads(capsys.readouterr().out)["bitops"]
    assert b64 == 4 * b32


def test_info_layers(capsys):
    assert main(["info", "default", "--layers"]) == 0
    out = capsys.readouterr().out
    assert "bits=8" in out


# ------------------------------------------------------------------------------ score
def test_score_identical_file_is_inf(tmp_path, capsys):
    img = smooth_image(48, 40)
    save_rgb(tmp_path / "x.png", img)
    x = str(tmp_path / "x.png")
    assert main(["score", "--sr", x, "--hr", x, "--scale", "4", "--json"]) == 0
    raw = capsys.readouterr().out
    assert "Infinity" not in raw  # strict JSON: an infinite PSNR is written as null
    res = json.loads(raw)
    assert res["psnr"] is None and res["ssim"] == pytest.approx(1.0)
    assert main(["score", "--sr", x, "--hr", x, "--scale", "4"]) == 0
    assert "PSNR inf dB" in capsys.readouterr().out
    assert res["images"][0]["lr_size"] == [12, 10]


def test_score_folders(tmp_path, capsys):
    hr = image_folder(tmp_path / "hr", ("a", "b"))
    sr = tmp_path / "sr"
    sr.mkdir()
    save_rgb(sr / "a.png", smooth_image(64, 64, seed=0))  # identical
    noisy = smooth_image(64, 64, seed=1).astype(int) + 3
    save_rgb(sr / "b.png", np.clip(noisy, 0, 255).astype(np.uint8))
    assert main(["score", "--sr", str(sr), "--hr", str(hr), "--scale", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in res["images"]}
    assert set(rows) == {"a", "b"}
    assert rows["a"]["psnr"] is None and 30 < rows["b"]["psnr"] < 60  # identical: inf -> null
    assert main(["score", "--sr", str(sr), "--hr", str(hr), "--scale", "4"]) == 0
    assert "mean: PSNR" in capsys.readouterr().out


def test_score_mismatched_names(tmp_path, capsys):
    hr = image_folder(tmp_path / "hr", ("a", "b"))
    sr = image_folder(tmp_path / "sr", ("a", "c"))
    code = main(["score", "--sr", str(sr), "--hr", str(hr), "--scale", "4"])
    one_error(code, capsys, f"score: no SR image in {sr} for HR b (1 missing in total)")


# ------------------------------------------------------------------------------- eval
def test_eval_bicubic(tmp_path, capsys):
    data = image_folder(tmp_path / "val")
    assert main(["eval", "--model", "bicubic", "--data", str(data), "--scale", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    s = res["sets"]["val"]
    assert 15 < s["psnr"] < 60 and 0 < s["ssim"] <= 1
    assert len(s["images"]) == 2
    assert res["model"] == "bicubic" and res["scale"] == 4


def test_eval_bicubic_needs_scale(tmp_path, capsys):
    data = image_folder(tmp_path / "val")
    code = main(["eval", "--model", "bicubic", "--data", str(data)])
    one_error(code, capsys, "--scale is required with --model bicubic")


def test_eval_trained_model(tmp_path, capsys, trained):
    _, run = trained
    data = image_folder(tmp_path / "val")
    save = tmp_path / "sr"
    args = ["eval", "--model", str(run / "best.pt"), "--data", str(data), "--json"]
    assert main([*args, "--save-images", str(save)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["bitops"] > 0 and res["params"] > 0
    assert res["scale"] == 4
    assert gt.loads(res["genotype"]) == gt.DEFAULT
    assert {r["name"] for r in res["sets"]["val"]["images"]} == {"a", "b"}
    assert sorted(p.name for p in (save / "val").iterdir()) == ["a.png", "b.png"]
    # plain output
    assert main(["eval", "--model", str(run / "best.pt"), "--data", str(data)]) == 0
    assert "PSNR" in capsys.readouterr().out


def test_eval_wrong_scale(tmp_path, capsys, trained):
    _, run = trained
    data = image_folder(tmp_path / "val")
    code = main(["eval", "--model", str(run / "best.pt"), "--data", str(data), "--scale", "2"])
    one_error(code, capsys, "--scale 2 differs from the model's scale 4")


# ---------------------------------------------------------------------------- prepare
def test_prepare_tiles(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    save_rgb(src / "big.png", smooth_image(100, 120))
    save_rgb(src / "tiny.png", smooth_image(40, 40))  # smaller than a patch: skipped
    out = tmp_path / "out"
    args = ["prepare", str(src), str(out), "--patch", "48", "--stride", "24", "--scale", "4"]
    assert main(args) == 0
    tiles = sorted(out.glob("*.png"))
    # rows: 0, 24, 48 + flush 52 -> 4; cols: 0, 24, 48, 72 -> 4
    assert len(tiles) == 16
    assert all(t.name.startswith("big_s") for t in tiles)
    from quantnas.data.images import load_rgb

    assert load_rgb(tiles[0]).shape == (48, 48, 3)
    # the last tile is flush with the bottom-right corner
    img = smooth_image(100, 120)
    assert np.array_equal(load_rgb(out / "big_s016.png"), img[52:100, 72:120])


def test_prepare_nothing_large_enough(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    save_rgb(src / "tiny.png", smooth_image(40, 40))
    code = main(["prepare", str(src), str(tmp_path / "o"), "--patch", "48", "--stride", "24"])
    one_error(code, capsys, f"prepare: no image in {src} is at least 48x48 pixels")


# ----------------------------------------------------------------------------- export
def test_export_formats(tmp_path, capsys, searched):
    best = gt.load(searched / "best_arch.json")
    assert main(["export", str(searched), "--format", "text"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Genotype_SR(") and gt.loads(text) == best
    assert main(["export", str(searched), "--format", "json"]) == 0
    assert gt.loads(capsys.readouterr().out) == best
    png = tmp_path / "a.png"
    assert main(["export", str(searched), "--format", "png", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "g.txt"
    assert (
        main(["export", str(searched / "best_arch.json"), "--format", "text", "--out", str(out)])
        == 0
    )
    assert gt.load(out) == best


def test_export_png_needs_out(capsys, searched):
    one_error(
        main(["export", str(searched), "--format", "png"]),
        capsys,
        "--format png needs --out FILE.png",
    )


def test_export_trained_checkpoint(capsys, trained):
    _, run = trained
    assert main(["export", str(run / "best.pt"), "--format", "text"]) == 0
    assert gt.loads(capsys.readouterr().out) == gt.DEFAULT


def test_search_cli_outputs(searched):
    for name in (
        "best_arch.json",
        "alphas.png",
        "arch.png",
        "checkpoint.pt",
        "log.txt",
        "config.yaml",
        "metrics.jsonl",
    ):
        assert (searched / name).is_file(), name
    cfg = yaml.safe_load((searched / "config.yaml").read_text())
    assert cfg["search"]["epochs"] == 2 and cfg["arch"]["c_fixed"] == 12


# ----------------------------------------------------------------------------- config
def test_config_list(capsys):
    assert main(["config", "--list"]) == 0
    assert "default" in capsys.readouterr().out.split()


def test_config_prints_yaml(capsys):
    assert main(["config", "search.epochs=3", "arch.bits=[2,4,8]"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["search"]["epochs"] == 3
    assert data["arch"]["bits"] == [2, 4, 8]


def test_config_file(tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text("search:\n  epochs: 7\n")
    assert main(["config", "--config", str(f), "search.warm_up=2"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["search"]["epochs"] == 7 and data["search"]["warm_up"] == 2


# ----------------------------------------------------------------------------- errors
def test_error_unknown_config_key(tmp_path, capsys):
    code = main(["search", f"out_dir={tmp_path}", "search.foo=1"])
    one_error(code, capsys, "unknown config key 'search.foo'")
    assert not any(tmp_path.iterdir())


def test_error_wrong_type(tmp_path, capsys):
    code = main(["search", f"out_dir={tmp_path}", "search.epochs=abc"])
    one_error(code, capsys, "config key search.epochs: expected an integer, got 'abc'")


def test_error_bad_choice(tmp_path, capsys):
    code = main(["search", f"out_dir={tmp_path}", "search.sparse_type=l7"])
    one_error(code, capsys, "config key search.sparse_type: 'l7' is not one of [")


def test_error_missing_genotype_file(tmp_path, capsys):
    code = main(
        [
            "train",
            "--genotype",
            str(tmp_path / "nope.json"),
            f"out_dir={tmp_path}",
            "name=g",
            *CLI_TRAIN,
        ]
    )
    one_error(code, capsys, f"genotype file {tmp_path / 'nope.json'} does not exist")


def test_error_malformed_genotype_text(tmp_path, capsys):
    f = tmp_path / "g.txt"
    f.write_text("Genotype_SR(head=[('simple_3x3', 8)], body=[('simple_3x3', 8)")
    code = main(["train", "--genotype", str(f), f"out_dir={tmp_path}", "name=g", *CLI_TRAIN])
    one_error(code, capsys, f"{f}: malformed Genotype_SR text (")


def test_error_genotype_unknown_op(tmp_path, capsys):
    f = tmp_path / "g.txt"
    f.write_text("Genotype_SR(head=[('simple_9x9', 8)], body=[], skip=[], upsample=[], tail=[])")
    code = main(["info", str(f)])
    one_error(code, capsys, "genotype head[0]: unknown operation 'simple_9x9'")


def test_error_data_folder_missing(tmp_path, capsys):
    code = main(
        ["train", "data.train=/nonexistent/quantnas", f"out_dir={tmp_path}", "name=d", *CLI_TRAIN]
    )
    one_error(code, capsys, "data folder /nonexistent/quantnas does not exist")


def test_error_empty_data_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["train", f"data.train={empty}", f"out_dir={tmp_path}", "name=d", *CLI_TRAIN])
    one_error(code, capsys, "no images (.png/", f"in {empty}")


def test_error_image_smaller_than_crop(tmp_path, capsys):
    small = tmp_path / "small"
    small.mkdir()
    save_rgb(small / "s.png", smooth_image(20, 20))
    code = main(
        [
            "train",
            f"data.train={small}",
            f"out_dir={tmp_path}",
            "name=d",
            *CLI_TRAIN,
            "data.lr_crop=16",
            "arch.scale=4",
        ]
    )
    one_error(
        code, capsys, "image s is 20x20, smaller than the HR crop 64x64 (lr_crop 16 x scale 4)"
    )


def test_error_existing_run_dir(capsys, trained):
    out, run = trained
    before = (run / "checkpoint.pt").stat().st_mtime_ns
    code = main(["train", f"out_dir={out}", "name=t", *CLI_TRAIN])
    one_error(
        code, capsys, f"run directory {run} already holds a run", f"quantnas train --resume {run}"
    )
    assert (run / "checkpoint.pt").stat().st_mtime_ns == before


def test_error_resume_missing_dir(tmp_path, capsys):
    code = main(["train", "--resume", str(tmp_path / "nope"), *CLI_TRAIN])
    one_error(code, capsys, f"--resume: run directory {tmp_path / 'nope'} does not exist")


def test_train_resume_finished_run_is_noop(capsys, trained):
    out, run = trained
    before = (run / "best.pt").stat().st_mtime_ns
    assert main(["train", "--resume", str(run)]) == 0
    assert (run / "best.pt").stat().st_mtime_ns == before


def test_ctrl_c_names_the_run_directory(tmp_path, monkeypatch, capsys):
    import quantnas.pipeline.run

    def interrupted(cfg, run_dir, *, resume):
        raise KeyboardInterrupt

    # Ctrl-C during a run: only a patch stops a run at a known point
    monkeypatch.setattr(quantnas.pipeline.run, "run_pipeline", interrupted)
    rc = main(["run", f"out_dir={tmp_path}", "name=r1", *QUIET])
    assert rc == 130
    err = capsys.readouterr().err.strip()
    assert err == f"interrupted; resume with: quantnas run --resume {tmp_path / 'r1'}"


def test_info_takes_the_structure_from_a_preset(capsys):
    # the default preset's network (48 channels, 2 cells, x4) of the default run's genotype:
    # head 3->48 and 48->48 3x3, two cells of two grouped-by-3 3x3 and a 1x1 skip, upsample
    # 48->48 3x3 grouped by 3; all 8-bit, LR 32x32 (1024 pixels), BitOps = MACs * 64
    g = (
        "Genotype_SR(head=[('simple_3x3', 8), ('simple_3x3', 8)], body=[('simple_3x3_grouped_3',"
        " 8), ('simple_3x3_grouped_3', 8)], skip=[('simple_1x1', 8)], upsample=[("
        "'simple_3x3_grouped_3', 8)], tail=[])"
    )
    macs = 1024 * (
        3 * 48 * 9 + 48 * 48 * 9 + 2 * (2 * 48 * 48 * 9 // 3 + 48 * 48) + 48 * 48 * 9 // 3
    )
    assert main(["info", g, "--preset", "default", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["channels"], out["body_cells"], out["scale"]) == (48, 2, 4)
    assert out["macs"] == macs and out["bitops"] == 64 * macs == 4_010_803_200
    assert main(["info", g, "--preset", "default", "--body-cells", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["body_cells"] == 1
