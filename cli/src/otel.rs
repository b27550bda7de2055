//! Optional OpenTelemetry trace export (cargo feature `otel`): every `tracing` span of the
//! command (connection and request lifecycles in the transports, sessions, the gateway) becomes
//! an OTLP span, exported over HTTP with protobuf bodies by a batch span processor that runs on
//! tokio, under `service.name = "mcpt"`.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime::{Tokio, TokioCurrentThread};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::{Layer, Registry};

/// The OTLP/HTTP path of the traces signal, appended to the base endpoint as the
/// `OTEL_EXPORTER_OTLP_ENDPOINT` convention says.
const TRACES_PATH: &str = "/v1/traces";

/// How long one export request may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// A boxed subscriber layer, as `init_logging` stacks them.
pub(crate) type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync + 'static>;

/// Where the command's batch span processor runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Runtime {
    /// On the command's own multi-thread runtime (the caller must have entered it).
    Shared,
    /// On a dedicated current-thread runtime, for commands whose runtime is current-thread
    /// (the exporter would otherwise only progress while the command polls it).
    Dedicated,
}

/// The installed exporter: flushes and shuts down the tracer provider when the command ends.
#[derive(Debug)]
pub(crate) struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Exports every finished span still queued and stops the exporter. Call it after the
    /// command's future completed, outside `block_on`, while the runtime is still alive.
    pub(crate) fn shutdown(self) -> Result<(), String> {
        self.provider.shutdown().map_err(|e| format!("OTLP trace export shutdown failed: {e}"))
    }
}

/// The traces URL for an OTLP base endpoint such as `http://collector:4318`: the base with
/// `/v1/traces` appended (a trailing `/` of the base is dropped first).
pub(crate) fn traces_url(base: &str) -> Result<String, String> {
    let base = base.trim();
    let url = format!("{}{TRACES_PATH}", base.trim_end_matches('/'));
    let uri: http::Uri =
        url.parse().map_err(|e| format!("--otlp-endpoint {base:?} is not an absolute http:// or https:// URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(url),
        _ => Err(format!("--otlp-endpoint {base:?} is not an absolute http:// or https:// URL")),
    }
}

/// Builds the OTLP exporter for `base` (see [`traces_url`]) and the `tracing` layer that feeds
/// it. The HTTP client's own spans (hyper, reqwest, h2) and OpenTelemetry's internal events are
/// kept out of the export so that exporting never produces more spans to export.
pub(crate) fn layer(base: &str, runtime: Runtime) -> Result<(BoxedLayer, Exporter), String> {
    let endpoint = traces_url(base)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter for {endpoint}: {e}"))?;
    let builder = SdkTracerProvider::builder().with_resource(Resource::builder().with_service_name("mcpt").build());
    let provider = match runtime {
        Runtime::Shared => builder.with_span_processor(BatchSpanProcessor::builder(exporter, Tokio).build()),
        Runtime::Dedicated => {
            builder.with_span_processor(BatchSpanProcessor::builder(exporter, TokioCurrentThread).build())
        }
    }
    .build();
    let tracer = provider.tracer("mcpt");
    let quiet = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry_otlp", LevelFilter::OFF)
        .with_target("opentelemetry_http", LevelFilter::OFF)
        .with_target("reqwest", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("h2", LevelFilter::OFF);
    let layer = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(quiet).boxed();
    Ok((layer, Exporter { provider }))
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn traces_url_appends_the_signal_path() {
        assert_eq!(traces_url("http://127.0.0.1:4318").as_deref(), Ok("http://127.0.0.1:4318/v1/traces"));
        assert_eq!(traces_url("https://otel.example/base/").as_deref(), Ok("https://otel.example/base/v1/traces"));
    }

    #[test]
    fn traces_url_rejects_what_is_not_an_http_url() {
        assert!(traces_url("127.0.0.1:4318").is_err());
        assert!(traces_url("unix:///tmp/otel.sock").is_err());
        assert!(traces_url("http://").is_err());
        assert!(traces_url("").is_err());
    }
}
