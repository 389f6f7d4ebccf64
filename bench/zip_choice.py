"""Which zip writer the Markdown export uses: the standard library's `zipfile` writing into a sink
that is emptied after every batch (as chatgate/privacy/export.py does), or stream-zip.

    python -m venv /tmp/zipbench && /tmp/zipbench/bin/pip install stream-zip
    /tmp/zipbench/bin/python bench/zip_choice.py

stream-zip is not a dependency of chatgate, hence a scratch venv; this script imports nothing of
chatgate. Each writer zips the same 100,000 Markdown messages (plausible lengths, 1,000 files of
100, written in batches of 100 as the export writes them) in a process of its own, at deflate
levels 6 (zlib's default, what chatgate uses) and 9 (stream-zip's default): seconds, the zip's
size, and the process's peak RSS growth while zipping.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

FILES, PER_FILE = 1_000, 100
WORD_TEXT = (
    "order shipping parcel refund invoice address delivery tracking number week customer "
    "warehouse return label payment card bank account support answer question please thanks "
    "the a of to and in is it that for on with as was at by this be are from or have not"
)
WORDS = WORD_TEXT.split()


def messages() -> list[bytes]:
    """2,000 different messages (1.4 MB, far beyond deflate's 32 KB window), used in turn."""
    rng = random.Random(7)
    pool = []
    for i in range(2_000):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 200)))
        role = "User" if i % 2 == 0 else "Assistant"
        pool.append(f"\n---\n\n## {role} · 2026-12-01 06:23:44 UTC\n\n{words}\n".encode())
    return pool


def files(pool: list[bytes]) -> Iterator[tuple[str, bytes]]:
    for number in range(FILES):
        start = number * PER_FILE % len(pool)
        yield (
            f"{number + 1:05d} 2026-12-01 Conversation {number}.md",
            b"".join(pool[(start + i) % len(pool)] for i in range(PER_FILE)),
        )


class Sink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> None:
        self.size += sum(len(chunk) for chunk in self.chunks)
        self.chunks.clear()


def with_zipfile(pool: list[bytes], level: int) -> int:
    sink = Sink()
    archive = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level)
    for name, text in files(pool):
        with archive.open(name, "w") as member:
            member.write(text)
            sink.take()
    archive.close()
    sink.take()
    return sink.size


def with_stream_zip(pool: list[bytes], level: int) -> int:
    from stream_zip import ZIP_32, stream_zip

    when = datetime(2026, 12, 1, 6, 23, 44)
    members = ((name, when, 0o644, ZIP_32, iter([text])) for name, text in files(pool))
    compressor = lambda: zlib.compressobj(wbits=-zlib.MAX_WBITS, level=level)  # noqa: E731
    return sum(len(chunk) for chunk in stream_zip(members, get_compressobj=compressor))


def peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise LookupError("VmHWM")


def one(writer: str, level: int) -> None:
    pool = messages()
    if writer == "stream-zip":
        import stream_zip  # noqa: F401  # its import is not part of the zipping

    Path("/proc/self/clear_refs").write_text("5")
    before = peak_kb()
    started = time.perf_counter()
    size = (with_zipfile if writer == "zipfile" else with_stream_zip)(pool, level)
    seconds = time.perf_counter() - started
    growth = (peak_kb() - before) / 1024
    print(f"{writer:<11}{level:>6}{seconds:>9.2f}{size / 2**20:>9.1f}{growth:>16.1f}", flush=True)


def main() -> None:
    if len(sys.argv) == 3:
        one(sys.argv[1], int(sys.argv[2]))
        return
    print(f"{FILES * PER_FILE:,} messages in {FILES:,} files")
    print(f"{'writer':<11}{'level':>6}{'seconds':>9}{'zip MB':>9}{'peak growth MB':>16}")
    for writer in ("zipfile", "stream-zip"):
        for level in (6, 9):
            subprocess.run([sys.executable, __file__, writer, str(level)], check=True)


if __name__ == "__main__":
    main()
