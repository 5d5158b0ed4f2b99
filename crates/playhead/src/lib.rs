//! The Playhead binary's library half: configuration, wiring, and `launch`, so integration tests
//! start the real server on port 0 with a fresh data dir exactly as `playhead serve` does.
//!
//! The rule here: wiring only. Choosing adapters, reading config, starting tasks and listeners,
//! shutting down in order. No business rules, no request handling.

pub mod config;
pub mod demo;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use playhead_api_rest::{Authenticator, ReadyCheck, RestState};
use playhead_app::clock::SystemClock;
use playhead_app::{App, AppConfig, Ports};
use playhead_auth::{KeySet, Verifier};
use playhead_core::ports::Clock;
use playhead_store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Settings;

/// Leeway for token time claims (clock differences between issuer and replicas).
const TOKEN_LEEWAY_SECS: u64 = 30;

/// Everything a running process holds.
pub struct Runtime {
    /// The use cases.
    pub app: App,
    /// The store (for admin commands).
    pub store: SqliteStore,
    /// The signing keys.
    pub keys: Arc<KeySet>,
    /// Settings in effect.
    pub settings: Settings,
}

/// Read (or create once, with mode 0600) a 32-byte secret in the data dir.
fn secret_file(dir: &Path, name: &str) -> anyhow::Result<[u8; 32]> {
    let path = dir.join(name);
    if let Ok(bytes) = std::fs::read(&path) {
        return bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes", path.display()));
    }
    let key: [u8; 32] = rand::random();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&key)?;
    f.sync_all()?;
    // Another process may have won the race: keep whichever file landed first.
    if std::fs::hard_link(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
        let bytes = std::fs::read(&path)?;
        return bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes", path.display()));
    }
    let _ = std::fs::remove_file(&tmp);
    Ok(key)
}

/// Open the data dir (creating it), the store (running migrations) and the keys.
pub async fn open(settings: Settings) -> anyhow::Result<Runtime> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The data dir holds signing keys and everyone's history: owner only.
        let _ = std::fs::set_permissions(&settings.data_dir, std::fs::Permissions::from_mode(0o700));
    }
    let store = SqliteStore::open(&settings.db_path())
        .await
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", settings.db_path().display()))?;
    let keys = Arc::new(KeySet::load_or_create(&settings.data_dir).context("loading signing keys")?);
    let cursor_key = secret_file(&settings.data_dir, "cursor.key")?;
    let ports = Ports {
        accounts: Arc::new(store.clone()),
        catalog: Arc::new(store.clone()),
        log: Arc::new(store.clone()),
        viewing: Arc::new(store.clone()),
        api_keys: Arc::new(store.clone()),
    };
    let config = AppConfig {
        rules: settings.rules.clone(),
        max_backlog: settings.limits.max_backlog,
        max_held_per_profile: settings.limits.max_held_per_profile,
        consumer_batch: settings.limits.consumer_batch,
        cursor_key,
        row_cache: true,
    };
    let app = App::new(ports, config, Arc::new(SystemClock));
    Ok(Runtime { app, store, keys, settings })
}

struct Ready {
    store: SqliteStore,
    consumer: watch::Receiver<bool>,
}

impl ReadyCheck for Ready {
    fn ready(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            self.store.ping().await.map_err(|e| format!("store: {e}"))?;
            if *self.consumer.borrow() {
                return Err("shutting down".into());
            }
            Ok(())
        })
    }
}

fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().ok())
        .clone()
}

/// Serve on `listener` until `shutdown` turns true; then drain requests, let the consumer
/// finish its batch, and return. Prints nothing; the caller reports the address.
pub async fn launch(
    rt: Runtime,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let verifier =
        Verifier::new(&rt.keys, rt.settings.issuer.clone(), rt.settings.audience.clone(), TOKEN_LEEWAY_SECS);
    let auth = Arc::new(Authenticator::new(verifier, rt.app.ports().api_keys.clone(), clock));
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = Arc::new(Ready { store: rt.store.clone(), consumer: stop_rx.clone() });
    let consumer = rt.app.spawn_consumer(stop_rx);
    let state = RestState { app: rt.app.clone(), auth, ready };

    let metrics_task = match (rt.settings.metrics_listen, install_metrics()) {
        (Some(addr), Some(handle)) => {
            let l =
                TcpListener::bind(addr).await.with_context(|| format!("binding metrics listener {addr}"))?;
            let router = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let h = handle.clone();
                    async move { h.render() }
                }),
            );
            let mut sd = shutdown.clone();
            Some(tokio::spawn(async move {
                let _ = axum::serve(l, router)
                    .with_graceful_shutdown(async move {
                        let _ = sd.wait_for(|v| *v).await;
                    })
                    .await;
            }))
        }
        _ => None,
    };

    let grace = Duration::from_secs(rt.settings.limits.shutdown_grace_secs);
    let router = playhead_api_rest::router(state);
    let mut sd = shutdown.clone();
    let server = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = sd.wait_for(|v| *v).await;
            tracing::info!("shutdown requested: draining requests");
        });
    let served = tokio::spawn(async move { server.await });
    let _ = shutdown.wait_for(|v| *v).await;
    // Stop taking new batches, but let in-flight requests and the batch in hand finish.
    let _ = stop_tx.send(true);
    match tokio::time::timeout(grace, served).await {
        Ok(r) => r.context("server task")?.context("server")?,
        Err(_) => {
            tracing::warn!(grace_secs = grace.as_secs(), "requests still running after the grace period")
        }
    }
    let _ = tokio::time::timeout(grace, consumer).await;
    if let Some(t) = metrics_task {
        t.abort();
    }
    rt.store.close().await;
    tracing::info!("stopped");
    Ok(())
}
