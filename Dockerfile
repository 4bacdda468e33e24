# DuckDB Flight SQL server: slim Python, non-root, data on a volume, health checked over HTTP.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLIGHT_HOST=0.0.0.0 \
    FLIGHT_PORT=31337 \
    FLIGHT_HTTP_PORT=8080 \
    FLIGHT_DATA_DIR=/data \
    DUCKDB_DATABASE_PATH=/data/flight.duckdb \
    DUCKDB_MAX_MEMORY_PERCENTAGE=75 \
    DUCKDB_WORKER_THREADS=0 \
    DUCKDB_MEMORY_LIMIT="" \
    FLIGHT_SHUTDOWN_GRACE_PERIOD=5

RUN useradd --system --create-home --uid 10001 flight \
 && mkdir -p /data && chown flight:flight /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY flight_server ./flight_server
COPY clients ./clients
RUN pip install --no-cache-dir . && rm -rf /root/.cache

USER flight
VOLUME ["/data"]
EXPOSE 31337 8080

# Checks every 5 s, so Docker calls it healthy soon after the server is ready (2-8 s after start, with the
# machine's load); start-period covers a slow first open of a large database (WAL replay). Docker 25+ could
# poll faster only while starting (--start-interval), but older daemons refuse that flag.
HEALTHCHECK --interval=5s --timeout=4s --start-period=60s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"FLIGHT_HTTP_PORT\", \"8080\")}/health/ready', timeout=4)"

# SIGTERM goes straight to the server (exec form: it is PID 1, no shell in between). It stops admitting, gives
# running statements FLIGHT_SHUTDOWN_GRACE_PERIOD (5 s), interrupts the rest, cuts stalled clients off,
# checkpoints and exits 0 in at most about grace + 3 s: inside `docker stop`'s default 10 s. Raise the grace
# period together with `docker stop -t` / `--stop-timeout` (the timeout at least grace + 5 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["duckdb-flight-server"]
