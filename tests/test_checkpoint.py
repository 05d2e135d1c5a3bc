import json
import random

import numpy as np
import pytest
import torch

from quantnas import rng
from quantnas.errors import QuantNASError
from quantnas.rundir import files as fio
from quantnas.training import checkpoint as ck


def test_atomic_save_roundtrip(tmp_path):
    obj = {"epoch": 3, "weights": {"w": torch.arange(6.0).reshape(2, 3)}, "name": "run"}
    out = fio.atomic_save(obj, tmp_path / "sub" / "ckpt.pt")
    assert out == tmp_path / "sub" / "ckpt.pt"
    loaded = ck.load_checkpoint(out)
    assert loaded["epoch"] == 3 and loaded["name"] == "run"
    assert torch.equal(loaded["weights"]["w"], obj["weights"]["w"])
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["ckpt.pt"]


def test_failed_save_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    fio.atomic_save({"epoch": 1}, path)
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        fio.atomic_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert ck.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_atomic_write_text_and_json(tmp_path):
    fio.atomic_write_text(tmp_path / "a.txt", "hello\n")
    assert (tmp_path / "a.txt").read_text() == "hello\n"
    data = {"z": 1, "a": [1, 2], "np": np.float32(0.5), "p": tmp_path / "x"}
    fio.atomic_write_json(tmp_path / "b.json", data)
    text = (tmp_path / "b.json").read_text()
    assert text.index('"z"') < text.index('"a"')  # insertion order kept
    assert text.startswith('{\n  "z"')
    assert json.loads(text) == {"z": 1, "a": [1, 2], "np": 0.5, "p": str(tmp_path / "x")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json"]


def _draw():
    return (
        [random.random() for _ in range(3)],
        np.random.rand(3).tolist(),
        np.random.randn(3).tolist(),  # exercises the cached-gaussian state
        torch.rand(3).tolist(),
    )


def test_rng_roundtrip_through_checkpoint(tmp_path):
    rng.seed_everything(123)
    _draw()
    np.random.randn()  # leave a cached gaussian in numpy's state
    fio.atomic_save({"rng": rng.rng_state()}, tmp_path / "r.pt")
    expected = _draw()
    rng.seed_everything(999)
    _draw()
    rng.set_rng_state(ck.load_checkpoint(tmp_path / "r.pt")["rng"])  # weights_only load
    assert _draw() == expected


def test_seed_everything_reproducible():
    rng.seed_everything(7)
    a = _draw()
    rng.seed_everything(7)
    assert _draw() == a
    with pytest.raises(QuantNASError, match="seed"):
        rng.seed_everything(-1)


def test_load_missing_and_corrupt(tmp_path):
    with pytest.raises(QuantNASError, match=r"checkpoint .*nope\.pt does not exist"):
        ck.load_checkpoint(tmp_path / "nope.pt")
    good = fio.atomic_save({"epoch": 1, "w": torch.ones(100)}, tmp_path / "good.pt")
    data = good.read_bytes()
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(QuantNASError, match="is corrupt or not a quantnas checkpoint"):
        ck.load_checkpoint(trunc)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(QuantNASError, match="is corrupt or not a quantnas checkpoint"):
        ck.load_checkpoint(junk)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(QuantNASError, match="is corrupt"):
        ck.load_checkpoint(empty)
    notdict = fio.atomic_save([1, 2], tmp_path / "list.pt")
    with pytest.raises(QuantNASError, match="expected a dict"):
        ck.load_checkpoint(notdict)


class _Custom:
    pass


def test_unsafe_objects_need_trusted(tmp_path):
    path = fio.atomic_save({"obj": _Custom()}, tmp_path / "c.pt")
    with pytest.raises(QuantNASError, match="trusted=True"):
        ck.load_checkpoint(path)
    assert isinstance(ck.load_checkpoint(path, trusted=True)["obj"], _Custom)
