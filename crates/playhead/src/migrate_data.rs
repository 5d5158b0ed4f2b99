//! `playhead migrate-data`: move an embedded deployment (SQLite) to scale-out mode (PostgreSQL)
//! with nothing lost, proven by per-table row counts and checksums computed on both sides.
//!
//! How it works, and why:
//! - Both schemas are brought up to date first by the adapters themselves (their migrations), so
//!   the copy only ever sees the current layout of each backend.
//! - The copy is generic over tables: every table of the SQLite file (but sqlx's bookkeeping) must
//!   exist in PostgreSQL with the same column names, or nothing is copied. A table added by a
//!   later migration is therefore copied without touching this file, and a table this tool does
//!   not know how to place stops it instead of being left behind.
//! - Values are converted by the PostgreSQL column's type (uuid, boolean, jsonb, bytea, integers,
//!   text); an unknown type stops the copy naming the column.
//! - The target must be empty (no accounts, titles or events): merging two deployments is not a
//!   migration. Everything is copied in one transaction: a failure leaves the target empty.
//! - Checksums: each row is rendered canonically (uuids hyphenated lower case, booleans 0/1, JSON
//!   with sorted keys, bytes as bytes), hashed with SHA-256; a table's checksum is the SHA-256 of
//!   its sorted row hashes, so it does not depend on row order. The source's and the target's (read
//!   back after the commit) must match table by table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, bail, ensure};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{Arguments, Postgres, Row, Transaction};

/// Per table: rows copied and the checksum both sides agree on.
#[derive(Debug, Serialize)]
pub struct TableReport {
    /// The table.
    pub table: String,
    /// Rows in the source, and (the same) in the target.
    pub rows: u64,
    /// Hex SHA-256 over the sorted row hashes.
    pub checksum: String,
}

/// A column value in canonical form (what the checksum hashes).
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Int(i64),
    /// Compared by bit pattern: a copied float is the same float.
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

/// How a PostgreSQL column is written and read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Uuid,
    Bool,
    Json,
    Bytes,
    Int(&'static str),
    Float,
    Text,
}

impl Kind {
    fn of(data_type: &str) -> Option<Self> {
        Some(match data_type {
            "uuid" => Self::Uuid,
            "boolean" => Self::Bool,
            "jsonb" | "json" => Self::Json,
            "bytea" => Self::Bytes,
            "bigint" => Self::Int("bigint"),
            "integer" => Self::Int("integer"),
            "smallint" => Self::Int("smallint"),
            "double precision" | "real" => Self::Float,
            "text" | "character varying" => Self::Text,
            _ => return None,
        })
    }

    /// The placeholder for parameter `n` (values are bound as text, i64 or bytes).
    fn placeholder(self, n: usize) -> String {
        match self {
            Self::Uuid => format!("${n}::uuid"),
            Self::Bool => format!("(${n}::bigint <> 0)"),
            Self::Json => format!("${n}::jsonb"),
            Self::Bytes => format!("${n}::bytea"),
            Self::Int(t) => format!("${n}::bigint::{t}"),
            Self::Float => format!("${n}::float8"),
            Self::Text => format!("${n}::text"),
        }
    }

    /// The select expression reading column `c` back in canonical form.
    fn read_back(self, c: &str) -> String {
        match self {
            Self::Uuid | Self::Json | Self::Text => format!("{c}::text"),
            Self::Bool => format!("{c}::int::bigint"),
            Self::Bytes => c.to_owned(),
            Self::Int(_) => format!("{c}::bigint"),
            Self::Float => format!("{c}::float8"),
        }
    }

    /// Canonical form of a value as read (from either side).
    fn canonical(self, v: Val) -> anyhow::Result<Val> {
        Ok(match (self, v) {
            (_, Val::Null) => Val::Null,
            (Self::Uuid, Val::Text(s)) => Val::Text(uuid::Uuid::parse_str(&s)?.hyphenated().to_string()),
            (Self::Json, Val::Text(s)) => Val::Text(canonical_json(&serde_json::from_str(&s)?)),
            (_, v) => v,
        })
    }
}

/// JSON with object keys sorted at every level (PostgreSQL's jsonb reorders keys).
fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let sorted: BTreeMap<&String, String> = m.iter().map(|(k, v)| (k, canonical_json(v))).collect();
            let parts: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k.as_str())))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        serde_json::Value::Array(a) => {
            format!("[{}]", a.iter().map(canonical_json).collect::<Vec<_>>().join(","))
        }
        other => other.to_string(),
    }
}

