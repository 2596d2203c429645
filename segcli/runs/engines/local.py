"""The local engine: one process, decode and write threads around the forward pass.

The loop overlaps three things: decoding the next images (thread pool), the
network's forward pass (caller's thread) and writing the previous results
(thread pool). Queues are bounded, in images and in decoded bytes, so memory stays
flat however many images and however large each one is.

:meth:`LocalEngine.run` wires five small stages, each with one job: a
:class:`DecodeBudget` (the bytes each input holds), a :class:`ReadStage` (decodes ahead),
a :class:`Batcher` (the next batch of decoded images), a :class:`ModelStage` (the forward
pass) and a :class:`WriteStage` (writes, and reports each of them once); a
:class:`Reporter` hands every finished input to ``emit``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from segcli.core.signals import uninterrupted
from segcli.io.images import LoadedImage, declared_pixels
from segcli.outputs.plans import OutputPlan
from segcli.runs.engines.base import (
    Emit,
    ItemResult,
    Job,
    SegmenterLike,
    model_failure,
    read_failure,
    read_input,
    segment_images,
    write_failure,
    write_result,
)

if TYPE_CHECKING:
    from segcli.core.instances import Instances

DECODE_BUDGET_BYTES = 1 << 30
"""Memory for images in flight (read-ahead, the batch, pending writes), counted at
:data:`BYTES_PER_PIXEL` per pixel the file declares; one image is always allowed, however large."""

BYTES_PER_PIXEL = 9
"""What one input pixel costs until its outputs are written: the decoded RGB array, the
overlay drawn on a copy of it and that copy's encoding buffer (3 bytes each)."""

Decoded = tuple[OutputPlan, LoadedImage]
"""A plan and its decoded image, as a batch holds them."""
WaitForWrite = Callable[[OutputPlan, Future[ItemResult]], ItemResult]
"""How the write stage waits for one write (:meth:`LocalEngine._written`: a seam for tests)."""


class DecodeBudget:
    """The bytes each input in flight holds, from before its decode until it is reported,
    against one limit; touched from the calling thread only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[int, int] = {}  # id(plan) -> bytes held for it

    @staticmethod
    def cost(plan: OutputPlan) -> int:
        """What ``plan``'s input will hold: :data:`BYTES_PER_PIXEL` per pixel its file declares."""
        return BYTES_PER_PIXEL * (declared_pixels(plan.source) or 0)

    @property
    def held(self) -> int:
        return sum(self._held.values())

    def admits(self, need: int) -> bool:
        """Whether ``need`` more bytes fit: always when nothing is held (one image, however large)."""
        return not self._held or self.held + need <= self.limit

    def over(self) -> bool:
        """Whether more than the limit is held (one large image, or a batch that grew past it)."""
        return self.held > self.limit

    def hold(self, plan: OutputPlan, need: int) -> None:
        self._held[id(plan)] = need

    def of(self, plan: OutputPlan) -> int:
        """The bytes ``plan`` holds (0 once released)."""
        return self._held.get(id(plan), 0)

    def release(self, plan: OutputPlan) -> None:
        self._held.pop(id(plan), None)


class Reporter:
    """Reports one finished input: releases the bytes it held, then calls ``emit`` (from the
    calling thread: every caller of a reporter runs there)."""

    def __init__(self, budget: DecodeBudget, emit: Emit) -> None:
        self.budget = budget
        self.emit = emit

    def __call__(self, result: ItemResult) -> None:
        self.budget.release(result.plan)
        self.emit(result)


