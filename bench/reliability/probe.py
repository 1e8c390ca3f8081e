"""A light latency probe in a process of its own: `python -m bench.reliability.probe URL ...`.

Why a process of its own: the overload scenario's load generator is 256 aiohttp coroutines in
one Python process on a 2-core machine it shares with the scorer. The time it records for a
request includes the time its own event loop takes to come back to that coroutine, which under
that load is tens of milliseconds: it measures the client as much as the server. The probe sends
one request at a time, blocking, on one keep-alive connection (as a well-behaved client would),
sleeps between requests, and so is idle when the answer arrives: its figure is the server's
answer time plus the loopback round trip. A few such probes run side by side (threads), so that
one held by an admitted request (a score takes far longer than a 429) leaves the others probing.

It prints one JSON object: `samples`, each `[start_s, ms, status, json, retry_after]` (status 0:
no HTTP answer). It does not wait `Retry-After` after a 429: it probes at a fixed pace (like a
health checker) so that the rejections it measures are spread over the whole run. Bounded in
count and time; loopback only.

The instrument must not be what is slow: on 2 cores shared with a saturated scorer and the load
generator, a probe thread woken by its answer may wait for a CPU, or for the GIL held by a
sibling thread that the kernel has descheduled. So the probe asks for a higher priority
(`--nice`, applied if the user may: root here) and hands the GIL over every 0.5 ms; the
priority it got is part of its output (`nice`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit


def probe(
    url: str,
    path: str,
    body: bytes,
    *,
    seconds: float,
    interval_s: float,
    headers: dict[str, str] | None = None,
    timeout_s: float = 10.0,
) -> list[list[float | int | bool]]:
    """POST `body` to `url + path` every `interval_s` for `seconds`; one sample per request."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sent = {"Content-Type": "application/json", **(headers or {})}
    samples: list[list[float | int | bool]] = []
    connection: http.client.HTTPConnection | None = None
    started = time.perf_counter()
    deadline = started + seconds
    while (now := time.perf_counter()) < deadline and len(samples) < 1_000_000:
        try:
            if connection is None:
                connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
                connection.connect()  # not timed: a keep-alive client connects once
                now = time.perf_counter()
            connection.request("POST", path, body=body, headers=sent)
            response = connection.getresponse()
            response.read()
            ms = (time.perf_counter() - now) * 1000
            kind = response.getheader("Content-Type") or ""
            retry_after = response.getheader("Retry-After") is not None
            samples.append(
                [
                    now - started,
                    ms,
                    response.status,
                    kind.startswith("application/json"),
                    retry_after,
                ]
            )
            if response.will_close:
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException):
            samples.append([now - started, (time.perf_counter() - now) * 1000, 0, False, False])
            if connection is not None:
                connection.close()
            connection = None
        time.sleep(max(0.0, interval_s - (time.perf_counter() - now)))
    if connection is not None:
        connection.close()
    return samples


def probes(
    url: str, path: str, body: bytes, *, seconds: float, interval_s: float, clients: int
) -> list[list[float | int | bool]]:
    """`clients` probes at once, each a thread with its own connection (they wait on sockets,
    so they hardly contend for the GIL): an admitted request holds its probe until the score
    comes back, and the others keep probing meanwhile."""
    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="probe") as pool:
        runs = [
            pool.submit(probe, url, path, body, seconds=seconds, interval_s=interval_s)
            for _ in range(clients)
        ]
        return sorted(sample for run in runs for sample in run.result())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--path", default="/score")
    parser.add_argument("--body", required=True, help="The JSON body to POST")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--interval", type=float, default=0.02, help="Seconds between requests")
    parser.add_argument("--clients", type=int, default=4, help="Probes at once (threads)")
    parser.add_argument("--nice", type=int, default=-10, help="Priority increment to ask for")
    args = parser.parse_args(argv)
    sys.setswitchinterval(0.0005)
    try:
        niceness = os.nice(args.nice)
    except PermissionError:  # not allowed to raise its priority: measured as it is
        niceness = os.nice(0)
    samples = probes(
        args.url,
        args.path,
        args.body.encode(),
        seconds=args.seconds,
        interval_s=args.interval,
        clients=args.clients,
    )
    print(json.dumps({"nice": niceness, "samples": samples}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
