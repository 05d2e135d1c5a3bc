import pytest
import torch
import torch.nn.functional as F
from torch import nn

from quantnas.errors import QuantNASError
from quantnas.models import BasicSRNet, Residual
from quantnas.models.basic import basic_channels
from quantnas.models.blocks import ParallelSum, upscale_input
from quantnas.models.rfdn import MIN_LR_SIZE, rfdn_channels
from quantnas.pipeline.resolve import ArchConfig
from quantnas.quant.conv import QConv2d
from quantnas.quant.mixed import MixedQConv2d
from quantnas.search.supernet import Alphas, MixedLayer, Supernet
from quantnas.space.build import build_network, set_quantized
from quantnas.space.genotype import Genotype


def _geno(tail=0, body=2):
    return Genotype.from_pairs(
        {
            "head": [("simple_3x3", 8), ("simple_3x3", 4)],
            "body": [("simple_3x3", 4)] * body,
            "skip": [("simple_1x1", 8)],
            "upsample": [("simple_3x3", 8)],
            "tail": [("simple_3x3", 8)] * tail,
        }
    )


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("tail", [0, 1, 3])
def test_basic_output_shapes(scale, tail):
    torch.manual_seed(0)
    arch = ArchConfig(c_fixed=6, scale=scale, body_cells=1)
    net = build_network(_geno(tail=tail), arch)
    out = net(torch.rand(2, 3, 5, 7))
    assert out.shape == (2, 3, 5 * scale, 7 * scale)
    assert torch.isfinite(out).all()
    tails = [m for m in net.tail.modules() if isinstance(m, QConv2d)]
    assert len(tails) == tail
    if tail == 1:
        assert (tails[0].c_in, tails[0].c_out) == (3, 3)
    if tail == 3:
        assert [(c.c_in, c.c_out) for c in tails] == [(3, 6), (6, 6), (6, 3)]
    # upsample's last conv produces 3*s^2 channels for the PixelShuffle
    ups = [m for m in net.upsample.modules() if isinstance(m, QConv2d)]
    assert ups[-1].c_out == 3 * scale * scale


def test_basic_channels_table():
    assert basic_channels("head", 0, 2, c=8, scale=2) == (3, 8)
    assert basic_channels("head", 1, 2, c=8, scale=2) == (8, 8)
    assert basic_channels("upsample", 0, 2, c=8, scale=3) == (8, 8)
    assert basic_channels("upsample", 1, 2, c=8, scale=3) == (8, 27)
    assert basic_channels("tail", 0, 1, c=8, scale=3) == (3, 3)
    with pytest.raises(QuantNASError):
        basic_channels("neck", 0, 1, c=8, scale=3)


def test_global_skip_adds_upscaled_lr():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 6, 6)
    base = build_network(_geno(), ArchConfig(c_fixed=6, scale=2, body_cells=1, global_skip="none"))
    state = base.state_dict()
    for mode in ("nearest", "bicubic"):
        arch = ArchConfig(c_fixed=6, scale=2, body_cells=1, global_skip=mode, output_scale=False)
        net = build_network(_geno(), arch)
        net.load_state_dict(state)
        torch.testing.assert_close(net(x), base(x) + upscale_input(x, 2, mode))
    torch.testing.assert_close(
        upscale_input(x, 2, "nearest"), x.repeat_interleave(2, -1).repeat_interleave(2, -2)
    )


def test_adq_on_and_off():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 6, 6)
    plain = build_network(
        _geno(tail=1), ArchConfig(c_fixed=6, scale=2, body_cells=2, skip_mode=True)
    )
    adq = build_network(
        _geno(tail=1), ArchConfig(c_fixed=6, scale=2, body_cells=2, skip_mode=False)
    )
    res_plain = [m for m in plain.modules() if isinstance(m, Residual)]
    res_adq = [m for m in adq.modules() if isinstance(m, Residual)]
    # 2 cells + whole body + tail
    assert len(res_plain) == len(res_adq) == 4
    assert not any(r.adq for r in res_plain)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    for r in res_adq:
        assert r.adq and isinstance(r.bn, nn.BatchNorm2d)
        assert r.w.item() == 1.5 and r.c.item() == 0.0
        assert isinstance(r.w, nn.Parameter) and isinstance(r.c, nn.Parameter)
    assert [r.bn.num_features for r in res_adq] == [6, 6, 6, 3]
    for net in (plain, adq):
        out = net(x)
        assert out.shape == (2, 3, 12, 12) and torch.isfinite(out).all()
        out.abs().mean().backward()
    assert all(r.w.grad is not None for r in res_adq)


