//! The method table: every gRPC method this server answers, and the application [`Operation`]
//! it performs. The gate ([`crate::gate`]) looks each call up here before anything else runs: a
//! method that is not in the table is refused (UNIMPLEMENTED) before authentication, so a service
//! added to the router without an entry here cannot be reached at all, and the requirement of a
//! method (scope, quota class, audit) is always its operation's row in the application's policy
//! table. Tests sweep this table (a viewer gets PERMISSION_DENIED on every admin method) and
//! check it against the committed protos (every method of every playhead.v1 service is here).
//!
//! Rule for contributors: a new RPC gets a line here naming an existing operation; only when no
//! REST operation matches does the application get a new [`Operation`] variant.

use playhead_app::access::Operation;

/// One gRPC method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Method {
    /// The HTTP/2 path: `/playhead.v1.PlaybackService/RecordEvents`.
    pub path: &'static str,
    /// The operation it performs (its requirement is the policy table's).
    pub op: Operation,
    /// A mutating unary call: `idempotency-key` metadata is honoured as REST's Idempotency-Key.
    pub idempotent: bool,
}

const fn m(path: &'static str, op: Operation, idempotent: bool) -> Method {
    Method { path, op, idempotent }
}

/// Read-only or streaming (no idempotency key): `false`; mutating unary: `true`.
const READ: bool = false;
const WRITE: bool = true;

/// Every method served (see the module docs).
pub const METHODS: &[Method] = &[
    m("/playhead.v1.PlaybackService/RecordEvents", Operation::RecordEvents, WRITE),
    // A stream is its own unit of retry: each event carries its dedupe key (event_id).
    m("/playhead.v1.PlaybackService/StreamEvents", Operation::RecordEvents, READ),
    m("/playhead.v1.PlaybackService/GetProgress", Operation::GetProgress, READ),
    m("/playhead.v1.PlaybackService/SetProgress", Operation::SetProgress, WRITE),
    m("/playhead.v1.PlaybackService/ListHistory", Operation::ListHistory, READ),
    m("/playhead.v1.PlaybackService/DeletePlay", Operation::DeletePlay, WRITE),
    m("/playhead.v1.PlaybackService/GetContinueWatching", Operation::GetContinueWatching, READ),
    m("/playhead.v1.PlaybackService/HideFromContinueWatching", Operation::HideFromContinueWatching, WRITE),
    m("/playhead.v1.PlaybackService/GetNextUp", Operation::GetNextUp, READ),
    m("/playhead.v1.PlaybackService/ImportHistory", Operation::ImportHistory, WRITE),
    m("/playhead.v1.CatalogService/GetTitle", Operation::GetTitle, READ),
    m("/playhead.v1.CatalogService/ListTitles", Operation::ListTitles, READ),
    m("/playhead.v1.CatalogService/PutTitle", Operation::PutTitle, WRITE),
    // Client streaming: an import is an idempotent upsert already.
    m("/playhead.v1.CatalogService/ImportTitles", Operation::ImportTitles, READ),
    m("/playhead.v1.ProfileService/GetMe", Operation::GetMe, READ),
    m("/playhead.v1.ProfileService/CreateProfile", Operation::CreateProfile, WRITE),
    m("/playhead.v1.ProfileService/GetProfile", Operation::GetProfile, READ),
    m("/playhead.v1.ProfileService/UpdateProfile", Operation::UpdateProfile, WRITE),
    m("/playhead.v1.RecsService/GetRecommendations", Operation::GetRecommendations, READ),
    m("/playhead.v1.RecsService/GetSimilar", Operation::GetSimilar, READ),
    m("/playhead.v1.RecsService/SendFeedback", Operation::SendFeedback, WRITE),
    m("/playhead.v1.RecsService/RecordImpressions", Operation::RecordImpressions, WRITE),
    m("/grpc.health.v1.Health/Check", Operation::Readyz, READ),
    m("/grpc.health.v1.Health/Watch", Operation::Readyz, READ),
    m("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", Operation::DescribeApi, READ),
    m("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", Operation::DescribeApi, READ),
];

/// The entry of a request path, if the method is served.
pub fn method(path: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn paths_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for m in METHODS {
            assert!(seen.insert(m.path), "{} twice", m.path);
        }
    }

    /// Generated from the committed protos: every method of every playhead.v1 service has an
    /// entry, and every playhead.v1 entry names a method that exists.
    #[test]
    fn the_table_covers_exactly_the_protos() {
        let fds =
            prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET).expect("descriptor set");
        let mut declared = Vec::new();
        for file in &fds.file {
            for service in &file.service {
                for rpc in &service.method {
                    declared.push(format!("/{}.{}/{}", file.package(), service.name(), rpc.name()));
                }
            }
        }
        for path in &declared {
            assert!(method(path).is_some(), "{path} has no entry in the method table");
        }
        for m in METHODS.iter().filter(|m| m.path.starts_with("/playhead.")) {
            assert!(declared.iter().any(|d| d == m.path), "{} is not in the protos", m.path);
        }
        assert!(declared.len() >= 20, "{declared:?}");
    }

    #[test]
    fn only_mutating_unary_calls_take_idempotency_keys() {
        for m in METHODS.iter().filter(|m| m.idempotent) {
            let r = m.op.requirement();
            assert!(m.op.needs_bearer() && !r.carries_secrets, "{}", m.path);
            assert!(!m.path.ends_with("Events") || m.path.ends_with("RecordEvents"), "{}", m.path);
        }
    }
}
