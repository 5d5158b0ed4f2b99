//! Field-level policy: which application [`Operation`] each field runs, and the extension that
//! admits every such field through the app's [`Gate`] before its resolver runs.
//!
//! The rule a contributor must keep: a field of a *gated* type ([`GATED_TYPES`]: the roots and
//! `Profile`, whose fields each run a use case) resolves only when [`FIELDS`] names its operation;
//! one that is missing is refused with `FORBIDDEN` at run time (deny by default), and the SDL
//! test fails on it before that. Fields of the other object types ([`DATA_TYPES`]) are parts of
//! the answer their parent's operation produced (a title inside a row item) and run nothing of
//! their own; a new object type must be listed in one of the two lists (a test walks the schema).
//!
//! Each admitted field is charged to its operation's quota class like the REST route for the
//! same use case, so a screen query costs what the same REST calls cost.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo};
use async_graphql::{ErrorExtensions as _, ServerError, ServerResult, Value};
use playhead_app::AppError;
use playhead_app::access::{Gate, Operation};
use playhead_core::auth::Principal;

use crate::error;

/// Object types whose fields each run one operation.
pub const GATED_TYPES: &[&str] = &["Query", "Mutation", "Subscription", "Profile"];

/// Object types whose fields are data of the enclosing operation's answer.
pub const DATA_TYPES: &[&str] = &[
    "Me",
    "Title",
    "RowItem",
    "Play",
    "Period",
    "Watched",
    "Progress",
    "Recommendation",
    "Reason",
    "RecordEventsPayload",
    "EventResult",
    "FieldProblem",
    "PageInfo",
    "TitleConnection",
    "TitleEdge",
    "RowItemConnection",
    "RowItemEdge",
    "PlayConnection",
    "PlayEdge",
    "RecommendationConnection",
    "RecommendationEdge",
];

/// What a field of a gated type needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRule {
    /// Runs this operation: admitted through the gate (credential, quota, requirement).
    Runs(Operation),
    /// Data the parent's operation already produced and authorized (a profile's name).
    OfParent,
}

/// The field -> operation table: `(type, field, rule)`. The one place GraphQL policy is written.
pub const FIELDS: &[(&str, &str, FieldRule)] = {
    use FieldRule::{OfParent, Runs};
    use Operation as O;
    &[
        ("Query", "me", Runs(O::GetMe)),
        ("Query", "profile", Runs(O::GetProfile)),
        ("Query", "title", Runs(O::GetTitle)),
        ("Query", "titles", Runs(O::ListTitles)),
        ("Profile", "id", OfParent),
        ("Profile", "name", OfParent),
        ("Profile", "kids", OfParent),
        ("Profile", "maturityLimit", OfParent),
        ("Profile", "private", OfParent),
        ("Profile", "version", OfParent),
        ("Profile", "continueWatching", Runs(O::GetContinueWatching)),
        ("Profile", "nextUp", Runs(O::GetNextUp)),
        ("Profile", "history", Runs(O::ListHistory)),
        ("Profile", "progress", Runs(O::GetProgress)),
        ("Profile", "recommendations", Runs(O::GetRecommendations)),
        ("Mutation", "recordEvents", Runs(O::RecordEvents)),
        ("Mutation", "setProgress", Runs(O::SetProgress)),
        ("Mutation", "hideFromContinueWatching", Runs(O::HideFromContinueWatching)),
        ("Mutation", "deletePlay", Runs(O::DeletePlay)),
        ("Mutation", "sendFeedback", Runs(O::SendFeedback)),
        ("Mutation", "updateProfile", Runs(O::UpdateProfile)),
        ("Subscription", "progressChanged", Runs(O::GetProgress)),
    ]
};

/// The rule of `ty.field`, if the table has one.
pub fn rule(ty: &str, field: &str) -> Option<FieldRule> {
    FIELDS.iter().find(|(t, f, _)| *t == ty && *f == field).map(|(_, _, r)| *r)
}

/// Who sent this request (request data): the credential as received, the client's address, and
/// the principal once a field was admitted.
#[derive(Debug)]
pub struct Caller {
    /// The `Authorization` header (or the `graphql-ws` connection_init payload's value).
    pub authorization: Option<Vec<u8>>,
    /// The client's address (the unauthenticated quota's key).
    pub client_addr: String,
    /// The principal the gate verified, set by the first admitted field (one credential per
    /// request, so every field sees the same one).
    principal: Mutex<Option<Principal>>,
    /// The gate asked for an audit of a service's `profiles:any` use.
    audit: Mutex<bool>,
    /// The admission holding this request's in-flight slot: the first field's. Later fields are
    /// admitted without a slot of their own, so a request counts once against the concurrency
    /// cap (a WebSocket connection's subscriptions hold none).
    slot: Mutex<Option<playhead_app::access::Admission>>,
}

impl Caller {
    /// A caller with this credential and address.
    pub fn new(authorization: Option<Vec<u8>>, client_addr: String) -> Self {
        Self {
            authorization,
            client_addr,
            principal: Mutex::new(None),
            audit: Mutex::new(false),
            slot: Mutex::new(None),
        }
    }
}

