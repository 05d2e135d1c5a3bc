from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from quantnas import plots
from quantnas.errors import QuantNASError
from quantnas.sweep.pareto import pareto_front

OPS = {
    "head": ["simple_3x3", "simple_5x5"],
    "body": ["simple_1x1", "growth2_3x3", "skip_connect"],
    "skip": ["simple_1x1"],
    "upsample": ["simple_3x3"],
    "tail": ["simple_3x3", "simple_1x1"],
}
BITS = [8, 4, 2]


def _assert_png(path: Path, min_w: int = 200, min_h: int = 150) -> np.ndarray:
    assert path.is_file()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img.shape[0] >= min_h and img.shape[1] >= min_w
    # not a blank canvas
    assert float(img[..., :3].std()) > 0.01
    return img


def _history(epochs: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for layer in ["head.0", "body.0", "body.1", "skip.0", "upsample.0", "tail.0"]:
        n_ops = len(OPS[layer.split(".")[0]])
        a = rng.random((epochs, n_ops, len(BITS)))
        out[layer] = a / a.sum(axis=(1, 2), keepdims=True)
    return out


def test_alpha_evolution_png(tmp_path):
    out = plots.plot_alpha_evolution(_history(), OPS, BITS, tmp_path / "a" / "alpha.png", title="t")
    assert out == tmp_path / "a" / "alpha.png"
    _assert_png(out, 600, 300)
    assert not list((tmp_path / "a").glob("*.tmp"))


def test_alpha_evolution_ops_by_layer_name_and_single_epoch(tmp_path):
    hist = {"body.0": np.full((1, 2, 1), 0.5)}
    out = plots.plot_alpha_evolution(hist, {"body.0": ["a", "b"]}, [32], tmp_path / "x.png")
    _assert_png(out)


def test_alpha_evolution_shape_mismatch_names_layer(tmp_path):
    hist = _history()
    hist["body.1"] = hist["body.1"][:, :2, :]
    with pytest.raises(QuantNASError, match="body.1"):
        plots.plot_alpha_evolution(hist, OPS, BITS, tmp_path / "x.png")
    with pytest.raises(QuantNASError, match="body.0"):
        plots.plot_alpha_evolution({"body.0": np.zeros((3, 3))}, OPS, BITS, tmp_path / "x.png")
    with pytest.raises(QuantNASError, match="weird.0"):
        plots.plot_alpha_evolution({"weird.0": np.zeros((3, 1, 3))}, OPS, BITS, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_genotype_png(tmp_path):
    geno = {
        "head": [("simple_5x5_grouped_3", 8), ("simple_3x3", 8)],
        "body": [("simple_1x1_grouped_3", 2), ("simple_1x1", 2)],
        "tail": [],
        "skip": [("decenc_3x3_2", 2)],
        "upsample": [("simple_3x3_grouped_3", 8)],
    }
    _assert_png(plots.plot_genotype(geno, tmp_path / "g.png", body_cells=3, title="g"), 600, 200)
    # dict layers, missing head, unusual bit-width
    geno2 = {"body": [{"op": "simple_3x3", "bits": 5}], "skip": [], "upsample": [("x", 32)]}
    _assert_png(plots.plot_genotype(geno2, tmp_path / "g2.png"))


def test_genotype_errors(tmp_path):
    with pytest.raises(QuantNASError, match="'bogus'"):
        plots.plot_genotype({"bogus": []}, tmp_path / "g.png")
    with pytest.raises(QuantNASError, match="'body' layer 0"):
        plots.plot_genotype({"body": [("simple_3x3", "8")]}, tmp_path / "g.png")
    with pytest.raises(QuantNASError, match="body_cells"):
        plots.plot_genotype({"body": []}, tmp_path / "g.png", body_cells=0)


def test_training_curves_png(tmp_path):
    hist = [
        {
            "epoch": e,
            "train_loss": 1 / (e + 1),
            "val_loss": 1.1 / (e + 1),
            "val_psnr": 25 + e,
            "bicubic_psnr": 26.0,
        }
        for e in range(6)
    ]
    hist.append({"epoch": 6, "train_loss": 0.1})  # partial row
    _assert_png(plots.plot_training_curves(hist, tmp_path / "c.png", title="c"), 500, 250)
    # only losses
    _assert_png(plots.plot_training_curves([{"epoch": 0, "train_loss": 1.0}], tmp_path / "d.png"))
    with pytest.raises(QuantNASError, match="row 0"):
        plots.plot_training_curves([{"train_loss": 1.0}], tmp_path / "e.png")
    with pytest.raises(QuantNASError):
        plots.plot_training_curves([], tmp_path / "e.png")


def test_side_by_side_png_and_auto_crop(tmp_path):
    rng = np.random.default_rng(1)
    hr = np.full((120, 150, 3), 100, dtype=np.uint8)
    hr[70:100, 90:130] = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    top, left, h, w = plots._auto_crop(hr)
    assert h == w == 40
    # the window lies over the textured patch
    assert 70 - w < top <= 100 and 90 - w < left <= 130
    assert top + h <= 120 and left + w <= 150
    panels = [("Bicubic", hr // 2), ("SR 30.00 dB", hr), ("HR", hr)]
    _assert_png(plots.plot_side_by_side(panels, tmp_path / "s.png"), 500, 300)
    _assert_png(plots.plot_side_by_side(panels, tmp_path / "t.png", crop=(0, 0, 20, 30)))


def test_side_by_side_errors(tmp_path):
    a = np.zeros((40, 40, 3), dtype=np.uint8)
    with pytest.raises(QuantNASError, match="'SR'"):
        plots.plot_side_by_side(
            [("HR", a), ("SR", np.zeros((40, 41, 3), np.uint8))], tmp_path / "x.png"
        )
    with pytest.raises(QuantNASError, match="uint8"):
        plots.plot_side_by_side([("HR", a.astype(np.float32))], tmp_path / "x.png")
    with pytest.raises(QuantNASError, match="crop"):
        plots.plot_side_by_side([("HR", a)], tmp_path / "x.png", crop=(30, 30, 20, 20))


def test_pareto_front_hand_made():
    pts = [
        (10.0, 30.0),  # 0 front
        (20.0, 29.0),  # 1 dominated by 0
        (5.0, 28.0),  # 2 front (cheapest)
        (40.0, 32.0),  # 3 front (best)
        (10.0, 29.5),  # 4 same x as 0, lower y -> dominated
        (40.0, 32.0),  # 5 duplicate of 3 -> kept too
        (50.0, 32.0),  # 6 same y as 3, more cost -> dominated
        (float("nan"), 40.0),  # 7 ignored
    ]
    assert pareto_front(pts) == [2, 0, 3, 5]
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 1.0)]) == [0]
    # all identical -> all non-dominated
    assert pareto_front([(1.0, 2.0)] * 3) == [0, 1, 2]
    # y increases along the front
    front = pareto_front(pts)
    ys = [pts[i][1] for i in front]
    assert ys == sorted(ys)
