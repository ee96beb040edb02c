"""What kind of gunicorn worker this process is: with gevent (the default, gunicorn.conf.py) every
request of a worker runs in one thread and blocking calls are patched to switch between them."""

import sys


def cooperative() -> bool:
    """True in a gevent-patched process: a waiting request then costs a greenlet, not a thread,
    and CPU-bound work must be handed to a native thread (see hashing.py)."""
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return monkey.is_module_patched("threading")


def section_lock():
    """A lock for a short section that never waits on I/O (admission/local.py's shared files). Under
    gevent only one greenlet of a thread can be inside such a section, so the original
    (unpatched) lock, a few C instructions, is enough where gevent's costs microseconds; with
    threads it is the ordinary lock. Measured: gevent's lock was 1 us per acquisition here."""
    if cooperative():
        from gevent import monkey

        return monkey.get_original("threading", "Lock")()
    import threading

    return threading.Lock()
