"""The Ray engine: one batch run across a Ray cluster, on Ray Data.

The driver (this process) turns the plans into a dataset of small rows (index and
paths, ``k`` rows per block) and streams it through ``map_batches`` over an actor
pool of :class:`PlanWorker`. Each actor builds its segmenter once, then reads,
segments and writes whole blocks with :func:`segcli.runs.engines.base.process_plans` (the
stage functions the local engine uses, so outputs are byte-identical) and returns
one small result row per plan. The driver iterates the results as they come
(never collects them), calls ``emit`` once per plan and prints progress.

There is no separate read stage: actors read their own inputs, so an actor pool
that reserves every CPU cannot starve Ray Data's read tasks (there are none).

Faults:

- A worker killed mid-block (``kill -9``, a lost node): Ray restarts the actor and
  retries the block (Ray Data's defaults: ``max_restarts=-1``, ``max_task_retries=-1``).
  Outputs are written atomically by the same deterministic code, so a rewritten
  image is byte-identical; the driver emits exactly one result per plan.
- A worker killed *by* an image (the OOM killer, Ray's memory monitor): before each
  image the actor leaves an attempt mark next to its outputs (``.NAME.attempt.part``,
  shared filesystem). A retried block processes marked images one at a time, and an
  image that killed its worker :data:`MAX_ATTEMPTS` times fails alone; the run goes on.
- An input the worker cannot see fails with a reason naming the node.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, cast

import numpy as np

from segcli.core.errors import SegcliError, UsageError, first_line
from segcli.core.signals import uninterrupted
from segcli.io.files import make_folders
from segcli.outputs.plans import OutputPlan
from segcli.runs.engines.base import Emit, ItemResult, Job, SegmenterLike, Status, process_plans
from segcli.runs.runfiles import ATTEMPT_SUFFIX, remove_stale_temp_files

INSTALL_HINT = 'the ray engine needs Ray: pip install "segcli[ray]"'
MAX_ATTEMPTS = 2
"""An image whose worker process died this many times while on it fails (alone)."""
MAX_ROWS_PER_TASK = 32
"""Upper bound of plans per Ray task: larger amortises the driver's per-task cost,
smaller balances load and makes a retried task cheaper."""
LOCAL = "local"
CONNECT_TIMEOUT_S = 10.0
"""How long to wait for a cluster's address to answer before giving up (Ray itself waits
minutes, or for ever, on an address where nothing listens)."""
ADDRESS_FORMS = "HOST:PORT (the head's GCS port, e.g. 10.0.0.1:6379), ray://HOST:PORT, auto or local"


def parse_address(address: str, *, what: str = "--ray-address") -> tuple[str, int] | None:
    """Check a Ray address; the (host, port) to reach, or None for ``local`` and ``auto``.

    Raises a one-line :class:`SegcliError` for anything else: another scheme (``s3://``,
    ``http://``), a missing or bad port, ``ray://`` without Ray Client installed."""
    text = address.strip()
    if text in (LOCAL, "auto"):
        return None
    rest = text
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme != "ray":
            hint = (
                " (that is the dashboard's address: give the GCS port, 6379 by default)"
                if scheme
                in (
                    "http",
                    "https",
                )
                else ""
            )
            raise UsageError(f"{what} {address!r} is not a Ray address{hint}; give {ADDRESS_FORMS}")
        import importlib.util

        if importlib.util.find_spec("grpc") is None:
            raise UsageError(
                f'{what} {address!r}: ray:// addresses need Ray Client (pip install "ray[client]"); '
                "or give the head's HOST:PORT"
            )
    host, colon, port_text = rest.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [IPv6]:port
    if not colon or not host or "/" in rest or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"{what} {address!r} is not a Ray address; give {ADDRESS_FORMS}")
    return host, int(port_text)


def check_reachable(address: str, *, timeout: float = CONNECT_TIMEOUT_S, what: str = "--ray-address") -> None:
    """Fail in one line, within ``timeout`` seconds, if nothing answers at ``address``
    (a TCP connection to its host and port; ``local`` and ``auto`` are not checked)."""
    target = parse_address(address, what=what)
    if target is None:
        return
    host, port = target
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except socket.gaierror as exc:
        raise SegcliError(
            f"cannot connect to the Ray cluster at {address}: unknown host ({exc.strerror})"
        ) from None
    except TimeoutError:
        raise SegcliError(
            f"cannot connect to the Ray cluster at {address}: no answer within {timeout:g} s"
        ) from None
    except ConnectionRefusedError:
        raise SegcliError(
            f"cannot connect to the Ray cluster at {address}: nothing listens there "
            "(is `ray start --head` running?)"
        ) from None
    except OSError as exc:
        raise SegcliError(f"cannot connect to the Ray cluster at {address} ({exc.strerror or exc})") from None


