"""The config resolved once into specs: each spec holds what its layer reads, with the
same values the layer read from the whole config before."""

import dataclasses

import pytest
import torch

from quantnas.config.specs import (
    DataSpec,
    StageSize,
    data_spec,
    job_spec,
    stage_size,
    supernet_spec,
)
from quantnas.config.types import Config
from quantnas.data.job_data import JobData
from quantnas.data.roles import training_images, validation_images
from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import load_config
from quantnas.search.setup import build_supernet
from quantnas.space.footprint import check_network_budget


def test_data_spec_resolves_auto_validation_once():
    assert data_spec(Config()).val == "embedded:val"  # embedded training photos
    cfg = load_config(overrides=["data.train=some/folder"])
    assert data_spec(cfg).val == "holdout"
    cfg = load_config(overrides=["data.train=some/folder", "data.val=other/folder"])
    assert data_spec(cfg).val == "other/folder"


def test_data_spec_carries_the_data_section_and_the_scale():
    cfg = load_config(overrides=["arch.scale=2", "data.lr_crop=20", "data.gray=reject"])
    spec = data_spec(cfg)
    assert (spec.scale, spec.lr_crop, spec.gray) == (2, 20, "reject")
    fields = {f.name for f in dataclasses.fields(DataSpec)} - {"scale"}
    assert fields <= {f.name for f in dataclasses.fields(type(cfg.data))}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.lr_crop = 8  # type: ignore[misc]


def test_readers_give_the_same_images_from_a_spec_and_from_a_config():
    cfg = load_config(preset="tiny")
    spec = data_spec(cfg)
    assert [n for n, _ in training_images(spec)] == [n for n, _ in training_images(cfg)]
    got = [(n, a.tobytes()) for n, a in validation_images(spec)]
    assert got == [(n, a.tobytes()) for n, a in validation_images(cfg)]
    a, b = JobData(spec).val_dataset(), JobData(cfg).val_dataset()
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):  # (name, LR, HR) or the like: tensors compared
        for u, v in zip(x, y, strict=True):
            assert torch.equal(u, v) if torch.is_tensor(u) else u == v


def test_stage_size_resolves_the_search_width_and_crop():
    cfg = load_config(overrides=["search.c_fixed=6", "search.lr_crop=12", "arch.c_fixed=24"])
    s, t = stage_size(cfg, "search"), stage_size(cfg, "train")
    assert (s.arch.c_fixed, s.lr_crop, s.batch) == (6, 12, cfg.search.batch_size)
    assert (t.arch.c_fixed, t.lr_crop, t.batch) == (24, cfg.data.lr_crop, cfg.train.batch_size)
    # every size key, each with the size its default value gives
    assert list(s.keys)[0] == "search.c_fixed" and list(t.keys)[0] == "arch.c_fixed"
    assert s.keys["search.c_fixed"].arch.c_fixed == 24  # null: the final width
    assert t.keys["arch.c_fixed"].arch.c_fixed == Config().arch.c_fixed
    assert s.keys["search.lr_crop"].lr_crop == cfg.data.lr_crop
    assert list(s.keys)[-1] == "search.batch_size"


def test_budget_of_a_stage_size_equals_the_budget_of_its_config():
    cfg = load_config(overrides=["search.c_fixed=18", "arch.body_cells=3"])
    for stage in ("search", "train"):
        assert check_network_budget(stage_size(cfg, stage)) == check_network_budget(cfg, stage)


def test_budget_names_the_key_out_of_proportion():
    cfg = load_config(overrides=["arch.arch_pattern.body=40000", "run.max_memory_gb=1"])
    with pytest.raises(QuantNASError, match="arch.arch_pattern.body"):
        check_network_budget(stage_size(cfg, "train"), max_memory_gb=1.0)
    assert isinstance(stage_size(cfg, "train"), StageSize)


def test_supernet_from_its_spec_equals_the_supernet_of_its_config():
    cfg = load_config(preset="tiny")
    spec = supernet_spec(cfg)
    assert spec.transform == cfg.search.alpha_transform
    assert spec.arch.output_scale is (cfg.arch.output_scale and cfg.search.output_scale)
    torch.manual_seed(0)
    a = build_supernet(spec).state_dict()
    torch.manual_seed(0)
    b = build_supernet(cfg).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_job_spec_gathers_every_spec_of_a_job():
    cfg = load_config(preset="tiny", overrides=["seed=3", "run.max_memory_gb=5"])
    spec = job_spec(cfg)
    assert spec.data == data_spec(cfg) and spec.supernet == supernet_spec(cfg)
    assert spec.search_size == stage_size(cfg, "search")
    assert (spec.seed, spec.device, spec.max_memory_gb) == (3, "cpu", 5.0)
