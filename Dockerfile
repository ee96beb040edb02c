# The data service image: gunicorn serving the app as a non-root user.
# It never migrates on start: run `dataservice migrate` (or `yoyo apply`) as a separate step, e.g.
#   docker run --rm -e DATABASE_URL=... IMAGE dataservice migrate
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /app
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app

# Dependencies first, so code changes reuse this layer. The pins live in setup.cfg. An empty
# README.md stands in for the one setup.cfg names: editing the README must not reinstall them.
COPY setup.cfg pyproject.toml ./
RUN mkdir dataservice && touch dataservice/__init__.py README.md \
    && pip install --no-compile -e . \
    && rm -rf dataservice README.md

# The package runs from /app, next to the sql/ and migrations/ it reads.
COPY dataservice/ dataservice/
COPY sql/ sql/
COPY migrations/ migrations/
COPY wsgi.py gunicorn.conf.py yoyo.ini ./

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=2)"]
# exec form: gunicorn is PID 1 and gets SIGTERM itself, then drains requests in flight.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
