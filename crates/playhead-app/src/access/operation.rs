//! Every operation Playhead serves, and what each needs before it runs: the one policy table.
//!
//! The table is keyed by operation, not by URL or RPC name: a transport maps its routes, methods
//! or fields to an [`Operation`], and the gate ([`super::Gate::admit`]) and the use cases read
//! the requirement from here. [`Operation::requirement`] is an exhaustive `match`, so an
//! operation cannot exist without a declared requirement (deny by default is a compile error,
//! not a runtime surprise); a transport entry that names no operation is not served at all.
//!
//! Rule for contributors: a new use case gets a variant here first, with the narrowest scope
//! that makes sense; then every transport names it.

use playhead_core::auth::Scope;

use crate::limits::RouteClass;

/// Who may call an operation at all (object rules, such as whose profile, stay in the use case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, metadata, keys).
    Public,
    /// An OAuth client authenticates in the request itself (the endpoint checks).
    OAuthClient,
    /// A hosted HTML page: the browser session cookie and a CSRF token (the page checks).
    Browser,
    /// Any valid bearer credential.
    Authenticated,
    /// A bearer credential holding this scope.
    Scope(Scope),
}

/// How an operation is charged against the caller's quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Never rate limited (health checks, key sets, the token endpoint: see [`Operation::Token`]).
    Exempt,
    /// An authenticated caller pays from this class; an unauthenticated one from `Auth`, keyed by
    /// client address.
    Class(RouteClass),
}

/// What an operation needs before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// Who may call it.
    pub access: Access,
    /// Which quota it is charged to.
    pub charge: Charge,
    /// It acts on one profile named by the caller: a service's `profiles:any` use of it is audited.
    pub names_profile: bool,
    /// Its answers carry credentials (tokens, client secrets): never kept for idempotent replay.
    pub carries_secrets: bool,
}

macro_rules! operations {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// An operation: one use case as every transport names it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($(#[$doc])* $variant,)*
        }

        impl Operation {
            /// Every operation, in declaration order.
            pub const ALL: &'static [Operation] = &[$(Operation::$variant,)*];

            /// Stable dotted name (`playback.record_events`): logs, metrics and audit entries.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Operation::$variant => $name,)*
                }
            }
        }
    };
}