fn row_hash(row: &[Val]) -> [u8; 32] {
    let mut h = Sha256::new();
    for v in row {
        // Tagged and length-prefixed: no two different rows render to the same bytes.
        match v {
            Val::Null => h.update([0u8]),
            Val::Int(i) => {
                h.update([1u8]);
                h.update(i.to_be_bytes());
            }
            Val::Float(f) => {
                h.update([4u8]);
                h.update(f.to_bits().to_be_bytes());
            }
            Val::Text(s) => {
                h.update([2u8]);
                h.update((s.len() as u64).to_be_bytes());
                h.update(s.as_bytes());
            }
            Val::Bytes(b) => {
                h.update([3u8]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
        }
    }
    h.finalize().into()
}

fn table_checksum(mut hashes: Vec<[u8; 32]>) -> String {
    hashes.sort_unstable();
    let mut h = Sha256::new();
    for x in &hashes {
        h.update(x);
    }
    hex::encode(h.finalize())
}

/// A SQLite table's columns: (name, declared type).
struct SqliteTable {
    name: String,
    columns: Vec<(String, String)>,
}

fn ident_ok(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Each copied table's PostgreSQL column kinds, by table and column.
type Kinds = BTreeMap<String, BTreeMap<String, Kind>>;

/// Copy everything in the SQLite database at `from` into the (empty) PostgreSQL database at `to`
/// (optionally in `schema`), then verify counts and checksums table by table.
pub async fn migrate_data(from: &Path, to: &str, schema: Option<&str>) -> anyhow::Result<Vec<TableReport>> {
    ensure!(from.exists(), "--from: {} does not exist", from.display());
    migrate_both_schemas(from, to, schema).await?;
    let (src, dst) = connect(from, to, schema).await?;
    let tables = source_tables(&src).await?;
    let kinds = target_kinds(&dst, &tables).await?;
    ensure_target_empty(&dst, &tables).await?;
    let order = parents_first(&dst, &tables, &kinds).await?;

    let mut reports = Vec::new();
    let mut tx = dst.begin().await?;
    for t in order {
        reports.push(copy_table(&src, &mut tx, t, &kinds[&t.name]).await?);
    }
    tx.commit().await?;

    verify(&dst, &tables, &kinds, &reports).await?;
    src.close().await;
    dst.close().await;
    Ok(reports)
}

/// Bring both schemas to the current version: each adapter runs its migrations on open.
async fn migrate_both_schemas(from: &Path, to: &str, schema: Option<&str>) -> anyhow::Result<()> {
    let sqlite_store = playhead_store_sqlite::SqliteStore::open(from)
        .await
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", from.display()))?;
    sqlite_store.close().await;
    let pg_config = playhead_store_postgres::PgConfig {
        schema: schema.map(str::to_owned),
        ..playhead_store_postgres::PgConfig::default()
    };
    let pg_store = playhead_store_postgres::PgStore::connect_with(to, &pg_config)
        .await
        .map_err(|e| anyhow::anyhow!("opening the target PostgreSQL database (--to): {e}"))?;
    pg_store.close().await;
    Ok(())
}

/// The source read-only, and the target in `schema` when one is given.
async fn connect(from: &Path, to: &str, schema: Option<&str>) -> anyhow::Result<(SqlitePool, PgPool)> {
    let src = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(from).read_only(true))
        .await
        .context("opening the SQLite file read-only")?;
    let mut opts = PgConnectOptions::from_str(to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    if let Some(s) = schema {
        ensure!(ident_ok(s), "--to-schema: letters, digits and _ only");
        opts = opts.options([("search_path", s)]);
    }
    let dst =
        PgPoolOptions::new().max_connections(2).connect_with(opts).await.context("connecting to --to")?;
    Ok((src, dst))
}

/// The source's tables and columns (but sqlx's bookkeeping).
async fn source_tables(src: &SqlitePool) -> anyhow::Result<Vec<SqliteTable>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(src)
    .await?;
    let mut tables = Vec::new();
    for name in names {
        ensure!(ident_ok(&name), "unexpected table name {name:?} in the SQLite file");
        let cols = sqlx::query(&format!("SELECT name, type FROM pragma_table_info('{name}') ORDER BY cid"))
            .fetch_all(src)
            .await?
            .into_iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?.to_ascii_uppercase())))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        tables.push(SqliteTable { name, columns: cols });
    }
    Ok(tables)
}