def test_residual_adq_formula():
    torch.manual_seed(0)
    fn = nn.Conv2d(3, 3, 1)
    res = Residual(fn, 3, adq=True)
    with torch.no_grad():
        res.w.fill_(0.7)
        res.c.fill_(0.2)
    x = torch.randn(4, 3, 5, 5) * 2 + 1
    out = res(x)
    std = x.flatten(1).std(dim=1).view(-1, 1, 1, 1)
    bn = F.batch_norm(x, None, None, res.bn.weight, res.bn.bias, training=True)
    torch.testing.assert_close(out, fn(bn) * (0.7 * std + 0.2) + x)
    plain = Residual(fn, 3, branch_scale=0.2)
    torch.testing.assert_close(plain(x), x + 0.2 * fn(x))


class _Tagged(nn.Module):
    """A deterministic 'layer': multiplies by a constant and keeps channels."""

    def __init__(self, factor, c_in, c_out):
        super().__init__()
        self.factor, self.c_out = factor, c_out
        assert c_in == c_out

    def forward(self, x):
        return x * self.factor


@pytest.mark.parametrize("cell_type,body_scale", [("A", 0.2), ("B", 1.0)])
def test_cell_types(cell_type, body_scale):
    factors = {"skip": 3.0, "body": 5.0}

    def layer_fn(*, block, index, c_in, c_out):
        if block in factors:
            return _Tagged(factors[block], c_in, c_out)
        return nn.Conv2d(c_in, c_out, 3, padding=1)

    counts = {"head": 1, "body": 1, "skip": 1, "upsample": 1, "tail": 0}
    net = BasicSRNet(layer_fn, counts, c=4, scale=2, body_cells=1, cell_type=cell_type)
    cell = net.body.fn[0]
    assert isinstance(cell.fn, ParallelSum) and cell.fn.scales == [1.0, body_scale]
    x = torch.randn(1, 4, 3, 3)
    # cell: x + skip(x) + scale * body(x); the whole body is another residual
    torch.testing.assert_close(cell(x), x + 3 * x + body_scale * 5 * x)
    torch.testing.assert_close(net.body(x), x + (x + 3 * x + body_scale * 5 * x))
    if cell_type == "A":
        # type A has 3 body layers in the spec; the topology takes any count
        counts3 = {**counts, "body": 3}
        net3 = BasicSRNet(layer_fn, counts3, c=4, scale=2, body_cells=1, cell_type="A")
        torch.testing.assert_close(net3.body.fn[0](x), x + 3 * x + 0.2 * 125 * x)


def test_basic_errors():
    counts = {"head": 1, "body": 1, "skip": 1, "upsample": 1, "tail": 0}

    def layer_fn(*, block, index, c_in, c_out):
        return nn.Conv2d(c_in, c_out, 1)

    with pytest.raises(QuantNASError, match="cell_type"):
        BasicSRNet(layer_fn, counts, c=4, scale=2, body_cells=1, cell_type="C")
    with pytest.raises(QuantNASError, match="body_cells"):
        BasicSRNet(layer_fn, counts, c=4, scale=2, body_cells=0)
    with pytest.raises(QuantNASError, match="'upsample' needs at least one layer"):
        BasicSRNet(layer_fn, {**counts, "upsample": 0}, c=4, scale=2, body_cells=1)


