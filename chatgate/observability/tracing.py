"""OpenTelemetry spans for the request, its database calls, its answer-cache look-ups and its
engine call, exported over OTLP/HTTP when CHATGATE_OTLP_ENDPOINT is set; nothing otherwise.

Off by default: then no middleware is installed, the SDK is never imported, and the helpers
below return at once (one context-variable read). On, each app builds a tracer provider of its
own rather than OpenTelemetry's process-wide one, so apps sharing a process (the tests) keep
their spans apart; the request middleware hands its tracer to the code below it through a
context variable, which tasks started by the request inherit.

A span's trace id is chatgate's trace id: the caller's `traceparent` when there is one,
otherwise the id chatgate made, given to the request's root span by the id generator. The
X-Trace-Id a client sees, the log lines and the stored rows all find the same trace.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatgate.core.tracing import current_trace_id
from chatgate.observability.requests import request_stats

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from sqlalchemy.ext.asyncio import AsyncEngine

    from chatgate.core.config import Settings

T = TypeVar("T")
_HEX_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: ContextVar[Tracer | None] = ContextVar("otel_tracer", default=None)


def traces_url(endpoint: str) -> str:
    """The collector's base URL (as OTEL_EXPORTER_OTLP_ENDPOINT takes it) or its full traces URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


class Tracing:
    """One app's tracer provider: sampler, id generator and OTLP exporter; shut down at exit."""

    def __init__(self, *, endpoint: str, sample_ratio: float, version: str) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        class ChatgateTraceIds(RandomIdGenerator):
            """A root span takes the trace id chatgate made for the request (a new trace)."""

            def generate_trace_id(self) -> int:
                trace_id = current_trace_id()
                if _HEX_TRACE_ID.fullmatch(trace_id) and (value := int(trace_id, 16)):
                    return value
                return super().generate_trace_id()

        self.provider: TracerProvider = TracerProvider(
            resource=Resource.create({"service.name": "chatgate", "service.version": version}),
            sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
            id_generator=ChatgateTraceIds(),
        )
        # Spans leave from a thread of the processor's own, in batches: requests never wait.
        self.provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint)))
        )
        self.tracer: Tracer = self.provider.get_tracer("chatgate", version)

    @classmethod
    def build(cls, settings: Settings, *, version: str) -> Tracing | None:
        if not settings.otlp_endpoint:
            return None
        return cls(
            endpoint=settings.otlp_endpoint,
            sample_ratio=settings.trace_sample_ratio,
            version=version,
        )

    def instrument_database(self, engine: AsyncEngine) -> None:
        """A span per statement on this engine only. The instrumentor's public entry point is
        process-wide (and wraps create_engine for everyone), so its per-engine tracer is used."""
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import NoOpMeterProvider

        # Pool use is already a Prometheus metric; OpenTelemetry's copy of it goes nowhere.
        meter = NoOpMeterProvider().get_meter("chatgate.database")
        usage = meter.create_up_down_counter("db.client.connections.usage")
        EngineTracer(self.provider.get_tracer("chatgate.database"), engine.sync_engine, usage)

    def shutdown(self) -> None:
        """Sends what is still queued, then stops the exporter (blocking: call from a thread)."""
        self.provider.shutdown()


class TracingMiddleware:
    """The request's span, parent of the others. Pure ASGI like the other middlewares, so
    streams are neither buffered nor cut; the span ends with the response's last byte."""

    def __init__(
        self, app: ASGIApp, *, tracer: Tracer, skip: frozenset[str] = frozenset({"/metrics"})
    ) -> None:
        self.app = app
        self.tracer = tracer
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"traceparent", b"tracestate")
        }
        parent = _PROPAGATOR.extract(carrier) if "traceparent" in carrier else None
        if parent is not None and _trace_id_of(parent) != current_trace_id():
            parent = None  # a header chatgate did not take: its own trace id roots a new trace
        method = scope["method"]
        # No `url.path`: a path holds whatever the client put where an id belongs (an e-mail,
        # a phone number); the route's template (`http.route`, at the end) names it instead.
        span = self.tracer.start_span(
            method, context=parent, kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "chatgate.trace_id": current_trace_id()},
        )  # fmt: skip
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        tracer_token = _tracer.set(self.tracer)
        context_token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send_and_note)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            otel_context.detach(context_token)
            _tracer.reset(tracer_token)
            _finish_request_span(span, scope, method, status)


def _trace_id_of(context: otel_context.Context) -> str:
    return format(trace.get_current_span(context).get_span_context().trace_id, "032x")


def _finish_request_span(span: Span, scope: Scope, method: str, status: int) -> None:
    route = getattr(scope.get("route"), "path", None)
    if route:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if (stats := request_stats()) is not None:
        span.set_attribute("chatgate.engine_ms", round(stats.engine_seconds * 1000, 2))
        if stats.cache_hit is not None:
            span.set_attribute("chatgate.cache_hit", stats.cache_hit)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def _sampled_tracer() -> Tracer | None:
    """The request's tracer when its trace is sampled. An unsampled trace gets no child spans:
    they would record nothing, and making them cost each request a stream wrapper."""
    tracer = _tracer.get()
    if tracer is None or not trace.get_current_span().is_recording():
        return None
    return tracer


def start_engine_span(provider: str, model: str) -> Span | None:
    """The span of one engine call (None when tracing is off or the trace is not sampled); the
    caller ends it."""
    tracer = _sampled_tracer()
    if tracer is None:
        return None
    return tracer.start_span(
        f"chat {model}", kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        },
    )  # fmt: skip


async def first_step_under(span: Span, chunks: AsyncIterator[T]) -> AsyncIterator[T]:
    """An engine's stream with `span` current during its first step only: that is where the
    engine sends its request, so the traceparent it passes on names this span. Later steps run
    in the context of whoever reads the stream, which a generator must leave alone."""
    try:
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            first = await anext(chunks, None)
        finally:
            otel_context.detach(token)
        if first is None:
            return
        yield first
        async for chunk in chunks:
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def end_span(span: Span, *, error: str | None = None, **attributes: Any) -> None:
    span.set_attributes(attributes)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def cache_span(operation: str) -> AbstractContextManager[Span | None]:
    """`with cache_span("get"):` around an answer-cache call; does nothing when tracing is off
    or the trace is not sampled."""
    tracer = _sampled_tracer()
    if tracer is None:
        return nullcontext()
    return tracer.start_as_current_span(
        f"cache {operation}", kind=SpanKind.CLIENT,
        attributes={"chatgate.cache.operation": operation},
    )  # fmt: skip
