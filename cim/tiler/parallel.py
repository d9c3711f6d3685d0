"""Where the tiler's chunks run: in this process, in a local process pool on every core, or on a Dask
distributed cluster (`cim tile --scheduler tcp://host:port`). All three run the same pure task,
cim.tiler.work.run_chunk, and hand back each chunk's results as it completes."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from cim.tiler import work
from cim.tiler.work import LayerJob, TileResult, TileWork, chunk_key, run_chunk

CONNECT_TIMEOUT = 10.0  # s to reach a scheduler before `cim tile --scheduler` gives up
Done = Iterator[tuple[list[TileWork], list[TileResult]]]


class SchedulerError(RuntimeError):
    """The Dask scheduler cannot be reached (or lost its workers for good)."""


class Serial:
    """Every chunk in this process, in order."""

    name = "this process"

    def run(self, job: LayerJob, chunks: list[list[TileWork]]) -> Done:
        for tiles in chunks:
            yield tiles, run_chunk(job, tiles)

    def close(self) -> None:
        work.release()


class LocalPool(Serial):
    """A process pool on this machine (started on first use; a layer of one chunk stays in this process)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.name = f"{workers} local processes"
        self.pool: ProcessPoolExecutor | None = None

    def run(self, job: LayerJob, chunks: list[list[TileWork]]) -> Done:
        if len(chunks) <= 1:
            yield from super().run(job, chunks)
            return
        if self.pool is None:
            # forkserver, not fork: this process holds database connections and threads (the progress bar) that
            # a forked child must not share.
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["cim.tiler.work"])
            self.pool = ProcessPoolExecutor(self.workers, mp_context=ctx)
        pending: dict[Future, list[TileWork]] = {self.pool.submit(run_chunk, job, t): t for t in chunks}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield pending.pop(future), future.result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        super().close()


class DaskCluster:
    """A Dask distributed scheduler: each chunk is a task with a deterministic key, so the scheduler reruns the
    tasks of a lost worker; the task's writes are atomic and idempotent, so a rerun is harmless."""

    def __init__(self, address: str) -> None:
        from distributed import Client
        from distributed.comm import get_address_host_port

        try:
            get_address_host_port(address)  # (a Client made with a malformed address complains again at exit)
            self.client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise SchedulerError(f"cannot reach the Dask scheduler at {address!r}: "
                                 f"{' '.join(str(exc).split()) or type(exc).__name__}") from None
        self.name = f"Dask scheduler {address}"

    def run(self, job: LayerJob, chunks: list[list[TileWork]]) -> Done:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        futures = {}
        for tiles in chunks:
            future = self.client.submit(run_chunk, job, tiles, key=chunk_key(job, tiles))
            futures[future.key] = (future, tiles)
        try:
            for future in as_completed([f for f, _ in futures.values()], loop=self.client.loop):
                try:
                    result = future.result()
                except KilledWorker as exc:  # the task took down every worker it was given
                    raise SchedulerError(f"Dask gave up on a chunk of {job.source.name}: {exc}") from None
                yield futures.pop(future.key)[1], result
                future.release()
        finally:
            self.client.cancel([f for f, _ in futures.values()])

    def close(self) -> None:
        self.client.close()


Executor = Serial | LocalPool | DaskCluster


def executor(scheduler: str | None = None, workers: int | None = None) -> Executor:
    """`scheduler` (a Dask address) wins; else a pool of `workers` processes (default: every core); 1 = serial."""
    if scheduler:
        return DaskCluster(scheduler)
    workers = workers or os.cpu_count() or 1
    return Serial() if workers <= 1 else LocalPool(workers)
