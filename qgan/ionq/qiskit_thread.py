"""One long-lived thread per process for all qiskit work of the threaded IonQ users.

qiskit's compiled core (mimalloc inside) crashed with SIGSEGV here when circuits were built from many short-lived
threads (one per HTTP request in the emulator). Threaded users (the emulator, the gateway actor) therefore run all
qiskit work on one long-lived thread through `qiskit_call`.
"""
from __future__ import annotations

import threading
from typing import Callable

_QISKIT_POOL = None
_QISKIT_POOL_LOCK = threading.Lock()
_QISKIT_THREAD = "qgan-qiskit"


def qiskit_call(fn: Callable, *args, **kwargs):
    """Run `fn(*args, **kwargs)` on this process's single qiskit worker thread and return its result."""
    global _QISKIT_POOL
    if threading.current_thread().name.startswith(_QISKIT_THREAD):
        return fn(*args, **kwargs)
    with _QISKIT_POOL_LOCK:
        if _QISKIT_POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _QISKIT_POOL = ThreadPoolExecutor(1, thread_name_prefix=_QISKIT_THREAD)
        pool = _QISKIT_POOL
    return pool.submit(fn, *args, **kwargs).result()
