"""gunicorn's gthread worker (WEB_WORKER_CLASS=gthread: WEB_THREADS threads per worker),
answering what it cannot parse, and an exception escaping the app, as problems (problems.py).
gunicorn's own answer is an HTML page naming the offending input, which its log line repeats.
The statuses are those gunicorn chooses."""

from gunicorn.http import errors
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import ThreadWorker

from . import problems

# The first kind an error is an instance of gives its status.
_STATUSES = (
    # headers the app sent are its fault (they subclass two client errors: listed first)
    ((errors.InvalidResponseHeader, errors.InvalidResponseHeaderName), 500),
    (errors.LimitRequestLine, 414),
    (errors.LimitRequestHeaders, 431),
    (errors.ExpectationFailed, 417),
    (errors.UnsupportedTransferCoding, 501),
    (errors.ConfigurationProblem, 500),
    (errors.ParseException, 400),
)


class DataserviceThreadWorker(ThreadWorker):
    def handle_error(self, req, client, addr, exc):
        status = next((s for kind, s in _STATUSES if isinstance(exc, kind)), 500)
        request_id = problems.new_request_id()
        problems.log_answered(self.log, status, request_id, addr, exc)
        try:
            write_nonblock(
                client, problems.response(status, request_id, problems.Limits.of(self.cfg))
            )
        except Exception:
            self.log.debug("Failed to send error message.")
