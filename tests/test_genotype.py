import json

import pytest
import torch

from quantnas.errors import QuantNASError
from quantnas.pipeline.resolve import ArchConfig
from quantnas.space.build import build_network, check_genotype
from quantnas.space.genotype import (
    BLOCKS,
    BUILTIN,
    PAPER_EXAMPLE,
    Genotype,
    LayerChoice,
    from_dict,
    load,
    loads,
    parse_text,
    resolve,
    save,
)

PAPER_TEXT = (
    "Genotype_SR(head=[('simple_5x5_grouped_3', 8), ('simple_3x3', 8)], "
    "body=[('simple_1x1_grouped_3', 2), ('simple_1x1', 2)], tail=[], "
    "skip=[('decenc_3x3_2', 2)], upsample=[('simple_3x3_grouped_3', 8)])"
)


def _geno():
    return Genotype.from_pairs(
        {
            "head": [("simple_3x3", 8), ("simple_5x5_grouped_3", 4)],
            "body": [("DWS_3x3", 2), ("conv_3x1_1x3", 16)],
            "skip": [("decenc_3x3_2", 3)],
            "upsample": [("growth2_3x3", 32)],
            "tail": [("simple_1x1", 8)],
        }
    )


def _rfdn_geno(cells=1):
    return Genotype.from_pairs(
        {
            "body": [("simple_3x3", 8)] * 4 * cells,
            "skip": [("simple_1x1", 4)] * 3 * cells,
            "upsample": [("simple_3x3", 8)],
            "tail": [("simple_1x1", 8)],
        },
        space="rfdn",
    )


def test_paper_string_parses():
    g = parse_text(PAPER_TEXT)
    assert g.pairs() == {
        "head": [("simple_5x5_grouped_3", 8), ("simple_3x3", 8)],
        "body": [("simple_1x1_grouped_3", 2), ("simple_1x1", 2)],
        "skip": [("decenc_3x3_2", 2)],
        "upsample": [("simple_3x3_grouped_3", 8)],
        "tail": [],
    }
    assert g.counts() == {"head": 2, "body": 2, "skip": 1, "upsample": 1, "tail": 0}
    assert g == PAPER_EXAMPLE and g.space == "basic"
    assert g.blocks["head"][0] == LayerChoice("simple_5x5_grouped_3", 8)
    assert str(g.blocks["body"][1]) == "simple_1x1@2b"
    # loads / resolve dispatch to the text parser; "Genotype(...)" is accepted too
    assert loads(PAPER_TEXT) == g
    assert resolve(PAPER_TEXT) == g
    assert parse_text(PAPER_TEXT.replace("Genotype_SR", "Genotype")) == g
    # multi-line text as printed by the research code
    assert loads("\n  " + PAPER_TEXT.replace(", ", ",\n    ") + "\n") == g


def test_json_round_trip():
    g = _geno()
    data = json.loads(g.to_json())
    assert data["format"] == "quantnas-genotype" and data["version"] == 1
    assert data["space"] == "basic"
    assert data["blocks"]["head"] == [
        {"op": "simple_3x3", "bits": 8},
        {"op": "simple_5x5_grouped_3", "bits": 4},
    ]
    assert list(data["blocks"]) == list(BLOCKS)
    assert loads(g.to_json()) == g
    assert from_dict(data) == g
    r = _rfdn_geno()
    assert loads(r.to_json()) == r and loads(r.to_json()).space == "rfdn"
    assert loads(r.to_json()) != Genotype(r.blocks, space="basic")


def test_save_load_round_trip(tmp_path):
    g = _geno()
    path = save(g, tmp_path / "best.json")
    assert path.is_file()
    assert load(path) == g
    assert resolve(str(path)) == g
    (tmp_path / "arch.txt").write_text(PAPER_TEXT + "\n")
    assert load(tmp_path / "arch.txt") == PAPER_EXAMPLE