class ReadStage:
    """Decodes the plans ahead, in order, on the decode threads: at most ``lookahead`` at once,
    each held against the budget before its decode starts; none starts past the budget
    unless nothing else is held."""

    def __init__(
        self,
        plans: Sequence[OutputPlan],
        job: Job,
        pool: ThreadPoolExecutor,
        budget: DecodeBudget,
        *,
        lookahead: int,
    ) -> None:
        self.job = job
        self.pool = pool
        self.budget = budget
        self.lookahead = lookahead
        self._plans: Iterator[OutputPlan] = iter(plans)
        self._waiting: tuple[OutputPlan, int] | None = None  # the next plan and its cost, not yet submitted
        self._reads: deque[tuple[OutputPlan, Future[LoadedImage]]] = deque()

    def __bool__(self) -> bool:
        """Whether a decode is in flight (or done and not yet taken)."""
        return bool(self._reads)

    def fill(self) -> None:
        """Start decodes until ``lookahead`` are in flight, the plans run out or the budget is full."""
        while len(self._reads) < self.lookahead:
            if self._waiting is None:
                plan = next(self._plans, None)
                if plan is None:
                    return
                self._waiting = (plan, self.budget.cost(plan))
            plan, need = self._waiting
            if not self.budget.admits(need):
                return  # over budget: wait for writes to end first
            self.budget.hold(plan, need)
            self._reads.append((plan, self.pool.submit(read_input, plan, self.job)))
            self._waiting = None

    def oldest(self) -> OutputPlan:
        """The plan :meth:`take` gives next."""
        return self._reads[0][0]

    def take(self) -> tuple[OutputPlan, LoadedImage | Exception]:
        """Wait for the oldest decode: its plan and image, or the exception that failed it."""
        plan, fut = self._reads.popleft()
        try:
            return plan, fut.result()
        except Exception as exc:
            return plan, exc

    def cancel(self) -> None:
        """Cancel the decodes not yet started (on interrupt: no new input starts)."""
        for _, fut in self._reads:
            fut.cancel()


class Batcher:
    """Gathers the next batch from the read stage: up to ``size`` decoded images, oldest
    first, whose bytes fit the budget together (the first always does); a failed decode is
    reported at once instead."""

    def __init__(self, reads: ReadStage, size: int, report: Reporter) -> None:
        self.reads = reads
        self.size = size
        self.report = report

    def next(self) -> list[Decoded]:
        """The next batch; empty when every decode taken failed."""
        budget = self.report.budget
        batch: list[Decoded] = []
        batch_bytes = 0
        while self.reads and len(batch) < self.size:
            if batch and batch_bytes + budget.of(self.reads.oldest()) > budget.limit:
                break
            plan, image = self.reads.take()
            if isinstance(image, Exception):
                self.report(read_failure(plan, image))
                continue
            batch.append((plan, image))
            batch_bytes += budget.of(plan)
        return batch


class WriteStage:
    """Writes results on the write threads and reports each write exactly once, from the
    calling thread, oldest first. Every write records its own result from its thread, so a
    write whose future was never queued (Ctrl-C right after submit) is still reported by
    :meth:`finish`."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        job: Job,
        report: Reporter,
        *,
        max_pending: int,
        wait: WaitForWrite,
    ) -> None:
        self.pool = pool
        self.job = job
        self.report = report
        self.max_pending = max_pending
        self.wait = wait
        self._pending: deque[tuple[OutputPlan, Future[ItemResult]]] = deque()
        self._unreported: dict[int, ItemResult] = {}  # id(plan) -> result, set by the write's thread

    def __len__(self) -> int:
        """Writes queued and not yet reported."""
        return len(self._pending)

    def submit(self, plan: OutputPlan, image: LoadedImage, instances: Instances) -> None:
        """Queue the write of ``plan``'s outputs on the write threads."""
        self._pending.append((plan, self.pool.submit(self._write, plan, image, instances)))

    def _write(self, plan: OutputPlan, image: LoadedImage, instances: Instances) -> ItemResult:
        """On a write thread: write, turn a failure into its result, and record the result."""
        try:
            result = write_result(plan, image, instances, self.job)
        except Exception as exc:
            result = write_failure(plan, exc)
        self._unreported[id(plan)] = result
        return result

    def report_oldest(self) -> None:
        """Wait for the oldest write and report it; an interrupt in the wait leaves it queued."""
        self._dequeue(self._wait_oldest())

    def settle(self) -> None:
        """Report the oldest writes while more than ``max_pending`` are queued, or while
        writes hold the budget past its limit."""
        while len(self._pending) > self.max_pending or (self._pending and self.report.budget.over()):
            self.report_oldest()

    def finish(self) -> bool:
        """Finish and report every write already started: that work is good and must not be
        lost. A second Ctrl-C only interrupts a wait, which starts again. True if one came."""
        interrupted = False
        while self._pending:
            try:
                result = self._wait_oldest()
            except KeyboardInterrupt:
                interrupted = True
                continue
            self._dequeue(result)
        # writes submitted but never queued (see ``_unreported``) end too
        interrupted = uninterrupted(lambda: self.pool.shutdown(wait=True)) or interrupted
        for result in list(self._unreported.values()):
            self._reported(result)
        return interrupted

    def _wait_oldest(self) -> ItemResult:
        """Wait for the oldest write's result; it stays queued until :meth:`_dequeue`."""
        return self.wait(*self._pending[0])

    def _dequeue(self, result: ItemResult) -> None:
        """Take the oldest write off the queue and report its ``result``."""
        self._pending.popleft()
        self._reported(result)

    def _reported(self, result: ItemResult) -> None:
        """Report ``result``, once: it is no longer a write left unreported."""
        self._unreported.pop(id(result.plan), None)
        self.report(result)


