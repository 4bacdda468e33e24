#!/usr/bin/env bash
# Container check: build the image and run it for real (health, ADBC queries from the host, `docker stop`
# with a query running -> exit 0 and a `stopped` record, restart on the same volume -> data intact).
#
#   sudo bash tests/container_check.sh        # PYTHON=/path/to/venv/bin/python (with adbc_driver_flightsql)
#
# On a machine that reaches no container registry, ../shared/tools/container-base.sh (beside the repository)
# builds a local stand-in for python:3.12-slim from Debian packages; this script runs it (as root, with
# EXTRA_CA=1 when this machine adds CA certificates, so pip inside `docker build` trusts its HTTPS path).
# It installs docker.io and starts dockerd when absent. Containers and the volume are removed at the end;
# the images are kept (the next run reuses them). Skipped, with a message, without that script or root.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED_DIR:-$repo/../shared}
PYTHON=${PYTHON:-python3}
IMAGE=${IMAGE:-duckdb-flight-server:check}
T0=$(date +%s)
logs=$(mktemp -d /tmp/container-check.XXXXXX)  # kept: base.log, build.log
step() { printf '[container-check +%ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }

if [ ! -f "$shared/tools/container-base.sh" ]; then
  echo "container check SKIPPED: no $shared/tools/container-base.sh (set SHARED_DIR to the folder holding tools/)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "container check SKIPPED: it runs as root (apt-get, dockerd, debootstrap)"
  exit 0
fi
"$PYTHON" -c 'import adbc_driver_flightsql' || { echo "container check: $PYTHON has no adbc_driver_flightsql" >&2; exit 1; }

# container-base.sh installs docker.io only when there is no `docker` command; a client alone is not enough.
if ! command -v dockerd >/dev/null; then
  step "installing docker.io (no dockerd here)"
  timeout 600 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends docker.io
fi

step "base image python:3.12-slim (container-base.sh; reused when it exists)"
extra_ca=0
ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1 && extra_ca=1
EXTRA_CA=$extra_ca bash "$shared/tools/container-base.sh" > "$logs/base.log" 2>&1 \
  || { tail -n 40 "$logs/base.log"; echo "container check: building the base image failed" >&2; exit 1; }
grep -E '^\[container-base' "$logs/base.log" | tail -n 1

step "docker build -t $IMAGE"
DOCKER_BUILDKIT=0 timeout 1200 docker build -t "$IMAGE" "$repo" > "$logs/build.log" 2>&1 \
  || { tail -n 40 "$logs/build.log"; echo "container check: docker build failed" >&2; exit 1; }

step "run, query, stop with a query running, restart on the same volume"
export FLIGHT_CHECK_ID="$$"
cleanup() {
  ids=$(docker ps -aq --filter "label=flight-check=$FLIGHT_CHECK_ID" 2>/dev/null || true)
  [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
  docker volume rm -f "flight-check-$FLIGHT_CHECK_ID" >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$PYTHON" "$repo/tests/container_check.py" "$IMAGE"
step "container check passed"
