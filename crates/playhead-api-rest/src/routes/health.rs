//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::RestState;
use crate::dto::HealthDto;

/// The process is up.
#[utoipa::path(get, path = "/livez", tag = "operations", responses((status = 200, body = HealthDto)))]
pub async fn livez() -> Json<HealthDto> {
    Json(HealthDto { status: "ok".into() })
}

/// The process can serve: its store answers and its consumer runs.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, body = HealthDto), (status = 503, body = HealthDto)))]
pub async fn readyz(State(s): State<RestState>) -> impl IntoResponse {
    match s.ready.ready().await {
        Ok(()) => (StatusCode::OK, Json(HealthDto { status: "ok".into() })),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, Json(HealthDto { status: why })),
    }
}