/// The target's column kinds, after checking that every source table and column has a place.
async fn target_kinds(dst: &PgPool, tables: &[SqliteTable]) -> anyhow::Result<Kinds> {
    let mut kinds = Kinds::new();
    for t in tables {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(&t.name)
        .fetch_all(dst)
        .await?;
        ensure!(!rows.is_empty(), "table {} has no counterpart in PostgreSQL: nothing copied", t.name);
        let pg: BTreeMap<String, String> = rows.into_iter().collect();
        let mut k = BTreeMap::new();
        for (c, _) in &t.columns {
            let Some(ty) = pg.get(c) else { bail!("column {}.{c} has no counterpart in PostgreSQL", t.name) };
            let kind = Kind::of(ty)
                .with_context(|| format!("column {}.{c}: PostgreSQL type {ty} is not supported", t.name))?;
            k.insert(c.clone(), kind);
        }
        kinds.insert(t.name.clone(), k);
    }
    Ok(kinds)
}

/// Merging two deployments is not a migration: every target table must be empty.
async fn ensure_target_empty(dst: &PgPool, tables: &[SqliteTable]) -> anyhow::Result<()> {
    for t in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", t.name)).fetch_one(dst).await?;
        ensure!(
            n == 0,
            "the target is not empty ({} has {n} rows): migrate-data only fills an empty database",
            t.name
        );
    }
    Ok(())
}

/// The copy order: the target's foreign keys decide it, parents first.
async fn parents_first<'t>(
    dst: &PgPool,
    tables: &'t [SqliteTable],
    kinds: &Kinds,
) -> anyhow::Result<Vec<&'t SqliteTable>> {
    let fks: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, p.relname::text FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid \
         WHERE k.contype = 'f' AND k.connamespace = current_schema()::regnamespace",
    )
    .fetch_all(dst)
    .await?;
    let mut order: Vec<&SqliteTable> = Vec::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while order.len() < tables.len() {
        let before = order.len();
        for t in tables {
            if done.contains(t.name.as_str()) {
                continue;
            }
            let ready = fks
                .iter()
                .filter(|(child, parent)| child == &t.name && parent != &t.name)
                .all(|(_, parent)| done.contains(parent.as_str()) || !kinds.contains_key(parent));
            if ready {
                done.insert(&t.name);
                order.push(t);
            }
        }
        ensure!(order.len() > before, "foreign keys between the tables form a cycle");
    }
    Ok(order)
}

/// Copy one table inside the copy's transaction; report its row count and the source checksum.
async fn copy_table(
    src: &SqlitePool,
    tx: &mut Transaction<'_, Postgres>,
    t: &SqliteTable,
    k: &BTreeMap<String, Kind>,
) -> anyhow::Result<TableReport> {
    let cols: Vec<&str> = t.columns.iter().map(|(c, _)| c.as_str()).collect();
    let rows = sqlx::query(&format!("SELECT {} FROM {}", cols.join(", "), t.name)).fetch_all(src).await?;
    let mut hashes = Vec::with_capacity(rows.len());
    // Multi-row INSERTs, below PostgreSQL's 65,535 bind parameters per statement.
    let per_stmt = (30_000 / cols.len().max(1)).max(1);
    for chunk in rows.chunks(per_stmt) {
        let mut args = PgArguments::default();
        let mut values = Vec::with_capacity(chunk.len());
        let mut n = 0;
        for row in chunk {
            let mut ph = Vec::with_capacity(cols.len());
            let mut canon = Vec::with_capacity(cols.len());
            for (i, (c, decl)) in t.columns.iter().enumerate() {
                let kind = k[c];
                n += 1;
                ph.push(kind.placeholder(n));
                let v = source_value(row, i, decl)?;
                bind(&mut args, &v, kind).map_err(|e| anyhow::anyhow!("binding {}.{c}: {e}", t.name))?;
                canon.push(kind.canonical(v).with_context(|| format!("reading {}.{c}", t.name))?);
            }
            values.push(format!("({})", ph.join(", ")));
            hashes.push(row_hash(&canon));
        }
        let sql = format!("INSERT INTO {} ({}) VALUES {}", t.name, cols.join(", "), values.join(", "));
        sqlx::query_with(&sql, args)
            .execute(&mut **tx)
            .await
            .with_context(|| format!("copying {}", t.name))?;
    }
    continue_serials(tx, &t.name, &cols).await?;
    Ok(TableReport { table: t.name.clone(), rows: rows.len() as u64, checksum: table_checksum(hashes) })
}

/// Column `i` of a SQLite row, read by the column's declared type.
fn source_value(row: &SqliteRow, i: usize, decl: &str) -> Result<Val, sqlx::Error> {
    Ok(match decl {
        "INTEGER" | "INT" => row.try_get::<Option<i64>, _>(i)?.map_or(Val::Null, Val::Int),
        "BLOB" => row.try_get::<Option<Vec<u8>>, _>(i)?.map_or(Val::Null, Val::Bytes),
        "REAL" | "DOUBLE" | "FLOAT" => row.try_get::<Option<f64>, _>(i)?.map_or(Val::Null, Val::Float),
        _ => row.try_get::<Option<String>, _>(i)?.map_or(Val::Null, Val::Text),
    })
}

