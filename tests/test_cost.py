import pytest
import torch
from torch import nn

from quantnas.pipeline.resolve import ArchConfig
from quantnas.quant.conv import QConv2d
from quantnas.search.supernet import Supernet
from quantnas.space.build import build_network
from quantnas.space.cost import SupernetCost, count_params, network_cost
from quantnas.space.genotype import PAPER_EXAMPLE, Genotype

PAPER_ARCH = ArchConfig(c_fixed=36, scale=4, body_cells=3, global_skip="none")


def _paper_bitops_by_hand(h, w):
    """BitOps of the paper example genotype with c=36, scale 4, 3 body cells, LR h x w.

    MACs per pixel = C_in * C_out * k * k / groups; BitOps = MACs * H * W * b * b.
    """
    px = h * w
    head0 = 3 * 36 * 5 * 5 // 3  # simple_5x5_grouped_3, 3 -> 36, 8 bits: 900
    head1 = 36 * 36 * 3 * 3  # simple_3x3, 36 -> 36, 8 bits: 11664
    up = 36 * 48 * 3 * 3 // 3  # simple_3x3_grouped_3, 36 -> 3*4*4=48, 8 bits: 5184
    body0 = 36 * 36 * 1 * 1 // 3  # simple_1x1_grouped_3, 2 bits: 432
    body1 = 36 * 36  # simple_1x1, 2 bits: 1296
    # skip decenc_3x3_2: 36 -> 18 -> 18 -> 36, 3x3 each, 2 bits: 5832 + 2916 + 5832
    skip = 36 * 18 * 9 + 18 * 18 * 9 + 18 * 36 * 9
    cells = 3
    bitops_8 = (head0 + head1 + up) * px * 8 * 8
    bitops_2 = cells * (body0 + body1 + skip) * px * 2 * 2
    return bitops_8 + bitops_2


@pytest.fixture(scope="module")
def paper_net():
    return build_network(PAPER_EXAMPLE, PAPER_ARCH)


@pytest.fixture(scope="module")
def paper_report(paper_net):
    return network_cost(paper_net, lr_size=32)


def test_paper_example_bitops_by_hand(paper_report):
    rep = paper_report
    expected = _paper_bitops_by_hand(32, 32)
    assert expected == 1_363_525_632  # the arithmetic above, written out
    assert rep.bitops == expected
    assert rep.lr_size == (32, 32)
    # MACs: same sum without the bit factors
    px = 32 * 32
    assert rep.macs == px * (900 + 11664 + 5184 + 3 * (432 + 1296 + 5832 + 2916 + 5832))
    # every conv is reported once with its geometry (2 head + 3*(2 body + 3 skip) + 1 up)
    assert len(rep.convs) == 18
    first = rep.convs[0]
    assert (first.c_in, first.c_out, first.kernel, first.groups) == (3, 36, (5, 5), 3)
    assert first.out_hw == (32, 32) and first.bitops == 900 * px * 64
    summary = rep.summary()
    assert summary["bitops"] == expected and summary["lr_size"] == [32, 32]
    assert "convs" not in summary


def test_paper_example_params_and_size(paper_net, paper_report):
    net, rep = paper_net, paper_report
    w8 = 900 + 11664 + 5184
    w2 = 3 * (432 + 1296 + 5832 + 2916 + 5832)
    assert rep.params == w8 + w2 == 66672
    assert count_params(net) == rep.params  # LSQ steps are not counted
    assert rep.size_bytes == (w8 * 8 + w2 * 2) / 8


def test_bitops_scale_with_input_area(paper_net, paper_report):
    b32 = paper_report.bitops
    assert network_cost(paper_net, lr_size=64).bitops == 4 * b32
    rect = network_cost(paper_net, lr_size=(16, 48))
    assert rect.bitops == b32 * 16 * 48 // (32 * 32)
    assert rect.lr_size == (16, 48)


