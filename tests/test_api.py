"""The Python API: the README's example runs as written; the CLI's defaults."""

import math
import re
from pathlib import Path

import pytest
from skimage import data

import quantnas
from quantnas import api
from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import load_config
from quantnas.search.records import SearchResult
from quantnas.training.records import TrainResult

ROOT = Path(__file__).resolve().parent.parent


def readme_example() -> str:
    """The Python blocks of the README's "Python API" section, in order (one script)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)
    assert len(blocks) == 2
    return "\n".join(blocks)


def test_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)  # noqa: S102
    assert (tmp_path / "runs" / "api-search" / "best_arch.json").is_file()
    assert (tmp_path / "runs" / "api-train" / "best.pt").is_file()
    assert math.isfinite(scope["test_psnr"])
    assert scope["genotype"] == scope["found"].best
    assert isinstance(scope["found"], SearchResult) and isinstance(scope["trained"], TrainResult)
    model = scope["model"]
    assert isinstance(model, api.LoadedModel) and model.network is scope["net"]
    assert model.label == model.genotype.to_text() and model.path == scope["trained"].best_path
    assert scope["arch"].c_fixed == scope["cfg"].arch.c_fixed
    assert "test PSNR" in capsys.readouterr().out
    # the in-memory block: its test set is reported and scored alike; upscale gives x4
    assert set(scope["report"]["sets"]) == {"validation", "portrait"}
    assert scope["scores"]["portrait"]["psnr"] == scope["report"]["sets"]["portrait"]["psnr"]
    assert scope["sr"].shape == (128, 192, 3) and str(scope["sr"].dtype) == "uint8"


def test_load_config_has_the_cli_defaults():
    assert api.load_config() == load_config(preset="default")
    assert api.load_config(None) == load_config()
    assert quantnas.load_config is api.load_config
    assert quantnas.run is api.run and quantnas.load_model is api.load_model
    assert api.load_config(overrides=["seed=3"]).seed == 3


def test_evaluate_takes_the_eval_verbs_options(tmp_path):
    photo = {"portrait": [data.astronaut()[:96, :128]]}
    res = api.evaluate("bicubic", images=photo, scale=4, save_images=tmp_path / "sr")
    assert set(res) == {"portrait"} and math.isfinite(res["portrait"]["psnr"])
    assert len(list((tmp_path / "sr" / "portrait").iterdir())) == 1
    with pytest.raises(QuantNASError, match="--scale is required with --model bicubic"):
        api.evaluate("bicubic", images=photo)
