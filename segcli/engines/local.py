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
                        self._finish_write(emit, *writes.popleft())
            except KeyboardInterrupt:
                interrupted = True
                for _, fut in reads:
                    fut.cancel()
            # Finish the writes already started: that work is good and must not be lost.
            while writes:
                try:
                    self._finish_write(emit, *writes.popleft())
                except KeyboardInterrupt:
                    interrupted = True
        return interrupted

    @staticmethod
    def _finish_write(emit: Emit, plan: OutputPlan, fut: Future[ItemResult]) -> None:
        try:
            result = fut.result()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            result = write_failure(plan, exc)
        emit(result)
