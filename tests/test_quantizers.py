import math

import pytest
import torch

from quantnas.errors import QuantNASError
from quantnas.quant.quantizers import (
    HWGQ,
    HWGQ_STEPS,
    LSQ,
    SUPPORTED_BITS,
    ImageQuantizer,
    NoiseQuantizer,
    check_bits,
)

# ---------------------------------------------------------------------------- LSQ


def _lsq(bits, steps):
    """An LSQ with hand-set per-channel steps."""
    q = LSQ(bits, len(steps))
    with torch.no_grad():
        q.step.copy_(torch.tensor(steps, dtype=torch.float32).view(-1, 1, 1, 1))
    return q


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_lsq_levels_are_integer_multiples_of_per_channel_step(bits):
    torch.manual_seed(0)
    steps = [0.05, 0.2, 1.3]
    q = _lsq(bits, steps)
    w = torch.randn(3, 2, 3, 3) * 2.0
    out = q(w)
    qn, qp = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    assert (q.qn, q.qp) == (qn, qp)
    for c, s in enumerate(steps):
        k = out[c] / s
        # every value is step * integer ...
        torch.testing.assert_close(k, k.round(), atol=1e-4, rtol=0)
        # ... in the signed range
        assert k.round().min() >= qn and k.round().max() <= qp
        # and equals round(clamp(w / s)) * s
        expected = torch.clamp(w[c] / s, qn, qp).round() * s
        torch.testing.assert_close(out[c], expected)


def test_lsq_clips_at_range_ends():
    q = _lsq(3, [0.5])  # levels -4..3 times 0.5 -> [-2.0, 1.5]
    w = torch.tensor([-100.0, -2.2, -1.9, 0.2, 0.3, 1.4, 1.6, 100.0]).view(1, 8, 1, 1)
    out = q(w).flatten().tolist()
    assert out == pytest.approx([-2.0, -2.0, -2.0, 0.0, 0.5, 1.5, 1.5, 1.5])


def test_lsq_weight_gradient_is_ste_inside_and_zero_outside():
    q = _lsq(2, [1.0])  # levels -2, -1, 0, 1
    vals = [-5.0, -2.5, -1.7, -0.3, 0.2, 0.6, 0.9, 1.2, 3.0]
    w = torch.tensor(vals).view(1, -1, 1, 1).requires_grad_(True)
    g = torch.arange(1.0, len(vals) + 1).view(1, -1, 1, 1)  # distinct upstream grads
    (q(w) * g).sum().backward()
    inside = torch.tensor([-2.0 <= v <= 1.0 for v in vals], dtype=torch.float32)
    # the clamp before rounding stops the gradient outside [Qn*s, Qp*s]; inside it is STE (1)
    torch.testing.assert_close(w.grad.flatten(), g.flatten() * inside)
    assert w.grad.flatten().tolist()[0] == 0.0 and w.grad.flatten().tolist()[-1] == 0.0


def test_lsq_init_rule_per_output_channel():
    q = LSQ(4, 2)  # Qp = 7
    w = torch.tensor(
        [
            [[[1.0, -1.0], [2.0, -2.0]]],  # mean |w| = 1.5
            [[[0.0, 0.0], [0.0, 0.7]]],  # mean |w| = 0.175
        ]
    )
    q.init_from(w)
    expected = torch.tensor([2 * 1.5 / math.sqrt(7), 2 * 0.175 / math.sqrt(7)])
    torch.testing.assert_close(q.step.flatten(), expected)
    # an all-zero channel gets a tiny positive step, not 0 (no division by zero)
    q.init_from(torch.zeros(2, 1, 2, 2))
    assert (q.step > 0).all()


@pytest.mark.parametrize("bits", [2, 4])
def test_lsq_step_gradient_formula_and_scale(bits):
    torch.manual_seed(1)
    steps = [0.3, 0.8]
    q = _lsq(bits, steps)
    w = torch.randn(2, 3, 2, 2) * 1.5
    g = torch.randn_like(w)
    (q(w) * g).sum().backward()
    qn, qp = q.qn, q.qp
    scale = 1.0 / math.sqrt(qp * w.numel())
    expected = torch.zeros(2)
    for c, s in enumerate(steps):
        v = w[c] / s
        # LSQ (Esser et al.): d q_hat / d s = -v + round(v) inside, Qn below, Qp above
        dq_ds = torch.where(
            v <= qn,
            torch.full_like(v, qn),
            torch.where(v >= qp, torch.full_like(v, qp), v.round() - v),
        )
        expected[c] = (g[c] * dq_ds).sum() * scale
    torch.testing.assert_close(q.step.grad.flatten(), expected, rtol=1e-4, atol=1e-6)


