//! `playhead`: one binary, subcommands for serving, migrating, operating and demoing.
//! Every subcommand prints JSON on stdout (logs go to stderr), so scripts can parse it.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use playhead::{Settings, open};
use playhead_app::identity::{RedirectUri, RegisteredClient};
use playhead_auth::TokenIssuer;
use playhead_core::auth::{Scope, Scopes};
use playhead_core::identity::{ClientType, GrantType};
use playhead_core::ids::{AccountId, ProfileId};
use serde_json::json;
use tokio::sync::watch;

/// mimalloc instead of glibc's malloc (decision 0112): a cached read allocates and frees dozens
/// of small objects and a few large buffers, and glibc's free lists (consolidation, unlinking)
/// took a fifth of its CPU.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "playhead",
    version,
    about = "Watch history as a service: resume points, per-play history, Continue watching and Next up."
)]
struct Cli {
    /// Data directory (SQLite database, signing keys). Default ./playhead-data.
    #[arg(long, global = true, env = "PLAYHEAD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML config file (values there are overridden by PLAYHEAD_* environment variables).
    #[arg(long, global = true, env = "PLAYHEAD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the API server (Ctrl-C or SIGTERM drains requests and stops).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Address of the Prometheus metrics listener (default 127.0.0.1:9464; "off" disables).
        #[arg(long)]
        metrics_listen: Option<String>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Copy an embedded deployment's SQLite database into an empty PostgreSQL database (scale-out
    /// mode), then verify row counts and checksums table by table. Stop the server first.
    MigrateData {
        /// The source: sqlite://PATH (the data dir's playhead.db).
        #[arg(long)]
        from: String,
        /// The target: postgres://... (default: database_url from the config).
        #[arg(long)]
        to: Option<playhead::config::SecretUrl>,
        /// The target schema (default: database_schema from the config).
        #[arg(long)]
        to_schema: Option<String>,
    },
    /// Operator commands.
    #[command(subcommand)]
    Admin(Admin),
    /// Seed a demo catalog and households with a month of viewing; prints a token and example calls.
    Demo,
    /// Check the configuration, data dir, database (reachable, schema version, clock), keys,
    /// Redis, the NATS stream's storage and external issuers; print each finding with its fix.
    /// Exits 1 when something is wrong. Changes nothing.
    Doctor,
    /// Recommendations: train, batch output and offline evaluation.
    #[cfg(feature = "recs")]
    #[command(subcommand)]
    Recs(Recs),
}

