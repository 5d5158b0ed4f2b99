#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

//! The Redis rate limiter against real Redis servers: the shared one on 127.0.0.1:6379 (or
//! `PLAYHEAD_TEST_REDIS_URL`) with a key prefix per test, and throwaway `redis-server`s on free
//! loopback ports for the fault tests (killing those never disturbs other tests). An unreachable
//! shared server fails the tests under `CI=true` and skips them (with a notice) elsewhere.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use playhead_core::Timestamp;
use playhead_core::ports::RateLimiter;
use playhead_core::rate::{Quota, gcra};
use playhead_redis::{RedisLimiterConfig, RedisRateLimiter};

fn url() -> String {
    std::env::var("PLAYHEAD_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn config() -> RedisLimiterConfig {
    RedisLimiterConfig {
        key_prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()),
        // Generous: the machine's two cores are shared by parallel test processes.
        timeout: Duration::from_secs(2),
        ..RedisLimiterConfig::default()
    }
}

/// A limiter on the shared server, connected; `None` (after a notice) when the server is down
/// outside CI.
async fn shared_limiter(config: RedisLimiterConfig) -> Option<RedisRateLimiter> {
    let l = RedisRateLimiter::connect(&url(), config).unwrap();
    if wait_connected(&l, Duration::from_secs(5)).await {
        return Some(l);
    }
    assert!(!under_ci(), "Redis is unreachable at {} and CI=true (scripts/ci-services starts it)", url());
    let _ = writeln!(std::io::stderr(), "SKIPPED: Redis unreachable at {}", url());
    None
}

async fn wait_connected(l: &RedisRateLimiter, within: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if l.connected() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn the_script_decides_exactly_as_the_core() {
    let Some(l) = shared_limiter(config()).await else { return };
    // Quotas with intervals from whole seconds down to one microsecond, costs above the limit,
    // instants that do not fall on second boundaries, and time running forward in odd steps.
    let quotas = [
        Quota { limit: 10, window_ms: 1_000 },
        Quota { limit: 3, window_ms: 60_000 },
        Quota { limit: 1_000_000, window_ms: 1_000 },
        Quota { limit: 7, window_ms: 999 },
    ];
    for (qi, q) in quotas.into_iter().enumerate() {
        let key = format!("agree-{qi}");
        let mut tat: Option<i64> = None;
        let mut now = 1_800_000_000_123i64;
        for step in 0..200u32 {
            let cost = [1, 1, 2, 1, 5, 1, 11][(step % 7) as usize];
            let (want, next) = gcra(tat, Timestamp(now), q, cost);
            let got = l.check(&key, q, cost, Timestamp(now)).await.unwrap();
            assert_eq!(got, want, "quota {q:?}, step {step}, cost {cost}");
            tat = Some(next);
            now += i64::from(step % 5) * 37;
        }
    }
}

#[tokio::test]
async fn two_replicas_share_one_quota() {
    let cfg = config();
    let Some(a) = shared_limiter(cfg.clone()).await else { return };
    let Some(b) = shared_limiter(cfg).await else { return };
    let q = Quota { limit: 10, window_ms: 60_000 };
    let now = Timestamp(1_800_000_000_000);
    let mut allowed = 0;
    for i in 0..40 {
        let l = if i % 2 == 0 { &a } else { &b };
        if l.check("viewer-1", q, 1, now).await.unwrap().allowed {
            allowed += 1;
        }
    }
    // Per-replica limits would have let 20 through.
    assert_eq!(allowed, 10);
    // Another principal has its own quota.
    assert!(b.check("viewer-2", q, 1, now).await.unwrap().allowed);
}

/// A `redis-server` of this test's own on a free loopback port, stopped on drop.
struct Throwaway {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Throwaway {
    fn start(port: Option<u16>) -> Self {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
        });
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/ci-services)");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port, _dir: dir }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn fault_redis_down_falls_back_to_per_replica_limits_and_recovers() {
    let mut server = Throwaway::start(None);
    let port = server.port;
    let cfg = RedisLimiterConfig {
        timeout: Duration::from_millis(300),
        retry_after: Duration::from_millis(200),
        ..config()
    };
    let l = RedisRateLimiter::connect(&format!("redis://127.0.0.1:{port}"), cfg).unwrap();
    assert!(wait_connected(&l, Duration::from_secs(10)).await);
    let q = Quota { limit: 5, window_ms: 60_000 };
    let now = Timestamp(1_800_000_000_000);
    for _ in 0..5 {
        assert!(l.check("k", q, 1, now).await.unwrap().allowed);
    }
    assert!(!l.check("k", q, 1, now).await.unwrap().allowed, "shared quota used up");

    server.kill();
    // Down: every check still answers (no error, so no 5xx), decided by the local limiter, which
    // has its own fresh quota for this key; and quickly (the breaker skips the dead server).
    let t0 = Instant::now();
    let mut allowed = 0;
    for _ in 0..8 {
        if l.check("k", q, 1, now).await.unwrap().allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5, "per-replica limit while Redis is down");
    assert!(t0.elapsed() < Duration::from_secs(5), "checks stall while Redis is down: {:?}", t0.elapsed());

    // Back (empty: Redis kept nothing on disk): the shared limiter takes over again.
    let _server = Throwaway::start(Some(port));
    let t0 = Instant::now();
    // "k" has used its whole local quota at `now`, so only the (fresh) shared server can allow it.
    while !l.check("k", q, 5, now).await.unwrap().allowed {
        assert!(t0.elapsed() < Duration::from_secs(20), "the limiter never went back to Redis");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!l.check("k", q, 1, now).await.unwrap().allowed, "shared quota used up again");
}