def test_load_missing_file(tmp_path):
    with pytest.raises(QuantNASError, match="does not exist"):
        load(tmp_path / "nope.json")


def test_text_round_trip():
    g = _geno()
    text = g.to_text()
    assert text.startswith("Genotype_SR(head=[('simple_3x3', 8), ")
    assert "tail=[('simple_1x1', 8)]" in text
    assert parse_text(text) == g
    assert str(g) == text
    assert parse_text(PAPER_EXAMPLE.to_text()) == PAPER_EXAMPLE


def test_text_round_trip_rfdn_keeps_space():
    r = _rfdn_geno()
    assert loads(r.to_text()) == r


def test_builtins():
    assert set(BUILTIN) >= {"default", "paper-example"}
    assert resolve("paper-example") == PAPER_EXAMPLE
    assert resolve(PAPER_EXAMPLE) is PAPER_EXAMPLE


@pytest.mark.parametrize(
    "text",
    [
        "Genotype_SR(head=__import__('os').system('echo hi'))",
        "__import__('os').system('echo hi')",
        "Genotype_SR(head=[(__import__('os').getcwd(), 8)])",
        "Genotype_SR(head=[('simple_3x3', 8)], body=open('/etc/passwd').read())",
        "Genotype_SR(**{'head': []})",
        "Genotype_SR([('simple_3x3', 8)])",
        "os.system('x')(head=[])",
        "Genotype_SR(head=[('simple_3x3', 8)]",
        "Genotype_SR(head=[('simple_3x3', 8)] * 2)",
        "Genotype_SR(head=[('simple_3x3', 8, 1)])",
        "Genotype_SR(head=[('simple_3x3', '8')])",
        "Genotype_SR(head='simple_3x3')",
    ],
)
def test_malicious_or_malformed_text_rejected(text, capfd):
    with pytest.raises(QuantNASError):
        loads(text)
    assert "hi" not in capfd.readouterr().out


def test_unhashable_literal_text_rejected():
    with pytest.raises(QuantNASError):
        parse_text("Genotype_SR(head={[1]: 2})")


@pytest.mark.parametrize(
    "text,match",
    [
        ("Genotype_SR(head=[('simple_3x33', 8)])", r"head\[0\].*did you mean"),
        ("Genotype_SR(head=[('simple_3x3', 5)])", r"head\[0\] bits.*unsupported bit-width 5"),
        ("Genotype_SR(head=[('simple_3x3', 8)], middle=[('simple_3x3', 8)])", "unknown block"),
    ],
)
def test_text_errors(text, match):
    with pytest.raises(QuantNASError, match=match):
        parse_text(text)


def _data(**changes):
    d = _geno().to_dict()
    d.update(changes)
    return d


@pytest.mark.parametrize(
    "data,match",
    [
        (_data(version=2), "version 2 unsupported"),
        ({k: v for k, v in _data().items() if k != "format"}, "missing format"),
        (_data(format="other"), "missing format"),
        ([1, 2], "missing format"),
        (_data(blocks=[1]), "'blocks' must be a mapping"),
        (_data(blocks={"head": {"op": "simple_3x3", "bits": 8}}), "blocks.head must be a list"),
        (_data(blocks={"head": [{"op": "simple_3x3"}]}), r"blocks.head\[0\] must be"),
        (_data(blocks={"head": [{"op": "simple_3x3", "bits": 8, "x": 1}]}), r"head\[0\] must be"),
        (_data(blocks={"head": [["simple_3x3", 8]]}), r"blocks.head\[0\] must be"),
        (_data(blocks={"head": [{"op": "nope_op", "bits": 8}]}), "unknown operation 'nope_op'"),
        (_data(blocks={"head": [{"op": "simple_3x3", "bits": 5}]}), "unsupported bit-width 5"),
        (_data(blocks={"head": [{"op": "simple_3x3", "bits": "8"}]}), "unsupported bit-width"),
        (_data(blocks={"neck": []}), r"unknown block\(s\) \['neck'\]"),
        (_data(space="we ird"), "genotype space 'we ird' is not a space name"),
        (_data(space=3), "genotype space 3 is not a space name"),
    ],
)
def test_json_errors(data, match):
    with pytest.raises(QuantNASError, match=match):
        from_dict(data, source="g.json")
    with pytest.raises(QuantNASError, match="g.json"):
        loads(json.dumps(data), source="g.json")