operations! {
    /// Liveness probe.
    Livez = "health.livez",
    /// Readiness probe.
    Readyz = "health.readyz",
    /// OAuth / OpenID provider metadata (RFC 8414).
    OAuthMetadata = "oauth.metadata",
    /// The token signing keys (JWKS).
    Jwks = "oauth.jwks",
    /// The token endpoint (every grant).
    Token = "oauth.token",
    /// Start a device authorization (RFC 8628).
    DeviceAuthorization = "oauth.device_authorization",
    /// Revoke a token (RFC 7009).
    Revoke = "oauth.revoke",
    /// Introspect a token (RFC 7662).
    Introspect = "oauth.introspect",
    /// The consent page (authorization code flow).
    AuthorizePage = "oauth.authorize_page",
    /// Consent given or refused.
    AuthorizeSubmit = "oauth.authorize_submit",
    /// The sign-in page.
    SigninPage = "oauth.signin_page",
    /// Sign-in form submitted.
    SigninSubmit = "oauth.signin_submit",
    /// The device activation page.
    DevicePage = "oauth.device_page",
    /// A user code entered.
    DeviceSubmit = "oauth.device_submit",
    /// The QR code (SVG) of a device grant's verification_uri_complete, for TV apps.
    DeviceQr = "oauth.device_qr",
    /// Sign out of the hosted pages.
    Signout = "oauth.signout",
    /// The caller's account and profiles.
    GetMe = "accounts.get_me",
    /// Create a profile in an account.
    CreateProfile = "accounts.create_profile",
    /// Read a profile.
    GetProfile = "accounts.get_profile",
    /// Change a profile's settings.
    UpdateProfile = "accounts.update_profile",
    /// Erase an account and everything it holds (a saga; issue 16).
    EraseAccount = "accounts.erase_account",
    /// Erase one profile and everything it holds (a saga; issue 16).
    EraseProfile = "accounts.erase_profile",
    /// Read an erasure saga's status.
    GetErasure = "accounts.get_erasure",
    /// Ask for an account's data export.
    RequestExport = "accounts.request_export",
    /// Fetch an account's data export (the archive).
    GetExport = "accounts.get_export",
    /// Set or replace a profile's parental PIN.
    SetProfilePin = "accounts.set_profile_pin",
    /// Remove a profile's parental PIN.
    RemoveProfilePin = "accounts.remove_profile_pin",
    /// Check a profile's parental PIN (an app switching to the profile).
    VerifyProfilePin = "accounts.verify_profile_pin",
    /// List titles.
    ListTitles = "catalog.list_titles",
    /// Read a title.
    GetTitle = "catalog.get_title",
    /// Create or replace a title.
    PutTitle = "catalog.put_title",
    /// Change a title.
    PatchTitle = "catalog.patch_title",
    /// Import titles in bulk.
    ImportTitles = "catalog.import_titles",
    /// Record playback events.
    RecordEvents = "playback.record_events",
    /// Read a resume point.
    GetProgress = "playback.get_progress",
    /// Set a resume point.
    SetProgress = "playback.set_progress",
    /// Read a profile's plays.
    ListHistory = "history.list",
    /// Backfill plays in bulk.
    ImportHistory = "history.import",
    /// Delete a play.
    DeletePlay = "history.delete_play",
    /// The Continue watching row.
    GetContinueWatching = "rows.continue_watching",
    /// Hide a title from Continue watching.
    HideFromContinueWatching = "rows.hide",
    /// The Next up row.
    GetNextUp = "rows.next_up",
    /// Mark a title (or its season or series) watched.
    MarkWatched = "library.mark_watched",
    /// Remove watched marks (and optionally plays).
    UnmarkWatched = "library.unmark_watched",
    /// Put a title on My list.
    AddToList = "library.list_add",
    /// Take a title off My list.
    RemoveFromList = "library.list_remove",
    /// Read My list.
    GetList = "library.list",
    /// Read the My list options.
    GetListSettings = "library.list_settings",
    /// Change the My list options.
    UpdateListSettings = "library.update_list_settings",
    /// Recommendation rows.
    GetRecommendations = "recs.recommendations",
    /// Titles similar to one title.
    GetSimilar = "recs.similar",
    /// Send feedback on a title.
    SendFeedback = "recs.feedback",
    /// Record which titles were shown.
    RecordImpressions = "recs.impressions",
    /// The account's signed-in devices.
    ListSessions = "sessions.list",
    /// Sign one device out.
    RevokeSession = "sessions.revoke",
    /// Sign out everywhere.
    RevokeAllSessions = "sessions.revoke_all",
    /// The account's live streams (concurrent-stream limit).
    ListStreams = "streams.list",
    /// Stop one of the account's streams ("stop one" when the limit is reached).
    StopStream = "streams.stop",
    /// Set or clear an account's own concurrent-stream limit (operators).
    SetStreamLimit = "admin.set_stream_limit",
    /// Register an OAuth client (operators).
    CreateClient = "admin.create_client",
    /// Delete an OAuth client and revoke everything it issued (operators).
    DeleteClient = "admin.delete_client",
    /// Describe the API itself (gRPC server reflection: which services and messages exist).
    DescribeApi = "meta.describe_api",
    /// The recommendation model in service and its self-tuning report (operators).
    GetRecsModel = "admin.recs_model",
    /// Follow a profile (or ask to).
    Follow = "feed.follow",
    /// Stop following a profile (or withdraw a request).
    Unfollow = "feed.unfollow",
    /// Whom a profile follows.
    ListFollowing = "feed.list_following",
    /// Who follows a profile.
    ListFollowers = "feed.list_followers",
    /// Requests waiting for a private profile's decision.
    ListFollowRequests = "feed.list_follow_requests",
    /// Approve or deny a follow request.
    DecideFollowRequest = "feed.decide_follow_request",
    /// Block a profile.
    Block = "feed.block",
    /// Lift a block.
    Unblock = "feed.unblock",
    /// Read the activity feed.
    GetFeed = "feed.get_feed",
    /// Read whether a profile shares its activity.
    GetFeedSettings = "feed.get_settings",
    /// Turn sharing on or off.
    SetFeedSettings = "feed.set_settings",
    /// A request no route serves (404, or 405 for a method the path lacks): admitted only to be
    /// charged and to report its quota in the RateLimit headers like every answer.
    Unmatched = "http.unmatched",
}

