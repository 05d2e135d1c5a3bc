"""One job for ``quantnas run`` and sweep trials; images read once; in-memory images in the
Python API (search / train / run / evaluate / upscale).
"""

import json

import numpy as np
import pytest
from tiny_runs import RUN as TINY

import quantnas.data.benchmarks
import quantnas.data.roles
from quantnas import api
from quantnas.data.images import load_rgb, save_rgb
from quantnas.data.job_data import JobData, as_named_images
from quantnas.data.sources import embedded_images
from quantnas.errors import QuantNASError
from quantnas.pipeline.job import Job
from quantnas.pipeline.resolve import load_config, to_dict
from quantnas.pipeline.run import run_pipeline
from quantnas.sweep.runner import run_trial

pytestmark = pytest.mark.usefixtures("quiet_torch_warnings")


def tiny(*extra: str):
    return load_config(preset="default", overrides=[*TINY, *extra])


@pytest.fixture(scope="module")
def photos():
    """Three training and two validation photos, cropped small (the job's images)."""
    tr = [(n, a[:160, :160].copy()) for n, a in embedded_images("train")[:3]]
    va = [(n, a[:96, :96].copy()) for n, a in embedded_images("val")[:2]]
    return sorted(tr), sorted(va)  # a folder lists its files by name


def test_run_and_search_trial_are_one_job(tmp_path):
    """A sweep's search trial and ``quantnas run`` of the same config give the same genotype
    and the same numbers to the last bit: they are the same job.
    """
    cfg = tiny("data.benchmarks=embedded:test")
    rep = run_pipeline(cfg, tmp_path / "run")
    trial = {"trial_id": "search_p0_s0", "method": "search", "setting": "p=0", "seed": 0}
    row = run_trial(trial, to_dict(cfg), str(tmp_path / "trial"), threads=1)
    assert row["genotype"] == rep["genotype_text"]
    for name, s in rep["sets"].items():
        assert row[f"psnr_{name}"] == s["psnr"] and row[f"ssim_{name}"] == s["ssim"]
        assert row[f"bicubic_psnr_{name}"] == s["bicubic_psnr"]
    assert row["bitops_32"] == rep["bitops_32"] and row["params"] == rep["params"]
    # the trial is the job without pictures; its state records every stage but the report
    state = json.loads((tmp_path / "trial" / "state.json").read_text())
    assert set(state["done"]) == {"search", "train", "eval"}
    assert not (tmp_path / "trial" / "side_by_side.png").exists()
    assert (tmp_path / "trial" / "genotype.json").is_file()


def test_images_are_read_once_per_job(tmp_path, monkeypatch):
    reads, sets = [], []
    real, real_sets = quantnas.data.roles.resolve_images, quantnas.data.job_data.load_benchmark_sets

    def counted(spec, **kw):
        reads.append(spec)
        return real(spec, **kw)

    def counted_sets(*a, **kw):
        sets.append(a[0])
        return real_sets(*a, **kw)

    monkeypatch.setattr(quantnas.data.roles, "resolve_images", counted)
    monkeypatch.setattr(quantnas.data.job_data, "load_benchmark_sets", counted_sets)
    run_pipeline(tiny("data.benchmarks=embedded:test"), tmp_path / "r")
    assert sorted(reads) == ["embedded:train", "embedded:val"]  # preflight, search, train, eval
    assert sets == ["embedded:test"]


def test_holdout_reads_the_folder_once(tmp_path, monkeypatch, photos):
    tr, _ = photos
    for n, a in tr:
        save_rgb(tmp_path / "hr" / f"{n}.png", a)
    reads = []
    real = quantnas.data.roles.resolve_images
    monkeypatch.setattr(
        quantnas.data.roles, "resolve_images", lambda s, **k: reads.append(s) or real(s, **k)
    )
    data = JobData(tiny(f"data.train={tmp_path / 'hr'}", "data.val=holdout"))
    assert len(data.training_images()) == 2 and len(data.validation_images()) == 1
    assert data.val_dataset() is data.val_dataset()
    assert len(reads) == 1


