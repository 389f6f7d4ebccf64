"""The public corpus and questions of bench/retrieval.py.

The corpus is the Debian Reference 2.100 by Osamu Aoki and its translators (GPL-2+), as the PDF
that Debian's packages `debian-reference-en` and `debian-reference-zh-cn` ship: 261 pages in
English, 251 in Simplified Chinese. No public question-answering set in Chinese and English ships
in a Debian or PyPI package that we found, so the questions were written for this benchmark:
`bench/qa/debian-reference.{en,zh-cn}.jsonl`, each line a question as a user would ask it (in
their own words, not the manual's), the verbatim `evidence` from the manual that answers it, and
its PDF `page`. The packages are fetched once from Debian's archive into `bench/out/corpus/` and
checked against their sha256."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium

POOL = "https://deb.debian.org/debian/pool/main/d/debian-reference/"
PACKAGES = {
    "en": (
        "debian-reference-en_2.100_all.deb",
        "9f31d3a17df505de09689ca255512ea58c1fc47c59bb1b0c7bf1c23362e9743f",
    ),
    "zh-cn": (
        "debian-reference-zh-cn_2.100_all.deb",
        "6d2d8d9a646397e28b04cdff23d2e4374101ebf9be348e35961af62c8a2d0977",
    ),
}
LANGUAGES = tuple(PACKAGES)
HERE = Path(__file__).resolve().parent
CACHE = HERE / "out" / "corpus"
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Question:
    question: str
    evidence: str
    page: int

    def answered_by(self, passage: str) -> bool:
        """Whether a passage holds the evidence (spaces and line breaks ignored: the chunker
        joins a PDF's lines, and Chinese lines without a space)."""
        return squeeze(self.evidence) in squeeze(passage)


def squeeze(text: str) -> str:
    return _SPACE.sub("", text)


def questions(language: str) -> list[Question]:
    path = HERE / "qa" / f"debian-reference.{language}.jsonl"
    with path.open(encoding="utf-8") as lines:
        return [Question(**json.loads(line)) for line in lines if line.strip()]


def corpus_pdf(language: str) -> Path:
    """The manual's PDF in this language, fetched and unpacked on first use."""
    package, sha256 = PACKAGES[language]
    pdf = CACHE / f"debian-reference.{language}.pdf"
    if pdf.exists():
        return pdf
    CACHE.mkdir(parents=True, exist_ok=True)
    deb = CACHE / package
    if not deb.exists():
        print(f"fetching {POOL}{package}")
        with urllib.request.urlopen(POOL + package, timeout=120) as answer:
            deb.write_bytes(answer.read())
    if hashlib.sha256(deb.read_bytes()).hexdigest() != sha256:
        deb.unlink()
        raise SystemExit(f"{package}: sha256 differs from the one the questions were written on")
    if shutil.which("dpkg-deb") is None:
        raise SystemExit("dpkg-deb is needed to unpack the Debian package (apt install dpkg)")
    unpacked = CACHE / f"unpacked-{language}"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    found = unpacked / "usr/share/debian-reference" / pdf.name
    shutil.copyfile(found, pdf)
    return pdf


def pdf_pages(pdf: Path, first: int, count: int) -> bytes:
    """A new PDF of `count` pages of `pdf` from page `first` (1-based), as bytes."""
    source = pdfium.PdfDocument(pdf)
    part = pdfium.PdfDocument.new()
    part.import_pages(source, list(range(first - 1, first - 1 + count)))
    out = io.BytesIO()
    part.save(out)
    part.close()
    source.close()
    return out.getvalue()
