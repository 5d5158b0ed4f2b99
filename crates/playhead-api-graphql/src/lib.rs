//! Playhead's GraphQL transport (async-graphql) at `/graphql`: one round trip for a whole screen
//! (profile, Continue watching, Next up, recommendations), mutations for what players and apps
//! change, and `progressChanged` over `graphql-ws` so a resume point set on a phone reaches a TV.
//!
//! The rule here, as for every transport: parse, call one use case in `playhead-app`, shape the
//! answer. Who may run what is the application's policy table, keyed by operation; this crate
//! only names the operation of each field ([`policy::FIELDS`]) and admits it through the app's
//! gate. Errors become GraphQL errors with `extensions.code` in one place ([`error`]).
//!
//! The SDL is committed (`schema.graphql`) and a test fails when the schema drifts from it;
//! regenerate with `UPDATE_SCHEMA=1 cargo test -p playhead-api-graphql --test sdl`.

pub mod error;
mod http;
mod loaders;
pub mod policy;
mod schema;
mod types;

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ErrorExtensions as _, ServerError, ServerResult, ValidationResult, Variables};
use playhead_app::App;
use playhead_app::access::Gate;

pub use http::{GraphqlState, router};
pub use schema::{Limits, MutationRoot, QueryRoot, SubscriptionRoot};

/// The schema type.
pub type PlayheadSchema = async_graphql::Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Limits and switches of the GraphQL endpoint (`[graphql]` in the config file).
#[derive(Debug, Clone)]
pub struct GraphqlConfig {
    /// Deepest selection nesting a query may have.
    pub max_depth: usize,
    /// Largest cost a query may have (each field 1; a list field multiplies its selection by
    /// `first`, default 20).
    pub max_complexity: usize,
    /// Answer introspection queries (`__schema`, `__type`).
    pub introspection: bool,
    /// Most events in one `recordEvents`.
    pub batch_max: usize,
    /// Largest request body in bytes.
    pub body_bytes: usize,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            max_depth: 10,
            max_complexity: 5_000,
            introspection: true,
            batch_max: 500,
            body_bytes: 1 << 20,
        }
    }
}

/// The schema over `app`, admitting fields through `gate`.
pub fn schema(app: App, gate: Arc<Gate>, config: &GraphqlConfig) -> PlayheadSchema {
    let mut b = async_graphql::Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(app)
        .data(gate)
        .data(Limits { batch_max: config.batch_max })
        // Depth and cost are checked by `QueryCodes` (not `limit_depth`/`limit_complexity`), so
        // the standard introspection query that clients and consoles send (13 levels of
        // `ofType`) can have its own, fixed allowance.
        .extension(policy::FieldPolicy)
        .extension(QueryCodes { max_depth: config.max_depth, max_complexity: config.max_complexity });
    if !config.introspection {
        b = b.disable_introspection();
    }
    b.finish()
}

/// The SDL of the schema (what `schema.graphql` holds).
pub fn sdl() -> String {
    async_graphql::Schema::build(QueryRoot, MutationRoot, SubscriptionRoot).finish().sdl()
}

/// Depth allowed to a query that selects only introspection fields (`__schema`, `__type`): the
/// standard introspection query is 13 levels deep, and its cost is bounded by the schema's size.
const INTROSPECTION_DEPTH: usize = 20;

/// Codes for refusals of a whole query: `GRAPHQL_PARSE_FAILED`, `GRAPHQL_VALIDATION_FAILED`
/// (an unknown field, a wrong argument type: nothing ran), `QUERY_TOO_DEEP` and
/// `QUERY_TOO_COMPLEX` (with the limit), and the limits themselves.
struct QueryCodes {
    max_depth: usize,
    max_complexity: usize,
}

impl ExtensionFactory for QueryCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryCodesExtension {
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
            introspection_only: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

struct QueryCodesExtension {
    max_depth: usize,
    max_complexity: usize,
    /// The request's operations select only `__` fields (set when parsed; one extension per
    /// request).
    introspection_only: std::sync::atomic::AtomicBool,
}

/// Whether every operation of `doc` selects only introspection fields at its top level.
fn introspection_only(doc: &ExecutableDocument) -> bool {
    use async_graphql::parser::types::Selection;
    doc.operations.iter().all(|(_, op)| {
        op.node.selection_set.node.items.iter().all(|s| match &s.node {
            Selection::Field(f) => f.node.name.node.starts_with("__"),
            _ => false,
        })
    })
}

fn too_deep(limit: usize) -> ServerError {
    let e = ServerError::new(format!("the query is nested deeper than the limit of {limit}"), None);
    with_code(e, "QUERY_TOO_DEEP", Some(("limit", limit)))
}

fn too_complex(limit: usize) -> ServerError {
    let e = ServerError::new(
        format!(
            "the query costs more than the limit of {limit} (each field 1; a list multiplies its selection by `first`)"
        ),
        None,
    );
    with_code(e, "QUERY_TOO_COMPLEX", Some(("limit", limit)))
}

fn with_code(e: ServerError, code: &'static str, extra: Option<(&'static str, usize)>) -> ServerError {
    let mut err = async_graphql::Error::new(e.message.clone());
    err = err.extend_with(|_, x| {
        x.set("code", code);
        if let Some((k, v)) = extra {
            x.set(k, v);
        }
    });
    let mut out = err.into_server_error(e.locations.first().copied().unwrap_or_default());
    out.locations = e.locations;
    out.path = e.path;
    out
}

#[async_graphql::async_trait::async_trait]
impl Extension for QueryCodesExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc =
            next.run(ctx, query, variables).await.map_err(|e| with_code(e, "GRAPHQL_PARSE_FAILED", None))?;
        self.introspection_only.store(introspection_only(&doc), std::sync::atomic::Ordering::Relaxed);
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(|errors| {
            errors.into_iter().map(|e| with_code(e, "GRAPHQL_VALIDATION_FAILED", None)).collect::<Vec<_>>()
        })?;
        if self.introspection_only.load(std::sync::atomic::Ordering::Relaxed) {
            if result.depth > INTROSPECTION_DEPTH {
                return Err(vec![too_deep(INTROSPECTION_DEPTH)]);
            }
            return Ok(result);
        }
        if result.depth > self.max_depth {
            return Err(vec![too_deep(self.max_depth)]);
        }
        if result.complexity > self.max_complexity {
            return Err(vec![too_complex(self.max_complexity)]);
        }
        Ok(result)
    }
}
