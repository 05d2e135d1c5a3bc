import pytest
import torch
import torch.nn.functional as F

from quantnas.errors import QuantNASError
from quantnas.quant.conv import QConv2d, conv_out_size
from quantnas.quant.mixed import MixedQConv2d
from quantnas.quant.noise import draw_noise
from quantnas.quant.quantizers import HWGQ, LSQ

GEOM = dict(c_in=4, c_out=6, kernel_size=3)


def _x(seed=0, shape=(2, 4, 7, 7)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_qconv_equals_conv_of_quantized_input_and_weight(bits):
    torch.manual_seed(0)
    conv = QConv2d(bits=bits, **GEOM)
    x = _x()
    w_hat = LSQ(bits, 6)
    w_hat.step = conv.w_quant.step  # same steps
    expected = F.conv2d(HWGQ(bits)(x), w_hat(conv.weight), padding=1)
    torch.testing.assert_close(conv(x), expected)
    # and the quantized weight really differs from the FP weight (quantization happened)
    assert not torch.allclose(conv.w_quant(conv.weight), conv.weight)


def test_qconv_geometry_and_default_same_padding():
    conv = QConv2d(bits=8, c_in=4, c_out=6, kernel_size=(3, 5), dilation=2)
    assert conv.padding == (2, 4)
    assert conv.weight.shape == (6, 4, 3, 5)
    assert [n for n, _ in conv.named_parameters()] == ["weight", "w_quant.step"]  # no bias
    assert conv.macs_per_pixel() == 4 * 6 * 3 * 5
    assert conv(_x()).shape == (2, 6, 7, 7)
    g = QConv2d(bits=8, c_in=4, c_out=6, kernel_size=3, groups=2)
    assert g.weight.shape == (6, 2, 3, 3)
    assert g.macs_per_pixel() == 4 * 6 * 9 // 2
    assert conv_out_size(7, kernel=3, stride=2, padding=0, dilation=1) == 3


def test_qconv_steps_initialised_from_weights():
    conv = QConv2d(bits=4, **GEOM)
    mean_abs = conv.weight.detach().abs().mean(dim=(1, 2, 3))
    torch.testing.assert_close(conv.w_quant.step.flatten(), 2 * mean_abs / 7**0.5)
    assert conv.bits_w == conv.bits_a == 4


def test_qconv_unquantized_is_conv_of_relu():
    torch.manual_seed(0)
    conv = QConv2d(bits=2, **GEOM)
    conv.quantized = False
    x = _x()
    torch.testing.assert_close(conv(x), F.conv2d(torch.relu(x), conv.weight, padding=1))
    assert conv.bits_w == conv.bits_a == 32


def test_qconv_32_bits_is_conv_of_relu():
    conv = QConv2d(bits=32, **GEOM)
    x = _x()
    torch.testing.assert_close(conv(x), F.conv2d(torch.relu(x), conv.weight, padding=1))


def test_qconv_rejects_bad_bits():
    with pytest.raises(QuantNASError, match="conv bits"):
        QConv2d(bits=5, **GEOM)


@pytest.mark.parametrize("cls,kw", [(QConv2d, {"bits": 8}), (MixedQConv2d, {"bits": [4, 8]})])
def test_groups_must_divide_channels(cls, kw):
    with pytest.raises(QuantNASError, match="groups=3"):
        cls(c_in=4, c_out=6, kernel_size=3, groups=3, **kw)
    with pytest.raises(QuantNASError, match="groups=4"):
        cls(c_in=4, c_out=6, kernel_size=3, groups=4, **kw)


def _mixed_and_single(bits_list, pick, mode="quant"):
    torch.manual_seed(0)
    mixed = MixedQConv2d(bits=bits_list, mode=mode, **GEOM)
    single = QConv2d(bits=bits_list[pick], **GEOM)
    with torch.no_grad():
        single.weight.copy_(mixed.weight)
        single.w_quant.step.copy_(mixed.w_quant[pick].step)
    return mixed, single


@pytest.mark.parametrize("pick", [0, 1, 2])
def test_mixed_quant_one_hot_equals_single_bit_conv(pick):
    mixed, single = _mixed_and_single([2, 4, 8], pick)
    q = torch.zeros(3)
    q[pick] = 1.0
    mixed.set_bit_weights(q)
    x = _x(1)
    torch.testing.assert_close(mixed(x), single(x))


def test_mixed_quant_steps_are_parameters_per_bit():
    mixed = MixedQConv2d(bits=[2, 4, 8], mode="quant", **GEOM)
    names = [n for n, _ in mixed.named_parameters()]
    assert names == ["weight", "w_quant.0.step", "w_quant.1.step", "w_quant.2.step"]
    # each initialised with its own Qp
    mean_abs = mixed.weight.detach().abs().mean(dim=(1, 2, 3))
    for lsq, qp in zip(mixed.w_quant, (1, 7, 127), strict=True):
        torch.testing.assert_close(lsq.step.flatten(), 2 * mean_abs / qp**0.5)


def test_mixed_quant_default_is_uniform_mixture():
    torch.manual_seed(0)
    mixed = MixedQConv2d(bits=[2, 8], mode="quant", **GEOM)
    x = _x(2)
    w = 0.5 * mixed.w_quant[0](mixed.weight) + 0.5 * mixed.w_quant[1](mixed.weight)
    a = 0.5 * HWGQ(2)(x) + 0.5 * HWGQ(8)(x)
    expected = F.conv2d(a, w, padding=1)
    torch.testing.assert_close(mixed(x), expected)
    mixed.set_bit_weights(torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(mixed(x), expected)


def test_mixed_quant_weighted_mixture_and_bit_weight_gradient():
    torch.manual_seed(0)
    mixed = MixedQConv2d(bits=[2, 8], mode="quant", **GEOM)
    logits = torch.tensor([0.3, -0.2], requires_grad=True)
    q = torch.softmax(logits, 0)
    mixed.set_bit_weights(q)
    x = _x(3)
    out = mixed(x)
    qd = q.detach()
    w = qd[0] * mixed.w_quant[0](mixed.weight) + qd[1] * mixed.w_quant[1](mixed.weight)
    a = qd[0] * HWGQ(2)(x) + qd[1] * HWGQ(8)(x)
    torch.testing.assert_close(out, F.conv2d(a, w, padding=1))
    out.square().mean().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_mixed_zero_bit_weights_are_skipped():
    mixed = MixedQConv2d(bits=[2, 4, 8], mode="quant", **GEOM)
    calls = []
    for i, lsq in enumerate(mixed.w_quant):
        lsq.register_forward_hook(lambda m, inp, out, i=i: calls.append(("w", i)))
    for i, hw in enumerate(mixed.a_quant):
        hw.register_forward_hook(lambda m, inp, out, i=i: calls.append(("a", i)))
    mixed.set_bit_weights(torch.tensor([0.0, 0.25, 0.75]))
    mixed.fused = False  # the plain path calls each quantizer module
    mixed(_x())
    assert sorted(calls) == [("a", 1), ("a", 2), ("w", 1), ("w", 2)]
    # shared noise: a zero-weight bit-width adds no noise (fused mixture, one shared draw)
    nmixed = MixedQConv2d(bits=[2, 4, 8], mode="noise", noise_mix="shared", **GEOM)
    nmixed.set_bit_weights(torch.tensor([0.0, 1.0, 0.0]))
    x = _x()
    torch.manual_seed(123)
    out = nmixed(x)
    torch.manual_seed(123)
    share = 1 / 4
    xr = torch.relu(x)
    a = xr + (1 - share) * (xr.max() - xr.min()) / 15 * (torch.randn_like(xr) * 0.5)
    w0 = nmixed.weight.detach()
    w = w0 + (1 - share) * (w0.max() - w0.min()) / 15 * (torch.randn_like(w0) * 0.5)
    torch.testing.assert_close(out, F.conv2d(a, w, padding=1))
    # original noise: f v + p / (P + f) (v + Delta eps), one draw per non-zero bit-width
    omixed = MixedQConv2d(bits=[2, 4, 8], mode="noise", noise_mix="original", **GEOM)
    omixed.set_bit_weights(torch.tensor([0.0, 0.6, 0.0]))
    torch.manual_seed(7)
    out = omixed(x)
    torch.manual_seed(7)
    seed = int(torch.randint(0, 2**31 - 1, ()))  # the conv draws its noise seed like this
    c = 0.6 / (0.6 + share)
    eps_a = draw_noise(xr, seed=seed, index=1, kind="gaussian")
    a = share * xr + c * (xr + (xr.max() - xr.min()) / 15 * eps_a)
    w0 = omixed.weight.detach()
    eps_w = draw_noise(w0, seed=seed + 1, index=1, kind="gaussian")
    w = share * w0 + c * (w0 + (w0.max() - w0.min()) / 15 * eps_w)
    torch.testing.assert_close(out, F.conv2d(a, w, padding=1))


def _clean_weight(p: list[float]) -> float:
    """Weight on the clean tensor in the original noise mix: ``f + P / (P + f)``."""
    f = 1 / (len(p) + 1)
    return f + sum(p) / (sum(p) + f)


def test_mixed_noise_8bit_close_to_fp_conv():
    torch.manual_seed(0)
    x = _x(4)
    for mix, gain in (("shared", 1.0), ("original", _clean_weight([1.0]) ** 2)):
        mixed = MixedQConv2d(bits=[8], mode="noise", noise_mix=mix, **GEOM)
        fp = gain * F.conv2d(torch.relu(x), mixed.weight, padding=1)
        out = mixed(x)
        rel = (out - fp).norm() / fp.norm()
        assert 0 < rel.item() < 0.02, mix  # noisy (not identical), but tiny at 8 bits
        # 2-bit noise is much larger
        mixed2 = MixedQConv2d(bits=[2], mode="noise", noise_mix=mix, **GEOM)
        with torch.no_grad():
            mixed2.weight.copy_(mixed.weight)
        rel2 = (mixed2(x) - fp).norm() / fp.norm()
        assert rel2.item() > 5 * rel.item(), mix


@pytest.mark.parametrize("noise_mix", ["shared", "original"])
def test_mixed_noise_mean_matches_formula(noise_mix):
    # shared: E[v_mix] = v. original: E[v_mix] = (f + P / (P + f)) v, here 1/3 + 3/4 for the
    # default uniform p = [1/2, 1/2]; weight and input noise are independent, so the mean
    # output is the conv of the means
    torch.manual_seed(0)
    mixed = MixedQConv2d(bits=[2, 4], mode="noise", noise="uniform", noise_mix=noise_mix, **GEOM)
    x = _x(5, shape=(1, 4, 5, 5))
    gain = 1.0 if noise_mix == "shared" else _clean_weight([0.5, 0.5]) ** 2
    fp = gain * F.conv2d(torch.relu(x), mixed.weight, padding=1)
    with torch.no_grad():
        outs = torch.stack([mixed(x) for _ in range(200)])
    torch.testing.assert_close(outs.mean(0), fp, atol=0.05 * fp.abs().max().item(), rtol=0)


def test_noise_mix_statistics_independent_vs_shared():
    # noise variance of the mixed weight, for p = (0.3, 0.2) over bits (2, 4) (P = 0.5,
    # f = 1/3), gaussian eps ~ N(0, 1/4):
    #   original: sum_b (p_b / (P + f))^2 Delta_b^2 / 4   (independent draws)
    #   shared:   ((1 - f) sum_b (p_b / P) Delta_b)^2 / 4  (one draw)
    torch.manual_seed(0)
    p = torch.tensor([0.3, 0.2])
    f, total = 1 / 3, 0.5
    for mix in ("original", "shared"):
        conv = MixedQConv2d(bits=[2, 4], mode="noise", noise_mix=mix, **GEOM)
        v = conv.weight.detach()
        span = float(v.max() - v.min())
        d2, d4 = span / 3, span / 15
        pairs = [(0, p[0]), (1, p[1])]
        if mix == "original":
            draws = torch.stack([conv._original_mix(v, pairs, p.sum(), seed=s) for s in range(400)])
        else:
            draws = torch.stack([conv._shared_mix(v, pairs, p.sum()) for _ in range(400)])
        var = float(draws.var(dim=0).mean())
        if mix == "original":
            want = ((0.3 / (total + f)) ** 2 * d2**2 + (0.2 / (total + f)) ** 2 * d4**2) / 4
        else:
            want = ((1 - f) * (0.6 * d2 + 0.4 * d4)) ** 2 / 4
        assert var == pytest.approx(want, rel=0.1), mix
        mean = draws.mean(dim=0)
        clean = f + total / (total + f) if mix == "original" else 1.0
        torch.testing.assert_close(mean, clean * v, atol=4 * (want / 400) ** 0.5, rtol=0)


@pytest.mark.parametrize("noise_mix", ["shared", "original"])
def test_mixed_noise_differentiable_wrt_bit_weights_and_weight(noise_mix):
    torch.manual_seed(0)
    mixed = MixedQConv2d(bits=[2, 8], mode="noise", noise_mix=noise_mix, **GEOM)
    logits = torch.tensor([0.1, 0.4], requires_grad=True)
    mixed.set_bit_weights(torch.softmax(logits, 0) * 0.5)
    x = _x(6).requires_grad_(True)
    mixed(x).square().mean().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    assert mixed.weight.grad is not None and mixed.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_mixed_noise_original_only_fp_share_carries_weight_gradient():
    # original: the copies are detached, so dL/dW comes only through f W = W / 2 (one
    # bit-width); the input mix is (f + P / (P + f)) relu(x) plus small 8-bit noise
    torch.manual_seed(0)
    mixed = MixedQConv2d(bits=[8], mode="noise", noise_mix="original", **GEOM)
    mixed.set_bit_weights(torch.tensor([1.0]))
    x = _x(7)
    mixed(x).sum().backward()
    ref_w = mixed.weight.detach().clone().requires_grad_(True)
    F.conv2d(_clean_weight([1.0]) * torch.relu(x), ref_w, padding=1).sum().backward()
    torch.testing.assert_close(mixed.weight.grad, 0.5 * ref_w.grad, rtol=0.02, atol=1e-3)
    # shared: nothing detached, the whole gradient reaches W
    full = MixedQConv2d(bits=[8], mode="noise", noise_mix="shared", **GEOM)
    with torch.no_grad():
        full.weight.copy_(mixed.weight)
    full(x).sum().backward()
    ref2 = mixed.weight.detach().clone().requires_grad_(True)
    F.conv2d(torch.relu(x), ref2, padding=1).sum().backward()
    torch.testing.assert_close(full.weight.grad, ref2.grad, rtol=0.02, atol=1e-3)


def test_mixed_fp_mode_is_conv_of_relu():
    mixed = MixedQConv2d(bits=[32], mode="fp", **GEOM)
    x = _x(8)
    mixed.set_bit_weights(torch.tensor([1.0]))
    torch.testing.assert_close(mixed(x), F.conv2d(torch.relu(x), mixed.weight, padding=1))


def test_mixed_errors():
    with pytest.raises(QuantNASError, match="search mode"):
        MixedQConv2d(bits=[8], mode="bogus", **GEOM)
    with pytest.raises(QuantNASError, match="search bits"):
        MixedQConv2d(bits=[8, 6], **GEOM)
    with pytest.raises(QuantNASError, match="search.noise_mix"):
        MixedQConv2d(bits=[8], noise_mix="fused", **GEOM)


# ------------------------------------------------------------- fused vs plain autograd
def _fused_pair(mode, noise_mix="original", bits=(2, 4, 8), image=False, source="rng"):
    torch.manual_seed(3)
    kw = {"mode": mode, "noise_mix": noise_mix, "noise_source": source}
    fast = MixedQConv2d(bits=list(bits), **kw, **GEOM)
    ref = MixedQConv2d(bits=list(bits), **kw, **GEOM)
    ref.load_state_dict(fast.state_dict())
    ref.fused = False
    if image:
        fast.read_image()
        ref.read_image()
    return fast, ref


@pytest.mark.parametrize(
    "mode,noise_mix,image,p,source",
    [
        ("quant", "original", False, [0.2, 0.0, 0.3], "rng"),
        ("quant", "original", True, [0.1, 0.3, 0.2], "rng"),
        ("quant", "original", False, None, "rng"),
        ("noise", "original", False, [0.2, 0.0, 0.3], "rng"),
        ("noise", "original", False, [0.05, 0.25, 0.1], "rng"),
        ("noise", "original", False, None, "rng"),
        ("noise", "original", False, [0.05, 0.25, 0.1], "table"),
        ("noise", "original", False, [0.2, 0.0, 0.3], "table"),
    ],
)
def test_fused_mixtures_match_plain_autograd(mode, noise_mix, image, p, source):
    # values and gradients w.r.t. the input, the weight, the LSQ steps and the alphas
    fast, ref = _fused_pair(mode, noise_mix, image=image, source=source)
    grads = {}
    for name, conv in (("fast", fast), ("ref", ref)):
        logits = torch.tensor([0.3, -0.1, 0.2], requires_grad=True)
        if p is not None:
            probs = torch.softmax(logits, 0) * torch.tensor([float(v > 0) for v in p]) * 0.6
            conv.set_bit_weights(probs)
        x = (_x(11) * 2).requires_grad_(True)
        if image:
            x = torch.rand(2, 4, 6, 6, generator=torch.Generator().manual_seed(5))
            x.requires_grad_(True)
        torch.manual_seed(99)  # the same noise seed for both
        out = conv(x)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads[name] = (
            out.detach(),
            x.grad,
            conv.weight.grad,
            logits.grad,
            [q.step.grad for q in conv.w_quant],
        )
    f, r = grads["fast"], grads["ref"]
    torch.testing.assert_close(f[0], r[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f[1], r[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f[2], r[2], rtol=1e-5, atol=1e-5)
    if p is not None:
        torch.testing.assert_close(f[3], r[3], rtol=1e-4, atol=1e-5)
        assert f[3].abs().sum() > 0
    for a, b in zip(f[4], r[4], strict=True):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_mixture_keeps_fewer_tensors_for_backward():
    # the saved-tensor bytes of one quant-mode mixed conv (3 bit-widths) drop to the input,
    # the mixed input the conv needs and the small weight-side tensors
    from torch.autograd.graph import saved_tensors_hooks

    def saved_bytes(conv):
        total = []

        def pack(t):
            total.append(t.numel() * t.element_size())
            return t

        x = torch.randn(4, 4, 32, 32, requires_grad=True)
        logits = torch.zeros(3, requires_grad=True)
        conv.set_bit_weights(torch.softmax(logits, 0) * 0.5)
        with saved_tensors_hooks(pack, lambda t: t):
            conv(x)
        return sum(total)

    act = 4 * 4 * 32 * 32 * 4  # bytes of one input-sized tensor
    for mode in ("quant", "noise"):
        fast, ref = _fused_pair(mode)
        assert saved_bytes(fast) < 2.5 * act
        assert saved_bytes(ref) > 4 * act


@pytest.mark.parametrize("bits,image", [(4, False), (8, False), (32, False), (4, True)])
def test_fused_qconv_matches_plain_autograd(bits, image):
    torch.manual_seed(4)
    fast = QConv2d(bits=bits, **GEOM)
    ref = QConv2d(bits=bits, **GEOM)
    ref.load_state_dict(fast.state_dict())
    ref.fused = False
    if image:
        fast.read_image()
        ref.read_image()
    results = []
    for conv in (fast, ref):
        x = (_x(12) * 3).requires_grad_(True)
        out = conv(x)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), x.grad, conv.weight.grad, conv.w_quant.step.grad))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():  # inference takes the graph-free path
        torch.testing.assert_close(fast(_x(13)), ref(_x(13)))


# ------------------------------------------------------------------ noise table
@pytest.mark.parametrize("kind", ["gaussian", "uniform"])
def test_noise_table_windows_are_repeatable_samples_of_the_distribution(kind):
    like = torch.empty(4, 8, 32, 32)
    a = draw_noise(like, seed=123, index=1, kind=kind, source="table")
    assert a.shape == like.shape and a.dtype == like.dtype
    assert torch.equal(a, draw_noise(like, seed=123, index=1, kind=kind, source="table"))
    b = draw_noise(like, seed=123, index=0, kind=kind, source="table")
    c = draw_noise(like, seed=124, index=1, kind=kind, source="table")
    assert not torch.equal(a, b) and not torch.equal(a, c)
    # different windows hold different samples: (almost) no equal elements, no correlation
    assert (a == b).float().mean() < 1e-3
    assert abs(float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])) < 0.02
    if kind == "gaussian":  # N(0, 1/4)
        assert abs(float(a.mean())) < 0.01 and abs(float(a.std()) - 0.5) < 0.01
    else:  # U[-1/2, 1/2]: variance 1/12
        assert float(a.min()) >= -0.5 and float(a.max()) <= 0.5
        assert abs(float(a.var()) - 1 / 12) < 0.003