def test_lsq_32_bits_is_passthrough():
    q = LSQ(32, 3)
    w = torch.randn(3, 2, 3, 3, requires_grad=True)
    out = q(w)
    assert torch.equal(out, w)
    out.sum().backward()
    torch.testing.assert_close(w.grad, torch.ones_like(w))


def test_lsq_step_is_a_registered_parameter():
    q = LSQ(4, 5)
    names = dict(q.named_parameters())
    assert list(names) == ["step"] and names["step"].shape == (5, 1, 1, 1)


# ---------------------------------------------------------------------------- HWGQ


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_hwgq_levels_clip_and_negatives(bits):
    q = HWGQ(bits)
    step = HWGQ_STEPS[bits]
    assert q.step == step
    assert q.clip == pytest.approx(step * (2**bits - 1))
    x = torch.linspace(-3.0, q.clip * 2.0, 1001)
    out = q(x)
    k = out / step
    torch.testing.assert_close(k, k.round(), atol=1e-3, rtol=0)
    assert out.min().item() == 0.0
    assert out.max().item() == pytest.approx(q.clip)
    assert (out[x <= 0] == 0).all()
    assert out[x >= q.clip] == pytest.approx(q.clip)
    inside = (x > 0) & (x < q.clip)
    torch.testing.assert_close(out[inside], (x[inside] / step).round() * step)


def test_hwgq_table_values_match_spec():
    assert HWGQ_STEPS == {
        2: 0.6356366866203315,
        3: 0.3720645813370479,
        4: 0.21305606790772952,
        8: 0.020300567823662602,
        16: 9.714825915156693e-05,
    }


def test_hwgq_2bit_hand_values():
    q = HWGQ(2)  # step 0.6356..., levels 0, s, 2s, 3s (clip 1.9069...)
    s = HWGQ_STEPS[2]
    x = torch.tensor([-1.0, 0.1, 0.4, 0.9, 1.5, 5.0])
    torch.testing.assert_close(q(x), torch.tensor([0.0, 0.0, s, s, 2 * s, 3 * s]))


def test_hwgq_ste_gradient():
    q = HWGQ(4)
    clip = q.clip
    vals = [-1.0, -1e-3, 1e-3, 0.3, clip * 0.5, clip - 1e-3, clip + 1e-3, clip * 3]
    x = torch.tensor(vals, requires_grad=True)
    q(x).sum().backward()
    expected = [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert x.grad.tolist() == expected


def test_hwgq_32_bits_is_relu():
    q = HWGQ(32)
    x = torch.randn(4, 5, requires_grad=True)
    out = q(x)
    assert torch.equal(out, torch.relu(x))
    out.sum().backward()
    torch.testing.assert_close(x.grad, (x > 0).float())


def test_hwgq_without_step_raises():
    # every supported bit-width below 32 has a table step
    for b in SUPPORTED_BITS:
        HWGQ(b)
    with pytest.raises(QuantNASError):
        HWGQ(5)


# ---------------------------------------------------------------------------- noise


def _range_delta(x, bits):
    return ((x.max() - x.min()) / (2**bits - 1)).item()


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_uniform_noise_is_bounded_and_has_uniform_statistics(bits):
    torch.manual_seed(0)
    x = torch.randn(200_000) * 3.0 + 1.0
    delta = _range_delta(x, bits)
    noise = NoiseQuantizer(bits, kind="uniform")(x) - x
    assert noise.abs().max().item() <= delta / 2 * (1 + 1e-4)
    assert abs(noise.mean().item()) < 0.01 * delta
    # U[-D/2, D/2] has std D / sqrt(12)
    assert noise.std().item() == pytest.approx(delta / math.sqrt(12), rel=0.02)
    # and fills its range (not a constant offset)
    assert noise.abs().max().item() > 0.49 * delta


@pytest.mark.parametrize("bits", [2, 8])
def test_gaussian_noise_std_is_half_delta(bits):
    torch.manual_seed(0)
    x = torch.rand(200_000) * 4.0 - 1.0
    delta = _range_delta(x, bits)
    noise = NoiseQuantizer(bits, kind="gaussian")(x) - x
    assert abs(noise.mean().item()) < 0.01 * delta
    assert noise.std().item() == pytest.approx(delta / 2, rel=0.02)
    # gaussian: some samples beyond +-Delta/2 (about 32% of them)
    frac = (noise.abs() > delta / 2).float().mean().item()
    assert frac == pytest.approx(0.3173, abs=0.01)


def test_noise_fresh_each_call():
    torch.manual_seed(0)
    x = torch.randn(1000)
    q = NoiseQuantizer(4, kind="uniform")
    assert not torch.equal(q(x), q(x))


def test_noise_gradient_flows_without_detach():
    x = torch.randn(50, requires_grad=True)
    out = NoiseQuantizer(4, detach=False)(x)
    (out * torch.arange(50.0)).sum().backward()
    # the noise term is a constant: d(x + noise)/dx = 1 (delta is not differentiated)
    torch.testing.assert_close(x.grad, torch.arange(50.0))


def test_noise_detach_blocks_gradient():
    x = torch.randn(50, requires_grad=True)
    out = NoiseQuantizer(4, detach=True)(x)
    assert not out.requires_grad
    # mixed with a differentiable share, only that share carries gradient
    (0.5 * x + 0.5 * out).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((50,), 0.5))