/// `playhead recs ...`. Files: an interactions CSV with header `profile_id,title_id,watched_at,percent`
/// (percent optional, 0-100; watched_at RFC 3339 or Unix seconds) or a MovieLens ratings.csv
/// (userId,movieId,rating,timestamp; a rating of 4 or more is a positive), and a catalog NDJSON in
/// the title import format or a MovieLens movies.csv. Training self-tunes on the file's own most
/// recent plays unless the training config says `"tune": {"enabled": false}`.
#[cfg(feature = "recs")]
#[derive(Subcommand, Debug)]
enum Recs {
    /// Self-tune and train on a whole file and write each profile's top k unwatched playable
    /// titles, one JSON line per profile: {"profile_id": ..., "titles": [...]}. Prints a report:
    /// the input (unknown titles, duplicates, future timestamps, single-play profiles), the
    /// chosen settings, every candidate's validation scores and why the winner won.
    Batch {
        /// Interactions CSV.
        #[arg(long)]
        interactions: PathBuf,
        /// Catalog NDJSON.
        #[arg(long)]
        catalog: PathBuf,
        /// Titles per profile (1-1000).
        #[arg(long, default_value_t = 20)]
        k: usize,
        /// Output JSONL file.
        #[arg(long)]
        out: PathBuf,
        /// Training and blend settings (JSON; missing keys take the tuned defaults).
        #[arg(long)]
        train_config: Option<PathBuf>,
    },
    /// Evaluate popularity, co-watch kNN, EASE, the served blend (self-tuned on the training
    /// part), the untuned defaults (and the generator's oracle when oracle.jsonl lies beside the
    /// interactions): Recall@K, NDCG@K, coverage and average popularity with 95% bootstrap
    /// intervals, as JSON.
    Eval {
        /// Interactions CSV.
        #[arg(long)]
        interactions: PathBuf,
        /// Catalog NDJSON.
        #[arg(long)]
        catalog: PathBuf,
        /// temporal (a global time cut) or leave-last-out (each profile's last new title).
        #[arg(long)]
        protocol: String,
        /// Cut-offs, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10,20,50")]
        k: Vec<usize>,
        /// Bootstrap seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Bootstrap resamples (10-100000).
        #[arg(long, default_value_t = 1000)]
        bootstrap: usize,
        /// Score another model's recommendations too, NAME=FILE in the batch output format.
        #[arg(long, value_parser = parse_external)]
        external: Vec<(String, PathBuf)>,
        /// Write the split (train.csv, queries.csv) into this directory for external models.
        #[arg(long)]
        export_split: Option<PathBuf>,
        /// Training and blend settings (JSON).
        #[arg(long)]
        train_config: Option<PathBuf>,
    },
    /// Write a synthetic data set with planted structure (interactions.csv, catalog.ndjson, and
    /// oracle.jsonl: the generator's own probabilities of the held-out plays).
    Synth {
        /// Output directory (created).
        #[arg(long)]
        out: PathBuf,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Data shape: classic (the original: drifting mixed tastes, 8 genres, 120 days), stable
        /// (fixed tastes, a year), drifting (tastes replaced over time), binge (series-heavy, two
        /// years, series paused for months), films (film-heavy, 3 genres unrelated to taste),
        /// sparse (a few plays per profile, large catalog). Sizes below default per shape.
        #[arg(long, default_value = "classic")]
        profile: String,
        /// Profiles (classic: 2000).
        #[arg(long)]
        profiles: Option<usize>,
        /// Movies (classic: 700).
        #[arg(long)]
        movies: Option<usize>,
        /// Series (classic: 70).
        #[arg(long)]
        series: Option<usize>,
        /// Days covered (classic: 120).
        #[arg(long)]
        days: Option<u32>,
        /// Skip the oracle (large benchmark sets).
        #[arg(long)]
        no_oracle: bool,
    },
    /// Train from this service's own plays and catalog and store the model in its database;
    /// running servers (every replica) switch to it within `recs.reload_interval_secs`.
    Train {
        /// Training and blend settings (JSON).
        #[arg(long)]
        train_config: Option<PathBuf>,
    },
}

#[cfg(feature = "recs")]
fn parse_external(s: &str) -> Result<(String, PathBuf), String> {
    let (name, file) = s.split_once('=').ok_or("expected NAME=FILE")?;
    if name.is_empty() || file.is_empty() {
        return Err("expected NAME=FILE".into());
    }
    Ok((name.to_owned(), PathBuf::from(file)))
}

/// Run a CPU-bound, synchronous file command off the async workers.
#[cfg(feature = "recs")]
async fn blocking(
    f: impl FnOnce() -> anyhow::Result<serde_json::Value> + Send + 'static,
) -> anyhow::Result<serde_json::Value> {
    tokio::task::spawn_blocking(f).await.context("recs task")?
}

