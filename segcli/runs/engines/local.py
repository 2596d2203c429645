"""The local engine: one process, decode and write threads around the forward pass.

The loop overlaps three things: decoding the next images (thread pool), the
network's forward pass (caller's thread) and writing the previous results
(thread pool). Queues are bounded, in images and in decoded bytes, so memory stays
flat however many images and however large each one is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
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
        interrupted = False
        lookahead = max(2 * job.batch_size, self.decode_workers + 1)
        writes: deque[tuple[OutputPlan, Future[ItemResult]]] = deque()
        cost: dict[int, int] = {}  # id(plan) -> bytes held for it

        def held() -> int:
            return sum(cost.values())

        def release(plan: OutputPlan) -> None:
            cost.pop(id(plan), None)

        # Every write records its own result, from its thread: a write whose future never
        # reached ``writes`` (Ctrl-C right after submit) is still reported at the end.
        unreported: dict[int, ItemResult] = {}

        def write(plan: OutputPlan, image: LoadedImage, instances: Instances) -> ItemResult:
            try:
                result = write_result(plan, image, instances, job)
            except Exception as exc:
                result = write_failure(plan, exc)
            unreported[id(plan)] = result
            return result

        def report(result: ItemResult) -> None:
            unreported.pop(id(result.plan), None)
            release(result.plan)
            emit(result)

        with (
            ThreadPoolExecutor(self.decode_workers, thread_name_prefix="segcli-decode") as decoder,
            ThreadPoolExecutor(self.write_workers, thread_name_prefix="segcli-write") as writer,
        ):
            reads: deque[tuple[OutputPlan, Future[LoadedImage]]] = deque()
            pending: Iterator[OutputPlan] = iter(plans)
            waiting: OutputPlan | None = None  # the next plan, not yet submitted
            need = 0
            try:
                while True:
                    while len(reads) < lookahead:
                        if waiting is None:
                            waiting = next(pending, None)
                            if waiting is not None:
                                need = BYTES_PER_PIXEL * (declared_pixels(waiting.source) or 0)
                        if waiting is None:
                            break
                        if cost and held() + need > self.decode_budget:
                            break  # over budget: wait for writes to end first
                        cost[id(waiting)] = need
                        reads.append((waiting, decoder.submit(read_input, waiting, job)))
                        waiting = None
                    if not reads:
                        if writes:  # the budget is held by pending writes: let one end
                            result = self._written(*writes[0])
                            writes.popleft()
                            report(result)
                            continue
                        break
                    batch: list[tuple[OutputPlan, LoadedImage]] = []
                    batch_bytes = 0
                    while reads and len(batch) < job.batch_size:
                        plan, fut = reads[0]
                        if batch and batch_bytes + cost.get(id(plan), 0) > self.decode_budget:
                            break
                        reads.popleft()
                        try:
                            batch.append((plan, fut.result()))
                            batch_bytes += cost.get(id(plan), 0)
                        except Exception as exc:
                            release(plan)
                            emit(read_failure(plan, exc))
                    if not batch:
                        continue
                    outcomes = segment_images(self.segmenter, [im.pixels for _, im in batch])
                    for (plan, image), outcome in zip(batch, outcomes):
                        if isinstance(outcome, BaseException):
                            release(plan)
                            emit(model_failure(plan, outcome))
                        else:
                            writes.append((plan, writer.submit(write, plan, image, outcome)))
                    del batch, outcomes
                    while len(writes) > 2 * self.write_workers + job.batch_size or (
                        writes and held() > self.decode_budget
                    ):
                        result = self._written(*writes[0])  # an interrupt here leaves it queued
                        writes.popleft()
                        report(result)
            except KeyboardInterrupt:
                interrupted = True
                for _, fut in reads:
                    fut.cancel()
            # Finish and report the writes already started: that work is good and must not
            # be lost. A second Ctrl-C only interrupts the wait; the write is waited for again.
            while writes:
                try:
                    result = self._written(*writes[0])
                except KeyboardInterrupt:
                    interrupted = True
                    continue
                writes.popleft()
                report(result)
            # writes submitted but not in ``writes`` (see ``unreported``) end too
            interrupted = uninterrupted(lambda: writer.shutdown(wait=True)) or interrupted
            for result in list(unreported.values()):
                report(result)
        return interrupted

    @staticmethod
    def _written(plan: OutputPlan, fut: Future[ItemResult]) -> ItemResult:
        """Wait for the write of ``plan``; its result (its thread made a failure one too)."""
        return fut.result()
