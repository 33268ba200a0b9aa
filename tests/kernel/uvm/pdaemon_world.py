"""The world the page daemon's tests build around it (shared by test_uvm_pdaemon_*.py).

A machine booted with ``start=False`` whose test body plays the page daemon
(:func:`daemonless`, :func:`be_the_pagedaemon`; the ``run_as_pagedaemon`` fixture in this
directory's conftest does both), user processes that map memory, touch it and then run the jobs
the test posts (:class:`Holder`, optionally with a ballast process that leaves exactly ``free``
pages free), another CPU (:class:`OtherCpu`, a kernel thread running posted jobs), and ways to
reach a region's pages, anons and owner lock, and to hand the daemon an allocation request as
uvm_pageout does.

The other helper modules of these tests: ``pdaemon_passes`` (the real daemon thread's passes,
sleepers, kernel-held memory, allocation requests), ``pdaemon_swap`` (swap and I/O done by
hand) and ``pdaemon_inactive`` (the inactive scan's calls and counters).

The pager tests (test_uvm_pager.py, test_uvm_aobj.py, test_uvm_swap_encrypt.py) use the last
section: dirty anons held outside any amap, waiting for an async pageout, reading a slot back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kernel.uvm.uvm_pdaemon as uvm_pdaemon
from emu.cpu import CpuContext
from emu.process import UserProcess
from kernel.arch.emu import machdep
from kernel.kern.kern_kthread import kthread_create
from kernel.kern.kern_synch import (
    INFSLP,
    PVM,
    RW_WRITE,
    RWLock,
    rw_enter,
    rw_exit,
    tsleep_nsec,
    wakeup,
)
from kernel.kernel import Kernel, KernelConfig
from kernel.sys.mman import PROT_NONE
from kernel.sys.proc import Proc
from kernel.uvm import uvm_anon, uvm_map, uvm_page, uvm_swap
from kernel.uvm.uvm import UvmConstraintRange
from kernel.uvm.uvm_anon import VmAnon
from kernel.uvm.uvm_object import UvmObject
from kernel.uvm.uvm_page import PG_BUSY, PG_CLEAN, PG_FAKE, VmPage
from kernel.uvm.uvm_pager import PGO_SYNCIO
from kernel.uvm.uvm_pmemrange import UVM_PMA_BUSY, UVM_PMA_LINKED, UvmPmalloc

if TYPE_CHECKING:
    from devices.faults import FaultConfig

    from conftest import Body, KernelEnv

PAGE = 4096
MS = 1_000_000
FREETARG = 12  # uvmpd_tune on every machine under 270 pages

Job = Callable[..., Awaitable[Any]]
Region = tuple[str, int, str | None, str]  # kind, pages, name, touch ("w", "r" or "": none)


# --- the machine ----------------------------------------------------------------------------------


def config(*, bufcachepercent: int = 0, swapencrypt: bool = False, **kw: Any) -> KernelConfig:
    """KernelConfig with the buffer cache and swap encryption off unless asked (free counts
    stay exact)."""
    return KernelConfig(bufcachepercent=bufcachepercent, swapencrypt=swapencrypt, **kw)


def daemonless(
    kenv: Any, *, npages: int, swap_pages: int, faults: FaultConfig | None = None, **cfg: Any
) -> KernelEnv:
    """A machine booted without kernel threads (``start=False``): the test body starts what it
    needs, usually by :func:`be_the_pagedaemon`. ``cfg`` goes to :func:`config`
    (``pdaemon="1.154"`` boots the 1.154 daemon: its aiodoned, its uvmpd_tune)."""
    env: KernelEnv = kenv(
        npages=npages, swap_pages=swap_pages, start=False, config=config(**cfg), faults=faults
    )
    return env


def machine_without_pagedaemon(k: Kernel) -> None:
    """machdep.start minus the page daemon: the trap handler (so processes can fault) and
    the aiodone daemon."""

    async def trap_handler(ctx: CpuContext, vaddr: int, is_write: bool) -> None:
        await machdep.trap(k, ctx, vaddr, is_write)

    k.md.cpu.trap_handler = trap_handler
    kthread_create(k, k.pdaemon.uvm_aiodone_daemon, k, name="aiodoned")  # the booted daemon's


def be_the_pagedaemon(k: Kernel, env: KernelEnv) -> None:
    """The test body becomes ``uvm.pagedaemon_proc`` (so its swap writes are B_PDAEMON and
    aiodoned takes them off ``uvmexp.paging``) and tunes as uvm_pageout's start does. On every
    machine of these tests (under 270 pages) that gives freemin 9, freetarg 12."""
    machine_without_pagedaemon(k)
    k.uvm.pagedaemon_proc = env.testproc
    uvm_page.uvm_lock_pageq(k)
    getattr(k.pdaemon, "uvmpd_tune", uvm_pdaemon.uvmpd_tune)(k)  # the booted daemon's
    uvm_page.uvm_unlock_pageq(k)
    assert (k.uvmexp.freemin, k.uvmexp.freetarg) == (9, 12)


def as_pagedaemon(body: Body) -> Body:
    """``body`` run by the page daemon: :func:`be_the_pagedaemon` first."""

    async def run(k: Kernel, env: KernelEnv) -> None:
        be_the_pagedaemon(k, env)
        await body(k, env)

    return run


async def until(env: KernelEnv, cond: Callable[[], bool], what: str, step: int = 100_000) -> None:
    """Sleep ``step`` ns at a time until ``cond()``; fail after 20,000 steps."""
    for _ in range(20_000):
        if cond():
            return
        await env.sleep(step)
    raise AssertionError(f"never happened: {what}")


def deactivate(k: Kernel, pgs: list[VmPage], unmap: bool = True) -> None:
    """The active scan's A5 done by hand: remove all mappings, then uvm_pagedeactivate (clears
    the reference bit; a page the pmap saw modified loses PG_CLEAN). ``unmap=False`` keeps
    the mappings."""
    uvm_page.uvm_lock_pageq(k)
    for pg in pgs:
        if unmap:
            k.pmap.pmap_page_protect(pg, PROT_NONE)
        uvm_page.uvm_pagedeactivate(k, pg)
    uvm_page.uvm_unlock_pageq(k)


# --- threads that run posted jobs: user processes holding pages, another CPU ------------------------


@dataclass(eq=False)
class Worker:
    """A thread that runs the jobs the test posts, in order, and sleeps in between."""

    k: Kernel
    jobs: list[Job] = field(default_factory=list)
    done: int = 0
    results: list[Any] = field(default_factory=list)

    async def work(self, *args: Any) -> None:
        while self.jobs:
            job = self.jobs.pop(0)
            self.results.append(await job(*args))
            self.done += 1


def post(w: Worker, job: Job) -> int:
    """Hand ``job`` to ``w`` (no await: usable from a lock hook); returns its ticket."""
    w.jobs.append(job)
    wakeup(w.k, w)
    return w.done + len(w.jobs)


async def run_on(env: KernelEnv, w: Worker, job: Job) -> Any:
    """Run ``job`` on ``w`` and wait for it; returns its result."""
    ticket = post(w, job)
    await until(env, lambda: w.done >= ticket, "job done")
    return w.results[ticket - 1]


@dataclass(eq=False)
class Holder(Worker):
    """A user process that maps ``regions``, touches every page ("w": writes :func:`data`,
    "r": reads, "": leaves it alone), then runs the jobs ``job(p)`` the test posts, until
    released; ``ballast`` is the process :func:`hold` started with it, if any, released with
    it."""

    regions: list[Region] = field(default_factory=list)
    vas: list[int] = field(default_factory=list)
    up: UserProcess | None = None
    ballast: Holder | None = None
    ready: bool = False
    released: bool = False

    @property
    def proc(self) -> UserProcess:
        assert self.up is not None
        return self.up


def data(name: str, r: int, i: int) -> bytes:
    """What page ``i`` of region ``r`` of process ``name`` holds: one full page."""
    return (f"{name}:{r}:{i} ".encode() * PAGE)[:PAGE]


def region(kind: str, n: int, name: str | None = None, touch: str = "w") -> Region:
    return (kind, n, name, touch)


async def _holder_main(p: UserProcess, h: Holder) -> None:
    for r, (kind, n, name, touch) in enumerate(h.regions):
        va = await p.mmap(n * PAGE, kind, name=name)  # type: ignore[arg-type]
        h.vas.append(va)
        for i in range(n):
            if touch == "w":
                await p.store(va + i * PAGE, data(p.name, r, i))
            elif touch == "r":
                await p.load(va + i * PAGE, 8)
    h.ready = True
    while True:
        await h.work(p)
        if h.released:
            return
        await tsleep_nsec(p.k, h, PVM, "hold", INFSLP)


async def hold(env: KernelEnv, name: str, *regions: Region, free: int | None = None) -> Holder:
    """Start a Holder process and wait until it touched every page; with ``free``, then start
    its ballast (:func:`pressure`) so that exactly ``free`` pages stay free."""
    h = Holder(env.k, regions=list(regions))
    h.up = env.spawn(_holder_main, name, h=h)
    await until(env, lambda: h.ready, f"{name} ready")
    if free is not None:
        h.ballast = await pressure(env, free)
    return h


async def pressure(env: KernelEnv, free: int) -> Holder:
    """A process holding enough active pages that exactly ``free`` pages stay free."""
    n = env.k.uvmexp.free - free
    h = await hold(env, "ballast", region("anon", n))
    assert env.k.uvmexp.free == free
    return h


async def release(env: KernelEnv, *holders: Holder) -> None:
    """Let the holders (and their ballast) exit and wait until they have."""
    hs = [x for h in holders for x in (h, h.ballast) if x is not None]
    for h in hs:
        h.released = True
        wakeup(env.k, h)
    await env.wait(*(h.proc for h in hs))


@dataclass(eq=False)
class OtherCpu(Worker):
    """Another CPU: a kernel thread running the jobs ``job()`` the test posts."""

    proc: Proc | None = None


async def _cpu_main(cpu: OtherCpu) -> None:
    while True:
        await cpu.work()
        await tsleep_nsec(cpu.k, cpu, PVM, "cpu1", INFSLP)


def other_cpu(k: Kernel) -> OtherCpu:
    cpu = OtherCpu(k)
    cpu.proc = kthread_create(k, _cpu_main, cpu, name="cpu1")
    return cpu


def enter(k: Kernel, lock: RWLock) -> Job:
    """A job that takes ``lock`` for writing (sleeping while it is held)."""

    async def job() -> None:
        await rw_enter(k, lock, RW_WRITE)

    return job


def exit_(lock: RWLock) -> Job:
    """A job that releases ``lock``."""

    async def job() -> None:
        rw_exit(lock)

    return job


async def dirtied_under_its_lock(env: KernelEnv, h: Holder, r: int = 0) -> tuple[VmPage, RWLock]:
    """Another CPU takes the owner lock of ``h``'s first page of region ``r``, and ``MS``
    later dirties the page (clears PG_CLEAN) and lets the lock go: a daemon that sleeps on
    the lock meanwhile finds the page no longer clean once it has it. (page, lock)."""
    page, lk = pg(env, h, r, 0), lock(h, r)
    cpu = other_cpu(env.k)
    await run_on(env, cpu, enter(env.k, lk))

    async def dirty_then_unlock() -> None:
        await env.sleep(MS)
        page.pg_flags &= ~PG_CLEAN
        rw_exit(lk)

    post(cpu, dirty_then_unlock)
    return page, lk


# --- a holder's regions: entries, anons, pages, owner locks -----------------------------------------


def entry(h: Holder, r: int) -> uvm_map.VmMapEntry:
    vm = h.proc.proc.p_vmspace
    e = uvm_map.uvm_map_lookup_entry(vm.vm_map, h.vas[r])
    assert e is not None
    return e


def anon(env: KernelEnv, h: Holder, r: int, i: int) -> VmAnon:
    a = env.anon_at(h.proc, h.vas[r] + i * PAGE)
    assert isinstance(a, VmAnon)
    return a


def obj(h: Holder, r: int) -> UvmObject:
    uobj = entry(h, r).uvm_obj
    assert uobj is not None
    return uobj


def pg(env: KernelEnv, h: Holder, r: int, i: int) -> VmPage:
    """The resident page behind page ``i`` of region ``r`` of ``h``."""
    if h.regions[r][0] == "anon":
        page = anon(env, h, r, i).an_page
    else:
        page = uvm_page.uvm_pagelookup(obj(h, r), entry(h, r).offset + i * PAGE)
    assert page is not None
    return page


def pgs(env: KernelEnv, h: Holder, r: int = 0) -> list[VmPage]:
    return [pg(env, h, r, i) for i in range(h.regions[r][1])]


def lock(h: Holder, r: int) -> RWLock:
    """The owner lock uvmpd_trylockowner takes for the pages of region ``r`` (amap or object)."""
    e = entry(h, r)
    if h.regions[r][0] == "anon":
        assert e.aref.ar_amap is not None
        return e.aref.ar_amap.am_lock
    assert e.uvm_obj is not None
    return e.uvm_obj.vmobjlock


# --- allocation requests, swap slots -----------------------------------------------------------------


def linked_pma(k: Kernel, low: int, high: int, size: int = PAGE) -> UvmPmalloc:
    """A request as uvm_pageout hands it to the scan (M2): queued, LINKED and BUSY."""
    pma = UvmPmalloc(UvmConstraintRange(low, high), size, UVM_PMA_LINKED | UVM_PMA_BUSY)
    pmr = k.uvm.pmr_control
    assert pmr is not None
    pmr.allocs.insert_tail(pma)
    return pma


def pma_done(k: Kernel, pma: UvmPmalloc) -> None:
    """What uvm_pageout does with the request after the scan (M10/M10'), then drop it."""
    pma.pm_flags &= ~UVM_PMA_BUSY
    pmr = k.uvm.pmr_control
    assert pmr is not None
    if pma.pm_flags & UVM_PMA_LINKED:
        pma.pm_flags &= ~UVM_PMA_LINKED
        pmr.allocs.remove(pma)


def slot_free(k: Kernel, slot: int) -> bool:
    sdp = uvm_swap.swapdrum_getsdp(k, slot)
    assert sdp is not None
    return bool(sdp.swd_blist[slot - sdp.swd_drumoffset])


# --- the pager tests: anons outside any amap, async pageouts, slots read back -----------------------


def dirty_anons(
    k: Kernel, env: Any, n: int, data: Callable[[int], bytes]
) -> tuple[RWLock, list[Any], list[Any]]:
    """n dirty anon pages (page i holds ``data(i)``) on the inactive queue, one amap lock; the
    anons are the test's own (an_ref 0: freed with uvm_anfree at the end)."""
    lock = RWLock("test-amap")
    anons, pgs = [], []
    for i in range(n):
        anon = uvm_anon.uvm_analloc(k)
        anon.an_lock = lock
        anon.an_ref = 0
        pg = uvm_page.uvm_pagealloc(k, None, 0, anon, 0)
        assert pg is not None
        env.ram.write(pg.phys_addr >> 12, data(i))
        pg.pg_flags &= ~(PG_BUSY | PG_FAKE | PG_CLEAN)
        uvm_page.uvm_lock_pageq(k)
        uvm_page.uvm_pagedeactivate(k, pg)
        uvm_page.uvm_unlock_pageq(k)
        anons.append(anon)
        pgs.append(pg)
    return lock, anons, pgs


async def until_idle(env: Any, pgs: list[Any]) -> None:
    """Let virtual time pass until the async pageout of ``pgs`` completed (aiodoned ran)."""
    for _ in range(10_000):
        if not any(pg.pg_flags & PG_BUSY for pg in pgs) and env.k.uvm.aio_done.empty():
            return
        await env.sleep(10_000)
    raise AssertionError("pageout never completed")


async def read_back(k: Kernel, env: Any, anon: Any) -> tuple[int, bytes]:
    """§1.14 step 3: a fresh page for ``anon``, filled by uvm_swap_get from its slot and
    activated: (uvm_swap_get's result, the page's bytes)."""
    pg = uvm_page.uvm_pagealloc(k, None, 0, anon, 0)
    assert pg is not None
    r = await uvm_swap.uvm_swap_get(k, pg, anon.an_swslot, PGO_SYNCIO)
    pg.pg_flags &= ~(PG_BUSY | PG_FAKE)
    uvm_page.uvm_lock_pageq(k)
    uvm_page.uvm_pageactivate(k, pg)
    uvm_page.uvm_unlock_pageq(k)
    return r, env.ram.read(pg.phys_addr >> 12)