#[cfg(feature = "recs")]
async fn recs(settings: Settings, cmd: Recs) -> anyhow::Result<()> {
    use playhead::recs as r;
    let out = match cmd {
        Recs::Batch { interactions, catalog, k, out, train_config } => {
            let config = r::train_config(train_config.as_deref())?;
            blocking(move || r::batch(interactions, catalog, k, out, config)).await?
        }
        Recs::Eval {
            interactions,
            catalog,
            protocol,
            k,
            seed,
            bootstrap,
            external,
            export_split,
            train_config,
        } => {
            let o = r::EvalOptions {
                protocol: r::protocol(&protocol)?,
                ks: k,
                seed,
                bootstrap,
                external,
                export_split,
                config: r::train_config(train_config.as_deref())?,
            };
            blocking(move || r::eval(interactions, catalog, o)).await?
        }
        Recs::Synth { out, seed, profile, profiles, movies, series, days, no_oracle } => {
            let shape = playhead_recs::SynthShape::parse(&profile).ok_or_else(|| {
                anyhow::anyhow!(
                    "--profile must be one of classic, stable, drifting, binge, films, sparse, not {profile:?}"
                )
            })?;
            let d = playhead_recs::SynthScale::for_shape(shape);
            let scale = playhead_recs::SynthScale {
                profiles: profiles.unwrap_or(d.profiles),
                movies: movies.unwrap_or(d.movies),
                series: series.unwrap_or(d.series),
                days: days.unwrap_or(d.days),
                oracle: !no_oracle,
                ..d
            };
            blocking(move || r::synth(out, seed, scale)).await?
        }
        Recs::Train { train_config } => {
            let config = match train_config {
                Some(p) => r::train_config(Some(&p))?,
                None => r::settings_train_config(&settings.recs),
            };
            let rt = open(settings).await?;
            let now = rt.app.clock().now();
            let ports = rt.app.ports();
            let report =
                r::train_from_store(ports.catalog.as_ref(), ports.recs.as_ref(), &config, now).await?;
            serde_json::to_value(report)?
        }
    };
    print(&out);
    Ok(())
}