def test_set_quantized_switches_all_convs():
    net = build_network(_geno(tail=1), ArchConfig(c_fixed=6, scale=2, body_cells=1))
    convs = [m for m in net.modules() if isinstance(m, QConv2d)]
    set_quantized(net, False)
    assert all(not c.quantized and c.bits_w == 32 for c in convs)
    with torch.no_grad():
        for c in convs:
            c.weight.mul_(3.0)
    set_quantized(net, True)
    for c in convs:
        assert c.quantized
        mean_abs = c.weight.abs().mean(dim=(1, 2, 3))
        torch.testing.assert_close(
            c.w_quant.step.flatten(), 2 * mean_abs / (2 ** (c.bits - 1) - 1) ** 0.5
        )


# ---------------------------------------------------------------------------- supernet

SMALL = dict(
    c_fixed=6,
    scale=2,
    body_cells=2,
    bits=[4, 8],
    arch_pattern={"head": 1, "body": 2, "skip": 1, "upsample": 1, "tail": 1},
    primitives={
        "head": ["simple_3x3", "simple_1x1"],
        "body": ["simple_1x1", "simple_3x3", "skip_connect"],
        "skip": ["simple_1x1", "zero"],
        "upsample": ["simple_3x3", "simple_1x1"],
        "tail": ["simple_1x1", "simple_3x3"],
    },
)


def _supernet(**kw):
    torch.manual_seed(0)
    return Supernet(ArchConfig(**SMALL), **kw)


def test_supernet_parameter_partition():
    sn = _supernet()
    w_ids = [id(p) for p in sn.weights()]
    a_ids = [id(p) for p in sn.alphas()]
    all_ids = [id(p) for p in sn.parameters()]
    assert len(set(w_ids)) == len(w_ids) and len(set(a_ids)) == len(a_ids)
    assert not set(w_ids) & set(a_ids)
    assert set(w_ids) | set(a_ids) == set(all_ids)
    assert [n for n, _ in sn.named_weights()] == [
        n for n, p in sn.named_parameters() if id(p) in set(w_ids)
    ]
    # one alpha vector per searchable layer key, shared by the body cells
    assert sorted(sn.alpha.keys()) == [
        "body.0",
        "body.1",
        "head.0",
        "skip.0",
        "tail.0",
        "upsample.0",
    ]
    assert len(a_ids) == 6
    assert sn.alpha.logits("body.0").shape == (3 * 2,)
    # LSQ steps are weights (trained and saved)
    assert any(n.endswith(".step") for n, _ in sn.named_weights())
    # the 2 body cells use distinct MixedLayer objects (own weights) with the same key
    body0 = [layer for layer in sn.mixed_layers() if layer.key == "body.0"]
    assert len(body0) == 2 and body0[0] is not body0[1]


def test_alphas_start_at_zero_uniform():
    sn = _supernet()
    for a in sn.alphas():
        assert (a == 0).all()
    probs = sn.probabilities()
    assert probs["body.0"].shape == (3, 2)
    for p in probs.values():
        torch.testing.assert_close(p, torch.full_like(p, 1.0 / p.numel()))


def test_supernet_forward_backward():
    sn = _supernet()
    x = torch.rand(2, 3, 6, 6)
    out = sn(x)
    assert out.shape == (2, 3, 12, 12)
    if sn.net.out_scale is not None:
        # ReZero output scale: the network starts exactly at its global skip, so alphas get
        # no gradient before the first weight step moves the scale off zero
        torch.testing.assert_close(out, upscale_input(x, 2, "bicubic"))
        with torch.no_grad():
            sn.net.out_scale.fill_(1.0)
        out = sn(x)
    out.abs().mean().backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in sn.alphas())


def test_supernet_distribution_lives_for_one_forward_pass():
    # the (op, bit) distribution is set for one forward pass and cleared afterwards, so the
    # inner network run on its own cannot silently reuse the previous step's distribution
    sn = _supernet()
    sn(torch.rand(1, 3, 6, 6))
    assert all(layer.probs is None for layer in sn.mixed_layers())
    convs = [m for m in sn.modules() if isinstance(m, MixedQConv2d)]
    assert convs and all(c.bit_weights is None for c in convs)
    with pytest.raises(RuntimeError, match="probabilities not set"):
        sn.net(torch.rand(1, 3, 6, 6))


