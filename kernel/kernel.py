"""The per-boot Kernel record: what C keeps in globals (style C15).

A plain record with no behaviour: behaviour lives in the per-C-file modules, which take
``k: Kernel`` first and spell a C global ``uvmexp.free`` as ``k.uvmexp.free``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel.sys.pool import Pool
from kernel.uvm.uvm import Uvm
from kernel.uvm.uvmexp import Uvmexp

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import CipherContext

    from kernel.kern.kern_synch import Scheduler
    from kernel.kern.vfs_bio import BufCache, Bufpool
    from kernel.sys.proc import Proc
    from kernel.uvm.uvm_extern import UvmPdaemon
    from kernel.uvm.uvm_pmap import Pmap
    from kernel.uvm.uvm_pmemrange import UvmPmalloc
    from kernel.uvm.uvm_swap import SwapState
    from kernel.uvm.uvm_swap_encrypt import SwapEncrypt


@dataclass(eq=False, slots=True)
class KernelCosts:
    """Virtual CPU time charged for kernel work (ns), so a spinning daemon lets time pass."""

    scan_page_ns: int = 200  # per page examined by a daemon scan
    pass_ns: int = 2_000  # per page daemon loop
    fault_ns: int = 1_000  # per fault handled (on top of the CPU's trap cost)
    aiodone_buf_ns: int = 1_000  # per completed buf
    pagein_ns: int = 500  # per page read set-up
    # PORT: swap encryption, per 4 KiB page (uvm_swap_encrypt.py): AES-128-CBC at the AES-NI
    # rates of Intel's "Breakthrough AES Performance" paper (i7-980X, 3.33 GHz): encryption
    # is serial, ~4 cycles/byte (10 rounds of AESENC's 6-cycle latency per 16-byte block);
    # decryption pipelines, ~1.3 cycles/byte
    swapencrypt_page_ns: int = 5_000
    swapdecrypt_page_ns: int = 1_600
    yield_ns: int = 1_000_000  # sched_pause yields once a thread has this much CPU time unpaid


@dataclass(eq=False, slots=True)
class KernelConfig:
    """Build options and tunables: what the C takes from the kernel config."""

    diagnostic: bool = True  # DIAGNOSTIC: KASSERTs and uvm_check after daemon passes
    debug: bool = False  # DEBUG: panic on pagedaemon deadlock
    have_pmap_collect: bool = False  # __HAVE_PMAP_COLLECT (amd64: off)
    ndrm: int = 0  # NDRM: no DRM device
    hibernate: bool = False  # HIBERNATE: uvmpd_drop / uvmpd_hibernate compiled in
    bufcachepercent: int = 10  # buffer cache size, percent of DMA-reachable memory
    bcache_min: int = 128  # BCACHE_MIN, pages (scaled down on tiny machines)
    check_every_pass: bool = True  # PORT: run uvm_check after each daemon pass / aiodone batch
    pdaemon: str = "1.105"  # PORT: the page daemon booted (kern/init_main.py: load_pdaemon)
    swapencrypt: bool = True  # uvm_doswapencrypt at boot (vm.swapencrypt.enable; upstream: 1)
    check_full: bool = False  # PORT: ... in full every time, not amortized (uvm_check_pass)
    costs: KernelCosts = field(default_factory=KernelCosts)


@dataclass(eq=False, slots=True)
class Kernel:
    """One boot of the emulated kernel."""

    config: KernelConfig
    sched: Scheduler
    pmap: Pmap
    # the page daemon module chosen at boot (kern/init_main.py: load_pdaemon)
    pdaemon: UvmPdaemon = field(init=False, repr=False)
    uvm: Uvm = field(default_factory=Uvm)
    uvmexp: Uvmexp = field(default_factory=Uvmexp)
    swap: SwapState | None = None
    swapencrypt: SwapEncrypt | None = None  # uvm_swap_encrypt.c's globals (set up on first use)
    rnd: CipherContext | None = None  # PORT: dev/rnd.c's arc4random stream (kernel/dev/rnd.py)
    bufcache: BufCache | None = None
    bufpool: Bufpool | None = None  # vfs_bio.c's bufpool (set up by bufinit)
    uao_swhash_elt_pool: Pool = field(default_factory=Pool)  # uvm_aobj.c's swap hash elements
    slpque: dict[Hashable, list[Any]] = field(default_factory=dict)  # sleep queues by channel
    uvm_nowait_failed: int = 0  # uvm_pdaemon.c: volatile int uvm_nowait_failed
    # uvm_pdaemon.c 1.154's globals; only that daemon sets them (docs/pdaemon-1.154.md §4)
    uvm_wait_counter: int = 0  # volatile int uvm_wait_counter: threads asleep in uvm_wait
    nowait_pma: UvmPmalloc | None = None  # struct uvm_pmalloc nowait_pma (None: 1.105's flag)
    pages: list[Any] = field(default_factory=list)  # vm_page array by frame (lazily filled)
    proc0: Proc | None = None
    syncerproc: Proc | None = None
    procs: dict[int, Proc] = field(default_factory=dict)
    nextpid: int = 1
    kthreads: list[Any] = field(default_factory=list)
    spawn: Callable[..., Any] | None = None  # PORT: machine's thread starter (kthread_create)
    md: Any = None  # PORT: machine-dependent glue (kernel.arch.emu.machdep.EmuMachdep: cpu_fork)
    hooks: dict[str, Callable[..., Any]] = field(default_factory=dict)  # PORT: test hooks
    panicked: BaseException | None = None
    pdpass: Any = None  # PORT: the page daemon's current pass record (log line)
    check_work: int = 0  # PORT: the work counter at the last whole uvm_check (uvm_check_pass)
