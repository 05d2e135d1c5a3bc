"""Original behaviours restored for the paper presets, checked against hand-computed numbers."""

import numpy as np
import pytest
import torch

from quantnas.data.images import save_rgb
from quantnas.data.roles import holdout_names, training_images, validation_images
from quantnas.errors import QuantNASError
from quantnas.models.rfdn import ESA
from quantnas.pipeline.resolve import ArchConfig, load_config
from quantnas.quant.conv import QConv2d
from quantnas.search.supernet import Supernet
from quantnas.space.build import DEFAULT_PRIMITIVES
from quantnas.space.cost import SupernetCost

TINY_BASIC = ArchConfig(
    space="basic",
    c_fixed=6,
    scale=2,
    body_cells=1,
    bits=[4, 8],
    global_skip="none",
    output_scale=False,
    arch_pattern={"head": 1, "body": 1, "skip": 1, "upsample": 1, "tail": 0},
    primitives={
        "head": ["simple_3x3"],
        "body": ["simple_1x1"],
        "skip": ["simple_1x1"],
        "upsample": ["simple_3x3"],
    },
)


def test_linear_bits_penalty_by_hand():
    # LR 4x4 (16 pixels): head 3->6 3x3 = 2592 MACs, body 6->6 1x1 = 576, skip 576,
    # upsample 6->12 3x3 = 10368; 14112 MACs. Uniform p = 1/2 over bits (4, 8):
    # linear cost = 14112 * (4 + 8) / 2 = 84672; BitOps = 14112 * (16 + 64) / 2 = 564480.
    sn = Supernet(TINY_BASIC)
    cost = SupernetCost(sn, lr_size=4)
    probs = sn.probabilities()
    assert cost.fixed_bitops == 0.0
    assert float(cost.penalty_cost(probs, "linear_bits").detach()) == pytest.approx(84672)
    assert float(cost.penalty_cost(probs, "bitops").detach()) == pytest.approx(564480)
    # all mass on 4 bits: 14112 * 4
    hot = {k: torch.tensor([[1.0, 0.0]]) for k in probs}
    assert float(cost.expected_linear_bits(hot)) == pytest.approx(14112 * 4)
    with pytest.raises(QuantNASError, match="penalty_cost"):
        cost.penalty_cost(probs, "flops")


def test_linear_bits_penalty_leaves_fixed_layers_out():
    arch = ArchConfig(
        space="rfdn",
        c_fixed=12,
        scale=2,
        body_cells=1,
        bits=[4, 8],
        primitives={b: ["simple_1x1"] for b in ("body", "skip", "upsample", "tail")},
    )
    sn = Supernet(arch)
    cost = SupernetCost(sn, lr_size=16)
    probs = sn.probabilities()
    assert cost.fixed_bitops > 0  # fusion and ESA convs at 8 bits
    searchable = float(cost.expected_bitops(probs).detach()) - cost.fixed_bitops
    # uniform over (4, 8): BitOps per MAC = 40, linear bits per MAC = 6
    assert float(cost.expected_linear_bits(probs).detach()) == pytest.approx(searchable * 6 / 40)


def test_esa_layer_list_matches_the_original():
    esa = ESA(24, lambda **kw: QConv2d(bits=8, **kw))
    plan = [
        (name, m.c_in, m.c_out, m.kernel_size, m.stride, m.padding)
        for name, m in esa.named_children()
    ]
    assert plan == [
        ("c1", 24, 6, (1, 1), (1, 1), (0, 0)),
        ("c_f", 6, 6, (1, 1), (1, 1), (0, 0)),
        ("c_max", 6, 6, (3, 3), (1, 1), (1, 1)),
        ("c2", 6, 6, (3, 3), (2, 2), (0, 0)),
        ("c3", 6, 6, (3, 3), (1, 1), (1, 1)),
        ("c3_", 6, 6, (3, 3), (1, 1), (1, 1)),
        ("c4", 6, 24, (1, 1), (1, 1), (0, 0)),
    ]
    # conv_max runs on the pooled map, between the pool and conv3
    order = []
    for name, m in esa.named_children():
        m.register_forward_hook(lambda mod, i, o, name=name: order.append(name))
    esa(torch.rand(1, 24, 32, 32))
    assert order == ["c1", "c2", "c_max", "c3", "c3_", "c_f", "c4"]


def test_rfdn_adq_wraps_cells_not_the_tail():
    arch = ArchConfig(space="rfdn", c_fixed=12, scale=2, body_cells=2, skip_mode=False)
    sn = Supernet(arch)
    assert all(cell.adq for cell in sn.net.cells)
    assert not sn.net.tail.adq


