//! `grpc.health.v1.Health` follows readiness: SERVING while `/readyz` would answer 200,
//! NOT_SERVING otherwise (store unreachable, shutting down), for the whole server ("") and for
//! each playhead.v1 service, so a gRPC load balancer drains a replica exactly when an HTTP one
//! would.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The services whose health is reported (besides the whole server, "").
pub const SERVICES: &[&str] = &[
    "playhead.v1.PlaybackService",
    "playhead.v1.CatalogService",
    "playhead.v1.ProfileService",
    "playhead.v1.RecsService",
];

/// Poll `ready` every `every` and report the answer until `shutdown` turns true (then report
/// NOT_SERVING: a draining replica takes no new calls).
pub fn follow<F, Fut>(
    reporter: HealthReporter,
    ready: F,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        loop {
            let serving = !*shutdown.borrow() && ready().await;
            set(&reporter, serving).await;
            if !serving && *shutdown.borrow() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

async fn set(reporter: &HealthReporter, serving: bool) {
    let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
    reporter.set_service_status("", status).await;
    for s in SERVICES {
        reporter.set_service_status(*s, status).await;
    }
}
