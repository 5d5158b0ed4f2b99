//! Playhead's gRPC transport: the `playhead.v1` services (protos in `proto/playhead/v1/`), the
//! standard health service (following readiness) and server reflection, served by tonic on the
//! REST listener (the binary sends `content-type: application/grpc*` here).
//!
//! The rule here, as for REST: parse, call one use case in `playhead-app`, map errors. Who may
//! call a method is its [`table::METHODS`] entry's [`Operation`] (the application's policy
//! table), checked by the gate ([`gate`]) before the request message is read; quotas, the
//! in-flight cap and the audit of `profiles:any` are the gate's too. Errors become statuses in
//! one place ([`error`]). Mutating unary calls honour `idempotency-key` metadata through the
//! application's idempotency store, with REST's semantics ([`call`]).

mod call;
pub mod codec;
mod convert;
pub mod error;
mod gate;
pub mod health;
mod services;
pub mod table;

use std::net::IpAddr;
use std::sync::Arc;

use playhead_app::App;
use playhead_app::access::{Gate, Operation};

/// The generated messages, servers and clients of `playhead.v1`.
#[expect(clippy::allow_attributes, missing_docs, unused_qualifications, reason = "generated code")]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/playhead.v1.rs"));

    /// The encoded descriptor set of the committed protos (served by reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/playhead_v1_descriptor.bin"));
}

/// Hard limits of the gRPC surface (docs/api.md lists them).
#[derive(Debug, Clone)]
pub struct GrpcLimits {
    /// Largest request message (RESOURCE_EXHAUSTED above it).
    pub max_message_bytes: usize,
    /// Most events in one RecordEvents call (REST's batch limit).
    pub batch_max: usize,
    /// Events a StreamEvents call reads ahead of its durable results: the stream's window.
    pub stream_window: usize,
}

impl Default for GrpcLimits {
    fn default() -> Self {
        Self { max_message_bytes: 4 * 1024 * 1024, batch_max: 500, stream_window: 1_000 }
    }
}

/// What every service shares: one pointer.
#[derive(Clone)]
pub struct GrpcState(Arc<Inner>);

/// The fields of [`GrpcState`].
pub struct Inner {
    app: App,
    gate: Arc<Gate>,
    limits: GrpcLimits,
    trusted_proxies: Vec<IpAddr>,
}

impl std::ops::Deref for GrpcState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl GrpcState {
    /// State over the same application and gate as REST.
    pub fn new(app: App, gate: Arc<Gate>, limits: GrpcLimits, trusted_proxies: Vec<IpAddr>) -> Self {
        Self(Arc::new(Inner { app, gate, limits, trusted_proxies }))
    }
}

/// The operation of a method path, if it is served (for logs and tests).
pub fn operation_of(path: &str) -> Option<Operation> {
    table::method(path).map(|m| m.op)
}

/// Every gRPC service behind the gate, as an axum router (the binary routes gRPC requests to
/// it), and the health reporter the binary keeps in step with readiness ([`health::follow`]).
pub fn router(state: GrpcState) -> (axum::Router, tonic_health::server::HealthReporter) {
    let (reporter, health) = tonic_health::server::health_reporter();
    let max = state.limits.max_message_bytes;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1();
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha();
    let mut routes = tonic::service::Routes::builder();
    routes
        .add_service(
            pb::playback_service_server::PlaybackServiceServer::new(services::Playback(state.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            pb::catalog_service_server::CatalogServiceServer::new(services::Catalog(state.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            pb::profile_service_server::ProfileServiceServer::new(services::Profiles(state.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            pb::recs_service_server::RecsServiceServer::new(services::Recs(state.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        );
    if let Ok(r) = reflection_v1 {
        routes.add_service(r);
    }
    if let Ok(r) = reflection_v1alpha {
        routes.add_service(r);
    }
    routes.add_service(health);
    let router =
        routes.routes().into_axum_router().layer(axum::middleware::from_fn_with_state(state, gate::gate));
    (router, reporter)
}