def test_export_argmax():
    sn = _supernet()
    with torch.no_grad():
        sn.alpha.logits("body.0")[5] = 2.0  # op 2 (skip_connect), bit 1 (8)
        sn.alpha.logits("body.1")[2] = 1.0  # op 1 (simple_3x3), bit 0 (4)
        sn.alpha.logits("skip.0")[1] = 0.5  # op 0 (simple_1x1), bit 1 (8)
        sn.alpha.logits("tail.0")[3] = 0.5  # op 1 (simple_3x3), bit 1 (8)
    g = sn.export()
    assert g.pairs() == {
        "head": [("simple_3x3", 4)],  # ties -> first pair
        "body": [("skip_connect", 8), ("simple_3x3", 4)],
        "skip": [("simple_1x1", 8)],
        "upsample": [("simple_3x3", 4)],
        "tail": [("simple_3x3", 8)],
    }
    net = build_network(g, sn.arch)
    assert net(torch.rand(1, 3, 6, 6)).shape == (1, 3, 12, 12)
    table = sn.layer_table()
    assert table["body.0"]["ops"] == ["simple_1x1", "simple_3x3", "skip_connect"]
    assert table["body.0"]["bits"] == [4, 8]
    assert sum(map(sum, table["body.0"]["probs"])) == pytest.approx(1.0)


def test_mixed_layer_computes_weighted_sum():
    arch = ArchConfig(**{**SMALL, "bits": [32]})
    torch.manual_seed(0)
    sn = Supernet(arch, mode="fp")
    sn.eval()
    layer = [m for m in sn.mixed_layers() if m.key == "body.0"][0]
    with torch.no_grad():
        sn.alpha.logits("body.0").copy_(torch.tensor([0.5, -1.0, 2.0]))
    p = torch.softmax(torch.tensor([0.5, -1.0, 2.0]), 0)
    layer.probs = p.view(3, 1)
    x = torch.randn(1, 6, 4, 4)
    expected = p[0] * layer.ops[0](x) + p[1] * layer.ops[1](x) + p[2] * x
    torch.testing.assert_close(layer(x), expected)
    # zero-probability candidates are not run
    calls = []
    layer.ops[1].register_forward_hook(lambda *a: calls.append(1))
    layer.probs = torch.tensor([[0.5], [0.0], [0.5]])
    layer(x)
    assert calls == []
    with pytest.raises(QuantNASError, match="arch.bits"):
        Supernet(ArchConfig(**SMALL), mode="fp")


def test_mixed_layer_requires_probs():
    layer = MixedLayer("body.0", ["skip_connect"], [8], [nn.Identity()])
    with pytest.raises(RuntimeError, match="body.0"):
        layer(torch.zeros(1, 1, 1, 1))


@pytest.mark.parametrize("transform", ["gumbel", "hard_gumbel"])
def test_gumbel_transforms(transform):
    torch.manual_seed(0)
    alphas = Alphas({"a.0": (3, 2), "b.0": (4, 2)}, transform=transform)
    with torch.no_grad():
        alphas.logits("a.0").copy_(torch.tensor([0.1, 0.5, -0.3, 1.0, 0.0, 0.2]))
    alphas.temperature = 0.5
    for _ in range(20):
        probs = alphas.probabilities(sample=True)
        for key, p in probs.items():
            assert p.shape == alphas.shapes[key]
            assert p.sum().item() == pytest.approx(1.0, abs=1e-5)
            assert (p >= 0).all()
            if transform == "hard_gumbel":
                assert sorted(p.flatten().tolist()) == [0.0] * (p.numel() - 1) + [1.0]
            else:
                assert p.max() < 1.0  # relaxed sample, not one-hot
    # samples differ between calls; the deterministic probabilities are the softmax
    s1, s2 = alphas.probabilities(sample=True), alphas.probabilities(sample=True)
    assert not all(torch.equal(s1[k], s2[k]) for k in s1)
    det = alphas.probabilities(sample=False)["a.0"]
    torch.testing.assert_close(det.flatten(), torch.softmax(alphas.logits("a.0"), 0))
    # gradients reach the logits through the sample (straight-through for hard)
    (probs["a.0"] * torch.arange(6.0).view(3, 2)).sum().backward()
    assert alphas.logits("a.0").grad.abs().sum() > 0