class ModelStage:
    """Runs one batch through the segmenter in the calling thread: each image's instances go
    to the write stage, each failure is reported at once."""

    def __init__(self, segmenter: SegmenterLike, writes: WriteStage, report: Reporter) -> None:
        self.segmenter = segmenter
        self.writes = writes
        self.report = report

    def segment(self, batch: Sequence[Decoded]) -> None:
        """Segment ``batch`` (a failing batch is retried image by image) and hand on each outcome."""
        outcomes = segment_images(self.segmenter, [image.pixels for _, image in batch])
        for (plan, image), outcome in zip(batch, outcomes):
            if isinstance(outcome, BaseException):
                self.report(model_failure(plan, outcome))
            else:
                self.writes.submit(plan, image, outcome)


class LocalEngine:
    """Threaded pipeline around one in-process segmenter."""

    name = "local"

    def __init__(
        self,
        segmenter: SegmenterLike,
        *,
        decode_workers: int = 2,
        write_workers: int = 2,
        decode_budget: int = DECODE_BUDGET_BYTES,
    ) -> None:
        self.segmenter = segmenter
        self.decode_workers = decode_workers
        self.write_workers = write_workers
        self.decode_budget = decode_budget

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": 1}

    def run(self, plans: Sequence[OutputPlan], job: Job, emit: Emit) -> bool:
        """Run ``plans`` as :class:`segcli.runs.engines.base.Engine` describes; True if interrupted.

        Up to ``lookahead`` images are decoded ahead; a batch of ``job.batch_size`` goes
        through the model in this thread; its writes queue on the write threads, and the
        oldest is waited for (and reported) once more than ``2 * write_workers + batch_size``
        are pending. Each input's declared size (:data:`BYTES_PER_PIXEL`) is held against
        ``decode_budget`` from before its decode until its write ends: no read starts, and
        no batch grows, past the budget unless nothing else is held.
        """
        report = Reporter(DecodeBudget(self.decode_budget), emit)
        with (
            ThreadPoolExecutor(self.decode_workers, thread_name_prefix="segcli-decode") as decoder,
            ThreadPoolExecutor(self.write_workers, thread_name_prefix="segcli-write") as writer,
        ):
            lookahead = max(2 * job.batch_size, self.decode_workers + 1)
            reads = ReadStage(plans, job, decoder, report.budget, lookahead=lookahead)
            max_pending = 2 * self.write_workers + job.batch_size
            writes = WriteStage(writer, job, report, max_pending=max_pending, wait=self._written)
            interrupted = False
            try:
                self._flow(
                    reads,
                    Batcher(reads, job.batch_size, report),
                    ModelStage(self.segmenter, writes, report),
                    writes,
                )
            except KeyboardInterrupt:
                interrupted = True
                reads.cancel()
            interrupted = writes.finish() or interrupted
        return interrupted

    @staticmethod
    def _flow(reads: ReadStage, batches: Batcher, model: ModelStage, writes: WriteStage) -> None:
        """Read, segment and queue writes until every plan is through; writes still pending
        at the end are left to :meth:`WriteStage.finish`."""
        while True:
            reads.fill()
            if not reads:
                if not writes:
                    return
                writes.report_oldest()  # the budget is held by pending writes: let one end
                continue
            batch = batches.next()
            if not batch:
                continue
            model.segment(batch)
            del batch  # its images now live on in their queued writes only
            writes.settle()

    @staticmethod
    def _written(plan: OutputPlan, fut: Future[ItemResult]) -> ItemResult:
        """Wait for the write of ``plan``; its result (its thread made a failure one too)."""
        return fut.result()