/// The shared row cache on the shared server, connected; `None` (after a notice) when the server
/// is down outside CI.
async fn shared_cache() -> Option<playhead_redis::RedisSharedCache> {
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let c = playhead_redis::RedisSharedCache::connect(&url(), &prefix, Duration::from_secs(2)).unwrap();
    let t0 = Instant::now();
    while !c.connected() && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if c.connected() {
        return Some(c);
    }
    assert!(!under_ci(), "Redis is unreachable at {} and CI=true (scripts/ci-services starts it)", url());
    let _ = writeln!(std::io::stderr(), "SKIPPED: Redis unreachable at {}", url());
    None
}

#[tokio::test]
async fn the_shared_cache_passes_the_port_contract() {
    let Some(c) = shared_cache().await else { return };
    playhead_store_contract::shared_cache::shared_cache_contract(&c).await;
}

#[tokio::test]
async fn fault_redis_down_makes_the_shared_cache_fail_fast_and_recover() {
    use playhead_core::ports::SharedCache;
    let mut server = Throwaway::start(None);
    let port = server.port;
    let c = playhead_redis::RedisSharedCache::connect(
        &format!("redis://127.0.0.1:{port}"),
        "t:",
        Duration::from_millis(300),
    )
    .unwrap();
    let t0 = Instant::now();
    while !c.connected() {
        assert!(t0.elapsed() < Duration::from_secs(10), "never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let k = vec!["k".to_owned()];
    c.put("k", b"v", Duration::from_secs(60)).await.unwrap();
    assert_eq!(c.get_many(&k).await.unwrap(), vec![Some(b"v".to_vec())]);

    server.kill();
    // Down: every call errs (the application then reads the store), and quickly: after the first
    // failure the breaker skips the dead server instead of waiting out its timeout each time.
    let t0 = Instant::now();
    for _ in 0..50 {
        assert!(c.get_many(&k).await.is_err());
        assert!(c.bump(&k, Duration::from_secs(60)).await.is_err());
    }
    assert!(t0.elapsed() < Duration::from_secs(3), "calls stall while Redis is down: {:?}", t0.elapsed());

    // Back, empty (Redis keeps nothing on disk): the cache works again, with nothing stale in it.
    let _server = Throwaway::start(Some(port));
    let t0 = Instant::now();
    loop {
        if let Ok(v) = c.get_many(&k).await {
            assert_eq!(v, vec![None], "a restarted Redis holds nothing");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "the cache never went back to Redis");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
