"""The base install (no extras): every module imports or names its extra, every verb's
``--help`` works, and the verbs that need onnx / onnxruntime / OpenVINO / Ray say in one
``error:`` line which extra to install (exit status 2).

The optional libraries are made unimportable in a fresh interpreter (``sys.modules[name] =
None``: ``import`` raises ImportError and ``importlib.util.find_spec`` answers None, as for
a library that is not installed; a meta-path finder that raises breaks torch, which probes
optional modules with ``find_spec``),
so an unguarded ``import onnx`` anywhere the base install reaches fails here even when the
test environment has the extras installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HIDDEN = ("onnx", "onnxruntime", "ray", "openvino")

_PRELUDE = textwrap.dedent(
    f"""
    import sys
    for _m in [m for m in sys.modules if m.split(".")[0] in {HIDDEN!r}]:
        del sys.modules[_m]
    for _m in {HIDDEN!r}:
        sys.modules[_m] = None  # import raises ImportError; importlib.util.find_spec: None
    """
)


def _run_hidden(body: str) -> dict:
    """Run ``body`` in a fresh interpreter with the extras hidden; it prints one JSON line."""
    proc = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def imports() -> dict:
    return _run_hidden(
        """
        import importlib, json, pkgutil
        import quantnas
        from quantnas.errors import MissingExtraError
        out = {}
        for m in pkgutil.walk_packages(quantnas.__path__, "quantnas."):
            if m.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(m.name)
                out[m.name] = "ok"
            except MissingExtraError as e:
                out[m.name] = "extra: " + str(e)
            except Exception as e:  # anything else is a defect the test reports
                out[m.name] = f"FAIL {type(e).__name__}: {e}"
        print(json.dumps(out))
        """
    )


def test_every_module_imports_or_names_its_extra(imports):
    assert len(imports) > 50  # the walk saw the whole package
    failed = {m: r for m, r in imports.items() if r.startswith("FAIL")}
    assert not failed
    for module, result in imports.items():
        if result != "ok":
            assert "pip install 'quantnas[onnx]'" in result, (module, result)
            assert "\n" not in result


@pytest.mark.parametrize(
    "module",
    [
        "quantnas.cli.commands",
        "quantnas.api",
        "quantnas.cli",
        "quantnas.cli.parser",
        "quantnas.pipeline.run",
        "quantnas.pipeline.job",
        "quantnas.sweep.driver",
        "quantnas.engines",
        "quantnas.deploy.formats",
        "quantnas.deploy.backends",
        "quantnas.deploy.upscale",
        "quantnas.deploy.onnx_runtimes",
        "quantnas.deploy.openvino_runtime",
    ],
)
def test_the_main_job_imports_without_extras(imports, module):
    assert imports[module] == "ok"


def test_cli_without_extras(tmp_path):
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"not really onnx")
    img = tmp_path / "in.png"
    img.write_bytes(b"")
    calls = {
        "export": ["export", str(tmp_path), "--format", "onnx", "--out", str(tmp_path / "m.onnx")],
        "upscale_onnx": ["upscale", str(onnx_file), str(img), "--out", str(tmp_path / "o")],
        "upscale_ort": ["upscale", str(tmp_path), str(img), "--out", str(tmp_path / "o"),
                        "--runtime", "ort"],
        "upscale_openvino": ["upscale", str(tmp_path), str(img), "--out", str(tmp_path / "o"),
                             "--runtime", "openvino"],
        "sweep_ray": ["sweep", "-d", "x", "--engine", "ray", "--preset", "tiny",
                      f"out_dir={tmp_path / 'runs'}"],
    }
    out = _run_hidden(
        f"""
        import contextlib, io, json
        from quantnas.cli import main
        from quantnas.cli.parser import build_parser
        sub = next(a for a in build_parser()._actions if a.dest == "command")
        res = {{}}
        for argv in [["--help"]] + [[v, "--help"] for v in sub.choices]:
            buf_o, buf_e = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(buf_o), contextlib.redirect_stderr(buf_e):
                rc = main(argv)
            res[" ".join(argv)] = [rc, len(buf_o.getvalue()), buf_e.getvalue()]
        for name, argv in {calls!r}.items():
            buf_e = io.StringIO()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(buf_e):
                rc = main(argv)
            res[name] = [rc, 0, buf_e.getvalue()]
        print(json.dumps(res))
        """
    )
    helps = {k: v for k, v in out.items() if k.endswith("--help")}
    assert len(helps) >= 12  # quantnas --help and every verb's
    for argv, (rc, n_out, err) in helps.items():
        assert rc == 0 and n_out > 100 and err == "", argv
    extra = {
        "export": "onnx",
        "upscale_onnx": "onnx",
        "upscale_ort": "onnx",
        "upscale_openvino": "openvino",
        "sweep_ray": "ray",
    }
    for name, want in extra.items():
        rc, _, err = out[name]
        assert rc == 2, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert f"pip install 'quantnas[{want}]'" in lines[0], (name, err)