def test_noise_32_bits_is_identity():
    x = torch.randn(10, requires_grad=True)
    for kind in ("gaussian", "uniform"):
        assert NoiseQuantizer(32, kind=kind)(x) is x


def test_noise_unknown_kind():
    with pytest.raises(QuantNASError, match="laplace"):
        NoiseQuantizer(4, kind="laplace")


# ---------------------------------------------------------------------------- check_bits


def test_check_bits_accepts_supported():
    check_bits(8)
    check_bits([2, 3, 4, 8, 16, 32])
    assert SUPPORTED_BITS == (2, 3, 4, 8, 16, 32)


@pytest.mark.parametrize("bad", [5, 1, 0, 64, "8", True, [4, 7], [8.0], []])
def test_check_bits_rejects(bad):
    with pytest.raises(QuantNASError, match="my.key"):
        check_bits(bad, where="my.key")


@pytest.mark.parametrize("bad", [8.0, None])
def test_check_bits_rejects_scalar_non_int(bad):
    with pytest.raises(QuantNASError, match="my.key"):
        check_bits(bad, where="my.key")


# -------------------------------------------------------------------------- image


def test_image_quantizer_is_lossless_on_8bit_images_where_hwgq_is_not():
    x = torch.arange(256, dtype=torch.float32) / 255.0
    assert torch.equal(ImageQuantizer(8)(x), x)
    # HWGQ's 8-bit step (0.0203) leaves 50 levels on [0, 1]
    assert HWGQ(8)(x).unique().numel() == 50
    assert ImageQuantizer(4)(x).unique().numel() == 16
    assert HWGQ(4)(x).unique().numel() == 6


def test_image_quantizer_hand_values_clip_and_gradient():
    q = ImageQuantizer(2)  # levels 0, 1/3, 2/3, 1
    x = torch.tensor([-0.5, 0.1, 0.2, 0.5, 0.9, 1.4], requires_grad=True)
    y = q(x)
    assert torch.allclose(y, torch.tensor([0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 0.0]))
    assert torch.equal(ImageQuantizer(32)(x), torch.relu(x))


@pytest.mark.parametrize("bits", [4, 8, 32])
@pytest.mark.parametrize("image", [False, True])
def test_value_and_mask_equal_value_and_pass_mask(bits, image):
    from quantnas.quant.quantizers import HWGQ, ImageQuantizer

    q = ImageQuantizer(bits) if image else HWGQ(bits)
    x = torch.cat([torch.randn(1000) * 3, torch.tensor([0.0, -0.0, 1.0, q_clip(q), float("nan")])])
    value, mask = q.value_and_mask(x)
    assert torch.equal(mask, q.pass_mask(x))
    torch.testing.assert_close(value, q.value(x), equal_nan=True, rtol=0, atol=0)


def q_clip(q) -> float:
    return getattr(q, "clip", 1.0) if not q.full_precision else 1.0