def test_in_memory_images_give_the_same_run_as_their_files(tmp_path, photos):
    tr, va = photos
    for folder, imgs in (("tr", tr), ("va", va)):
        for n, a in imgs:
            save_rgb(tmp_path / folder / f"{n}.png", a)
    files = run_pipeline(
        tiny(f"data.train={tmp_path / 'tr'}", f"data.val={tmp_path / 'va'}"), tmp_path / "f"
    )
    crops = [a[16:80, 16:80] for _, a in va]  # the validation set's data.val_crop=64
    mem = api.run(
        tiny(),
        tmp_path / "m",
        train_images=tr,
        val_images=va,
        test_sets={"mine": crops},
    )
    assert mem["genotype_text"] == files["genotype_text"]
    assert mem["sets"]["validation"]["psnr"] == files["sets"]["validation"]["psnr"]
    assert set(mem["sets"]) == {"validation", "mine"}
    # in-memory test set = the validation photos as validated: the same PSNR
    assert mem["sets"]["mine"]["psnr"] == pytest.approx(mem["sets"]["validation"]["psnr"])
    # evaluate() takes in-memory image sets too, and agrees with the run's evaluation
    scores = api.evaluate(tmp_path / "m" / "train" / "best.pt", images={"v": crops})
    assert scores["v"]["psnr"] == mem["sets"]["validation"]["psnr"]


def test_upscale_in_memory_matches_the_verb(tmp_path, photos):
    _, va = photos
    cfg = tiny()
    res = api.train(cfg, tmp_path / "t", genotype="default", val_images=va, train_images=photos[0])
    assert res.network is not None and not res.network.training
    lr = va[0][1][:40, :48]
    (sr,) = api.upscale(res.best_path, [lr], tile=16)
    assert sr.shape == (160, 192, 3) and sr.dtype == np.uint8
    save_rgb(tmp_path / "in" / "x.png", lr)
    from quantnas.deploy.backends import load_upscaler
    from quantnas.deploy.upscale import upscale_files

    upscale_files(
        load_upscaler(res.best_path),
        [str(tmp_path / "in" / "x.png")],
        tmp_path / "out",
        tile=16,
        progress=False,
    )
    verb = load_rgb(tmp_path / "out" / "x_x4.png")
    assert np.array_equal(sr, verb)
    whole = api.upscale(tmp_path / "t", [lr], tile=0)[0]  # a run directory; untiled
    assert np.array_equal(whole, sr)  # tiling with the exact halo changes nothing


@pytest.mark.parametrize(
    ("images", "fragment"),
    [
        ([np.zeros((32, 32, 5), np.uint8)], "has shape (32, 32, 5)"),
        ([np.full((8, 8, 3), 2.0, np.float32)], "values in [2, 2]"),
        ([("a", np.zeros((8, 8, 3), np.uint8))] * 2, "the name 'a' is given twice"),
        (np.zeros((8, 8, 3), np.uint8), "expected a non-empty list"),
        ([], "expected a non-empty list"),
        (["x.png"], "is a str; expected an array"),
    ],
)
def test_bad_in_memory_images_are_one_line_errors(images, fragment):
    with pytest.raises(QuantNASError) as e:
        as_named_images(images, "train")
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_in_memory_training_with_holdout_is_refused(photos):
    with pytest.raises(QuantNASError, match="data.val=holdout"):
        JobData(tiny("data.val=holdout"), train=photos[0])


def test_a_finished_job_is_read_back_not_rerun(tmp_path, monkeypatch):
    cfg = tiny()
    first = Job(cfg, tmp_path / "j", resume=True).run()
    import quantnas.pipeline.report
    import quantnas.search.searcher
    import quantnas.training.trainer

    for mod, name in (
        (quantnas.search.searcher, "search"),
        (quantnas.training.trainer, "train"),
        (quantnas.pipeline.report, "evaluate_run"),
    ):
        monkeypatch.setattr(mod, name, lambda *a, **k: pytest.fail("stage ran again"))
    # the patches fail fast; the run's files show a rerun by any route
    state = (tmp_path / "j" / "state.json").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in sorted((tmp_path / "j").rglob("*.pt"))}
    again = Job(cfg, tmp_path / "j", resume=True).run()
    assert (tmp_path / "j" / "state.json").read_text() == state  # same stages, same seconds
    assert stamps and {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again.genotype == first.genotype and again.eval == json.loads(json.dumps(first.eval))
    assert again.train is None and first.train.network is not None


def test_the_supernet_is_built_once_per_run(tmp_path, monkeypatch):
    """The preflight's supernet (for the memory estimate) is the one the search trains; the
    only other supernet is the chooser's final-width BitOps table (a cost model).
    """
    import quantnas.search.choose
    from quantnas.search.supernet import Supernet

    built, cost_models = [], []
    real, real_build = Supernet.__init__, quantnas.search.choose.build_supernet

    def counted(self, *a, **k):
        built.append(self)
        real(self, *a, **k)

    def cost_model(cfg, **k):
        cost_models.append(k)
        return real_build(cfg, **k)

    monkeypatch.setattr(Supernet, "__init__", counted)
    monkeypatch.setattr(quantnas.search.choose, "build_supernet", cost_model)
    run_pipeline(tiny(), tmp_path / "r")
    assert cost_models == [{"final_width": True}]
    assert len(built) == 2
