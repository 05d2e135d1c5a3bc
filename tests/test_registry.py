"""The one ``Registry`` primitive, and a third search space registered from outside the
package running end to end (search, training, JSON and ONNX export).
"""

import json
import math

import numpy as np
import pytest
import torch

from quantnas import api
from quantnas.errors import QuantNASError
from quantnas.models.basic import check_basic_counts
from quantnas.pipeline.resolve import choices
from quantnas.registry import Registry
from quantnas.space import genotype as gt
from quantnas.space.catalog import SPACES, BasicSpace, available_spaces, register_space
from quantnas.space.ops import OPS

# ------------------------------------------------------------------------------- Registry


def test_register_get_names_contains_and_order():
    reg: Registry[int] = Registry("colour", key="paint.colour")
    assert reg.register("red", 1) == 1
    reg.register("green", 2)
    reg.register("blue", 3)
    assert reg.names() == ("red", "green", "blue")  # registration order
    assert list(reg) == ["red", "green", "blue"] and len(reg) == 3
    assert reg.items() == (("red", 1), ("green", 2), ("blue", 3))
    assert reg.get("green") == 2
    assert "red" in reg and "purple" not in reg
    assert ["red"] not in reg and 1 not in reg  # unhashable or not a string: not a name


def test_decorator_form_registers_and_returns_the_object():
    reg: Registry = Registry("loss", key="train.loss")

    @reg.register("double")
    def double(x):
        return 2 * x

    assert reg.get("double") is double and double(4) == 8


def test_duplicates_and_bad_names_are_refused():
    reg: Registry[int] = Registry("colour")
    reg.register("red", 1)
    with pytest.raises(QuantNASError, match=r"^colour 'red' registered twice$"):
        reg.register("red", 2)
    with pytest.raises(QuantNASError, match="registered twice"):
        reg.register("red")  # the decorator form too, before decorating anything
    assert reg.get("red") == 1
    for bad in ("", 3, None):
        with pytest.raises(QuantNASError, match="colour name must be a non-empty string"):
            reg.register(bad, 1)


def test_unknown_name_names_the_key_and_suggests_close_matches():
    reg = Registry.of("colour", {"red": 1, "green": 2, "blue": 3}, key="paint.colour")
    with pytest.raises(QuantNASError) as e:
        reg.get("gren")
    msg = str(e.value)
    assert msg == (
        "paint.colour: unknown colour 'gren'; expected one of ['red', 'green', 'blue'] "
        "(did you mean green?)"
    )
    assert "\n" not in msg
    with pytest.raises(QuantNASError, match=r"^layer 3: unknown colour 'zzz'; expected one"):
        reg.check("zzz", where="layer 3")  # the caller names another place
    assert reg.unknown("zzz").endswith("['red', 'green', 'blue']")  # no close match, no hint


def test_long_registries_list_only_close_matches():
    # the op registry has ~70 names: its errors suggest instead of listing them all
    with pytest.raises(QuantNASError) as e:
        OPS.get("simple_3x33", where="genotype body[2]")
    msg = str(e.value)
    assert msg.startswith("genotype body[2]: unknown operation 'simple_3x33' (did you mean ")
    assert "simple_3x3" in msg and "expected one of" not in msg


def test_unregister_removes_and_returns():
    reg = Registry.of("colour", {"red": 1, "green": 2})
    assert reg.unregister("red") == 1 and reg.names() == ("green",)
    with pytest.raises(QuantNASError, match="unknown colour 'red'"):
        reg.unregister("red")


def test_every_choice_key_of_the_config_is_a_registry_with_its_default():
    from quantnas.config.types import Config

    cfg = Config()
    for key, registry in choices().items():
        section, name = key.split(".")
        assert isinstance(registry, Registry), key
        assert getattr(getattr(cfg, section), name) in registry, key


def test_config_validation_asks_the_owner_registry(tmp_path):
    from quantnas.search.losses import SPARSE_TYPES

    with pytest.raises(QuantNASError, match=r"search.sparse_type: 'l3' is not one of \['entr"):
        api.load_config("tiny", overrides=["search.sparse_type=l3"])

    @SPARSE_TYPES.register("zero_test")
    def _zero(probs, logits):
        return torch.zeros(())

    try:
        cfg = api.load_config("tiny", overrides=["search.sparse_type=zero_test"])
        assert cfg.search.sparse_type == "zero_test"
    finally:
        SPARSE_TYPES.unregister("zero_test")
    with pytest.raises(QuantNASError, match="'zero_test' is not one of"):
        api.load_config("tiny", overrides=["search.sparse_type=zero_test"])