#[derive(Subcommand, Debug)]
enum Admin {
    /// Create an account.
    CreateAccount {
        /// E-mail address.
        #[arg(long)]
        email: String,
    },
    /// Create a profile in an account.
    CreateProfile {
        /// Account id.
        #[arg(long)]
        account: AccountId,
        /// Profile name.
        #[arg(long)]
        name: String,
        /// A kids profile (rows limited to its maturity limit, default 12).
        #[arg(long)]
        kids: bool,
        /// Highest title maturity (a minimum age, 0-21).
        #[arg(long)]
        maturity_limit: Option<u8>,
    },
    /// Mint an access token for an account.
    Token(TokenArgs),
    /// API keys for platform services.
    #[command(subcommand)]
    ApiKey(ApiKeyCmd),
    /// Re-queue every logged event (replay); state does not change when nothing was lost.
    Replay,
    /// Erase an account or a profile everywhere (a saga, decision 0085). A running server's
    /// runner carries it out; with --wait this command runs it to the end itself.
    Erase {
        /// The account to erase (with every profile).
        #[arg(long, conflicts_with = "profile", required_unless_present = "profile")]
        account: Option<AccountId>,
        /// The profile to erase.
        #[arg(long)]
        profile: Option<ProfileId>,
        /// Run the saga here until it is done (retrying failed steps), then print its status.
        #[arg(long)]
        wait: bool,
    },
    /// Write an account's data export (playhead.export.v2, docs/export.schema.json) to FILE.
    Export {
        /// The account.
        #[arg(long)]
        account: AccountId,
        /// The file to create (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the retention roll-up to completion now (decision 0083): every play that ended before
    /// the month holding "now minus DAYS" becomes part of its monthly roll-up, batch by batch
    /// (the same job as the pruning rounds, without their 100-batch cap). Safe while servers run.
    RollUp {
        /// The horizon in days (default: `retention.rollup_after_days`; at least 31).
        #[arg(long)]
        after_days: Option<u32>,
    },
    /// An erasure saga's status.
    Erasure {
        /// The erasure id.
        #[arg(long)]
        id: playhead_core::ids::ErasureId,
    },
    /// Set an account's password (read from the first line of standard input).
    SetPassword {
        /// Account id.
        #[arg(long)]
        account: AccountId,
    },
    /// OAuth clients.
    #[command(subcommand)]
    Client(ClientCmd),
    /// Add a new signing key; the previous one keeps verifying, older ones are removed (every
    /// server picks the change up within its revocation poll interval).
    RotateKeys,
    /// The JetStream dead-letter stream (scale-out with nats_url).
    #[command(subcommand)]
    Dlq(DlqCmd),
    /// Write a consistent copy of the embedded database to FILE while the server runs (SQLite
    /// VACUUM INTO). Scale-out: back PostgreSQL up with pg_dump (docs/operations.md).
    Backup {
        /// The backup file to create (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup made by `admin backup` into an empty data dir (the server must not run
    /// on it); `serve` then migrates it to the current schema.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum DlqCmd {
    /// List the dead letters, oldest first: id, reason, event and outbox row.
    List,
    /// Replay dead letters (after fixing their cause): from the outbox when the event's row is
    /// still there, else their stored payload; one that cannot be replayed is kept and reported.
    Replay {
        /// Replay every dead letter.
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// The dead letter to replay (its id from `dlq list`).
        #[arg(required_unless_present = "all")]
        id: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
enum ClientCmd {
    /// Register a client; a confidential client's secret is printed once and never stored.
    Create {
        /// Shown on the consent and device pages.
        #[arg(long)]
        name: String,
        /// public (TV, phone, browser) or confidential (a backend).
        #[arg(long = "type")]
        client_type: String,
        /// A redirect URI (repeat for several): https, or http on 127.0.0.1 or [::1], where any
        /// port matches (RFC 8252); no fragment, no `localhost`.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A grant: device_code, authorization_code, refresh_token, client_credentials (repeat).
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
        /// Space-separated scope ceiling (default: a viewer's scopes).
        #[arg(long)]
        scope: Option<String>,
    },
    /// Delete a client: it can no longer authenticate, its sessions are revoked and every access
    /// token it was issued is refused on every server within the revocation poll (30 s at most).
    Delete {
        /// The client's id.
        #[arg(long = "client-id")]
        client_id: String,
    },
}

#[derive(Args, Debug)]
struct TokenArgs {
    /// Account id.
    #[arg(long)]
    account: AccountId,
    /// Space-separated scopes (default: a viewer's scopes).
    #[arg(long)]
    scope: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl_secs: i64,
    /// Add admin and catalog:write.
    #[arg(long)]
    admin: bool,
    /// Bind the token to one profile (a TV signed in as the kids profile).
    #[arg(long)]
    profile: Option<ProfileId>,
}

#[derive(Subcommand, Debug)]
enum ApiKeyCmd {
    /// Create a key; the secret is printed once and never stored.
    Create {
        /// A name for the key.
        #[arg(long)]
        name: String,
        /// Space-separated scopes.
        #[arg(long)]
        scope: String,
    },
    /// Revoke a key by its prefix (takes effect within 30 s on every server).
    Revoke {
        /// The key's prefix (the part after phk_).
        #[arg(long)]
        prefix: String,
    },
}

fn erasure_json(e: &playhead_core::erasure::Erasure) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = e
        .steps
        .iter()
        .map(|s| json!({"step": s.step.as_str(), "state": s.state, "attempts": s.attempts, "last_error": s.last_error}))
        .collect();
    json!({"erasure_id": e.id.to_string(), "scope": e.scope.kind(), "state": e.state(), "steps": steps})
}

fn print(v: &serde_json::Value) {
    println!("{v}");
}

fn init_logs(settings: &Settings, serving: bool) -> anyhow::Result<Option<playhead::telemetry::Exporter>> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // One-shot commands print their JSON answer on stdout; only a server narrates at info.
    let default = if serving { "info,sqlx=warn" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Only a server exports traces (one-shot commands have no requests to trace).
    let exporter = if serving { playhead::telemetry::Exporter::start(&settings.telemetry)? } else { None };
    // Each layer filters for itself: `RUST_LOG` sets what is logged, and never hides a span from
    // the trace exporter (which records the info-level request, relay and apply spans).
    let otel =
        exporter.as_ref().map(|e| e.layer().with_filter(tracing_subscriber::filter::LevelFilter::INFO));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(otel);
    if settings.log_format == "pretty" {
        registry.with(fmt.with_filter(filter)).init();
    } else {
        registry.with(fmt.json().flatten_event(true).with_current_span(true).with_filter(filter)).init();
    }
    Ok(exporter)
}

fn mint(rt: &playhead::Runtime, args: &TokenArgs) -> anyhow::Result<String> {
    let mut scopes = match &args.scope {
        Some(s) => Scopes::parse(s)?,
        None => Scope::VIEWER.into_iter().collect(),
    };
    if args.admin {
        scopes = scopes.with(Scope::Admin).with(Scope::CatalogWrite);
    }
    anyhow::ensure!(args.ttl_secs > 0 && args.ttl_secs <= 30 * 86_400, "--ttl-secs must be 1-2592000");
    let issuer = TokenIssuer::new(
        rt.identity.keys(),
        rt.identity.config().issuer.clone(),
        rt.settings.audience.clone(),
        args.ttl_secs,
    );
    let now_secs = rt.app.clock().now().0 / 1000;
    let sid = uuid::Uuid::new_v4().to_string();
    // The operator vouches for the person: the token counts as a fresh sign-in.
    let mut claims =
        issuer.account_claims(args.account, "playhead-cli", scopes, &sid, now_secs).with_auth_time(now_secs);
    if let Some(p) = args.profile {
        claims = claims.bound_to(p);
    }
    Ok(issuer.issue(&claims)?)
}

async fn run(mut cli: Cli) -> anyhow::Result<()> {
    if matches!(cli.command, Command::Doctor) {
        return doctor(cli).await;
    }
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(d) = cli.data_dir.take() {
        settings.data_dir = d;
    }
    let exporter = init_logs(&settings, matches!(cli.command, Command::Serve { .. }))?;
    let done = command(cli, settings).await;
    if let Some(e) = exporter {
        e.shutdown().await;
    }
    done
}

async fn command(cli: Cli, mut settings: Settings) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { listen, metrics_listen } => {
            if let Some(l) = listen {
                settings.listen = l;
            }
            match metrics_listen.as_deref() {
                Some("off") => settings.metrics_listen = None,
                Some(a) => settings.metrics_listen = Some(a.parse().context("--metrics-listen")?),
                None => {}
            }
            let rt = open(settings).await?;
            let listener = tokio::net::TcpListener::bind(rt.settings.listen)
                .await
                .with_context(|| format!("binding {}", rt.settings.listen))?;
            let addr = listener.local_addr()?;
            print(
                &json!({"status": "listening", "addr": addr.to_string(), "backend": rt.store.backend(), "data_dir": rt.settings.data_dir}),
            );
            let (tx, rx) = watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = tx.send(true);
            });
            playhead::launch(rt, listener, rx).await?;
        }
        Command::Migrate => {
            let rt = open(settings).await?;
            // The URL is never printed: it may hold a password.
            let database = match rt.store {
                playhead::Store::Sqlite(_) => json!(rt.settings.db_path()),
                playhead::Store::Postgres(_) => json!("database_url"),
            };
            print(&json!({"status": "migrated", "backend": rt.store.backend(), "database": database}));
        }
        Command::MigrateData { from, to, to_schema } => {
            let path = from
                .strip_prefix("sqlite://")
                .context("--from must be sqlite://PATH (the embedded database file)")?;
            let to =
                to.or_else(|| settings.database_url.clone()).context("--to (or database_url) is required")?;
            let to = to.expose();
            anyhow::ensure!(
                to.starts_with("postgres://") || to.starts_with("postgresql://"),
                "--to must be a postgres:// URL"
            );
            let schema = to_schema.or_else(|| settings.database_schema.clone());
            let tables =
                playhead::migrate_data::migrate_data(std::path::Path::new(path), to, schema.as_deref())
                    .await?;
            let rows: u64 = tables.iter().map(|t| t.rows).sum();
            print(&json!({"status": "migrated", "verified": true, "rows": rows, "tables": tables}));
        }
        Command::Admin(Admin::Backup { out }) => {
            anyhow::ensure!(
                settings.database_url.is_none(),
                "admin backup copies the embedded SQLite database; in scale-out mode back PostgreSQL up with \
                 pg_dump or pg_basebackup (docs/operations.md, \"Backing up\")"
            );
            let r = playhead_store_sqlite::backup::backup(&settings.db_path(), &out)
                .await
                .map_err(|e| anyhow::anyhow!("backing up {}: {e}", settings.db_path().display()))?;
            print(
                &json!({"status": "backed_up", "file": r.path, "bytes": r.bytes, "events": r.events, "schema_version": r.schema_version}),
            );
        }
        Command::Admin(Admin::Restore { from }) => {
            anyhow::ensure!(
                settings.database_url.is_none(),
                "admin restore restores the embedded SQLite database; in scale-out mode restore PostgreSQL with \
                 pg_restore (docs/operations.md, \"Restoring\")"
            );
            let r = playhead_store_sqlite::backup::restore(&from, &settings.db_path())
                .await
                .map_err(|e| anyhow::anyhow!("restoring {}: {e}", from.display()))?;
            print(
                &json!({"status": "restored", "database": r.path, "bytes": r.bytes, "events": r.events, "schema_version": r.schema_version}),
            );
        }
        Command::Admin(cmd) => {
            let rt = open(settings).await?;
            admin(&rt, cmd).await?;
        }
        #[cfg(feature = "recs")]
        Command::Recs(cmd) => recs(settings, cmd).await?,
        Command::Doctor => anyhow::bail!("doctor runs before the settings are loaded (see run)"),
        Command::Demo => {
            let rt = open(settings).await?;
            let out = playhead::demo::seed(&rt.app).await?;
            let token = mint(
                &rt,
                &TokenArgs {
                    account: out.account,
                    scope: None,
                    ttl_secs: 86_400,
                    admin: false,
                    profile: None,
                },
            )?;
            let p = out.profiles.first().map(|p| p.id.to_string()).unwrap_or_default();
            print(&json!({
                "account_id": out.account.to_string(),
                "profiles": out.profiles.iter().map(|p| json!({"profile_id": p.id.to_string(), "name": p.name.as_str(), "kids": p.kids})).collect::<Vec<_>>(),
                "titles": out.titles,
                "events": out.events,
                "access_token": token,
                "examples": [
                    format!("curl -s -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8080/v1/profiles/{p}/continue-watching"),
                    format!("curl -s -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8080/v1/profiles/{p}/next-up"),
                    format!("curl -s -H \"Authorization: Bearer $TOKEN\" 'http://127.0.0.1:8080/v1/profiles/{p}/history?limit=5'"),
                ],
            }));
        }
    }
    Ok(())
}