class SegmenterSource(Protocol):
    """Builds a segmenter inside a worker (``SegmenterSpec`` or a test fake); picklable."""

    def build(self, *, progress: bool = False) -> SegmenterLike: ...


def import_ray() -> ModuleType:
    """``ray`` with Ray Data, or a :class:`RayMissing` error saying how to install it."""
    try:
        import ray
        import ray.data  # Ray Data needs pyarrow: the [data] extra
    except ImportError as exc:
        raise RayMissing(f"{INSTALL_HINT} ({first_line(exc)})") from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the Ray engine runs; ``None`` leaves a knob to Ray and the cluster."""

    address: str | None = None
    """A running cluster (``ray://`` or ``host:port``); ``None`` starts or joins a local one."""
    workers: int | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float | None = None

    def given(self) -> tuple[str, ...]:
        """The fields set (not ``None``), by name, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None)

    def check(self) -> RayOptions:
        """Itself, once every number is in range; a :class:`UsageError` naming the field else."""
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {self.workers}")
        for name in ("cpus_per_worker", "gpus_per_worker"):
            value = getattr(self, name)
            if value is None:
                continue
            flag = "--" + name.replace("_", "-")
            if not math.isfinite(value):
                raise UsageError(f"{flag} must be a finite number, got {value}")
            if name == "cpus_per_worker" and value <= 0:
                raise UsageError(f"{flag} must be above 0, got {value:g}")
            if value < 0:
                raise UsageError(f"{flag} must be 0 or more, got {value:g}")
        if self.address is not None:
            parse_address(self.address)
        return self


class RayMissing(UsageError):
    """Ray (or Ray Data) is not installed: a usage error (exit 2)."""


# --------------------------------------------------------------------------- worker side
def node_name() -> str:
    """This worker's host name and IP address, for reasons that name the node."""
    host = socket.gethostname()
    try:
        import ray.util

        ip = ray.util.get_node_ip_address()
    except Exception:
        return host
    return f"{host} ({ip})" if ip and ip != host else host


def attempt_mark(plan: OutputPlan) -> Path:
    return plan.base.with_name(f".{plan.base.name}{ATTEMPT_SUFFIX}")


def attempts_so_far(plan: OutputPlan) -> int:
    """How many workers started on this plan and died (its attempt mark's count)."""
    try:
        text = attempt_mark(plan).read_text(encoding="ascii").strip()
    except (FileNotFoundError, NotADirectoryError):
        return 0
    except OSError:
        return 1
    return int(text) if text.isdigit() else 1  # a mark cut short by a kill still counts


def set_mark(plan: OutputPlan, attempts: int) -> None:
    """Best effort: where no mark can be written, no output can be either, and the write
    of the outputs fails that image with the reason."""
    mark = attempt_mark(plan)
    with suppress(OSError):
        make_folders(mark.parent)
        mark.write_text(str(attempts), encoding="ascii")


def clear_mark(plan: OutputPlan) -> None:
    with suppress(OSError):
        attempt_mark(plan).unlink(missing_ok=True)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


class PlanWorker:
    """A Ray Data actor: builds the segmenter once; each call reads, segments and writes
    a block of plans and returns one small row per plan (index, status, counts, reason)."""

    def __init__(self, source: SegmenterSource, job: Job, threads: int = 0) -> None:
        self.segmenter = source.build(progress=False)
        # Set torch's threads after the build, and only if torch is loaded: a segmenter that
        # runs on torch imported it while building (set_num_threads governs the forward passes
        # that follow); one that does not (a test fake) need not import torch (seconds) here.
        if threads > 0 and "torch" in sys.modules:
            import torch

            torch.set_num_threads(threads)
        self.job = job
        self.node = node_name()
        info = self.segmenter.model_info()
        if info.get("sha256") != job.model_info.get("sha256"):
            raise SegcliError(
                f"node {self.node} loaded other weights than the driver ({info.get('weights')}); "
                "every node needs the same --weights file"
            )
        if self.segmenter.settings.to_dict() != job.settings:
            raise SegcliError(f"node {self.node} resolved other settings than the driver")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        plans = [
            OutputPlan(source=Path(os.fsdecode(s)), key=os.fsdecode(k), base=Path(os.fsdecode(b)))
            for s, k, b in zip(batch["source"], batch["key"], batch["base"])
        ]
        results = self.process(plans)
        return {
            "i": np.asarray(batch["i"], dtype=np.int64),
            "status": np.array([r.status for r in results], dtype=object),
            "instances": np.array([r.instances for r in results], dtype=np.int64),
            "reason": np.array([_encode(r.reason) for r in results], dtype=object),
            "summary": np.array([_encode(r.summary) for r in results], dtype=object),
        }

    def process(self, plans: Sequence[OutputPlan]) -> list[ItemResult]:
        """Process ``plans`` under attempt marks; one result per plan, in order."""
        results: dict[int, ItemResult] = {}
        fresh: list[int] = []
        for i, plan in enumerate(plans):
            died = attempts_so_far(plan)
            if died >= MAX_ATTEMPTS:
                results[i] = ItemResult(
                    plan,
                    "failed",
                    reason=(
                        f"{plan.source}: the worker process died {died} times while processing it, "
                        f"last on node {self.node} (out of memory? see the Ray logs)"
                    ),
                )
                clear_mark(plan)
            elif died:  # suspected of killing a worker: alone, so that it fails alone
                results[i] = self._marked([plan], died + 1)[0]
            else:
                fresh.append(i)
        step = self.job.batch_size
        for start in range(0, len(fresh), step):
            chunk = fresh[start : start + step]
            for i, result in zip(chunk, self._marked([plans[i] for i in chunk], 1)):
                results[i] = result
        return [self._name_node(results[i]) for i in range(len(plans))]

    def _marked(self, plans: list[OutputPlan], attempt: int) -> list[ItemResult]:
        for plan in plans:
            set_mark(plan, attempt)
        results = process_plans(self.segmenter, plans, self.job)
        for plan in plans:
            clear_mark(plan)
        return results

    def _name_node(self, result: ItemResult) -> ItemResult:
        """An input this worker cannot see fails with a reason naming the node."""
        if result.status != "failed":
            return result
        source = result.plan.source
        if not os.path.exists(source):
            result.reason = (
                f"{source}: no such file on node {self.node} "
                "(inputs must be on a filesystem every node shares)"
            )
        elif not os.access(source, os.R_OK):
            result.reason = f"{source}: permission denied on node {self.node}"
        return result


# --------------------------------------------------------------------------- driver side
def plan_blocks(plans: Sequence[OutputPlan], rows: int) -> Iterator[Any]:
    """Arrow tables of ``rows`` plans each (index, source, key, base as bytes)."""
    import pyarrow as pa

    for start in range(0, len(plans), rows):
        chunk = plans[start : start + rows]
        yield pa.table(
            {
                "i": pa.array(range(start, start + len(chunk)), type=pa.int64()),
                "source": pa.array([os.fsencode(p.source) for p in chunk], type=pa.binary()),
                "key": pa.array([os.fsencode(p.key) for p in chunk], type=pa.binary()),
                "base": pa.array([os.fsencode(p.base) for p in chunk], type=pa.binary()),
            }
        )


def remove_orphan_parts(plans: Sequence[OutputPlan]) -> int:
    """Remove the temporary files (and attempt marks) that killed workers left beside the
    outputs of ``plans``; returns how many. Only names segcli provably made, never in the
    folders that hold the inputs (see :func:`segcli.runs.runfiles.remove_stale_temp_files`)."""
    if not plans:
        return 0
    sources = [os.path.dirname(os.path.abspath(p.source)) for p in plans]
    try:
        root = Path(os.path.commonpath(sources))
    except ValueError:  # pragma: no cover - paths on different drives (Windows)
        root = None
    return remove_stale_temp_files(plans[0].out_dir, plans, input_root=root)


@contextmanager
def quiet_ray_data(ray: ModuleType) -> Iterator[Any]:
    """Ray Data's DataContext for one run: no progress bars of its own, no console logs
    (they still go to the session's ray-data.log); restored afterwards."""
    ctx = ray.data.DataContext.get_current()
    saved = (ctx.enable_progress_bars, ctx.print_on_execution_start)
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    handlers = [h for h in logging.getLogger("ray.data").handlers if type(h).__name__ != "SessionFileHandler"]
    levels = [h.level for h in handlers]
    for h in handlers:
        h.setLevel(logging.CRITICAL)
    try:
        yield ctx
    finally:
        ctx.enable_progress_bars, ctx.print_on_execution_start = saved
        for h, level in zip(handlers, levels):
            h.setLevel(level)


class RayEngine:
    """Ray Data actor pool; each actor builds its segmenter from ``source``.

    ``address``: a Ray cluster (``ray://…`` or ``HOST:PORT``); default ``RAY_ADDRESS``,
    else a local Ray instance is started for the run and stopped after it. If Ray is
    already initialised in this process, that instance is used and left running.
    ``workers``: actors (default: all GPUs / ``gpus_per_worker``, else all CPUs /
    ``cpus_per_worker``). ``cpus_per_worker`` (default 1) also sets each actor's
    torch threads; ``gpus_per_worker`` (default 0) may be fractional.

    Unlike the local engine, Ctrl-C stops the Ray job at once: images in flight are
    dropped (never half-written: every file is renamed into place), and those the
    workers finished but had not reported yet are on disk, so a rerun skips them.
    """

    name = "ray"

    def __init__(
        self,
        source: SegmenterSource,
        *,
        address: str | None = None,
        workers: int | None = None,
        cpus_per_worker: float | None = None,
        gpus_per_worker: float = 0.0,
        rows_per_task: int | None = None,
        init_options: dict[str, Any] | None = None,
        connect_timeout: float | None = CONNECT_TIMEOUT_S,
    ) -> None:
        RayOptions(address, workers, cpus_per_worker, gpus_per_worker).check()
        if connect_timeout is not None and not (math.isfinite(connect_timeout) and connect_timeout > 0):
            raise SegcliError(f"connect_timeout must be above 0 seconds, got {connect_timeout:g}")
        self.connect_timeout = connect_timeout
        self.source = source
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.rows_per_task = rows_per_task
        self.init_options = dict(init_options or {})
        self._described: dict[str, Any] = {
            "name": self.name,
            "workers": workers,
            "cpus_per_worker": cpus_per_worker,
            "gpus_per_worker": gpus_per_worker,
            "cluster": None,  # known once a run has started Ray (nothing to do: never started)
        }

    def describe(self) -> dict[str, Any]:
        return dict(self._described)

    # ----------------------------------------------------------------- connecting
    def resolved_address(self) -> str:
        """The address a run connects to: ``address``, else ``RAY_ADDRESS``, else ``local``
        (checked: a bad one is a one-line :class:`SegcliError`)."""
        if self.address:
            return self.address
        env = os.environ.get("RAY_ADDRESS")
        if env:
            parse_address(env, what="RAY_ADDRESS")
            return env
        return LOCAL

    def check_reachable(self) -> None:
        """Fail in one line, within ``connect_timeout`` seconds, if nothing answers at the
        address a run would connect to (before any model loads, in the CLI); Ray itself would
        wait for ever. Nothing to check for a local instance, ``auto``, or with no timeout."""
        address = self.resolved_address()
        if self.connect_timeout is not None:
            check_reachable(
                address, timeout=self.connect_timeout, what="--ray-address" if self.address else "RAY_ADDRESS"
            )

    def _connect(self, ray: ModuleType) -> bool:
        """Initialise Ray unless it is; True if this call did (then :meth:`run` shuts it down)."""
        if ray.is_initialized():
            self._described["address"] = "already initialised"
            return False
        address = self.resolved_address()
        self.check_reachable()
        options: dict[str, Any] = {
            "address": address,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
            **self.init_options,
        }
        if address == LOCAL:
            options.setdefault("include_dashboard", False)
        try:
            ray.init(**options)
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:  # Ray's own refusals
            raise SegcliError(f"cannot connect to the Ray cluster at {address} ({first_line(exc)})") from None
        self._described["address"] = address
        return True

    def _layout(self, ray: ModuleType, todo: int, job: Job) -> tuple[int, float, float, int]:
        """(workers, CPUs per worker, GPUs per worker, rows per task) for this cluster."""
        total = ray.cluster_resources()
        cpu, gpu = float(total.get("CPU", 0.0)), float(total.get("GPU", 0.0))
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        gpus = float(self.gpus_per_worker)
        cpus = float(self.cpus_per_worker) if self.cpus_per_worker is not None else 1.0
        if gpus and not gpu:
            raise SegcliError(f"--gpus-per-worker {gpus:g}: the Ray cluster has no GPUs")
        workers = self.workers
        if workers is None:
            workers = max(1, math.floor(gpu / gpus + 1e-9) if gpus else math.floor(cpu / cpus + 1e-9))
        need = f"--workers {workers} x --cpus-per-worker {cpus:g}"
        if workers * cpus > cpu + 1e-9:
            raise SegcliError(f"{need} needs {workers * cpus:g} CPUs; the Ray cluster has {cpu:g}")
        if gpus and workers * gpus > gpu + 1e-9:
            raise SegcliError(
                f"--workers {workers} x --gpus-per-worker {gpus:g} needs {workers * gpus:g} GPUs; "
                f"the Ray cluster has {gpu:g}"
            )
        if not any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
            raise SegcliError(
                f"no Ray node has {cpus:g} CPUs and {gpus:g} GPUs free for one worker; "
                "lower --cpus-per-worker / --gpus-per-worker"
            )
        # At least ~8 tasks per worker (load balance), at most MAX_ROWS_PER_TASK plans per task.
        rows = self.rows_per_task or min(MAX_ROWS_PER_TASK, max(1, math.ceil(todo / (8 * workers))))
        rows = max(rows, job.batch_size)
        self._described.update(
            workers=workers,
            cpus_per_worker=cpus,
            gpus_per_worker=gpus,
            rows_per_task=rows,
            cluster={
                "nodes": len(nodes),
                "CPU": cpu,
                "GPU": gpu,
                "memory_gb": round(float(total.get("memory", 0.0)) / 2**30, 1),
            },
        )
        return workers, cpus, gpus, rows

    # ----------------------------------------------------------------- running
    def run(self, plans: Sequence[OutputPlan], job: Job, emit: Emit) -> bool:
        """Stream ``plans`` through the actor pool; True if interrupted (Ctrl-C, SIGTERM).

        A KeyboardInterrupt at any point (importing or connecting to Ray, starting the pool,
        streaming, shutting down) ends here as ``True``, never as an exception: the caller
        (:func:`segcli.runs.batch.run_batch`) must get to write the final ``run.json``."""
        if not plans:
            return False
        ray: ModuleType | None = None
        owned = False
        interrupted = False
        try:
            ray = import_ray()
            owned = not ray.is_initialized()  # known before init, in case Ctrl-C cuts init short
            self._connect(ray)
            workers, cpus, gpus, rows = self._layout(ray, len(plans), job)
            with quiet_ray_data(ray):
                interrupted = self._stream(ray, plans, job, emit, workers, cpus, gpus, rows)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if owned and ray is not None:
                interrupted = uninterrupted(ray.shutdown) or interrupted
            # Workers killed mid-write left temp files (and marks). After a complete run no
            # worker is writing; after Ctrl-C on a cluster this process did not start, a
            # worker being killed may still leave one, which the next run removes.
            interrupted = uninterrupted(lambda: remove_orphan_parts(plans)) or interrupted
        return interrupted

    def _stream(
        self,
        ray: ModuleType,
        plans: Sequence[OutputPlan],
        job: Job,
        emit: Emit,
        workers: int,
        cpus: float,
        gpus: float,
        rows: int,
    ) -> bool:
        dataset = ray.data.from_arrow(list(plan_blocks(plans, rows)))
        remote: dict[str, Any] = {"num_cpus": cpus}
        if gpus:
            remote["num_gpus"] = gpus
        results = dataset.map_batches(
            PlanWorker,
            fn_constructor_kwargs={"source": self.source, "job": job, "threads": max(1, math.floor(cpus))},
            batch_size=rows,
            batch_format="numpy",
            zero_copy_batch=True,
            # One task running and one queued per actor: idle actors take the next task, so a
            # slow (or restarting) worker does not hold a queue of others' work.
            compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=2),
            **remote,
        )
        seen = bytearray(len(plans))
        batches = iter(results.iter_batches(batch_size=None, batch_format="numpy"))
        interrupted = False
        try:
            for out in batches:
                for i, status, n, reason, summary in zip(
                    out["i"], out["status"], out["instances"], out["reason"], out["summary"]
                ):
                    if seen[i]:  # a block recomputed by Ray: its plans were reported already
                        continue
                    seen[i] = 1
                    st = cast(Status, str(status))  # the worker's own ItemResult.status, as a string
                    emit(ItemResult(plans[i], st, int(n), reason=_decode(reason), summary=_decode(summary)))
        except KeyboardInterrupt:
            interrupted = True
        except SegcliError:
            raise
        except Exception as exc:  # RayError, Ray Data's UserCodeException (a worker's __init__ failed), …
            raise SegcliError(
                f"the Ray job failed: {type(exc).__name__}: {first_line(exc)} "
                "(outputs written so far are kept; rerun to resume)"
            ) from None
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        if not interrupted:
            for i, flag in enumerate(seen):
                if not flag:
                    emit(ItemResult(plans[i], "failed", reason=f"{plans[i].source}: no result came back"))
        return interrupted
