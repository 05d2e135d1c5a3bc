"""Where parallel work runs (a sweep's trials, the finalists' race of
``search.select: halving``): ``local`` (one after another in this process), ``processes``
(a pool of worker processes on this machine, ``cpus_per_trial`` torch threads each; with
``gpus_per_trial > 0`` the trials run on CUDA, several sharing one GPU) or ``ray`` (Ray
tasks on a local Ray or an existing cluster).

An engine runs *jobs* ``(key, fn, args)`` and yields ``(key, result, error)`` as each one
ends, in completion order: ``error`` is None on success, else a one-line description of
the exception after ``max_retries`` retries. A failing job never stops the others.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from quantnas.errors import QuantNASError
from quantnas.registry import Registry

log = logging.getLogger(__name__)


@dataclass
class Job:
    """A function call to run as one trial."""

    key: str
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


class LocalEngine:
    """Runs jobs in sequence in this process."""

    name = "local"

    def __init__(self, *, max_retries: int = 0) -> None:
        self.max_retries = max(0, int(max_retries))

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[str, Any, str | None]]:
        for job in jobs:
            error = None
            for attempt in range(self.max_retries + 1):
                try:
                    result = job.fn(*job.args, **job.kwargs)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - a trial's failure is recorded
                    error = _describe(exc)
                    log.warning("trial %s failed (attempt %d): %s", job.key, attempt + 1, error)
                    continue
                error = None
                break
            yield job.key, (None if error else result), error

    def close(self) -> None:
        """Nothing to release."""


def ray_available() -> bool:
    """True when Ray can be imported."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _call_with_threads(fn: Callable[..., Any], torch_threads: int, *args, **kwargs) -> Any:
    """Run ``fn`` in a Ray worker with torch pinned to the task's CPUs."""
    import torch

    if torch_threads > 0:
        torch.set_num_threads(torch_threads)
    return fn(*args, **kwargs)


