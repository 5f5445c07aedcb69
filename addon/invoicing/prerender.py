"""Documents rendered ahead, in a process pool, for the monthly pass's invoices (issue 15).

A monthly invoice's PDF, CII XML, validation and Factur-X embedding take about 0.3 s of CPU
(300 customers: 100 s), and an invoice is numbered, rendered and stored in one transaction,
so one process renders them one after another on one core. Here the pass first predicts
every invoice it will issue — the same rating, the same draft, the next numbers of the
series in order — and hands those snapshots to worker processes; issuing then takes the
files of an *equal* snapshot (`document_files` asks `take`) instead of rendering. A prediction
that turns out different (a customer failed, someone issued an invoice meanwhile, so the
numbers moved) is simply not used: that invoice renders in the transaction as before. The
files an invoice gets are always those of its own snapshot. Workers build *and validate* the
files (`addon.invoicing.documents.valid_files`, the very function the issuer runs inline) and
send back the verdict with them: the EN 16931 Schematron costs 0.1-0.27 s CPU an invoice,
which in the issuer was on the pass's critical path, and the issuing process no longer loads
Saxon on a pooled pass. An invalid verdict fails the invoice in the issuer with the
same `InvalidEInvoice` inline validation raises. The price is Saxon with the compiled
Schematron in every worker: the pool has RENDER_WORKERS processes (default: one per core; the
issuing process mostly waits for them meanwhile), each about 185 MiB more than a worker that
only renders (`bench.perf --quick`: 138 -> 322 MiB; the sidecar's process 331 -> 143 MiB).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import resource
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from addon import gc_tuning
from addon.invoicing.documents import Renderer, valid_files
from addon.invoicing.validate import InvalidEInvoice

if TYPE_CHECKING:
    from addon.invoicing.rendered import RenderedFile
    from addon.invoicing.snapshot import InvoiceSnapshot

log = logging.getLogger(__name__)

#: fewer predicted invoices than this render in the transaction (a pool costs ~1 s to start)
MIN_INVOICES = 4


@dataclass(frozen=True)
class Rendered:
    """What a worker sends back for one snapshot: its files and the validation's verdict
    (`errors`, empty when valid), the CPU seconds both took, the worker's peak RSS (KiB). The
    verdict travels as data, not as the exception, because `InvalidEInvoice` does not survive
    pickling (its constructor takes the number and the errors, its args hold the message)."""

    files: list[RenderedFile]
    errors: list[str]
    cpu: float
    rss: int


def render_valid(snapshot: InvoiceSnapshot, render: Renderer, xrechnung: bool) -> Rendered:
    """In a worker: `valid_files` as the issuer would run it inline, an invalid XML turned into
    the verdict (no files); any other error raises, and `take` re-raises it in the issuer."""
    cpu = time.process_time()
    errors: list[str] = []
    try:
        files = valid_files(snapshot, render, xrechnung=xrechnung)
    except InvalidEInvoice as invalid:
        files, errors = [], invalid.errors
    return Rendered(files, errors, time.process_time() - cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


class Prerendered:
    """Snapshots submitted to the pool, by number; `take` hands out an equal one's files once."""

    def __init__(self, render: Renderer, workers: int) -> None:
        self.render = render
        self.workers = workers
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=gc_tuning.tune)
        self.pending: dict[str, tuple[InvoiceSnapshot, bool, Future[Rendered]]] = {}
        #: CPU seconds the workers spent on documents that were used
        self.worker_cpu = 0.0
        #: the largest worker's peak RSS in KiB
        self.worker_rss = 0
        self.used = 0
        self.submitted = 0

    def submit(self, snapshot: InvoiceSnapshot, xrechnung: bool) -> None:
        self.submitted += 1
        self.pending[snapshot.number] = (snapshot, xrechnung, self.pool.submit(render_valid, snapshot, self.render,
                                                                               xrechnung))

    def take(self, snapshot: InvoiceSnapshot, xrechnung: bool) -> list[RenderedFile] | None:
        """The files rendered and validated for an equal snapshot, or None (then the caller
        renders and validates); an invalid verdict raises `InvalidEInvoice` as inline
        validation would, and a rendering error raises as it would inline."""
        ahead = self.pending.pop(snapshot.number, None)
        if ahead is None or ahead[0] != snapshot or ahead[1] != xrechnung:
            return None
        try:
            rendered = ahead[2].result()
        except BrokenProcessPool as exc:  # a worker died (killed, out of memory): render inline
            log.warning("render worker lost (%s); invoice %s is rendered in its transaction", exc, snapshot.number)
            return None
        if rendered.errors:
            raise InvalidEInvoice(snapshot.number, rendered.errors)
        self.worker_cpu += rendered.cpu
        self.worker_rss = max(self.worker_rss, rendered.rss)
        self.used += 1
        return rendered.files

    def close(self) -> None:
        for _snapshot, _x, future in self.pending.values():
            future.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)


_current: ContextVar[Prerendered | None] = ContextVar("prerendered", default=None)


def take(snapshot: InvoiceSnapshot, xrechnung: bool) -> list[RenderedFile] | None:
    """What `document_files` asks first: files rendered and validated ahead for this very
    snapshot (or `InvalidEInvoice`, when the worker found them invalid)."""
    ahead = _current.get()
    return ahead.take(snapshot, xrechnung) if ahead is not None else None


def picklable(render: Renderer) -> bool:
    try:
        pickle.dumps(render)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


#: documents rendered ahead and used, and their workers' CPU seconds, in this process so far
#: (for the benchmark and the log)
totals: dict[str, float] = {"used": 0, "worker_cpu": 0.0, "worker_rss": 0, "workers": 0}


@contextmanager
def rendering_ahead(render: Renderer, snapshots: Iterator[tuple[InvoiceSnapshot, bool]],
                    workers: int | None = None) -> Iterator[Prerendered | None]:
    """Hand the predicted `snapshots` (with their XRechnung flag) to a pool as they come, while
    the block issues, on `workers` processes (0: one per core); None (nothing ahead) for a
    renderer a worker cannot receive or fewer than MIN_INVOICES predictions."""
    cores = workers or os.cpu_count() or 1
    if not picklable(render):
        yield None
        return
    first: list[tuple[InvoiceSnapshot, bool]] = []
    ahead: Prerendered | None = None
    for predicted in snapshots:
        if ahead is None:
            first.append(predicted)
            if len(first) < MIN_INVOICES:
                continue
            try:
                ahead = Prerendered(render, cores)
            except OSError as exc:  # no processes or semaphores here (a confined service): render inline
                log.warning("no render workers (%s); the monthly invoices render one after another", exc)
                yield None
                return
            for each in first:
                ahead.submit(*each)
        else:
            ahead.submit(*predicted)
    if ahead is None:
        yield None
        return
    token = _current.set(ahead)
    try:
        yield ahead
    finally:
        _current.reset(token)
        ahead.close()
        totals["used"] += ahead.used
        totals["worker_cpu"] += ahead.worker_cpu
        totals["worker_rss"] = max(totals["worker_rss"], ahead.worker_rss)
        totals["workers"] = max(totals["workers"], ahead.workers)
        log.info("monthly pass: %d of %d documents rendered ahead", ahead.used, ahead.submitted)