/// Bind a value for a column of `kind` (a NULL gets the type its placeholder casts from).
fn bind(args: &mut PgArguments, v: &Val, kind: Kind) -> Result<(), sqlx::error::BoxDynError> {
    match v {
        Val::Null => match kind {
            Kind::Bytes => args.add(None::<Vec<u8>>),
            Kind::Bool | Kind::Int(_) => args.add(None::<i64>),
            Kind::Float => args.add(None::<f64>),
            _ => args.add(None::<String>),
        },
        Val::Int(x) => args.add(*x),
        Val::Float(x) => args.add(*x),
        Val::Text(s) => args.add(s.clone()),
        Val::Bytes(b) => args.add(b.clone()),
    }
}

/// Serial columns continue after the copied values (event_queue.seq: never reused).
async fn continue_serials(
    tx: &mut Transaction<'_, Postgres>,
    table: &str,
    cols: &[&str],
) -> anyhow::Result<()> {
    for c in cols {
        let seq: Option<String> = sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
            .bind(table)
            .bind(*c)
            .fetch_one(&mut **tx)
            .await?;
        if let Some(seq) = seq {
            sqlx::query(&format!("SELECT setval($1::regclass, GREATEST((SELECT max({c}) FROM {table}), 1))"))
                .bind(seq)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Read everything back from PostgreSQL after the commit: counts and checksums must match the
/// source's, table by table.
async fn verify(
    dst: &PgPool,
    tables: &[SqliteTable],
    kinds: &Kinds,
    reports: &[TableReport],
) -> anyhow::Result<()> {
    for r in reports {
        let t = tables.iter().find(|t| t.name == r.table).context("table vanished")?;
        let k = &kinds[&t.name];
        let exprs: Vec<String> = t.columns.iter().map(|(c, _)| k[c].read_back(c)).collect();
        let rows =
            sqlx::query(&format!("SELECT {} FROM {}", exprs.join(", "), t.name)).fetch_all(dst).await?;
        let mut hashes = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut canon = Vec::with_capacity(t.columns.len());
            for (i, (c, _)) in t.columns.iter().enumerate() {
                let kind = k[c];
                canon.push(kind.canonical(target_value(row, i, kind)?)?);
            }
            hashes.push(row_hash(&canon));
        }
        ensure!(
            rows.len() as u64 == r.rows,
            "{}: {} rows in SQLite but {} in PostgreSQL",
            r.table,
            r.rows,
            rows.len()
        );
        let got = table_checksum(hashes);
        ensure!(got == r.checksum, "{}: checksum differs (SQLite {}, PostgreSQL {got})", r.table, r.checksum);
    }
    Ok(())
}

/// Column `i` of a row read back by [`Kind::read_back`].
fn target_value(row: &PgRow, i: usize, kind: Kind) -> Result<Val, sqlx::Error> {
    Ok(match kind {
        Kind::Bool | Kind::Int(_) => row.try_get::<Option<i64>, _>(i)?.map_or(Val::Null, Val::Int),
        Kind::Bytes => row.try_get::<Option<Vec<u8>>, _>(i)?.map_or(Val::Null, Val::Bytes),
        Kind::Float => row.try_get::<Option<f64>, _>(i)?.map_or(Val::Null, Val::Float),
        _ => row.try_get::<Option<String>, _>(i)?.map_or(Val::Null, Val::Text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_canonical_whatever_the_key_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"tmdb":"1","imdb":{"b":1,"a":[2,1]}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"imdb": {"a": [2, 1], "b": 1}, "tmdb": "1"}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"imdb":{"a":[2,1],"b":1},"tmdb":"1"}"#);
    }

    #[test]
    fn checksums_ignore_row_order_but_not_content() {
        let r1 = row_hash(&[Val::Int(1), Val::Text("a".into())]);
        let r2 = row_hash(&[Val::Int(2), Val::Null]);
        assert_eq!(table_checksum(vec![r1, r2]), table_checksum(vec![r2, r1]));
        assert_ne!(table_checksum(vec![r1, r2]), table_checksum(vec![r1, r1]));
        // Tagged values: "1" as text is not 1 as integer.
        assert_ne!(row_hash(&[Val::Int(1)]), row_hash(&[Val::Text("1".into())]));
    }

    #[test]
    fn uuids_compare_canonically() {
        let k = Kind::Uuid;
        assert_eq!(
            k.canonical(Val::Text("6F9619FF-8B86-D011-B42D-00C04FC964FF".into())).unwrap(),
            Val::Text("6f9619ff-8b86-d011-b42d-00c04fc964ff".into())
        );
    }
}
