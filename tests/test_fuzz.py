"""A short seeded fuzz run (tests/fuzz_cases.py): about 2,000 malformed requests of every RPC kind against a
real server with authentication on. No crash, no hang, no INTERNAL answer to a client's mistake, SELECT 1
answers after every batch, RSS stays bounded. The long run is `python benchmarks/fuzz.py --cases 10000`."""

from __future__ import annotations

import psutil

import fuzz_cases

USER, PASSWORD = "fuzz", "fuzz-password-1"
CASES = 2000


def test_fuzz_malformed_requests_of_every_kind(start_server):
    server = start_server(auth="password", user=USER, password=PASSWORD)
    target = fuzz_cases.Target.login(server.uri, USER, PASSWORD)
    process = psutil.Process(server.proc.pid)
    try:
        report = fuzz_cases.run_fuzz(target, server.alive, lambda: process.memory_info().rss,
                                     fuzz_cases.fresh_check(server.uri, USER, PASSWORD), seed=20261202,
                                     count=CASES, batch=250, rss_growth_limit=384 << 20,
                                     server_paths=(str(server.workdir),))
    finally:
        target.close()
    summary = report.line() + "\n" + "\n".join(report.examples or [])
    assert report.cases == CASES, summary
    assert report.crashes == 0 and server.alive(), summary + "\n" + server.stderr_tail()
    assert report.hangs == 0, summary
    assert report.internal == 0, summary
    assert report.other_problems == 0, summary
    # The cases really reached the server's checks: most corrupt uploads were refused as INVALID_ARGUMENT.
    assert report.codes.get("INVALID_ARGUMENT", 0) > CASES // 5, report.codes
