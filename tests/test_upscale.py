"""``quantnas upscale``: tiles equal the untiled result, colour modes, bit depths, bad files."""

import numpy as np
import pytest
import torch
from PIL import Image

from quantnas.cli import main
from quantnas.data.bicubic import imresize
from quantnas.deploy.backends import TorchUpscaler, load_upscaler
from quantnas.deploy.receptive import lr_halo
from quantnas.deploy.tiling import tile_windows, upscale_tiled
from quantnas.deploy.upscale import _png16, read_picture
from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import load_config
from quantnas.space import genotype as gt
from quantnas.space.build import build_network

#: Tiled and untiled outputs agree to float rounding (measured: exactly equal).
TILE_TOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(trained_tiny_run):
    """A tiny mixed 2/8-bit network trained for a few steps (its residual is not zero)."""
    return trained_tiny_run


@pytest.fixture(scope="module")
def onnx_file(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("upscale_onnx") / "net.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    return out


def smooth(h, w, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    planes = [
        0.5 + 0.4 * np.sin(rng.uniform(2, 9) * x + rng.uniform(2, 9) * y + rng.uniform(0, 6))
        for _ in range(channels)
    ]
    return np.clip(np.stack(planes, axis=-1) + rng.normal(0, 0.03, (h, w, channels)), 0, 1)


def lr_array(h, w, seed=0):
    return smooth(h, w, seed=seed).astype(np.float32).transpose(2, 0, 1)[None].copy()


# ------------------------------------------------------------------------- tiling
@pytest.mark.parametrize("tile,overlap", [(8, 0), (7, 3), (30, 5), (4, 9)])
def test_tile_windows_partition_the_image(tile, overlap):
    h, w = 23, 17
    cover = np.zeros((h, w), int)
    for (y0, y1, x0, x1), (ya, yb, xa, xb) in tile_windows(h, w, tile, overlap, min_side=2):
        cover[y0:y1, x0:x1] += 1
        assert ya <= y0 and y1 <= yb and xa <= x0 and x1 <= xb
        assert ya >= max(0, y0 - overlap) or yb - ya <= 2
        assert yb - ya >= 2 and xb - xa >= 2
    assert (cover == 1).all()


def test_tiled_equals_untiled_with_the_halo(run_dir, onnx_file):
    lr = lr_array(45, 38)
    for model in (load_upscaler(run_dir), load_upscaler(onnx_file, threads=1)):
        assert model.halo == 10  # PAPER_EXAMPLE: head 5+1, body 1, skip 1, upsample 1 + ...
        full = upscale_tiled(model, lr, 4, tile=0, overlap=0)
        assert full.shape == (1, 3, 180, 152)
        for tile in (16, 13, 40):
            tiled = upscale_tiled(model, lr, 4, tile=tile, overlap=model.halo)
            assert np.abs(tiled - full).max() <= TILE_TOL, tile
        # without enough context the tile borders differ: the comparison is not vacuous
        cut = upscale_tiled(model, lr, 4, tile=16, overlap=1)
        assert np.abs(cut - full).max() > 1e-2


def test_halo_is_the_receptive_radius():
    """A change of one LR pixel moves outputs exactly up to ``halo`` LR pixels away."""
    torch.manual_seed(0)
    net = build_network(gt.PAPER_EXAMPLE, load_config(overrides=["arch.c_fixed=12"]).arch)
    with torch.no_grad():
        net.out_scale.fill_(1.0)
    up = TorchUpscaler(net.eval(), 4)
    halo = up.halo
    x = lr_array(2 * halo + 9, 2 * halo + 9)
    c = halo + 4
    y = x.copy()
    y[0, :, c, c] += 0.5
    diff = np.abs(up(y) - up(x)).max(axis=(0, 1)) > 0  # HR map of changed pixels
    rows = np.nonzero(diff.any(axis=1))[0] // 4
    assert rows.min() >= c - halo and rows.max() <= c + halo
    assert rows.min() <= c - halo + 1  # the bound is (nearly) reached, not a loose guess


def test_networks_with_whole_image_statistics_have_no_halo():
    adq = build_network(
        gt.DEFAULT, load_config(overrides=["arch.c_fixed=12", "arch.skip_mode=false"]).arch
    )
    assert lr_halo(adq) is None


# ---------------------------------------------------------------------- file formats
def _write_inputs(folder):
    folder.mkdir()
    rgb = (smooth(20, 26) * 255).round().astype(np.uint8)
    Image.fromarray(rgb).save(folder / "rgb.png")
    alpha = (smooth(20, 26, channels=1, seed=4)[:, :, 0] * 255).round().astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha])).save(folder / "rgba.png")
    Image.fromarray(rgb[:, :, 1]).save(folder / "gray.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "pal.png")
    g16 = (smooth(20, 26, channels=1, seed=5)[:, :, 0] * 65535).round().astype(np.uint16)
    Image.fromarray(g16).save(folder / "gray16.png")
    c16 = (smooth(20, 26, seed=6) * 65535).round().astype(np.uint16)
    (folder / "rgb16.png").write_bytes(_png16(c16))
    Image.fromarray(rgb).save(folder / "photo.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (folder / "notes.txt").write_text("not an image, not an image extension")
    return rgb, alpha, g16, c16


def test_upscale_cli_handles_every_kind_of_image(run_dir, tmp_path, capsys):
    rgb, alpha, g16, c16 = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    missing = tmp_path / "missing.png"
    code = main(["upscale", str(run_dir), str(tmp_path / "in"), str(missing), "--out", str(out)])
    cap = capsys.readouterr()
    assert code == 2  # some inputs failed, the others are done
    errors = [ln for ln in cap.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2 and "Traceback" not in cap.err
    assert "broken.png: cannot read image" in errors[0]
    assert "missing.png: no such file" in errors[1]
    assert "upscaled 7 of 9 images x4" in cap.out

    def load(name):
        with Image.open(out / f"{name}_x4.png") as im:
            return im.mode, im.size, np.asarray(im)

    for name in ("rgb", "photo", "pal"):
        mode, size, _ = load(name)
        assert (mode, size) == ("RGB", (104, 80)), name
    mode, size, a = load("rgba")
    assert (mode, size) == ("RGBA", (104, 80))
    want_alpha = np.round(np.clip(imresize(alpha / 255.0, 4), 0, 1) * 255)
    assert np.abs(a[:, :, 3].astype(int) - want_alpha).max() <= 1  # alpha is plain bicubic
    _, _, c = load("rgb")
    assert np.array_equal(a[:, :, :3], c)  # colour of RGBA = colour of the RGB image
    mode, size, g = load("gray")
    assert mode == "L" and size == (104, 80)
    mode, size, g16_out = load("gray16")
    assert mode.startswith("I") and size == (104, 80) and g16_out.max() > 255
    # a 16-bit image keeps its depth: levels between the 8-bit ones are used
    assert np.any(g16_out.astype(np.int64) % 257 != 0)
    pic = read_picture(out / "rgb16_x4.png")
    assert pic.bits == 16 and pic.rgb.shape == (80, 104, 3) and pic.alpha is None
    assert not (out / "broken_x4.png").exists()


def test_upscale_onnx_equals_checkpoint(run_dir, onnx_file, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray((smooth(37, 30) * 255).round().astype(np.uint8)).save(folder / "a.png")
    for src, name in ((run_dir, "pt"), (onnx_file, "onnx")):
        assert main(["upscale", str(src), str(folder), "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    a = np.asarray(Image.open(tmp_path / "pt" / "a_x4.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "onnx" / "a_x4.png")).astype(int)
    assert np.abs(a - b).max() <= 1


def test_upscale_tiled_cli_equals_untiled(run_dir, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray((smooth(41, 35) * 255).round().astype(np.uint8)).save(folder / "a.png")
    args = ["upscale", str(run_dir), str(folder), "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "whole"), "--tile", "0"]) == 0
    assert main([*args, "--out", str(tmp_path / "tiles"), "--tile", "12"]) == 0
    capsys.readouterr()
    a = np.asarray(Image.open(tmp_path / "whole" / "a_x4.png"))
    b = np.asarray(Image.open(tmp_path / "tiles" / "a_x4.png"))
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--tile", "-1"], "--tile must be >= 0"),
        (["--overlap", "-2"], "--overlap must be >= 0"),
    ],
)
def test_upscale_bad_options(run_dir, tmp_path, capsys, args, message):
    code = main(["upscale", str(run_dir), str(tmp_path), "--out", str(tmp_path / "o"), *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_upscale_bad_model(tmp_path, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"garbage")
    assert main(["upscale", str(bad), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "onnxruntime cannot load it" in err
    with pytest.raises(QuantNASError, match="no trained network"):
        load_upscaler(tmp_path)


def test_too_small_images_are_one_error_line(onnx_file, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((1, 5, 3), np.uint8)).save(folder / "tiny.png")
    Image.fromarray((smooth(9, 8) * 255).round().astype(np.uint8)).save(folder / "ok.png")
    code = main(["upscale", str(onnx_file), str(folder), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [
        f"error: {folder / 'tiny.png'}: image is 1x5; the model needs sides of at least 2 pixels"
    ]
    assert (tmp_path / "o" / "ok_x4.png").is_file()
    # onnxruntime's own failures become one-line errors too
    with pytest.raises(QuantNASError, match="onnxruntime failed on a 1x5 input"):
        load_upscaler(onnx_file, threads=1, runtime="ort")(np.zeros((1, 3, 1, 5), np.float32))


# ------------------------------------------------------------ arrays under the budget
def test_a_huge_array_is_refused_before_it_is_converted(run_dir):
    """A 60000x60000 zero-stride view (40 GiB if converted) is refused from its shape: in
    well under 10 s, with no big allocation (tracemalloc sees numpy's allocations).
    """
    import time
    import tracemalloc

    from quantnas import api

    view = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (60000, 60000, 3))
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(
            QuantNASError,
            match=r"60000x60000 = 3,600,000,000 pixels, more than "
            r"the limit of 89,478,485",
        ) as err:
            api.upscale(run_dir, [view])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 10
    assert peak < 50 * 2**20  # far below the 2 GB bound (and the 40 GiB conversion)
    assert "\n" not in str(err.value)


def test_an_array_whose_output_is_over_the_budget_is_refused(run_dir):
    from quantnas import api

    img = np.zeros((60, 50, 3), np.uint8)  # 3,000 px in, 48,000 px out at x4
    with pytest.raises(QuantNASError, match=r"its x4 output would be 240x200 = 48,000 pixels"):
        api.upscale(run_dir, [img], max_pixels=10_000, runtime="torch")
    assert api.upscale(run_dir, [img], max_pixels=48_000, runtime="torch")[0].shape == (240, 200, 3)


def test_in_memory_training_images_are_under_data_max_pixels():
    from quantnas.data.job_data import JobData, as_named_images

    view = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (60000, 60000, 3))
    cfg = load_config(overrides=["data.max_pixels=1000000"])
    small = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(
        QuantNASError,
        match=r"<train\[1\] train_1> is 60000x60000 .* limit of "
        r"1,000,000",
    ):
        JobData(cfg, train=[small, view], val=[small])
    with pytest.raises(QuantNASError, match="limit of 89,478,485"):
        as_named_images([("big", view)], "portrait")
