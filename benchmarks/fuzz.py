"""Sends thousands of seeded malformed requests of every RPC kind to a real server and counts what went wrong.

    python benchmarks/fuzz.py --cases 10000 [--seed 1] [--batch 200] [--auth none]

Prints one progress line per batch and a summary: crashes, hangs, INTERNAL answers, other problems (bad
messages, a failed SELECT 1 check, RSS growth over the bound) and the server's RSS before/after. Exits 1 when
anything went wrong. The cases come from tests/fuzz_cases.py (the suite runs a short stretch of them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

import fuzz_cases  # noqa: E402
from support import launch_server  # noqa: E402

USER, PASSWORD = "fuzz", "fuzz-password-1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=200, help="cases between liveness/RSS checks")
    parser.add_argument("--auth", choices=("password", "none"), default="password")
    parser.add_argument("--rss-growth-mb", type=int, default=512, help="allowed RSS growth after the first batch")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="flight-fuzz-") as folder:
        flags = {"auth": args.auth}
        if args.auth == "password":
            flags.update(user=USER, password=PASSWORD)
        server = launch_server(Path(folder), **flags)
        try:
            login = (USER, PASSWORD) if args.auth == "password" else (None, None)
            target = fuzz_cases.Target.login(server.uri, *login) if login[0] else fuzz_cases.Target(server.uri)
            process = psutil.Process(server.proc.pid)
            started = time.monotonic()

            def progress(report: fuzz_cases.Report) -> None:
                print(f"[{time.monotonic() - started:6.1f}s] {report.line()}", file=sys.stderr, flush=True)

            report = fuzz_cases.run_fuzz(target, server.alive, lambda: process.memory_info().rss,
                                         fuzz_cases.fresh_check(server.uri, *login), args.seed, args.cases, batch=args.batch, rss_growth_limit=args.rss_growth_mb << 20,
                                         server_paths=(folder,), progress=progress)
            target.close()
        finally:
            code = server.stop()
            log = server.stderr_tail(40) if not server.alive() and code not in (0, None) else ""
    print(f"seed={args.seed} seconds={time.monotonic() - started:.1f}")
    print(report.line())
    print("answers:", ", ".join(f"{code}={n}" for code, n in sorted(report.codes.items())))
    for example in report.examples:
        print("  ", example)
    if log:
        print("server stderr tail:\n" + log)
    return 1 if report.crashes or report.hangs or report.internal or report.other_problems else 0


if __name__ == "__main__":
    sys.exit(main())