class RayEngine:
    """Runs each job as a Ray task (``num_cpus`` / ``num_gpus`` per trial).

    Args:
        address: Ray cluster address (``ray://...``, ``HOST:PORT`` or ``auto``); None starts
            a new local Ray (or uses one already initialised in this process).
        cpus_per_trial: CPUs reserved per task; torch in the task uses that many threads.
        gpus_per_trial: GPUs reserved per task (fractions allowed).
        max_retries: Retries of a task that raised or whose worker died.
        num_cpus: CPUs of a local Ray (None = all).

    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        cpus_per_trial: float = 1,
        gpus_per_trial: float = 0,
        max_retries: int = 0,
        num_cpus: int | None = None,
    ) -> None:
        if not ray_available():
            raise QuantNASError(
                "--engine ray needs Ray: pip install 'quantnas[ray]' (or use --engine local)"
            )
        if cpus_per_trial <= 0 or gpus_per_trial < 0:
            raise QuantNASError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
        self.address, self.num_cpus = address, num_cpus
        self.cpus, self.gpus = float(cpus_per_trial), float(gpus_per_trial)
        self.max_retries = max(0, int(max_retries))
        self._started = False

    def _init(self) -> None:
        import ray

        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address:
            kwargs["address"] = self.address
        else:  # a new local Ray, never an unrelated cluster found on this machine
            kwargs["address"] = "local"
            # Ray runs workers at niceness 15; trials are the work itself, so they run at the
            # priority of `quantnas run` (else any other process on the machine starves them)
            os.environ.setdefault("RAY_worker_niceness", "0")
            if self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local Ray"
            raise QuantNASError(f"--engine ray: cannot start/connect to {where} ({exc})") from None
        self._started = True
        log.info("ray: %s", ray.cluster_resources())

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[str, Any, str | None]]:
        import ray
        from ray.exceptions import RayError, RayTaskError

        self._init()
        threads = max(1, int(self.cpus))
        remote = ray.remote(
            num_cpus=self.cpus,
            num_gpus=self.gpus,
            max_retries=self.max_retries,
            retry_exceptions=True,
        )(_call_with_threads)
        pending = {remote.remote(j.fn, threads, *j.args, **j.kwargs): j.key for j in jobs}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    key = pending.pop(ref)
                    try:
                        yield key, ray.get(ref), None
                    except RayTaskError as exc:
                        cause = getattr(exc, "cause", None)
                        yield key, None, _describe(cause if cause is not None else exc)
                    except RayError as exc:
                        yield key, None, _describe(exc)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Shut down a local Ray this engine started."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


class ProcessEngine:
    """Runs jobs in a pool of spawned worker processes of this machine.

    Args:
        cpus_per_trial: Torch threads per trial; the pool has ``num_cpus / cpus_per_trial``
            workers (at least 1).
        gpus_per_trial: > 0: the trials run on CUDA (``1 / gpus_per_trial`` share a GPU).
        max_retries: Retries of a job that raised.
        num_cpus: CPUs to use (None = all of this machine's).

    """

    name = "processes"

    def __init__(
        self,
        *,
        cpus_per_trial: float = 1,
        gpus_per_trial: float = 0,
        max_retries: int = 0,
        num_cpus: int | None = None,
    ) -> None:
        if cpus_per_trial <= 0 or gpus_per_trial < 0:
            raise QuantNASError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
        self.cpus, self.gpus = float(cpus_per_trial), float(gpus_per_trial)
        total = num_cpus or os.cpu_count() or 1
        by_gpu = math.inf if self.gpus == 0 else math.floor(1 / self.gpus + 1e-9)
        self.workers = max(1, int(min(total // self.cpus, by_gpu)))
        self.max_retries = max(0, int(max_retries))

    def run(self, jobs: Sequence[Job]) -> Iterator[tuple[str, Any, str | None]]:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        threads = max(1, int(self.cpus))
        log.info("processes: %d workers, %d threads each", self.workers, threads)
        ctx = multiprocessing.get_context("spawn")  # no forked torch / CUDA state
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
            def submit(job: Job, attempt: int):
                fut = pool.submit(_call_with_threads, job.fn, threads, *job.args, **job.kwargs)
                return fut, (job, attempt)

            pending = dict(submit(j, 0) for j in jobs)
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    job, attempt = pending.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a trial's failure is recorded
                        error = _describe(exc)
                        log.warning(
                            "trial %s failed (attempt %d): %s", job.key, attempt + 1, error
                        )
                        if attempt < self.max_retries:
                            new, meta = submit(job, attempt + 1)
                            pending[new] = meta
                            continue
                        yield job.key, None, error
                        continue
                    yield job.key, result, None

    def close(self) -> None:
        """The pool is shut down when :meth:`run` ends."""


def make_engine(
    name: str,
    *,
    address: str | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    max_retries: int = 0,
    num_cpus: int | None = None,
) -> LocalEngine | ProcessEngine | RayEngine:
    """The engine ``name`` of :data:`ENGINES` (``auto`` = Ray when installed or with
    ``--address``, else local); ``num_cpus`` caps the CPUs a process pool or a new local
    Ray uses (None = all of this machine's).
    """
    return ENGINES.get(name)(
        address=address,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        max_retries=max_retries,
        num_cpus=num_cpus,
    )


#: Engine factories ``f(*, address, cpus_per_trial, gpus_per_trial, max_retries,
#: num_cpus)`` by ``--engine`` name.
Engine = LocalEngine | ProcessEngine | RayEngine
ENGINES: Registry[Callable[..., Engine]] = Registry("engine", key="--engine")


@ENGINES.register("auto")
def _auto(*, address: str | None, **kw: Any) -> Engine:
    """Ray when it is installed (or with --address), else one trial after another."""
    return ENGINES.get("ray" if ray_available() or address else "local")(address=address, **kw)


@ENGINES.register("local")
def _local(*, address: str | None, max_retries: int, **_: Any) -> LocalEngine:
    """The trials one after another in this process, without Ray."""
    if address:
        raise QuantNASError("--address needs --engine ray")
    return LocalEngine(max_retries=max_retries)


@ENGINES.register("processes")
def _processes(*, address: str | None, **kw: Any) -> ProcessEngine:
    """A pool of worker processes on this machine (on CUDA with --gpus-per-trial > 0)."""
    if address:
        raise QuantNASError("--address needs --engine ray")
    return ProcessEngine(**kw)


@ENGINES.register("ray")
def _ray(**kw: Any) -> RayEngine:
    """Each trial a Ray task (a new local Ray, or an existing cluster with --address)."""
    return RayEngine(**kw)
