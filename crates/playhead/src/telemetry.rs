//! Trace export: OpenTelemetry spans over OTLP/gRPC to a collector, off by default (decision
//! 0075). With no `telemetry.otlp_endpoint` nothing is recorded or sent; the trace id still
//! travels through the queue and into every log line (see `playhead_app::telemetry`).

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::config::TelemetrySettings;

/// A running exporter; [`Exporter::shutdown`] flushes what is still buffered.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Start exporting to `telemetry.otlp_endpoint`, or `None` when it is unset. Must run inside
    /// the Tokio runtime: the batch processor and the gRPC channel live on it (the SDK's default
    /// processor exports from a thread of its own, where tonic finds no reactor).
    pub fn start(settings: &TelemetrySettings) -> anyhow::Result<Option<Self>> {
        let Some(endpoint) = settings.otlp_endpoint.as_deref() else { return Ok(None) };
        anyhow::ensure!(
            (0.0..=1.0).contains(&settings.sample_ratio),
            "telemetry.sample_ratio must be between 0 and 1, not {}",
            settings.sample_ratio
        );
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(settings.export_timeout_secs.max(1)))
            .with_compression(opentelemetry_otlp::Compression::Gzip)
            .build()
            .map_err(|e| anyhow::anyhow!("telemetry.otlp_endpoint {endpoint}: {e}"))?;
        let processor = BatchSpanProcessor::builder(exporter, runtime::Tokio).build();
        // A caller's sampling decision wins (its `traceparent` flags); a new trace is sampled at
        // the configured ratio.
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio)));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler)
            .with_resource(Resource::builder().with_service_name(settings.service_name.clone()).build())
            .build();
        Ok(Some(Self { provider }))
    }

    /// The layer that turns this process's spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("playhead"))
    }

    /// Export what is buffered and stop (at exit). Blocks, so it runs off the runtime's workers.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "trace export: spans lost at shutdown");
            }
        })
        .await;
    }
}