def test_json_float_bits_rejected_cleanly():
    with pytest.raises(QuantNASError):
        from_dict(_data(blocks={"head": [{"op": "simple_3x3", "bits": 8.0}]}))


def test_invalid_json_text():
    with pytest.raises(QuantNASError, match="invalid JSON"):
        loads('{"format": ')


def test_missing_blocks_are_empty_and_unknown_block_rejected():
    g = Genotype.from_pairs({"head": [("simple_3x3", 8)]})
    assert g.counts() == {"head": 1, "body": 0, "skip": 0, "upsample": 0, "tail": 0}
    with pytest.raises(QuantNASError, match="unknown block"):
        Genotype.from_pairs({"torso": [("simple_3x3", 8)]})


def test_check_genotype_rfdn_layer_counts():
    arch = ArchConfig(space="rfdn", c_fixed=12, body_cells=1)
    check_genotype(_rfdn_geno(1), arch)
    with pytest.raises(QuantNASError, match=r"block 'body' has 8 layers.*1 cells needs 4"):
        check_genotype(_rfdn_geno(2), arch)
    bad = Genotype.from_pairs(
        {**_rfdn_geno(1).pairs(), "skip": [("simple_1x1", 4)] * 2}, space="rfdn"
    )
    with pytest.raises(QuantNASError, match="'skip' has 2 layers"):
        check_genotype(bad, arch)
    with pytest.raises(QuantNASError, match="'rfdn' space but arch.space is 'basic'"):
        check_genotype(_rfdn_geno(1), ArchConfig(c_fixed=12))


def test_unregistered_space_is_refused_where_the_genotype_meets_a_space():
    """A genotype stores any space name (so one registered from outside the package
    round-trips); the spaces' registry refuses an unknown one when the genotype is used.
    """
    g = from_dict(_data(space="weird"))
    assert g.space == "weird" and loads(g.to_json()) == g
    assert parse_text(g.to_text()) == g
    with pytest.raises(QuantNASError, match=r"genotype space: unknown search space 'weird'"):
        check_genotype(g, ArchConfig(c_fixed=12))
    with pytest.raises(QuantNASError, match=r"space= 'we ird' is not a space name"):
        parse_text("Genotype_SR(head=[], space='we ird')")


def test_check_genotype_basic_needs_layers():
    g = Genotype.from_pairs({**PAPER_EXAMPLE.pairs(), "skip": []})
    with pytest.raises(QuantNASError, match="block 'skip' needs at least one layer"):
        check_genotype(g, ArchConfig())


def test_build_network_grouped_conv_not_dividing_names_layer():
    g = Genotype.from_pairs({**PAPER_EXAMPLE.pairs(), "head": [("simple_3x3_grouped_2", 8)]})
    with pytest.raises(QuantNASError, match=r"head\[0\] \(simple_3x3_grouped_2, 3->12 channels\)"):
        build_network(g, ArchConfig(c_fixed=12, scale=2))


def test_build_network_paper_example_runs():
    torch.manual_seed(0)
    net = build_network(PAPER_EXAMPLE, ArchConfig(c_fixed=12, scale=2, body_cells=2))
    assert net(torch.rand(1, 3, 6, 7)).shape == (1, 3, 12, 14)
    bits = sorted({m.bits for m in net.modules() if hasattr(m, "w_quant")})
    assert bits == [2, 8]
