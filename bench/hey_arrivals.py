"""How `hey -c C -q Q` spreads its requests in time: a bare server records when each arrives.

    .venv/bin/python bench/hey_arrivals.py [--connections 1000] [--rate 1] [--duration 4s]

hey gives each of its C connections its own ticker of Q per second, all started together, so
the offered load comes in bursts of C requests rather than as an even stream. This prints each
burst: how many requests arrived together and within how many milliseconds, as read by one
asyncio loop (its own work, some 0.1 ms a request, stretches a burst: the spread is an upper bound).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import time

from harness import free_port, raise_file_limit

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def record(connections: int, rate: int, duration: str) -> list[float]:
    stamps: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                stamps.append(time.monotonic())
                writer.write(RESPONSE)
                await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    command = ["hey", "-c", str(connections), "-q", str(rate), "-z", duration]
    hey = await asyncio.create_subprocess_exec(
        *command, f"http://127.0.0.1:{port}/", stdout=subprocess.DEVNULL
    )
    await hey.wait()
    server.close()
    return stamps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=1)
    parser.add_argument("--duration", default="4s")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        sys.exit("hey is not installed: `apt-get install -y hey` (or bench/setup.sh)")
    raise_file_limit()
    stamps = asyncio.run(record(args.connections, args.rate, args.duration))
    if not stamps:
        sys.exit("no request arrived")
    # A burst ends where no request arrives for a tenth of the ticker's period.
    gap = 0.1 / args.rate
    bursts: list[list[float]] = [[]]
    for stamp in sorted(stamps):
        if bursts[-1] and stamp - bursts[-1][-1] > gap:
            bursts.append([])
        bursts[-1].append(stamp)
    print(f"hey -c {args.connections} -q {args.rate} -z {args.duration}: {len(stamps)} requests")
    for i, burst in enumerate(bursts):
        start = burst[0] - bursts[0][0]
        middle = burst[len(burst) // 20 : len(burst) - len(burst) // 20] or burst
        print(
            f"  burst {i + 1} at {start:5.2f} s: {len(burst):>5} requests, all within "
            f"{(burst[-1] - burst[0]) * 1000:6.1f} ms, the middle 90 % within "
            f"{(middle[-1] - middle[0]) * 1000:6.1f} ms"
        )


if __name__ == "__main__":
    main()