def test_paper_presets_match_the_original_configs():
    rfdn = load_config(preset="paper-rfdn")
    assert (rfdn.arch.space, rfdn.arch.c_fixed, rfdn.arch.body_cells) == ("rfdn", 48, 4)
    assert rfdn.arch.skip_mode is False and rfdn.arch.bits == [4, 8]
    assert rfdn.arch.primitives == {
        k: v for k, v in DEFAULT_PRIMITIVES["rfdn"].items() if k in rfdn.arch.primitives
    }
    s = rfdn.search
    assert (s.epochs, s.warm_up, s.batch_size, s.search_subsample) == (20, 9, 32, 0.7)
    assert (s.mode, s.noise_mix, s.sparse_ramp, s.penalty_cost) == (
        "noise",
        "original",
        "original",
        "linear_bits",
    )
    assert (s.optim.lr, s.alpha_optim.lr, s.sparse_coef) == (1e-3, 3e-4, 1e-3)
    assert (rfdn.train.epochs, rfdn.train.optim.lr, rfdn.data.lr_crop) == (30, 1e-4, 45)
    basic = load_config(preset="paper-basic")
    assert (basic.arch.c_fixed, basic.arch.body_cells, basic.arch.skip_mode) == (36, 3, False)
    assert basic.arch.primitives["skip"] == basic.arch.primitives["body"]
    assert "DWS_3x3" in basic.arch.primitives["body"]
    assert basic.arch.primitives["tail"] == basic.arch.primitives["head"]
    for cfg in (rfdn, basic):
        # no preset lets a test set choose anything: validation is a separate role
        assert cfg.data.val == "auto" and cfg.data.benchmarks is None


def _folder(tmp_path, names):
    rng = np.random.default_rng(0)
    for n in names:
        save_rgb(tmp_path / f"{n}.png", rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    return str(tmp_path)


def test_holdout_is_fixed_by_name_and_disjoint(tmp_path):
    names = [f"img{i:02d}" for i in range(12)]
    folder = _folder(tmp_path, names)
    cfg = load_config(overrides=[f"data.train={folder}"])
    assert cfg.data.val == "auto"
    train = [n for n, _ in training_images(cfg)]
    val = [n for n, _ in validation_images(cfg)]
    assert len(val) == 1 and not set(train) & set(val)
    assert sorted(train + val) == names
    # the choice depends only on the names, not on their order or the seed
    assert holdout_names(list(reversed(names)), 0.1) == val
    cfg2 = load_config(overrides=[f"data.train={folder}", "seed=5", "data.val_holdout=0.25"])
    assert len(validation_images(cfg2)) == 3
    with pytest.raises(QuantNASError, match="at least 2 training images"):
        holdout_names(["a"], 0.1)


def test_validation_may_not_be_trained_on(tmp_path):
    cfg = load_config(overrides=["data.train=embedded:coffee,rocket"])
    with pytest.raises(QuantNASError, match="'coffee' is also in data.train"):
        training_images(cfg)
    folder = _folder(tmp_path, ["a", "b"])
    cfg = load_config(overrides=[f"data.train={folder}", f"data.val={folder}"])
    with pytest.raises(QuantNASError, match="is the training folder"):
        training_images(cfg)


def test_space_registry_declares_each_space():
    from quantnas.space.catalog import available_spaces, get_space

    assert available_spaces() == ("basic", "rfdn")
    basic, rfdn = get_space("basic"), get_space("rfdn")
    assert basic.shares_cell_alphas and not rfdn.shares_cell_alphas
    assert (basic.fixed_bits, rfdn.fixed_bits) == (None, 8)
    assert rfdn.min_lr_side == 15 and basic.min_lr_side == 2
    arch = ArchConfig(space="rfdn", c_fixed=12, body_cells=2)
    assert rfdn.counts(arch) == {"head": 0, "body": 8, "skip": 6, "upsample": 1, "tail": 1}
    assert rfdn.channels(arch, "body", 3) == (12, 6)
    assert basic.picture_cells(ArchConfig(body_cells=3)) == 3 and rfdn.picture_cells(arch) == 1
    with pytest.raises(QuantNASError, match=r"arch.space: unknown search space 'vit'; expected"):
        get_space("vit")
    with pytest.raises(QuantNASError, match="config key arch.space: 'vit'"):
        load_config(overrides=["arch.space=vit"])
