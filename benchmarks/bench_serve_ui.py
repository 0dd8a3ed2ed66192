"""What the dashboard inside the receiver (``serve --ui``) costs ingestion, beside plain ``serve``.

Three fresh ``otel-llm-cost serve`` processes, each on a new DuckDB file, receive the same LLM spans
(pre-encoded OTLP/protobuf requests of 512 spans, from two sender threads, retried on 503):

- ``serve``: the floor, no dashboard;
- ``serve --ui``: the dashboard mounted, no page loaded;
- ``serve --ui`` + pages: a browser-like client loads the Overview and a Breakdown back to back for as
  long as spans are sent, so the pages and the receiver's writer take turns on the file all along.

For each: spans acknowledged per second (until the last 200), and spans stored per second (until the
process exits after SIGTERM, which commits everything acknowledged; the row count is checked). For the
third also the page times while ingesting and once it has stopped (median of the loads). The
configurations run interleaved, ``--rounds`` times each, and the best acknowledged rate of each is
compared at the end. Run::

    python benchmarks/bench_serve_ui.py [--requests 120] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_collector import make_spans, stored_rows

BATCH = 512
PAGES = ("/ui/?days=2", "/ui/breakdown?days=2&dim=feature")


def bodies(requests: int) -> list[bytes]:
    spans = make_spans(0, requests * BATCH)
    return [
        bytes(encode_spans(spans[i : i + BATCH]).SerializeToString()) for i in range(0, len(spans), BATCH)
    ]


def start_serve(db: Path, *flags: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_llm_cost", "serve", "--port", "0", "--db", str(db), *flags],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"receiving OTLP traces on (\S+)", line)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
            return process, found.group(1)
    raise RuntimeError("serve did not start")


def send(url: str, share: list[bytes]) -> None:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
    headers = {"Content-Type": "application/x-protobuf"}
    for body in share:
        while True:
            connection.request("POST", parts.path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                break
            if response.status != 503:
                raise RuntimeError(f"receiver answered {response.status}")
            time.sleep(float(response.getheader("Retry-After") or 1))
    connection.close()


def load_pages(
    url: str, times: list[float], *, until: threading.Event | None = None, rounds: int = 0
) -> None:
    """Load every page of PAGES, again and again until ``until`` is set, or ``rounds`` times."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
    done = 0
    while (until is not None and not until.is_set()) or done < rounds:
        for path in PAGES:
            started = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"page {path} answered {response.status}")
            times.append(time.perf_counter() - started)
        done += 1
    connection.close()


def run(label: str, requests: list[bytes], flags: tuple[str, ...], pages: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "calls.duckdb"
        process, url = start_serve(db, *flags)
        done = threading.Event()
        busy_times: list[float] = []
        idle_times: list[float] = []
        loader = (
            threading.Thread(target=load_pages, args=(url, busy_times), kwargs={"until": done})
            if pages
            else None
        )
        senders = [threading.Thread(target=send, args=(url, requests[i::2])) for i in range(2)]
        started = time.perf_counter()
        if loader is not None:
            loader.start()
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        acknowledged = time.perf_counter() - started
        done.set()
        if loader is not None:
            loader.join()
            time.sleep(2)  # the last batches committed: the file at rest
            load_pages(url, idle_times, rounds=10)
        process.send_signal(signal.SIGTERM)
        process.wait(300)
        stored = time.perf_counter() - started
        spans = len(requests) * BATCH
        rows = stored_rows(db)
        assert rows == spans, (rows, spans)
    print(
        f"{label:<22} acknowledged {spans / acknowledged:>8,.0f} spans/s   "
        f"stored {spans / stored:>8,.0f} spans/s ({stored:.1f} s to exit)"
    )
    if pages:
        print(
            f"{'':<22} pages loaded while ingesting: {len(busy_times)}, median "
            f"{statistics.median(busy_times) * 1000:.0f} ms; at rest: median "
            f"{statistics.median(idle_times) * 1000:.0f} ms"
        )
    return spans / acknowledged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=120, help="requests of 512 spans per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each configuration, interleaved")
    args = parser.parse_args()
    requests = bodies(args.requests)
    print(f"{len(requests)} requests x {BATCH} spans, 2 sender threads, one fresh serve process per run")
    configurations = {
        "serve": ((), False),
        "serve --ui": (("--ui",), False),
        "serve --ui + pages": (("--ui",), True),
    }
    best = dict.fromkeys(configurations, 0.0)
    # Interleaved and the best of each kept: the machine is shared, and the least disturbed run of a
    # configuration is the one that says what it costs.
    for _ in range(args.rounds):
        for label, (flags, pages) in configurations.items():
            best[label] = max(best[label], run(label, requests, flags, pages))
    floor = best["serve"]
    print(
        "best acknowledged rate, against serve: "
        + ", ".join(f"{label} {rate:,.0f} spans/s ({rate / floor:.2f}x)" for label, rate in best.items())
    )


if __name__ == "__main__":
    main()
