"""Import the heavy libraries the other pages need in a background thread once Home is drawn.

A fresh server's first page run must not wait for torch (seconds), so Home imports none of it; while the
visitor reads Home, this thread imports it, and the page they open next starts at once. Only libraries that
import none of this app's modules are warmed, so a page importing at the same moment can wait for them but
never deadlock with them. Set MNIST_STUDIO_WARMUP=0 to switch it off (bench/cold_start.py measures both).
"""

from __future__ import annotations

import importlib
import os
import threading

HEAVY_MODULES = ("torch", "pandas", "plotly.graph_objects")
WARMUP_ENV = "MNIST_STUDIO_WARMUP"

_lock = threading.Lock()
_thread: threading.Thread | None = None


def _import_all() -> None:
    for name in HEAVY_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # the page that needs it will import it again and show the error
            pass


def warm_up_imports() -> threading.Thread | None:
    """Start importing HEAVY_MODULES in a daemon thread, once per server process; the thread, or None if off."""
    global _thread
    if os.environ.get(WARMUP_ENV, "1") == "0":
        return None
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_import_all, name="warm-up-imports", daemon=True)
            _thread.start()
    return _thread