def test_gumbel_sampling_frequencies_follow_softmax():
    torch.manual_seed(0)
    alphas = Alphas({"a.0": (2, 2)}, transform="hard_gumbel")
    logits = torch.tensor([1.0, 0.0, -1.0, 0.5])
    with torch.no_grad():
        alphas.logits("a.0").copy_(logits)
    counts = torch.zeros(4)
    for _ in range(3000):
        counts += alphas.probabilities(sample=True)["a.0"].detach().flatten()
    torch.testing.assert_close(counts / 3000, torch.softmax(logits, 0), atol=0.03, rtol=0)


def _seen_probs(sn: Supernet, x: torch.Tensor) -> list[torch.Tensor]:
    seen = []
    hooks = [
        layer.register_forward_pre_hook(lambda m, inp: seen.append(m.probs))
        for layer in sn.mixed_layers()
    ]
    sn(x)
    for h in hooks:
        h.remove()
    assert len(seen) == len(sn.mixed_layers())
    return seen


def test_hard_gumbel_supernet_training_mode_is_one_hot():
    sn = _supernet(transform="hard_gumbel")
    sn.train()
    x = torch.rand(1, 3, 6, 6)
    for p in _seen_probs(sn, x):
        assert p.sum().item() == pytest.approx(1.0)
        assert int((p == 1.0).sum()) == 1 and int((p == 0.0).sum()) == p.numel() - 1
    # eval mode uses the deterministic softmax
    sn.eval()
    for p in _seen_probs(sn, x):
        torch.testing.assert_close(p, torch.full_like(p, 1.0 / p.numel()))


def test_unknown_transform():
    with pytest.raises(QuantNASError, match="alpha transform"):
        Alphas({"a.0": (1, 1)}, transform="sparsemax")


def test_rfdn_supernet_forward_and_min_size():
    torch.manual_seed(0)
    arch = ArchConfig(
        space="rfdn",
        c_fixed=12,
        scale=2,
        body_cells=1,
        bits=[4, 8],
        primitives={
            "body": ["simple_1x1", "simple_3x3"],
            "skip": ["simple_1x1"],
            "upsample": ["simple_1x1"],
            "tail": ["simple_1x1"],
        },
    )
    sn = Supernet(arch)
    # every rfdn cell has its own alphas: 4 body + 3 skip + upsample + tail
    assert sorted(sn.alpha.keys()) == sorted(
        [f"body.{i}" for i in range(4)] + [f"skip.{i}" for i in range(3)] + ["upsample.0", "tail.0"]
    )
    out = sn(torch.rand(1, 3, 16, 16))
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()
    assert MIN_LR_SIZE == 15
    with pytest.raises(QuantNASError, match=r"at least 15x15 \(got \(8, 8\)\)"):
        sn(torch.rand(1, 3, 8, 8))
    g = sn.export()
    assert g.space == "rfdn" and g.counts() == {
        "head": 0,
        "body": 4,
        "skip": 3,
        "upsample": 1,
        "tail": 1,
    }


def test_rfdn_channels_and_c_fixed_check():
    assert rfdn_channels("skip", 0, c=24, scale=4) == (24, 12)
    assert rfdn_channels("body", 2, c=24, scale=4) == (24, 24)
    assert rfdn_channels("body", 3, c=24, scale=4) == (24, 12)
    assert rfdn_channels("body", 7, c=24, scale=4) == (24, 12)
    assert rfdn_channels("upsample", 0, c=24, scale=4) == (24, 48)
    assert rfdn_channels("tail", 0, c=24, scale=4) == (3, 3)
    with pytest.raises(QuantNASError, match="rfdn"):
        rfdn_channels("head", 0, c=24, scale=4)
    g = Genotype.from_pairs(
        {
            "body": [("simple_1x1", 4)] * 4,
            "skip": [("simple_1x1", 4)] * 3,
            "upsample": [("simple_1x1", 4)],
            "tail": [("simple_1x1", 4)],
        },
        space="rfdn",
    )
    with pytest.raises(QuantNASError, match="divisible by 12"):
        build_network(g, ArchConfig(space="rfdn", c_fixed=16, body_cells=1))
    net = build_network(g, ArchConfig(space="rfdn", c_fixed=12, scale=2, body_cells=1))
    fixed = [m for m in net.modules() if isinstance(m, QConv2d) and m.bits == 8]
    assert len(fixed) == 1 + 7 + 2  # the cell's fuse + 7 ESA convs; global fuse + fuse3
    assert sum(isinstance(m, QConv2d) and m.bits == 4 for m in net.modules()) == 9
    assert net(torch.rand(1, 3, 15, 15)).shape == (1, 3, 30, 30)