/// The admitted principal (resolvers of gated fields run only after admission).
pub fn principal(ctx: &async_graphql::Context<'_>) -> async_graphql::Result<Principal> {
    let caller = ctx.data::<Arc<Caller>>()?;
    caller
        .principal
        .lock()
        .ok()
        .and_then(|p| p.clone())
        .ok_or_else(|| error::map(AppError::Internal("a gated field ran without an admission".into())))
}

/// Admit `op` for this request's caller through the gate: the request's first admitted field
/// takes the in-flight slot and keeps it until the request ends; later fields (and
/// subscriptions, `streaming`) are admitted without one.
pub async fn admit(gate: &Gate, caller: &Caller, op: Operation, streaming: bool) -> Result<(), AppError> {
    let addr = caller.client_addr.clone();
    let has_slot = caller.slot.lock().is_ok_and(|s| s.is_some());
    let mut admission = if streaming || has_slot {
        gate.admit_nested(op, caller.authorization.as_deref(), move || addr).await
    } else {
        gate.admit(op, caller.authorization.as_deref(), move || addr).await
    };
    if let Some(refusal) = admission.refusal.take() {
        return Err(refusal);
    }
    if let (Some(p), Ok(mut slot)) = (&admission.principal, caller.principal.lock()) {
        slot.get_or_insert_with(|| p.clone());
    }
    if admission.audit
        && let Ok(mut a) = caller.audit.lock()
    {
        *a = true;
    }
    if !streaming
        && !has_slot
        && let Ok(mut slot) = caller.slot.lock()
    {
        // A sibling admitted at the same moment may have stored its own: keep the first (the
        // other's permit is released here).
        slot.get_or_insert(admission);
    }
    Ok(())
}

/// Record a service's `profiles:any` use of `profile` through `op` when the gate asked for it
/// (`outcome` in HTTP terms: 200, or the status the error corresponds to).
pub async fn audit(ctx: &async_graphql::Context<'_>, op: Operation, profile: &str, outcome: u16) {
    let (Ok(caller), Ok(gate)) = (ctx.data::<Arc<Caller>>(), ctx.data::<Arc<Gate>>()) else { return };
    if !caller.audit.lock().is_ok_and(|a| *a) {
        return;
    }
    let Ok(p) = principal(ctx) else { return };
    gate.audit_profile_access(&p, op, "/graphql", profile, outcome, caller.client_addr.clone()).await;
}

/// The extension that admits each field of a gated type (see the module docs).
pub struct FieldPolicy;

impl ExtensionFactory for FieldPolicy {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(FieldPolicyExtension)
    }
}

struct FieldPolicyExtension;

fn refused(info: &ResolveInfo<'_>, e: async_graphql::Error) -> ServerError {
    let path = info
        .path_node
        .to_string_vec()
        .into_iter()
        .map(|s| match s.parse::<usize>() {
            Ok(i) => async_graphql::PathSegment::Index(i),
            Err(_) => async_graphql::PathSegment::Field(s),
        })
        .collect();
    // No location: the extension does not see the field's position, and line 0 is not one.
    let mut e = e.into_server_error(async_graphql::Pos::default()).with_path(path);
    e.locations.clear();
    e
}

#[async_graphql::async_trait::async_trait]
impl Extension for FieldPolicyExtension {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        // Introspection (`__typename`, `__schema`) is the schema's own business; subscriptions
        // admit in their resolver (their stream outlives this hook).
        if info.is_for_introspection
            || info.name.starts_with("__")
            || !GATED_TYPES.contains(&info.parent_type)
            || info.parent_type == "Subscription"
        {
            return next.run(ctx, info).await;
        }
        let op = match rule(info.parent_type, info.name) {
            Some(FieldRule::Runs(op)) => op,
            Some(FieldRule::OfParent) => return next.run(ctx, info).await,
            None => {
                let e = error::map(AppError::Forbidden("this field has no access requirement"));
                return Err(refused(&info, e.extend_with(|_, x| x.set("field", info.name))));
            }
        };
        let (Ok(gate), Ok(caller)) = (ctx.data::<Arc<Gate>>(), ctx.data::<Arc<Caller>>()) else {
            let e =
                error::map(AppError::Internal("the gate or the caller is missing from the context".into()));
            return Err(refused(&info, e));
        };
        let started = std::time::Instant::now();
        if let Err(e) = admit(gate, caller, op, false).await {
            record(op, "refused", started);
            return Err(refused(&info, error::map(e)));
        }
        let result = next.run(ctx, info).await;
        record(op, if result.is_ok() { "ok" } else { "error" }, started);
        result
    }
}

/// RED metrics per operation (the label is the operation's stable name, never a query string).
fn record(op: Operation, outcome: &'static str, started: std::time::Instant) {
    metrics::histogram!("graphql_field_duration_seconds", "operation" => op.name(), "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("graphql_fields_total", "operation" => op.name(), "outcome" => outcome).increment(1);
}
