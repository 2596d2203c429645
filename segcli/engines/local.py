"""The local engine: one process, decode and write threads around the forward pass.

The loop overlaps three things: decoding the next images (thread pool), the
network's forward pass (caller's thread) and writing the previous results
(thread pool). Queues are bounded, so memory stays flat however many images.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from segcli.engines import (
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
from segcli.imageio import LoadedImage
from segcli.writers import OutputPlan


class LocalEngine:
    """Threaded pipeline around one in-process segmenter."""

    name = "local"

    def __init__(self, segmenter: SegmenterLike, *, decode_workers: int = 2, write_workers: int = 2) -> None:
        self.segmenter = segmenter
        self.decode_workers = decode_workers
        self.write_workers = write_workers

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": 1}

    def run(self, plans: Sequence[OutputPlan], job: Job, emit: Emit) -> bool:
        """Run ``plans`` as :class:`segcli.engines.Engine` describes; True if interrupted.

        Up to ``lookahead`` images are decoded ahead; a batch of ``job.batch_size`` goes
        through the model in this thread; its writes queue on the write threads, and the
        oldest is waited for (and reported) once more than ``2 * write_workers + batch_size``
        are pending.
        """
        interrupted = False
        lookahead = max(2 * job.batch_size, self.decode_workers + 1)
        writes: deque[tuple[OutputPlan, Future[ItemResult]]] = deque()
        with (
            ThreadPoolExecutor(self.decode_workers, thread_name_prefix="segcli-decode") as decoder,
            ThreadPoolExecutor(self.write_workers, thread_name_prefix="segcli-write") as writer,
        ):
            reads: deque[tuple[OutputPlan, Future[LoadedImage]]] = deque()
            pending: Iterator[OutputPlan] = iter(plans)
            try:
                while True:
                    while len(reads) < lookahead:
                        nxt = next(pending, None)
                        if nxt is None:
                            break
                        reads.append((nxt, decoder.submit(read_input, nxt, job)))
                    if not reads:
                        break
                    batch: list[tuple[OutputPlan, LoadedImage]] = []
                    while reads and len(batch) < job.batch_size:
                        plan, fut = reads.popleft()
                        try:
                            batch.append((plan, fut.result()))
                        except Exception as exc:
                            emit(read_failure(plan, exc))
                    if not batch:
                        continue
                    outcomes = segment_images(self.segmenter, [im.pixels for _, im in batch])
                    for (plan, image), outcome in zip(batch, outcomes):
                        if isinstance(outcome, BaseException):
                            emit(model_failure(plan, outcome))
                        else:
                            writes.append((plan, writer.submit(write_result, plan, image, outcome, job)))
                    while len(writes) > 2 * self.write_workers + job.batch_size:
                        result = self._written(*writes[0])  # an interrupt here leaves it queued
                        writes.popleft()
                        emit(result)
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
                emit(result)
        return interrupted

    @staticmethod
    def _written(plan: OutputPlan, fut: Future[ItemResult]) -> ItemResult:
        """Wait for one write; its result, or its failure as a result."""
        try:
            return fut.result()
        except Exception as exc:
            return write_failure(plan, exc)
