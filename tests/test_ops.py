from functools import partial

import pytest
import torch

from quantnas.errors import QuantNASError
from quantnas.quant.conv import QConv2d
from quantnas.quant.mixed import MixedQConv2d
from quantnas.space.ops import available_ops, build_op, check_op

CONV8 = partial(QConv2d, bits=8)


def _convs(module):
    return [m for m in module.modules() if isinstance(m, QConv2d)]


def _plan(module):
    return [(c.c_in, c.c_out, c.kernel_size, c.groups) for c in _convs(module)]


@pytest.mark.parametrize("name", available_ops())
def test_every_op_maps_shape(name):
    torch.manual_seed(0)
    op = build_op(name, c_in=12, c_out=12, c_fixed=12, conv=CONV8)
    x = torch.randn(2, 12, 9, 9)
    out = op(x)
    assert out.shape == (2, 12, 9, 9)
    assert torch.isfinite(out).all()
    if name == "zero":
        assert (out == 0).all()
    elif name == "skip_connect":
        assert out is x
    else:
        assert _convs(op), name
        assert out.abs().sum() > 0


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in available_ops()
        if n not in ("skip_connect",) and "grouped_full" not in n and not n.startswith("DWS_")
    ],
)
def test_every_op_maps_channels_in_to_out(name):
    op = build_op(name, c_in=12, c_out=24, c_fixed=12, conv=CONV8)
    assert op(torch.randn(1, 12, 5, 5)).shape == (1, 24, 5, 5)


@pytest.mark.parametrize("name", ["simple_3x3", "growth2_3x3", "DWS_3x3", "decenc_3x3_2"])
def test_ops_build_with_mixed_convs(name):
    op = build_op(
        name, c_in=12, c_out=12, c_fixed=12, conv=partial(MixedQConv2d, bits=[4, 8], mode="noise")
    )
    convs = [m for m in op.modules() if hasattr(m, "macs_per_pixel")]
    assert convs and all(isinstance(m, MixedQConv2d) for m in convs)
    assert op(torch.randn(1, 12, 6, 6)).shape == (1, 12, 6, 6)


def test_catalogue_contains_spec_ops():
    ops = set(available_ops())
    for name in [
        "simple_1x1",
        "simple_3x3",
        "simple_5x5",
        "simple_3x3_grouped_2",
        "simple_3x3_grouped_3",
        "simple_3x3_grouped_full",
        "simple_3x3_d2",
        "conv_3x1_1x3",
        "growth2_3x3",
        "decenc_3x3_2",
        "DWS_3x3",
        "skip_connect",
        "zero",
    ]:
        assert name in ops
    # simple 1/3/5/7 (4) + grouped 2/3/4/full (16) + dilated (2) + factorized, DWS and dwsep
    # at 3/5/7 (9) + growth 1/2/3 at 1/3/5 (9) + decenc 2/4 (+ g3) at 1/3/5 (12) + skip, zero
    assert len(ops) == 4 + 16 + 2 + 9 + 9 + 12 + 2


def test_channel_plan_simple():
    op = build_op("simple_5x5", c_in=6, c_out=12, c_fixed=18, conv=CONV8)
    assert _plan(op) == [(6, 12, (5, 5), 1)]
    assert _convs(op)[0].padding == (2, 2)


def test_channel_plan_conv_3x1_1x3():
    op = build_op("conv_3x1_1x3", c_in=6, c_out=12, c_fixed=18, conv=CONV8)
    assert _plan(op) == [(6, 18, (3, 1), 1), (18, 12, (1, 3), 1)]
    assert [c.padding for c in _convs(op)] == [(1, 0), (0, 1)]


def test_channel_plan_growth2_3x3():
    op = build_op("growth2_3x3", c_in=6, c_out=12, c_fixed=18, conv=CONV8)
    assert _plan(op) == [(6, 36, (3, 3), 1), (36, 12, (3, 3), 1)]


def test_channel_plan_decenc_3x3_2():
    op = build_op("decenc_3x3_2", c_in=6, c_out=12, c_fixed=18, conv=CONV8)
    assert _plan(op) == [(6, 9, (3, 3), 1), (9, 9, (3, 3), 1), (9, 12, (3, 3), 1)]
    op4 = build_op("decenc_5x5_4", c_in=12, c_out=12, c_fixed=12, conv=CONV8)
    assert _plan(op4) == [(12, 3, (5, 5), 1), (3, 3, (5, 5), 1), (3, 12, (5, 5), 1)]