async fn admin(rt: &playhead::Runtime, cmd: Admin) -> anyhow::Result<()> {
    match cmd {
        Admin::CreateAccount { email } => {
            let a = rt.app.create_account(&email).await?;
            print(&json!({"account_id": a.id.to_string(), "email": a.email.as_str()}));
        }
        Admin::CreateProfile { account, name, kids, maturity_limit } => {
            let p = rt
                .app
                .insert_profile(
                    account,
                    playhead_app::accounts::NewProfile { name, kids, maturity_limit, private: false },
                )
                .await?;
            print(
                &json!({"profile_id": p.id.to_string(), "account_id": p.account_id.to_string(), "name": p.name.as_str(), "kids": p.kids, "maturity_limit": p.maturity_limit}),
            );
        }
        Admin::Token(args) => {
            match rt.app.account(args.account).await {
                Err(playhead_app::AppError::NotFound(_)) => {
                    anyhow::bail!("account {} does not exist", args.account)
                }
                other => other?,
            };
            let token = mint(rt, &args)?;
            print(&json!({"access_token": token, "token_type": "Bearer", "expires_in": args.ttl_secs}));
        }
        Admin::ApiKey(ApiKeyCmd::Create { name, scope }) => {
            let scopes = Scopes::parse(&scope)?;
            let key = rt.app.create_api_key(name, scopes).await?;
            print(
                &json!({"api_key": key.secret.expose(), "prefix": key.prefix, "scope": scopes.to_string()}),
            );
        }
        Admin::ApiKey(ApiKeyCmd::Revoke { prefix }) => {
            rt.app.revoke_api_key(&prefix).await?;
            print(&json!({"revoked": prefix}));
        }
        Admin::SetPassword { account } => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("reading the password from stdin")?;
            let password = line.trim_end_matches(['\r', '\n']);
            rt.identity.set_password(account, password).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            print(&json!({"account_id": account.to_string(), "password": "set"}));
        }
        Admin::Client(ClientCmd::Create { name, client_type, redirect_uris, grants, scope }) => {
            let kind = ClientType::parse(&client_type)
                .ok_or_else(|| anyhow::anyhow!("--type must be public or confidential"))?;
            let grants = grants
                .iter()
                .map(|g| GrantType::parse(g).ok_or_else(|| anyhow::anyhow!("unknown --grant {g}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let scopes = match scope {
                Some(s) => Scopes::parse(&s)?,
                None => Scope::VIEWER.into_iter().collect(),
            };
            let redirect_uris = redirect_uris
                .iter()
                .map(|u| RedirectUri::parse(u).map_err(|e| anyhow::anyhow!("--redirect-uri {u}: {e}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let RegisteredClient { client, secret } = rt
                .identity
                .create_client(&name, kind, redirect_uris, grants, scopes)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut out = json!({
                "client_id": client.client_id, "type": client.client_type.as_str(),
                "grants": client.grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                "scope": client.scopes.to_string(), "redirect_uris": client.redirect_uris,
            });
            if let Some(s) = secret {
                out["client_secret"] = json!(s);
            }
            print(&out);
        }
        Admin::Client(ClientCmd::Delete { client_id }) => {
            let deleted = rt
                .identity
                .delete_client(&client_id, "operator:cli")
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::ensure!(deleted, "no client {client_id}");
            print(&json!({"deleted": client_id}));
        }
        Admin::RotateKeys => {
            let keys = rt.identity.rotate_keys().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            print(&json!({"signing_kid": keys.signing_kid(), "kids": keys.kids().collect::<Vec<_>>()}));
        }
        Admin::Dlq(cmd) => {
            let (Some(url), Some(outbox)) =
                (rt.settings.nats_url.as_ref().map(playhead::config::SecretUrl::expose), rt.store.outbox())
            else {
                anyhow::bail!(
                    "the dead-letter stream exists only with the JetStream pipeline: set nats_url (and database_url)"
                );
            };
            // Its own connection, waiting for NATS: an operator wants an error, not a hang.
            let pipeline =
                playhead_nats::Pipeline::connect(url, rt.settings.nats.clone(), outbox, rt.app.clone(), true)
                    .await?;
            match cmd {
                DlqCmd::List => {
                    let letters = pipeline.dlq_list().await?;
                    print(
                        &json!({"stream": pipeline.settings().dlq_stream(), "count": letters.len(), "items": letters}),
                    );
                }
                DlqCmd::Replay { all, id } => {
                    let items = pipeline.dlq_replay(if all { None } else { id }).await?;
                    let kept = items.iter().filter(|i| i.outcome == "kept").count();
                    print(&json!({"replayed": items.len() - kept, "kept": kept, "items": items}));
                }
            }
        }
        Admin::Replay => {
            let done = rt.app.replay_log().await?;
            print(&json!({"requeued": done.requeued, "applied": done.applied}));
        }
        Admin::Erase { account, profile, wait } => {
            // The operator at the console: an admin service principal (audited as `service:cli`).
            let operator = playhead_core::auth::Principal {
                subject: playhead_core::auth::Subject::Service { id: "cli".into() },
                scopes: Scope::ALL.into_iter().collect(),
                bound_profile: None,
                session_id: None,
                auth_time: None,
            };
            let saga = match (account, profile) {
                (Some(a), _) => rt.app.erase_account(&operator, a).await?,
                (None, Some(p)) => rt.app.erase_profile(&operator, p).await?,
                (None, None) => anyhow::bail!("give --account or --profile"),
            };
            let mut saga = saga;
            if wait {
                let owner = format!("cli:{}", uuid::Uuid::new_v4());
                loop {
                    rt.app.run_erasures(&owner).await?;
                    saga = rt.app.erasure_by_id(saga.id).await?.context("the erasure vanished")?;
                    if saga.is_done() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
            print(&erasure_json(&saga));
        }
        Admin::Export { account, out } => {
            use tokio::io::AsyncWriteExt;
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&out)
                .await
                .with_context(|| format!("creating {}", out.display()))?;
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
            let app = rt.app.clone();
            let writer = tokio::spawn(async move { app.write_export(account, &tx).await });
            let mut bytes = 0u64;
            while let Some(chunk) = rx.recv().await {
                file.write_all(&chunk).await.with_context(|| format!("writing {}", out.display()))?;
                bytes += chunk.len() as u64;
            }
            let written = writer.await.context("export task")?;
            if let Err(e) = written {
                let _ = tokio::fs::remove_file(&out).await;
                anyhow::bail!("export failed: {e}");
            }
            file.sync_all().await.with_context(|| format!("syncing {}", out.display()))?;
            print(&json!({"status": "exported", "file": out, "bytes": bytes}));
        }
        Admin::RollUp { after_days } => {
            let days = after_days.unwrap_or(rt.settings.retention.rollup_after_days);
            anyhow::ensure!(days >= 31, "give --after-days (at least 31) or set retention.rollup_after_days");
            let config = playhead_app::prune::PruneConfig {
                rollup_after_days: Some(days),
                ..rt.settings.retention.prune_config()
            };
            let job = playhead_app::prune::Pruning::new(rt.store.pruner(), rt.app.clock().clone(), config);
            let started = std::time::Instant::now();
            let mut total = playhead_core::ports::RolledUp::default();
            loop {
                let round = job.roll_up().await?;
                total.plays += round.plays;
                total.viewings += round.viewings;
                total.events += round.events;
                total.tombstones += round.tombstones;
                if round.is_empty() {
                    break;
                }
            }
            print(&json!({"plays": total.plays, "viewings": total.viewings, "events": total.events,
                          "tombstones": total.tombstones, "seconds": started.elapsed().as_secs_f64()}));
        }
        Admin::Erasure { id } => {
            let saga = rt.app.erasure_by_id(id).await?.context("no such erasure")?;
            print(&erasure_json(&saga));
        }
        Admin::Backup { .. } | Admin::Restore { .. } => {
            anyhow::bail!("backup and restore run without opening the store (see run)")
        }
    }
    Ok(())
}

/// `playhead doctor`: one JSON document on stdout (`ok`, `findings`), each finding also as a line
/// on stderr for a person reading the terminal; exit 1 when any finding is `fail`.
async fn doctor(cli: Cli) -> anyhow::Result<()> {
    use playhead::doctor::Level;
    let settings = Settings::load(cli.config.as_deref()).map(|mut s| {
        if let Some(d) = cli.data_dir {
            s.data_dir = d;
        }
        s
    });
    let findings = playhead::doctor::run(settings).await;
    for f in &findings {
        let level = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        match &f.fix {
            Some(fix) => eprintln!("{level} {}: {}\n     fix: {fix}", f.check, f.detail),
            None => eprintln!("{level} {}: {}", f.check, f.detail),
        }
    }
    let healthy = findings.iter().all(|f| f.level != Level::Fail);
    print(&json!({"ok": healthy, "findings": findings}));
    if !healthy {
        // The findings are the message; exit 1 without repeating them as an error.
        std::process::exit(1);
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}", json!({"error": format!("starting the runtime: {e}")}));
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", json!({"error": format!("{e:#}")}));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_on_the_command_line_does_not_print() {
        let cli = Cli::parse_from([
            "playhead",
            "migrate-data",
            "--from",
            "sqlite://playhead.db",
            "--to",
            "postgres://ph:cli-pass@db/ph",
        ]);
        let shown = format!("{cli:?}");
        assert!(shown.contains("postgres://ph:***@db/ph") && !shown.contains("cli-pass"), "{shown}");
    }
}