# ----------------------------------------------------------------- a third search space


class MiniSpace(BasicSpace):
    """A small variant of the basic space, defined outside the package: a fixed pattern of
    one head, one body, one skip and one upsample layer (no tail, whatever
    ``arch.arch_pattern`` says) and two candidates per block.
    """

    name = "test-mini"
    default_primitives = {
        "head": ["simple_3x3", "simple_5x5"],
        "body": ["simple_1x1", "simple_3x3"],
        "skip": ["simple_1x1", "zero"],
        "upsample": ["simple_3x3", "simple_1x1"],
        "tail": ["simple_3x3"],
    }
    pattern = {"head": 1, "body": 1, "skip": 1, "upsample": 1, "tail": 0}

    def counts(self, arch):
        return dict(self.pattern)

    def check_counts(self, counts, arch):
        check_basic_counts(counts, where="genotype")
        if dict(counts) != self.pattern:
            raise QuantNASError(f"genotype: the {self.name} space has {self.pattern} layers")


@pytest.fixture
def mini_space():
    """``MiniSpace`` registered for one test, removed afterwards."""
    register_space(MiniSpace())
    try:
        yield SPACES.get(MiniSpace.name)
    finally:
        SPACES.unregister(MiniSpace.name)
    assert available_spaces() == ("basic", "rfdn")


def test_a_space_registered_twice_is_refused(mini_space):
    with pytest.raises(QuantNASError, match="search space 'test-mini' registered twice"):
        register_space(MiniSpace())


def test_an_unregistered_space_is_refused_by_config_and_genotype_use():
    assert MiniSpace.name not in SPACES
    with pytest.raises(QuantNASError, match=r"config key arch.space: 'test-mini' is not one of"):
        api.load_config("tiny", overrides=["arch.space=test-mini"])


@pytest.mark.usefixtures("quiet_torch_warnings")
def test_third_space_searches_trains_and_exports(mini_space, tmp_path):
    overrides = [
        "arch.space=test-mini",
        "search.steps_per_epoch=2",
        "train.steps_per_epoch=2",
        "arch.output_scale=false",
        "threads=1",
        f"out_dir={tmp_path}",
    ]
    cfg = api.load_config("tiny", overrides=overrides)
    assert cfg.arch.space == "test-mini"

    found = api.search(cfg, tmp_path / "search")
    best = found.best
    assert best.space == "test-mini" and best.counts() == MiniSpace.pattern
    for block, layers in best.blocks.items():
        for layer in layers:
            assert layer.op in MiniSpace.default_primitives[block]
            assert layer.bits in cfg.arch.bits
    saved = gt.load(tmp_path / "search" / "best_arch.json")
    assert saved == best  # the genotype JSON of a registered space round-trips
    assert gt.parse_text(best.to_text()) == best and "space='test-mini'" in best.to_text()

    trained = api.train(cfg, tmp_path / "train", genotype=best)
    assert trained.best_path.is_file() and math.isfinite(trained.best_psnr)
    assert gt.load(tmp_path / "train" / "genotype.json") == best
    assert json.loads((tmp_path / "train" / "genotype.json").read_text())["space"] == "test-mini"

    net, geno, arch = api.load_model(trained.best_path)
    assert geno == best and arch.space == "test-mini"
    lr = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        sr = net(lr)
    assert sr.shape == (1, 3, 10 * arch.scale, 10 * arch.scale) and torch.isfinite(sr).all()

    pytest.importorskip("onnxruntime")
    from quantnas.deploy.export import export_model
    from quantnas.deploy.onnx_runtimes import onnx_runner

    rep = export_model(trained.best_path, tmp_path / "mini.onnx", runtime="ort")
    assert rep.path.is_file() and rep.qdq_pairs > 0
    out = onnx_runner(rep.path, "ort")(lr.numpy())[0]
    assert out.shape == tuple(sr.shape)
    # the self-check's tolerance: a rounding tie may move a level by one step
    assert float(np.abs(out - sr.numpy()).max()) < 0.05
