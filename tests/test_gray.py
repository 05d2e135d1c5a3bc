"""One rule for grayscale images in every data role (``data.gray``): training folder,
validation folder, validation LR folder, benchmark (test) sets, in-memory images and
``prepare``. ``replicate`` (default) copies the channel to RGB, as SR test sets are scored;
``reject`` stops with one line naming the file and the key to set.
"""

from __future__ import annotations

import numpy as np
import pytest
from tiny_runs import RUN as TINY

from quantnas.cli import main
from quantnas.data.images import load_rgb, save_rgb
from quantnas.data.job_data import JobData
from quantnas.data.sources import embedded_images
from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import load_config


def _save_gray(path, shape):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode="L").save(path)


@pytest.fixture
def folders(tmp_path):
    """Train, val, val-LR and a benchmark folder, each holding one grayscale image."""
    photos = embedded_images("train")[:2]
    out = {}
    for role in ("train", "val", "test"):
        d = tmp_path / role
        d.mkdir()
        for name, arr in photos:
            save_rgb(d / f"{name}.png", arr[:96, :96])
        _save_gray(d / "zgray.png", (96, 96))
        out[role] = d
    lr = tmp_path / "val_lr"
    lr.mkdir()
    for name, _ in photos:
        save_rgb(lr / f"{name}.png", load_rgb(out["val"] / f"{name}.png")[::4, ::4].copy())
    _save_gray(lr / "zgray.png", (24, 24))
    out["val_lr"] = lr
    bench = tmp_path / "bench.yaml"
    bench.write_text(f"Gray: {{hr: {out['test']}}}\n")
    out["bench"] = bench
    return out


def _cfg(folders, gray):
    return load_config(
        preset="tiny",
        overrides=[
            *TINY,
            f"data.train={folders['train']}",
            f"data.val={folders['val']}",
            f"data.val_lr={folders['val_lr']}",
            f"data.benchmarks={folders['bench']}",
            f"data.gray={gray}",
            "data.val_crop=0",
        ],
    )


def test_replicate_is_the_default_in_every_role(folders):
    assert load_config(preset="tiny").data.gray == "replicate"
    data = JobData(_cfg(folders, "replicate"))
    train = dict(data.training_images())
    val = dict(data.validation_images())
    sets = data.eval_sets()
    assert train["zgray"].shape == (96, 96, 3) and val["zgray"].shape == (96, 96, 3)
    for img in (train["zgray"], val["zgray"]):
        assert np.array_equal(img[..., 0], img[..., 2])
    assert set(sets) == {"validation", "Gray"}
    assert len(sets["Gray"]) == 3 and len(sets["validation"]) == 3
    # the in-memory images follow the same rule
    gray = np.full((40, 40), 7, np.uint8)
    mem = JobData(_cfg(folders, "replicate"), train=[gray, gray], val=[("g", gray)])
    assert mem.training_images()[0][1].shape == (40, 40, 3)


@pytest.mark.parametrize(
    ("role", "reader"),
    [
        ("train", lambda d: d.training_images()),
        ("val", lambda d: d.validation_images()),
        ("val_lr", lambda d: d.val_dataset()),
        ("test", lambda d: d.eval_sets()),
        ("memory", lambda d: None),
    ],
)
def test_reject_turns_gray_away_in_every_role(folders, role, reader):
    cfg = _cfg(folders, "reject")
    with pytest.raises(QuantNASError) as e:
        if role == "memory":
            JobData(cfg, train=[np.zeros((32, 32), np.uint8)], val=[np.zeros((32, 32, 3))])
        else:
            data = JobData(cfg)
            if role in ("val_lr", "test"):  # the HR folders must pass first
                data._val = [(n, a) for n, a in embedded_images("val")[:1]]
                data._val = [(n, a[:96, :96].copy()) for n, a in data._val]
            reader(data)
    msg = str(e.value)
    assert "\n" not in msg and "is grayscale" in msg and "data.gray=replicate" in msg
    if role != "memory":
        assert "zgray.png" in msg


def test_bad_gray_value_names_the_key():
    with pytest.raises(QuantNASError, match="data.gray: 'rgb' is not one of"):
        load_config(preset="tiny", overrides=["data.gray=rgb"])


def test_prepare_gray_rule(folders, tmp_path, capsys):
    rc = main(["prepare", str(folders["train"]), str(tmp_path / "p"), "--patch", "48",
               "--stride", "48"])
    assert rc == 0
    assert len(list((tmp_path / "p").glob("zgray*.png"))) == 4
    rc = main(["prepare", str(folders["train"]), str(tmp_path / "q"), "--patch", "48",
               "--gray", "reject"])
    assert rc == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "zgray.png is grayscale" in err[0] and "--gray replicate" in err[0]