def _image_convs(net):
    from quantnas.quant.conv import QConvBase
    from quantnas.quant.quantizers import ImageQuantizer

    out = []
    for name, m in net.named_modules():
        if isinstance(m, QConvBase):
            aq = m.a_quant[0] if isinstance(m.a_quant, nn.ModuleList) else m.a_quant
            if isinstance(aq, ImageQuantizer):
                out.append(name)
    return out


def test_only_the_first_head_conv_reads_the_image():
    arch = ArchConfig(c_fixed=6, body_cells=1)
    net = build_network(_geno(), arch)
    assert _image_convs(net) == ["head.0"]
    # the original behaviour: HWGQ everywhere
    assert _image_convs(build_network(_geno(), ArchConfig(c_fixed=6, input_quant="hwgq"))) == []
    # a quantized conv on an 8-bit image is then exact: compare with the unquantized input
    conv = net.head[0]
    x = torch.randint(0, 256, (1, 3, 5, 5)).float() / 255
    want = F.conv2d(x, conv.w_quant(conv.weight), None, 1, 1)
    assert torch.allclose(conv(x), want, atol=1e-6)


def test_supernet_head_candidates_read_the_image_in_quant_mode():
    sn = _supernet(mode="quant")
    names = _image_convs(sn)
    head0 = [n for n in names if n.startswith("net.head.0.")]
    assert names == head0 and len(head0) == len(SMALL["primitives"]["head"])
    x = torch.randint(0, 256, (1, 3, 8, 8)).float() / 255
    assert torch.isfinite(sn(x)).all()


@pytest.mark.parametrize("skip_mode, expect", [(True, 2), (False, 0)])
def test_rfdn_image_layers(skip_mode, expect):
    arch = ArchConfig(
        space="rfdn",
        c_fixed=12,
        scale=2,
        body_cells=2,
        skip_mode=skip_mode,
        primitives={
            "body": ["simple_1x1", "simple_3x3"],
            "skip": ["simple_1x1"],
            "upsample": ["simple_1x1"],
            "tail": ["simple_1x1"],
        },
    )
    sn = Supernet(arch, mode="quant")
    names = _image_convs(sn)
    # first cell: distill[0] has 1 candidate, refine[0] has 2 -> 3 convs, none elsewhere
    assert len({n.rsplit(".ops.", 1)[0] for n in names}) == expect
    assert len(names) == (3 if expect else 0)
    assert all(".cells.0." in n for n in names)


@pytest.mark.parametrize("mode", ["noise", "quant"])
def test_weight_step_without_alpha_grad_keeps_weight_gradients(mode):
    # the weight step detaches the distribution: same loss and weight gradients, no alpha
    # gradient computed
    grads = []
    for alpha_grad in (True, False):
        sn = _supernet(mode=mode)
        if sn.net.out_scale is not None:
            with torch.no_grad():
                sn.net.out_scale.fill_(1.0)  # move off the ReZero start so alphas get gradient
        torch.manual_seed(1)
        out = sn(torch.rand(2, 3, 6, 6), alpha_grad=alpha_grad)
        out.square().mean().backward()
        grads.append([p.grad.clone() for p in sn.weights() if p.grad is not None])
        alpha_grads = [a.grad for a in sn.alphas()]
        if alpha_grad:
            assert all(g is not None and g.abs().sum() > 0 for g in alpha_grads)
        else:
            assert all(g is None for g in alpha_grads)
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