def test_32bit_layer_and_hr_tail_by_hand():
    g = Genotype.from_pairs(
        {
            "head": [("simple_3x3", 32)],
            "body": [("simple_1x1", 8)],
            "skip": [("simple_1x1", 4)],
            "upsample": [("simple_1x1", 2)],
            "tail": [("simple_3x3", 16)],
        }
    )
    arch = ArchConfig(c_fixed=12, scale=2, body_cells=1, global_skip="none")
    rep = network_cost(build_network(g, arch), lr_size=8)
    lr_px, hr_px = 8 * 8, 16 * 16
    expected = (
        3 * 12 * 9 * lr_px * 32 * 32  # head 3->12 3x3 at 32 bits counts 32*32
        + 12 * 12 * lr_px * 8 * 8  # body 1x1
        + 12 * 12 * lr_px * 4 * 4  # skip 1x1
        + 12 * 12 * lr_px * 2 * 2  # upsample 12 -> 3*2*2 = 12, 1x1
        + 3 * 3 * 9 * hr_px * 16 * 16  # tail 3->3 3x3 at HR (16x16)
    )
    assert rep.bitops == expected
    by_name = {c.name: c for c in rep.convs}
    head = [c for c in by_name.values() if c.c_in == 3 and c.c_out == 12][0]
    assert head.bits_w == head.bits_a == 32
    tail = [c for c in by_name.values() if c.c_in == 3 and c.c_out == 3][0]
    assert tail.out_hw == (16, 16) and tail.macs == 81 * hr_px


def test_size_bytes_one_conv_net():
    net = nn.Sequential(QConv2d(bits=4, c_in=3, c_out=6, kernel_size=3))
    rep = network_cost(net, lr_size=(5, 7))
    assert rep.params == 6 * 3 * 9
    assert rep.size_bytes == 162 * 4 / 8
    assert rep.bitops == 162 * 35 * 16 and rep.macs == 162 * 35
    # non-conv parameters count at 32 bits
    net_bn = nn.Sequential(QConv2d(bits=4, c_in=3, c_out=6, kernel_size=3), nn.BatchNorm2d(6))
    rep_bn = network_cost(net_bn, lr_size=(5, 7))
    assert rep_bn.params == 162 + 12
    assert rep_bn.size_bytes == 81 + 12 * 4
    assert rep_bn.bitops == rep.bitops
    # the network is left in its previous mode
    net_bn.train()
    network_cost(net_bn, lr_size=4)
    assert net_bn.training


def test_conv_run_twice_counts_twice():
    conv = QConv2d(bits=8, c_in=3, c_out=3, kernel_size=1)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return self.conv(self.conv(x))

    assert network_cost(Twice(), lr_size=4).bitops == 2 * 9 * 16 * 64


# ---------------------------------------------------------------------------- SupernetCost


def _one_hot_check(arch, lr_size, seeds):
    torch.manual_seed(0)
    sn = Supernet(arch)
    cost = SupernetCost(sn, lr_size=lr_size)
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        probs = {}
        with torch.no_grad():
            for key in sn.alpha.keys():
                n_ops, n_bits = sn.alpha.shapes[key]
                idx = int(torch.randint(n_ops * n_bits, (1,), generator=gen))
                logits = sn.alpha.logits(key)
                logits.zero_()
                logits[idx] = 5.0
                p = torch.zeros(n_ops * n_bits)
                p[idx] = 1.0
                probs[key] = p.view(n_ops, n_bits)
        g = sn.export()
        net_bitops = network_cost(build_network(g, arch), lr_size=lr_size).bitops
        assert cost.expected_bitops(probs).item() == float(net_bitops), g.to_text()
    return sn, cost