def test_decenc_needs_divisible_c_fixed():
    with pytest.raises(QuantNASError, match="c_fixed=18.*reduction 4"):
        build_op("decenc_3x3_4", c_in=6, c_out=12, c_fixed=18, conv=CONV8, where="skip[0]")


def test_channel_plan_dwsep_3x3():
    op = build_op("dwsep_3x3", c_in=6, c_out=12, c_fixed=18, conv=CONV8)
    assert _plan(op) == [(6, 6, (3, 3), 6), (6, 12, (1, 1), 1)]


@pytest.mark.parametrize("name", ["DWS_3x3", "DWS_5x5"])
def test_channel_plan_dws_original(name):
    # the original code's DWS: 1x1 c -> 4c, then 1x1 grouped by c back to c; its KxK is unused
    op = build_op(name, c_in=6, c_out=6, c_fixed=18, conv=CONV8)
    assert _plan(op) == [(6, 24, (1, 1), 1), (24, 6, (1, 1), 6)]
    assert sum(c.macs_per_pixel() for c in _convs(op)) == 6 * 24 + 24 * 6 // 6
    with pytest.raises(QuantNASError, match="DWS needs c_in == c_out"):
        build_op(name, c_in=6, c_out=12, c_fixed=18, conv=CONV8)


def test_channel_plan_decenc_grouped_3():
    op = build_op("decenc_5x5_2_g3", c_in=36, c_out=36, c_fixed=36, conv=CONV8)
    assert _plan(op) == [(36, 18, (5, 5), 3), (18, 18, (5, 5), 3), (18, 36, (5, 5), 3)]


def test_channel_plan_grouped():
    op = build_op("simple_3x3_grouped_full", c_in=12, c_out=12, c_fixed=18, conv=CONV8)
    assert _plan(op) == [(12, 12, (3, 3), 12)]
    op3 = build_op("simple_1x1_grouped_3", c_in=6, c_out=12, c_fixed=18, conv=CONV8)
    assert _plan(op3) == [(6, 12, (1, 1), 3)]
    assert _convs(op3)[0].macs_per_pixel() == 6 * 12 // 3


def test_grouped_full_needs_equal_channels():
    with pytest.raises(QuantNASError, match=r"body\[0\].*c_in == c_out"):
        build_op(
            "simple_3x3_grouped_full", c_in=6, c_out=12, c_fixed=12, conv=CONV8, where="body[0]"
        )


def test_grouped_not_dividing_names_layer():
    with pytest.raises(QuantNASError, match=r"head\[0\] \(simple_3x3_grouped_2, 3->12"):
        build_op("simple_3x3_grouped_2", c_in=3, c_out=12, c_fixed=12, conv=CONV8, where="head[0]")


def test_channel_plan_dilated():
    op = build_op("simple_3x3_d2", c_in=6, c_out=12, c_fixed=18, conv=CONV8)
    (conv,) = _convs(op)
    assert _plan(op) == [(6, 12, (3, 3), 1)]
    assert conv.dilation == (2, 2) and conv.padding == (2, 2)
    # dilation means a 5x5 receptive field: a delta at the centre reaches +-2, not +-1
    x = torch.zeros(1, 6, 9, 9)
    x[0, :, 4, 4] = 1.0
    conv.quantized = False
    with torch.no_grad():
        conv.weight.fill_(1.0)
    nz = (op(x)[0, 0] != 0).nonzero().tolist()
    assert sorted(nz) == sorted([[r, c] for r in (2, 4, 6) for c in (2, 4, 6)])


def test_unknown_op_suggests():
    with pytest.raises(QuantNASError, match=r"body\[2\].*simple_3x33.*did you mean.*simple_3x3"):
        build_op("simple_3x33", c_in=12, c_out=12, c_fixed=12, conv=CONV8, where="body[2]")
    with pytest.raises(QuantNASError, match="unknown operation 'xyzzy'"):
        check_op("xyzzy")


def test_skip_connect_needs_equal_channels():
    with pytest.raises(QuantNASError, match=r"upsample\[0\] \(skip_connect, 12->48"):
        build_op("skip_connect", c_in=12, c_out=48, c_fixed=12, conv=CONV8, where="upsample[0]")


def test_zero_changes_channels():
    op = build_op("zero", c_in=12, c_out=5, c_fixed=12, conv=CONV8)
    assert op(torch.randn(2, 12, 3, 4)).shape == (2, 5, 3, 4)
