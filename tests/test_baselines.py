"""Uniformly quantized baselines (built from QConv2d, costed by the same model), random
genotypes of the space and uniform-precision copies of a genotype."""

import pytest
import torch

from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import ArchConfig, load_config
from quantnas.quant.conv import QConv2d
from quantnas.quant.quantizers import LSQ, ImageQuantizer
from quantnas.space import genotype as gt
from quantnas.space.baselines import BASELINES, build_baseline
from quantnas.space.build import build_network, layer_counts, primitives, random_genotype
from quantnas.space.cost import network_cost


def test_espcn_bitops_by_hand():
    arch = ArchConfig(scale=4)
    # 5x5 3->64, 3x3 64->32, 3x3 32->48 at a 32x32 LR input, no stride
    macs_px = 3 * 64 * 25 + 64 * 32 * 9 + 32 * 48 * 9
    assert macs_px == 37056
    for bits in (4, 8, 32):
        cost = network_cost(build_baseline("espcn", arch, bits), lr_size=32)
        assert cost.macs == macs_px * 32 * 32
        assert cost.bitops == macs_px * 32 * 32 * bits * bits
    # 8 bits: 2.43 GBitOps; params = conv weights + the output scale
    assert network_cost(build_baseline("espcn", arch, 8)).bitops == 2_428_502_016
    assert network_cost(build_baseline("espcn", arch, 8)).params == macs_px + 1


def test_fsrcnn_and_edsr_bitops_by_hand():
    arch = ArchConfig(scale=4)
    f = 3 * 56 * 25 + 56 * 12 + 4 * 12 * 12 * 9 + 12 * 56 + 56 * 48 * 9
    assert network_cost(build_baseline("fsrcnn", arch, 4), lr_size=32).bitops == f * 1024 * 16
    e = 3 * 32 * 9 + 4 * 2 * 32 * 32 * 9 + 32 * 32 * 9 + 32 * 48 * 9
    assert network_cost(build_baseline("edsr", arch, 8), lr_size=(16, 24)).bitops == e * 384 * 64


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_quantized_uniformly_and_run(name):
    arch = ArchConfig(scale=4)
    net = build_baseline(name, arch, 4)
    convs = [m for m in net.modules() if isinstance(m, QConv2d)]
    assert convs and all(c.bits == 4 and isinstance(c.w_quant, LSQ) for c in convs)
    # only the conv that reads the image uses the image quantizer
    assert [isinstance(c.a_quant, ImageQuantizer) for c in convs].count(True) == 1
    assert isinstance(convs[0].a_quant, ImageQuantizer)
    x = torch.rand(2, 3, 10, 12)
    y = net(x)
    assert y.shape == (2, 3, 40, 48)
    # zero-initialised output scale: starts exactly at the bicubic global skip
    from quantnas.models.blocks import upscale_input

    assert torch.allclose(y, upscale_input(x, 4, "bicubic"))
    y.sum().backward()
    assert all(c.weight.grad is not None for c in convs)
    hwgq = build_baseline(name, ArchConfig(scale=2, input_quant="hwgq", global_skip="none"), 8)
    assert not any(isinstance(m, ImageQuantizer) for m in hwgq.modules())
    assert hwgq(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)


def test_build_baseline_errors():
    with pytest.raises(QuantNASError, match="sweep.baselines: unknown baseline 'vdsr'; expected"):
        build_baseline("vdsr", ArchConfig(), 8)
    with pytest.raises(QuantNASError, match="unsupported bit-width 5"):
        build_baseline("espcn", ArchConfig(), 5)


def test_random_genotype_seeded_from_the_space():
    cfg = load_config(preset="default")
    arch = cfg.arch
    a, b = random_genotype(arch, 3), random_genotype(arch, 3)
    assert a == b
    draws = [random_genotype(arch, s) for s in range(20)]
    assert len({d.to_text() for d in draws}) > 15
    for d in draws:
        assert d.counts() == {k: v for k, v in layer_counts(arch).items()}
        for block, layers in d.blocks.items():
            for c in layers:
                assert c.op in primitives(arch, block) and c.bits in arch.bits
        build_network(d, arch)
    bits = {c.bits for d in draws for ls in d.blocks.values() for c in ls}
    assert bits == set(arch.bits)


def test_uniform_copy_of_a_genotype():
    geno = gt.PAPER_EXAMPLE
    u4 = geno.at_bits(4)
    assert [c.op for ls in u4.blocks.values() for c in ls] == [
        c.op for ls in geno.blocks.values() for c in ls
    ]
    assert {c.bits for ls in u4.blocks.values() for c in ls} == {4}
    with pytest.raises(QuantNASError, match="unsupported bit-width"):
        geno.at_bits(5)
