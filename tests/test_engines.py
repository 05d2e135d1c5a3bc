"""The ``processes`` sweep engine: a pool of spawned workers, errors as one line each."""

from __future__ import annotations

import math
import operator

import pytest

from quantnas.engines import ENGINES, Job, ProcessEngine, make_engine
from quantnas.errors import QuantNASError


def test_process_engine_runs_jobs_and_reports_failures():
    eng = make_engine("processes", cpus_per_trial=1, max_retries=1)
    assert isinstance(eng, ProcessEngine) and eng.workers >= 1
    jobs = [
        Job("a", operator.add, (2, 3), {}),
        Job("b", math.sqrt, (16.0,), {}),
        Job("bad", math.sqrt, (-1.0,), {}),
    ]
    out = {key: (result, error) for key, result, error in eng.run(jobs)}
    assert out["a"] == (5, None) and out["b"] == (4.0, None)
    result, error = out["bad"]
    assert result is None and error == "ValueError: math domain error"


def test_process_engine_workers_from_cpus_and_gpus():
    assert ProcessEngine(cpus_per_trial=2, num_cpus=16).workers == 8
    assert ProcessEngine(cpus_per_trial=1, gpus_per_trial=0.25, num_cpus=16).workers == 4
    assert ProcessEngine(cpus_per_trial=4, num_cpus=2).workers == 1
    with pytest.raises(QuantNASError, match="--cpus-per-trial must be > 0"):
        ProcessEngine(cpus_per_trial=0)
    with pytest.raises(QuantNASError, match="--address needs --engine ray"):
        make_engine("processes", address="auto")
    assert "processes" in ENGINES
