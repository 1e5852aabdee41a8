"""Provider set-up: off without an endpoint, parent-based ratio sampling from settings/env."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from opentelemetry import trace

from chassis.settings import BaseServiceSettings, TracingSettings
from chassis.tracing import configure_tracing, sample_ratio, tracing_wanted
from chassis.tracing.propagation import extract_trace_context, inject_trace_context


def test_tracing_is_off_without_an_endpoint() -> None:
    settings = BaseServiceSettings()
    assert tracing_wanted(settings) is False
    assert configure_tracing(settings) is None


def test_tracing_is_off_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    settings = BaseServiceSettings(tracing=TracingSettings(enabled=False))
    assert tracing_wanted(settings) is False
    assert tracing_wanted(BaseServiceSettings()) is True


def test_sample_ratio_comes_from_settings_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sample_ratio(BaseServiceSettings()) == 0.1
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    assert sample_ratio(BaseServiceSettings()) == 0.5
    assert sample_ratio(BaseServiceSettings(tracing=TracingSettings(sample_ratio=1.0))) == 1.0
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "lots")
    assert sample_ratio(BaseServiceSettings()) == 0.1


def test_provider_uses_resource_and_parent_based_ratio_sampler() -> None:
    # A fresh interpreter: the global provider can be set only once per process.
    script = textwrap.dedent(
        """
        import os
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
        os.environ["OTEL_TRACES_SAMPLER_ARG"] = "0.25"
        from opentelemetry import trace
        from chassis.settings import BaseServiceSettings
        from chassis.tracing import configure_tracing, tracing_active
        provider = configure_tracing(BaseServiceSettings(service_name="orders", version="1.2.3"))
        assert provider is trace.get_tracer_provider()
        assert tracing_active()
        print("RESULT", provider.sampler.get_description())
        print("RESULT", provider.resource.attributes["service.name"])
        print("RESULT", provider.resource.attributes["service.version"])
        provider.shutdown()
        """
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    output = [line.split()[1] for line in output.splitlines() if line.startswith("RESULT ")]
    assert output[0] == "ChassisSampler{0.25}"
    assert output[1:] == ["orders", "1.2.3"]


def test_trace_context_round_trips_through_message_headers(span_exporter: object) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("publish") as span:
        headers = inject_trace_context({"x-other": "1"})
    assert headers["x-other"] == "1"
    assert headers["traceparent"].split("-")[1] == format(span.get_span_context().trace_id, "032x")
    context = extract_trace_context(headers)
    assert trace.get_current_span(context).get_span_context().trace_id == (
        span.get_span_context().trace_id
    )
    assert not trace.get_current_span(extract_trace_context(None)).get_span_context().is_valid


async def test_a_stuck_collector_does_not_block_shutdown() -> None:
    import asyncio
    import threading
    import time

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from chassis.tracing import shutdown_tracing

    release = threading.Event()

    class StuckExporter(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            release.wait(30)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(StuckExporter()))
    provider.get_tracer("test").start_span("unsent").end()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    finished = await shutdown_tracing(provider, flush_seconds=0.3)
    elapsed = time.perf_counter() - started
    task.cancel()
    release.set()

    assert finished is False
    assert elapsed < 2
    # The event loop kept running while the flush waited.
    assert ticks >= 10
