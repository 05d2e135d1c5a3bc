"""`quantnas list KIND` (names from the registries) and `quantnas completion` (a script
generated from the parser)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from tiny_runs import one_error

from quantnas.cli import build_parser, listing, main
from quantnas.cli.completion import completion_script, config_keys
from quantnas.cli.listing import KINDS, entries
from quantnas.config.io import presets
from quantnas.deploy.onnx_runtimes import RUNTIMES
from quantnas.space.baselines import BASELINES
from quantnas.space.catalog import SPACES
from quantnas.space.ops import OPS


def listed(capsys, *argv) -> dict:
    assert main(["list", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("kind", "names"),
    [
        ("presets", lambda: presets()),
        ("ops", lambda: list(OPS)),
        ("spaces", lambda: list(SPACES)),
        ("baselines", lambda: list(BASELINES)),
        ("runtimes", lambda: list(RUNTIMES)),
    ],
)
def test_list_gives_every_registered_name_in_order(kind, names, capsys):
    got = listed(capsys, kind)
    assert list(got) == names() and len(got) >= 2
    assert len(OPS) == len(listed(capsys, "ops")) > 16  # more than an error message shows


def test_list_describes_each_entry(capsys):
    assert listed(capsys, "spaces")["rfdn"].startswith("The RFDN-inspired space")
    assert listed(capsys, "runtimes")["ort"] == "needs onnxruntime (pip extra: onnx)"
    assert "seconds-long" in listed(capsys, "presets")["tiny"]
    assert listed(capsys, "engines")["local"].startswith("The trials one after another")
    assert (
        listed(capsys, "methods")["random"] == "random genotypes of the same space and bit-widths"
    )


def test_list_text_has_one_line_per_name_and_the_kinds_without_an_argument(capsys):
    assert main(["list", "spaces"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines] == list(SPACES)
    kinds = listed(capsys)
    assert list(kinds) == list(KINDS)
    assert kinds["ops"] == "operation (arch.primitives)" and kinds["presets"] == "preset (--preset)"


def test_a_name_registered_by_user_code_is_listed(capsys):
    OPS.register("my_op_for_list", lambda **kw: None)
    try:
        assert list(listed(capsys, "ops"))[-1] == "my_op_for_list"
    finally:
        OPS.unregister("my_op_for_list")


def test_list_of_an_unknown_kind_is_one_error(capsys):
    one_error(main(["list", "opz"]), capsys, "invalid choice: 'opz'", "ops")
    with pytest.raises(Exception, match="did you mean ops"):
        entries("opz")


def test_listing_imports_no_optional_runtime():
    """The listing module alone (not the parser, whose verbs import what they run)."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('listing', {listing.__file__!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "for kind in mod.KINDS:\n"
        "    mod.entries(kind)\n"
        "print(sorted(m for m in ('onnx', 'onnxruntime', 'openvino', 'ray') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    ).stdout
    assert out.strip() == "[]"


def test_completion_script_lists_verbs_options_choices_and_keys(capsys):
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert script == completion_script(build_parser(), "bash")
    for word in ("search", "completion", "--bitops", "onnx-fp32", "paper-rfdn", "search.optim.lr="):
        assert word in script
    assert "bashcompinit" in completion_script(build_parser(), "zsh")
    assert "search.optim.lr" in config_keys() and "arch.primitives" in config_keys()


def _complete(script: str, *words: str) -> list[str]:
    """What bash completes after ``quantnas WORDS`` (the last word is being typed)."""
    line = " ".join(("quantnas", *words))
    words_ = " ".join(repr(w) for w in words)
    code = (
        f"{script}\nCOMP_WORDS=(quantnas {words_})\nCOMP_CWORD={len(words)}; "
        f"COMP_LINE={line!r}; _quantnas; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    out = subprocess.run(["bash", "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_verbs_option_choices_presets_and_config_keys():
    script = completion_script(build_parser(), "bash")
    assert _complete(script, "exp") == ["export"]
    assert _complete(script, "export", "--format", "onnx") == ["onnx", "onnx-fp32"]
    assert _complete(script, "run", "--preset", "paper-") == ["paper-basic", "paper-rfdn"]
    assert _complete(script, "list", "spl") == ["splits"]
    assert "spaces" in _complete(script, "list", "sp")
    assert _complete(script, "search", "search.optim.l") == [
        "search.optim.lr=",
        "search.optim.lr_min=",
    ]
    assert "--bitops" in _complete(script, "run", "--")