def test_noise_table_grows_for_a_large_tensor():
    from quantnas.quant.noise import TABLE_MIN, noise_table

    big = torch.empty(TABLE_MIN // 2 + 7)
    eps = draw_noise(big, seed=5, index=0, kind="uniform", source="table")
    assert eps.shape == big.shape
    assert noise_table("uniform", big.numel(), big.dtype, big.device).numel() >= 4 * big.numel()


def test_noise_source_table_changes_only_where_noise_comes_from():
    # same weights, same mixture: the two sources differ only by the noise draws, and an
    # 8-bit noisy conv stays close to its full-precision conv with either
    torch.manual_seed(0)
    rng = MixedQConv2d(bits=[8], mode="noise", noise_source="rng", **GEOM)
    table = MixedQConv2d(bits=[8], mode="noise", noise_source="table", **GEOM)
    table.load_state_dict(rng.state_dict())
    x = _x(7)
    fp = _clean_weight([1.0]) ** 2 * F.conv2d(torch.relu(x), rng.weight, None, 1, 1)
    out_rng, out_table = rng(x), table(x)
    assert not torch.allclose(out_rng, out_table)
    for out in (out_rng, out_table):
        assert 0 < ((out - fp).norm() / fp.norm()).item() < 0.02
    with pytest.raises(QuantNASError, match="search.noise_source"):
        MixedQConv2d(bits=[8], noise_source="bank", **GEOM)


@pytest.mark.parametrize("bits", [(4, 32), (2, 8)])
def test_fused_lsq_mixture_matches_plain_autograd_with_full_precision_and_tiny_steps(bits):
    # the fused weight mixture against sum_b q_b LSQ_b(W): values and gradients of the
    # weight, every step (one pushed below LSQ's 1e-8 floor: no step gradient) and the alphas
    fast, ref = _fused_pair("quant", bits=bits)
    for conv in (fast, ref):
        with torch.no_grad():
            conv.w_quant[0].step[0] = 1e-9
    results = []
    for conv in (fast, ref):
        logits = torch.tensor([0.4, -0.2], requires_grad=True)
        conv.set_bit_weights(torch.softmax(logits, 0) * 0.7)
        out = conv(_x(13))
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append(
            [out.detach(), conv.weight.grad, logits.grad]
            + [q.step.grad if q.step.grad is not None else torch.zeros(1) for q in conv.w_quant]
        )
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert float(results[0][3][0].abs().sum()) == 0.0  # the clamped step gets no gradient


def test_candidates_reading_one_input_share_its_quantized_copies():
    # three quant-mode candidates on the same input: each bit-width's HWGQ copy of the input
    # is computed once in the forward pass (and once, with its mask, in the backward pass),
    # and the outputs and gradients equal those of candidates computing their own copies
    # (each reads its own clone of the input, which nothing shares). The HWGQ copies are
    # counted as the in-place roundings (``aten::round_``, HWGQ's ``value`` and
    # ``value_and_mask``) the profiler records; LSQ's weight copies use ``aten::round``.
    from collections import Counter

    from torch.profiler import ProfilerActivity, profile

    from quantnas.quant import fused

    torch.manual_seed(2)
    convs = [MixedQConv2d(bits=[4, 8], mode="quant", **GEOM) for _ in range(3)]

    def run(own_copy):
        for conv in convs:
            conv.zero_grad()
        fused.clear_shared()
        x = (_x(21) * 2).requires_grad_(True)
        logits = torch.zeros(3, 2, requires_grad=True)
        p = torch.softmax(logits.flatten(), 0).view(3, 2)
        for conv, pc in zip(convs, p, strict=True):
            conv.set_bit_weights(pc)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            out = sum(conv(x.clone() if own_copy else x) for conv in convs)
            (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        rounds = Counter(e.name for e in prof.events())["aten::round_"]
        return (out.detach(), x.grad, logits.grad), rounds

    shared, shared_rounds = run(own_copy=False)
    own, own_rounds = run(own_copy=True)
    # 2 bit-widths x (forward + backward), once for all candidates, against once per op
    assert (shared_rounds, own_rounds) == (2 * 2, 3 * 2 * 2)
    for a, b in zip(shared, own, strict=True):
        torch.testing.assert_close(a, b)