impl Operation {
    /// The requirement of this operation: the policy table (see the module docs).
    pub const fn requirement(self) -> Requirement {
        use Access::{Authenticated, Browser, OAuthClient, Public};
        use Operation as O;
        use RouteClass::{Import, Ingest, Read, Write};
        let (access, charge) = match self {
            O::Livez | O::Readyz | O::OAuthMetadata | O::Jwks | O::DescribeApi => (Public, Charge::Exempt),
            // Exempt from the per-address quota: a TV polling the device grant and every refresh
            // would otherwise starve sign-ins behind one NAT. Guessing is limited where it can
            // happen instead (sign-in and device-code entry, per address and per account, inside
            // the identity use cases), and secrets are 256-bit.
            O::Token => (OAuthClient, Charge::Exempt),
            O::DeviceAuthorization | O::Revoke | O::Introspect => (OAuthClient, Charge::Class(Write)),
            O::AuthorizePage | O::SigninPage | O::DevicePage => (Browser, Charge::Class(Read)),
            // Looks nothing up (it only draws the URL it is given a code for); charged per
            // address like any anonymous call.
            O::DeviceQr | O::Unmatched => (Public, Charge::Class(Read)),
            O::AuthorizeSubmit | O::SigninSubmit | O::DeviceSubmit | O::Signout => {
                (Browser, Charge::Class(Write))
            }
            O::GetMe | O::ListTitles | O::GetTitle | O::ListSessions => (Authenticated, Charge::Class(Read)),
            // Any token of the person (a scope would let a narrowly scoped app keep a stolen
            // sibling signed in); bound tokens and services are refused in the use case.
            O::RevokeSession | O::RevokeAllSessions => (Authenticated, Charge::Class(Write)),
            O::CreateProfile => (Access::Scope(Scope::ProfilesWrite), Charge::Class(Write)),
            O::GetProfile => (Access::Scope(Scope::HistoryRead), Charge::Class(Read)),
            O::UpdateProfile | O::SetProfilePin | O::RemoveProfilePin => {
                (Access::Scope(Scope::ProfilesWrite), Charge::Class(Write))
            }
            // Any token that reaches the profile (an app switching profiles holds history:read);
            // guesses are limited per address and per profile inside the check.
            O::VerifyProfilePin => (Access::Scope(Scope::HistoryRead), Charge::Class(Write)),
            O::EraseAccount | O::EraseProfile => (Access::Scope(Scope::ProfilesWrite), Charge::Class(Write)),
            O::GetErasure => (Access::Scope(Scope::ProfilesWrite), Charge::Class(Read)),
            O::RequestExport => (Access::Scope(Scope::HistoryRead), Charge::Class(Write)),
            // A whole history in one response: charged as a bulk transfer.
            O::GetExport => (Access::Scope(Scope::HistoryRead), Charge::Class(Import)),
            O::PutTitle | O::PatchTitle => (Access::Scope(Scope::CatalogWrite), Charge::Class(Write)),
            O::ImportTitles => (Access::Scope(Scope::CatalogWrite), Charge::Class(Import)),
            O::RecordEvents => (Access::Scope(Scope::HistoryWrite), Charge::Class(Ingest)),
            O::GetProgress
            | O::ListHistory
            | O::GetContinueWatching
            | O::GetNextUp
            | O::GetList
            | O::GetListSettings => (Access::Scope(Scope::HistoryRead), Charge::Class(Read)),
            O::SetProgress
            | O::DeletePlay
            | O::HideFromContinueWatching
            | O::MarkWatched
            | O::UnmarkWatched
            | O::AddToList
            | O::RemoveFromList
            | O::UpdateListSettings => (Access::Scope(Scope::HistoryWrite), Charge::Class(Write)),
            O::ImportHistory => (Access::Scope(Scope::HistoryWrite), Charge::Class(Import)),
            O::GetRecommendations | O::GetSimilar => (Access::Scope(Scope::RecsRead), Charge::Class(Read)),
            O::SendFeedback | O::RecordImpressions => {
                (Access::Scope(Scope::FeedbackWrite), Charge::Class(Write))
            }
            O::CreateClient | O::DeleteClient | O::SetStreamLimit => {
                (Access::Scope(Scope::Admin), Charge::Class(Write))
            }
            // Streams belong to the account: any of its players (a profile-bound TV too) may see
            // which streams hold the slots and stop one, as the limit's problem invites it to.
            O::ListStreams => (Access::Scope(Scope::HistoryRead), Charge::Class(Read)),
            O::StopStream => (Access::Scope(Scope::HistoryWrite), Charge::Class(Write)),
            O::GetRecsModel => (Access::Scope(Scope::Admin), Charge::Class(Read)),
            // Follows also pay a per-profile follow quota inside the use case (spam runs: 429,
            // audited); the route class is the ordinary write quota.
            O::Follow | O::Unfollow | O::DecideFollowRequest | O::Block | O::Unblock | O::SetFeedSettings => {
                (Access::Scope(Scope::FeedWrite), Charge::Class(Write))
            }
            O::ListFollowing | O::ListFollowers | O::ListFollowRequests | O::GetFeed | O::GetFeedSettings => {
                (Access::Scope(Scope::FeedRead), Charge::Class(Read))
            }
        };
        let names_profile = matches!(
            self,
            O::GetProfile
                | O::UpdateProfile
                | O::EraseProfile
                | O::SetProfilePin
                | O::RemoveProfilePin
                | O::VerifyProfilePin
                | O::RecordEvents
                | O::GetProgress
                | O::SetProgress
                | O::ListHistory
                | O::ImportHistory
                | O::DeletePlay
                | O::GetContinueWatching
                | O::HideFromContinueWatching
                | O::GetNextUp
                | O::MarkWatched
                | O::UnmarkWatched
                | O::AddToList
                | O::RemoveFromList
                | O::GetList
                | O::GetListSettings
                | O::UpdateListSettings
                | O::GetRecommendations
                | O::SendFeedback
                | O::RecordImpressions
                | O::Follow
                | O::Unfollow
                | O::ListFollowing
                | O::ListFollowers
                | O::ListFollowRequests
                | O::DecideFollowRequest
                | O::Block
                | O::Unblock
                | O::GetFeed
                | O::GetFeedSettings
                | O::SetFeedSettings
        );
        let carries_secrets =
            matches!(self, O::Token | O::DeviceAuthorization | O::Revoke | O::Introspect | O::CreateClient);
        Requirement { access, charge, names_profile, carries_secrets }
    }

