"""What kind of gunicorn worker this process is: with gevent (the default, gunicorn.conf.py) every
request of a worker runs in one thread and blocking calls are patched to switch between them."""

import sys


def cooperative() -> bool:
    """True in a gevent-patched process: a waiting request then costs a greenlet, not a thread,
    and CPU-bound work must be handed to a native thread (see passwords.py)."""
    if "gevent" not in sys.modules:
        return False
    from gevent import monkey

    return monkey.is_module_patched("threading")
