import math

import numpy as np
import pytest
import torch

from quantnas.data.bicubic import downscale_uint8, imresize
from quantnas.data.datasets import SRValDataset
from quantnas.data.images import load_rgb, save_rgb
from quantnas.data.sources import embedded_images
from quantnas.errors import QuantNASError
from quantnas.evaluation.metrics import sr_metrics
from quantnas.evaluation.score import bicubic_upscaler, evaluate, score_paths


def _img(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _smooth(h, w):
    y, x = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0)
    return np.stack([base, base * 0.8 + 20, 255 - base], axis=2).round().astype(np.uint8)


def test_bicubic_upscaler_shape_and_values():
    up = bicubic_upscaler(4)
    x = torch.rand(2, 3, 5, 6)
    y = up(x)
    assert y.shape == (2, 3, 20, 24)
    ref = imresize(x[1].numpy().transpose(1, 2, 0).astype(np.float64), 4.0)
    np.testing.assert_allclose(y[1].numpy().transpose(1, 2, 0), ref, atol=1e-5)


def test_evaluate_bicubic_synthetic_matches_manual(tmp_path):
    hr = _smooth(48, 40)
    ds = SRValDataset([("wave", hr)], scale=4)
    res = evaluate(bicubic_upscaler(4), ds, save_dir=tmp_path / "sr")
    sr_manual = np.clip(np.round(imresize(downscale_uint8(hr, 4), 4.0)), 0, 255).astype(np.uint8)
    manual = sr_metrics(sr_manual, hr, scale=4)
    assert res["images"][0]["name"] == "wave" and res["images"][0]["lr_size"] == [12, 10]
    assert res["psnr"] == pytest.approx(manual["psnr"], abs=1e-4)
    assert res["ssim"] == pytest.approx(manual["ssim"], abs=1e-5)
    assert 25 < res["psnr"] < 60
    np.testing.assert_array_equal(load_rgb(tmp_path / "sr" / "wave.png"), sr_manual)


def test_evaluate_embedded_coffee_crop_plausible():
    coffee = dict(embedded_images("val"))["coffee"][100:228, 200:328]
    ds = SRValDataset([("coffee", coffee)], scale=4)
    res = evaluate(bicubic_upscaler(4), ds)
    assert 20 < res["psnr"] < 35
    assert 0.3 < res["ssim"] < 1.0


def test_evaluate_identity_model_and_module_mode():
    hr = _img(24, 24)

    class Oracle(torch.nn.Module):
        def forward(self, x):
            assert not self.training and not torch.is_grad_enabled()
            return torch.from_numpy(hr.transpose(2, 0, 1)[None].astype(np.float32) / 255)

    model = Oracle().train()
    res = evaluate(model, SRValDataset([("a", hr)], scale=4))
    assert res["psnr"] == math.inf and res["ssim"] == pytest.approx(1.0)
    assert model.training  # restored


def test_evaluate_wrong_output_size():
    ds = SRValDataset([("a", _img(16, 16))], scale=4)
    with pytest.raises(QuantNASError, match="image a: SR shape"):
        evaluate(bicubic_upscaler(2), ds)


def test_score_paths_folders_and_files(tmp_path):
    hr = _smooth(50, 42)  # cropped to 48x40 for scale 4
    save_rgb(tmp_path / "hr" / "x.png", hr)
    save_rgb(tmp_path / "sr" / "x.png", hr[:48, :40])
    res = score_paths(tmp_path / "sr", tmp_path / "hr", scale=4)
    assert res["psnr"] == math.inf and res["images"][0]["lr_size"] == [12, 10]
    noisy = hr[:48, :40].copy()
    noisy[10, 10] = 0
    save_rgb(tmp_path / "one.png", noisy)
    res = score_paths(tmp_path / "one.png", tmp_path / "hr" / "x.png", scale=4)
    assert math.isfinite(res["psnr"]) and res["psnr"] > 30


def test_score_paths_errors(tmp_path):
    save_rgb(tmp_path / "hr" / "a.png", _img(24, 24))
    save_rgb(tmp_path / "hr" / "b.png", _img(24, 24))
    save_rgb(tmp_path / "sr" / "b.png", _img(24, 24))
    with pytest.raises(QuantNASError, match="no SR image in .* for HR a"):
        score_paths(tmp_path / "sr", tmp_path / "hr", scale=4)
    save_rgb(tmp_path / "sr" / "a.png", _img(8, 8))
    with pytest.raises(QuantNASError, match="image a: SR shape"):
        score_paths(tmp_path / "sr", tmp_path / "hr", scale=4)