    /// The scope this operation needs, if it needs one.
    pub const fn scope(self) -> Option<Scope> {
        match self.requirement().access {
            Access::Scope(s) => Some(s),
            _ => None,
        }
    }

    /// Whether a bearer credential is needed at all.
    pub const fn needs_bearer(self) -> bool {
        matches!(self.requirement().access, Access::Authenticated | Access::Scope(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_dotted() {
        let mut seen = std::collections::HashSet::new();
        for op in Operation::ALL {
            assert!(seen.insert(op.name()), "{} twice", op.name());
            assert!(op.name().contains('.'), "{}", op.name());
        }
    }

    #[test]
    fn viewers_never_reach_catalog_writes_or_admin() {
        for op in Operation::ALL {
            if let Some(scope) = op.scope()
                && matches!(scope, Scope::CatalogWrite | Scope::Admin)
            {
                assert!(!Scope::VIEWER.contains(&scope), "{}", op.name());
            }
        }
        assert_eq!(Operation::CreateClient.scope(), Some(Scope::Admin));
        assert_eq!(Operation::DeleteClient.scope(), Some(Scope::Admin));
    }

    #[test]
    fn only_credential_answers_are_secret() {
        for op in Operation::ALL {
            let r = op.requirement();
            if r.carries_secrets {
                assert!(
                    matches!(r.access, Access::OAuthClient | Access::Scope(Scope::Admin)),
                    "{} carries secrets to an unexpected audience",
                    op.name()
                );
            }
        }
    }

    #[test]
    fn every_operation_that_names_a_profile_needs_a_scope() {
        for op in Operation::ALL.iter().filter(|o| o.requirement().names_profile) {
            assert!(op.scope().is_some(), "{}", op.name());
        }
    }
}