def test_supernet_cost_one_hot_matches_exported_basic():
    arch = ArchConfig(
        c_fixed=12,
        scale=2,
        body_cells=2,
        bits=[2, 4, 8],
        arch_pattern={"head": 2, "body": 2, "skip": 1, "upsample": 1, "tail": 1},
    )
    sn, cost = _one_hot_check(arch, 8, seeds=range(4))
    # body alphas are shared by the 2 cells: the body keys' MACs count both instances
    assert sorted(k for k in cost.macs if k.startswith("body")) == ["body.0", "body.1"]
    assert cost.fixed_bitops == 0.0
    keys = [layer.key for layer in sn.mixed_layers()]
    assert keys.count("body.0") == 2 and keys.count("skip.0") == 2 and keys.count("head.0") == 1
    assert len(cost.macs["body.0"]) == sn.alpha.shapes["body.0"][0]
    assert sn.mixed_layers()[keys.index("body.0")].op_names[0] == "simple_1x1"
    # body.0 op 0 is simple_1x1 12->12 at 8x8, run once in each of the 2 cells
    assert cost.macs["body.0"][0].item() == 2 * 144 * 64
    # skip.0 op 0 (simple_1x1) likewise; head.0 op 0 (simple_3x3, 3->12) once
    assert cost.macs["skip.0"][0].item() == 2 * 144 * 64
    assert cost.macs["head.0"][0].item() == 3 * 12 * 9 * 64
    # the tail runs at HR (16x16): tail.0 op 0 is simple_1x1 3->3
    assert cost.macs["tail.0"][0].item() == 9 * 256


def test_supernet_cost_one_hot_matches_exported_rfdn():
    arch = ArchConfig(space="rfdn", c_fixed=24, body_cells=2)
    _, cost = _one_hot_check(arch, 16, seeds=[3])
    # the fixed 8-bit fusion/ESA convs are a constant > 0
    assert cost.fixed_bitops > 0
    assert cost.fixed_bitops % 64 == 0


def test_expected_bitops_differentiable_and_lower_bits_cheaper():
    arch = ArchConfig(c_fixed=12, scale=2, body_cells=2, bits=[4, 8])
    sn = Supernet(arch)
    cost = SupernetCost(sn, lr_size=8)
    probs = sn.probabilities()
    e = cost.expected_bitops(probs)
    assert e.dtype == torch.float64 and e.requires_grad
    e.backward()
    # d E / d alpha_(o,b) = p(o,b) * (cost(o,b) - E_layer) for a softmax over (o, b)
    for key in sn.alpha.keys():
        p = probs[key].detach().double().flatten()
        table = (cost.macs[key][:, None] * cost.bit_cost[None]).flatten()
        expected = p * (table - (p * table).sum())
        torch.testing.assert_close(
            sn.alpha.logits(key).grad.double(), expected, rtol=1e-4, atol=1e-3
        )
        assert sn.alpha.logits(key).grad.abs().sum() > 0
    # moving mass to 4 bits lowers E[BitOps]; a gradient step on alphas lowers it too
    uniform = {k: v.detach() for k, v in probs.items()}
    low = {}
    for k, p in uniform.items():
        q = p.clone()
        q[:, 0] *= 1.5
        q[:, 1] *= 0.5
        low[k] = q
    assert cost.expected_bitops(low) < cost.expected_bitops(uniform)
    with torch.no_grad():
        for a in sn.alphas():
            a -= 1e-9 * a.grad
    assert cost.expected_bitops(sn.probabilities()) < e.detach()


def test_expected_bitops_uniform_is_mean_over_pairs():
    arch = ArchConfig(c_fixed=12, scale=2, body_cells=1, bits=[2, 8])
    sn = Supernet(arch)
    cost = SupernetCost(sn, lr_size=8)
    e = cost.expected_bitops(sn.probabilities()).item()
    manual = 0.0
    for macs in cost.macs.values():
        n_ops = len(macs)
        manual += sum(m * (4 + 64) for m in macs.tolist()) / (n_ops * 2)
    assert e == pytest.approx(manual, rel=1e-12)
