import json
import logging
import sys

import pytest

from quantnas.errors import QuantNASError
from quantnas.rundir import log as runlog
from quantnas.rundir.metric_rows import MetricLogger


@pytest.fixture
def clean_logger():
    logger = logging.getLogger("quantnas")
    saved = list(logger.handlers), logger.level
    yield logger
    for h in list(logger.handlers):
        if h not in saved[0]:
            logger.removeHandler(h)
            h.close()
    logger.setLevel(saved[1])


def test_setup_logging_idempotent_and_writes_file(tmp_path, clean_logger, capsys):
    foreign = logging.NullHandler()
    clean_logger.addHandler(foreign)
    runlog.setup_logging(tmp_path)
    n = len(clean_logger.handlers)
    logger = runlog.setup_logging(tmp_path, level=logging.DEBUG)
    assert logger is clean_logger
    assert len(clean_logger.handlers) == n == 3  # foreign + console + file
    assert foreign in clean_logger.handlers
    logging.getLogger("quantnas.sub").info("hello %d", 42)
    logging.getLogger("quantnas.sub").debug("dbg")
    for h in clean_logger.handlers:
        h.flush()
    text = (tmp_path / "log.txt").read_text()
    assert text.count("hello 42") == 1 and "INFO" in text and "dbg" in text
    assert capsys.readouterr().err.count("hello 42") == 1
    # console only: file handler removed
    runlog.setup_logging(None)
    assert sum(isinstance(h, logging.FileHandler) for h in clean_logger.handlers) == 0
    clean_logger.removeHandler(foreign)


def test_progress_respects_tty_and_env(monkeypatch):
    monkeypatch.setattr(sys, "stderr", open("/dev/null", "w"))  # noqa: SIM115
    monkeypatch.delenv("QUANTNAS_PROGRESS", raising=False)
    bar = runlog.progress(range(3), desc="x")
    assert bar.disable and list(bar) == [0, 1, 2]
    monkeypatch.setenv("QUANTNAS_PROGRESS", "1")
    assert not runlog.progress(range(3), desc="x").disable
    assert runlog.progress(range(3), desc="x", enabled=False).disable


def _read_jsonl(path):
    """The keys of all rows in order of first appearance, and the rows."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return list(dict.fromkeys(k for r in rows for k in r)), rows


def test_jsonl_keys_grow_and_roundtrip(tmp_path):
    m = MetricLogger(tmp_path, tensorboard=False)
    m.log({"epoch": 0, "train_loss": 0.5})
    m.log({"epoch": 1, "train_loss": 0.4})
    m.log({"epoch": 2, "train_loss": 0.3, "val_psnr": 30.25, "genotype": None})
    m.close()
    header, rows = _read_jsonl(tmp_path / "metrics.jsonl")
    assert header == ["epoch", "train_loss", "val_psnr", "genotype"]
    assert len(rows) == 3
    assert "val_psnr" not in rows[0] and rows[2]["val_psnr"] == 30.25
    assert not (tmp_path / "metrics.csv").exists()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [0, 1, 2]
    assert m.rows()[2] == {"epoch": 2, "train_loss": 0.3, "val_psnr": 30.25, "genotype": None}


def test_numpy_and_torch_values_are_plain(tmp_path):
    import numpy as np
    import torch

    m = MetricLogger(tmp_path, tensorboard=False)
    row = m.log({"epoch": np.int64(1), "loss": torch.tensor(0.5), "psnr": np.float32(30.5)})
    assert row == {"epoch": 1, "loss": 0.5, "psnr": 30.5}
    assert type(m.rows()[0]["epoch"]) is int
    with pytest.raises(QuantNASError):
        m.log([1, 2])


def test_resume_keeps_rows_and_truncate_after(tmp_path):
    m = MetricLogger(tmp_path, tensorboard=False)
    for e in range(5):
        m.log({"epoch": e, "loss": 1.0 / (e + 1)})
    m.log({"note": "no epoch"})
    m.close()
    m2 = MetricLogger(tmp_path, tensorboard=False)
    assert len(m2.rows()) == 6
    assert m2.truncate_after("epoch", 2) == 2
    assert [r.get("epoch") for r in m2.rows()] == [0, 1, 2, None]
    m2.log({"epoch": 3, "loss": 0.2, "extra": 1})
    header, rows = _read_jsonl(tmp_path / "metrics.jsonl")
    assert header == ["epoch", "loss", "note", "extra"]
    assert [r.get("epoch") for r in rows] == [0, 1, 2, None, 3]
    assert [r.get("epoch") for r in m2.rows()] == [0, 1, 2, None, 3]
    assert m2.truncate_after("epoch", 10) == 0
    m2.close()


def test_partial_last_jsonl_line_is_ignored(tmp_path):
    m = MetricLogger(tmp_path, tensorboard=False)
    m.log({"epoch": 0})
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 1, "lo')
    m2 = MetricLogger(tmp_path, tensorboard=False)
    assert m2.rows() == [{"epoch": 0}]
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 0\n{"epoch": 1}\n')
    with pytest.raises(QuantNASError, match="metrics.jsonl: line 1"):
        MetricLogger(tmp_path, tensorboard=False)


def test_tensorboard_missing_is_tolerated(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with caplog.at_level(logging.INFO, logger="quantnas"):
        m = MetricLogger(tmp_path, tensorboard=True)
    assert "tensorboard is not installed" in caplog.text
    m.log({"epoch": 0, "loss": 1.0})
    m.close()
    assert not (tmp_path / "tensorboard").exists()


def test_tensorboard_writes_events(tmp_path):
    pytest.importorskip("tensorboard")
    with MetricLogger(tmp_path) as m:
        m.log({"epoch": 0, "loss": 1.0, "name": "x"})
        m.log({"epoch": 1, "loss": 0.5})
        m.truncate_after("epoch", 0)
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
