//! The OAuth 2.0 vocabulary every transport and the authorization server share: the error codes
//! of the RFCs (with the HTTP status each one is answered with) and redirect URIs.
//!
//! The rules a contributor must keep here:
//! - An error code's status is decided by [`OAuthErrorCode::status`] and nowhere else; no caller
//!   matches on a code's text.
//! - A [`RedirectUri`] exists only through [`RedirectUri::parse`]: https anywhere, plain http only
//!   on the exact loopback literals `127.0.0.1` and `[::1]`, no fragment, no user info, and only
//!   characters every URL parser reads the same way (so the host we checked is the host a browser
//!   goes to). Matching is exact, except the port of a loopback URI (RFC 8252 section 7.3).

use std::fmt;

/// An OAuth error code: RFC 6749 sections 4.1.2.1 and 5.2, RFC 8628 section 3.5, RFC 7009
/// section 2.2.1, RFC 6750 section 3.1 and RFC 7591 section 3.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OAuthErrorCode {
    /// A parameter is missing, repeated, malformed or not allowed.
    InvalidRequest,
    /// Client authentication failed (answered 401 with a `WWW-Authenticate` challenge).
    InvalidClient,
    /// The code, refresh token or device code is invalid, expired, revoked or another client's.
    InvalidGrant,
    /// The client may not use this grant.
    UnauthorizedClient,
    /// The grant type is not one this server implements.
    UnsupportedGrantType,
    /// The scope asked for is unknown or wider than allowed.
    InvalidScope,
    /// The person (or this server for them) refused.
    AccessDenied,
    /// Only `response_type=code` is implemented.
    UnsupportedResponseType,
    /// A failure of ours (500).
    ServerError,
    /// A dependency is down; retry later (503).
    TemporarilyUnavailable,
    /// The person has not decided yet (device grant).
    AuthorizationPending,
    /// Poll, or try, more slowly.
    SlowDown,
    /// The device code expired (device grant).
    ExpiredToken,
    /// Revocation of this token type is not supported (RFC 7009).
    UnsupportedTokenType,
    /// A bearer token is malformed, expired or revoked (RFC 6750; answered 401).
    InvalidToken,
    /// A bearer token lacks a scope (RFC 6750; answered 403).
    InsufficientScope,
    /// A redirect URI is not acceptable (client registration).
    InvalidRedirectUri,
    /// Other client metadata is not acceptable (client registration).
    InvalidClientMetadata,
}

impl OAuthErrorCode {
    /// Every code, in a stable order.
    pub const ALL: [OAuthErrorCode; 18] = [
        Self::InvalidRequest,
        Self::InvalidClient,
        Self::InvalidGrant,
        Self::UnauthorizedClient,
        Self::UnsupportedGrantType,
        Self::InvalidScope,
        Self::AccessDenied,
        Self::UnsupportedResponseType,
        Self::ServerError,
        Self::TemporarilyUnavailable,
        Self::AuthorizationPending,
        Self::SlowDown,
        Self::ExpiredToken,
        Self::UnsupportedTokenType,
        Self::InvalidToken,
        Self::InsufficientScope,
        Self::InvalidRedirectUri,
        Self::InvalidClientMetadata,
    ];

    /// The wire name (the `error` member or parameter).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The HTTP status an error response with this code carries: 400 (RFC 6749 section 5.2, RFC
    /// 8628 section 3.5, RFC 7009 section 2.2.1), except client authentication and invalid
    /// bearer tokens (401: RFC 6749 section 5.2, RFC 6750 section 3.1), a missing scope (403:
    /// RFC 6750 section 3.1), and our own failures (500 and 503, the statuses RFC 6749 section
    /// 4.1.2.1 names them after).
    pub const fn status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::InsufficientScope => 403,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            Self::InvalidRequest
            | Self::InvalidGrant
            | Self::UnauthorizedClient
            | Self::UnsupportedGrantType
            | Self::InvalidScope
            | Self::AccessDenied
            | Self::UnsupportedResponseType
            | Self::AuthorizationPending
            | Self::SlowDown
            | Self::ExpiredToken
            | Self::UnsupportedTokenType
            | Self::InvalidRedirectUri
            | Self::InvalidClientMetadata => 400,
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest redirect URI accepted.
pub const REDIRECT_URI_MAX_LEN: usize = 2000;

/// Why a string is not an acceptable redirect URI (safe to show: it names the rule, never more
/// than the caller sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    /// Empty, or longer than [`REDIRECT_URI_MAX_LEN`].
    #[error("must be 1-2000 characters")]
    Length,
    /// A space, a control character, a backslash or a non-ASCII character (percent-encode it).
    #[error("must be ASCII without spaces, control characters or backslashes (percent-encode the rest)")]
    Characters,
    /// A `%` not followed by two hex digits.
    #[error("has a malformed percent-encoding")]
    PercentEncoding,
    /// Carries a fragment (RFC 6749 section 3.1.2).
    #[error("must not have a fragment (#)")]
    Fragment,
    /// Neither `https://` nor `http://`.
    #[error("must be an https URI (or http on 127.0.0.1 or [::1])")]
    Scheme,
    /// `user@host`: a classic way to make a URI look like it goes somewhere it does not.
    #[error("must not carry user information (user@host)")]
    UserInfo,
    /// The host is empty or not a DNS name or IP literal.
    #[error("has an invalid host")]
    Host,
    /// The port is empty, not a number, or not 1-65535.
    #[error("has an invalid port (1-65535)")]
    Port,
    /// `http://localhost`: RFC 8252 section 8.3 advises against it; use the IP literal.
    #[error("must not use localhost (RFC 8252 section 8.3): use http://127.0.0.1 or http://[::1]")]
    Localhost,
    /// Plain http to anything but the loopback literals.
    #[error("may use http only on 127.0.0.1 or [::1] (RFC 8252 section 7.3); elsewhere use https")]
    PlainHttp,
}

/// Which loopback literal a loopback redirect URI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Loopback {
    V4,
    V6,
}

/// A checked redirect URI (RFC 6749 section 3.1.2, RFC 8252 sections 7.3 and 8.3, RFC 9700
/// section 2.1). Holds the text exactly as the client sent it: redirects go to that text, and
/// the token endpoint compares it exactly.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedirectUri {
    text: String,
    /// For `http://127.0.0.1[:port]...` and `http://[::1][:port]...`: the literal and where the
    /// part after the authority (path and query) starts.
    loopback: Option<(Loopback, usize)>,
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedirectUri").field(&self.text).finish()
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl RedirectUri {
    /// Parse a redirect URI as registered or as sent in an authorization request.
    pub fn parse(s: &str) -> Result<Self, RedirectUriError> {
        if s.is_empty() || s.len() > REDIRECT_URI_MAX_LEN {
            return Err(RedirectUriError::Length);
        }
        // Printable ASCII only: WHATWG parsers silently drop tabs and newlines and read `\` as
        // `/`, so either could make a browser see another host than the one checked here.
        if !s.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
            return Err(RedirectUriError::Characters);
        }
        if s.contains('#') {
            return Err(RedirectUriError::Fragment);
        }
        check_percent_encoding(s)?;
        let (https, rest) = if let Some(rest) = s.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = s.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(RedirectUriError::Scheme);
        };
        let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        if authority.contains('@') {
            return Err(RedirectUriError::UserInfo);
        }
        let (host, port) = split_host_port(authority)?;
        if let Some(port) = port {
            let ok = !port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p));
            if !ok {
                return Err(RedirectUriError::Port);
            }
        }
        check_host(host)?;
        let loopback = match host {
            "127.0.0.1" => Some(Loopback::V4),
            "[::1]" => Some(Loopback::V6),
            _ => None,
        };
        if https {
            return Ok(Self { text: s.to_owned(), loopback: None });
        }
        if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
            return Err(RedirectUriError::Localhost);
        }
        let Some(literal) = loopback else { return Err(RedirectUriError::PlainHttp) };
        let path_start = s.len() - rest.len() + authority_len;
        Ok(Self { text: s.to_owned(), loopback: Some((literal, path_start)) })
    }

    /// The URI as sent.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A plain-http loopback URI (`http://127.0.0.1` or `http://[::1]`), whose port is free.
    pub fn is_loopback(&self) -> bool {
        self.loopback.is_some()
    }

    /// Whether an authorization request's URI is this registered one: the same text, except
    /// that a loopback URI matches on any port (RFC 8252 section 7.3: a native app listens on
    /// whatever port the operating system gives it at the time of the request).
    pub fn matches(&self, requested: &RedirectUri) -> bool {
        match (self.loopback, requested.loopback) {
            (Some((host, at)), Some((asked_host, asked_at))) => {
                host == asked_host && self.text[at..] == requested.text[asked_at..]
            }
            _ => self.text == requested.text,
        }
    }
}

fn check_percent_encoding(s: &str) -> Result<(), RedirectUriError> {
    let bytes = s.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(RedirectUriError::PercentEncoding);
            }
        }
    }
    Ok(())
}

/// `host[:port]` or `[v6][:port]`; the port text is checked by the caller.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), RedirectUriError> {
    if authority.starts_with('[') {
        let end = authority.find(']').ok_or(RedirectUriError::Host)?;
        let (host, after) = authority.split_at(end + 1);
        return match after {
            "" => Ok((host, None)),
            _ => after.strip_prefix(':').map(|p| (host, Some(p))).ok_or(RedirectUriError::Host),
        };
    }
    Ok(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

/// A DNS name of letters, digits and hyphens (non-ASCII names in their `xn--` form), an IPv4
/// address, or an IPv6 literal in brackets.
fn check_host(host: &str) -> Result<(), RedirectUriError> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(RedirectUriError::Host)?;
        return inner.parse::<std::net::Ipv6Addr>().map(|_| ()).map_err(|_| RedirectUriError::Host);
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    // WHATWG parsers read a host whose last label is numeric as an IPv4 address (`127.1`,
    // `0x7f000001`): accept that only in its one canonical dotted-decimal spelling.
    let last_is_name =
        host.rsplit('.').next().is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()));
    let canonical_v4 = host.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a.to_string() == host);
    if host.len() <= 253 && host.split('.').all(label_ok) && (last_is_name || canonical_v4) {
        Ok(())
    } else {
        Err(RedirectUriError::Host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> RedirectUri {
        RedirectUri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn https_and_the_loopback_literals_are_accepted() {
        assert!(!ok("https://app.example.com/callback?x=1").is_loopback());
        assert!(!ok("https://app.example.com").is_loopback());
        assert!(!ok("https://127.0.0.1/cb").is_loopback(), "https is matched exactly, port included");
        assert!(ok("http://127.0.0.1/cb").is_loopback());
        assert!(ok("http://127.0.0.1:8080/cb").is_loopback());
        assert!(ok("http://[::1]:51234/cb").is_loopback());
        assert!(ok("http://127.0.0.1").is_loopback());
        assert_eq!(ok("http://127.0.0.1:9/cb").as_str(), "http://127.0.0.1:9/cb");
    }

    #[test]
    fn hosts_that_only_start_like_loopback_are_refused() {
        for s in [
            "http://127.0.0.1.evil.example/cb",
            "http://127.0.0.1.evil.example",
            "http://127.0.0.10/cb",
            "http://[::1].evil.example/cb",
            "http://[::1]evil/cb",
            "http://127.0.0.1evil.example/cb",
            "http://0x7f000001/cb",
            "http://2130706433/cb",
            "http://127.1/cb",
            "http://example.com/cb",
        ] {
            assert!(RedirectUri::parse(s).is_err(), "{s} must be refused");
        }
    }

    #[test]
    fn each_refusal_names_its_rule() {
        use RedirectUriError as E;
        let cases = [
            ("", E::Length),
            ("https://a.example/ x", E::Characters),
            ("https://a.example/\tx", E::Characters),
            ("https://a.example\\@evil.example/", E::Characters),
            ("https://a.example/caf\u{e9}", E::Characters),
            ("https://a.example/%zz", E::PercentEncoding),
            ("https://a.example/cb#frag", E::Fragment),
            ("ftp://a.example/cb", E::Scheme),
            ("HTTPS://a.example/cb", E::Scheme),
            ("com.example.app:/cb", E::Scheme),
            ("https://good.example@evil.example/cb", E::UserInfo),
            ("http://127.0.0.1@evil.example/cb", E::UserInfo),
            ("https:///cb", E::Host),
            ("https://a..example/cb", E::Host),
            ("https://[::1/cb", E::Host),
            ("https://[nope]/cb", E::Host),
            ("https://localhost127.0.0.1/cb", E::Host),
            ("https://127.1/cb", E::Host),
            ("http://0x7f000001/cb", E::Host),
            ("http://127.0.0.1:/cb", E::Port),
            ("http://127.0.0.1:0/cb", E::Port),
            ("http://127.0.0.1:65536/cb", E::Port),
            ("http://127.0.0.1:80:80/cb", E::Port),
            ("http://localhost:3000/cb", E::Localhost),
            ("http://LocalHost/cb", E::Localhost),
            ("http://app.localhost/cb", E::Localhost),
            ("http://192.168.1.2/cb", E::PlainHttp),
        ];
        for (s, want) in cases {
            assert_eq!(RedirectUri::parse(s), Err(want), "{s}");
        }
        assert_eq!(RedirectUri::parse(&format!("https://a.example/{}", "x".repeat(2000))), Err(E::Length));
    }

    #[test]
    fn loopback_uris_match_on_any_port_and_nothing_else_does() {
        let registered = ok("http://127.0.0.1/callback");
        assert!(registered.matches(&ok("http://127.0.0.1:51234/callback")));
        assert!(ok("http://127.0.0.1:9/callback").matches(&ok("http://127.0.0.1:10/callback")));
        assert!(ok("http://[::1]:9/cb?a=1").matches(&ok("http://[::1]/cb?a=1")));
        assert!(!registered.matches(&ok("http://127.0.0.1:51234/callback/x")));
        assert!(!registered.matches(&ok("http://[::1]:51234/callback")), "the literal must match");
        assert!(!registered.matches(&ok("https://127.0.0.1/callback")));
        let web = ok("https://app.example.com/cb");
        assert!(web.matches(&ok("https://app.example.com/cb")));
        assert!(!web.matches(&ok("https://app.example.com:444/cb")), "https keeps its port");
        assert!(!web.matches(&ok("https://app.example.com/cb?x")));
    }

    #[test]
    fn error_codes_round_trip_and_know_their_status() {
        for c in OAuthErrorCode::ALL {
            assert_eq!(OAuthErrorCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(OAuthErrorCode::InvalidClient.status(), 401);
        assert_eq!(OAuthErrorCode::InvalidToken.status(), 401);
        assert_eq!(OAuthErrorCode::InsufficientScope.status(), 403);
        assert_eq!(OAuthErrorCode::InvalidGrant.status(), 400);
        assert_eq!(OAuthErrorCode::SlowDown.status(), 400);
        assert_eq!(OAuthErrorCode::ServerError.status(), 500);
        assert_eq!(OAuthErrorCode::TemporarilyUnavailable.status(), 503);
        assert_eq!(OAuthErrorCode::parse("password"), None);
    }
}

#[cfg(test)]
mod parser_agreement {
    //! What a browser does with a URI we accepted: the WHATWG parser (the `url` crate, as in
    //! browsers) must read the same scheme and, for plain http, a loopback host. Strings are built
    //! from the pieces that confuse URL parsers.
    use proptest::prelude::*;

    use super::RedirectUri;

    const PIECES: &[&str] = &[
        "127.0.0.1",
        "[::1]",
        "localhost",
        "evil.example",
        ".",
        ":",
        "@",
        "\\",
        "/",
        "?",
        "#",
        "%",
        "%2e",
        "%40",
        "%5C",
        "80",
        "\t",
        "\n",
        " ",
        "[",
        "]",
        "0x7f",
        "1",
        "::",
        "a",
        "%00",
    ];

    fn candidate() -> impl Strategy<Value = String> {
        let scheme = prop::sample::select(vec!["http://", "https://", "HTTP://", "http:/", "http:\\\\", ""]);
        let pieces = prop::collection::vec(prop::sample::select(PIECES.to_vec()), 0..10);
        (scheme, pieces).prop_map(|(s, p)| format!("{s}{}", p.concat()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        #[test]
        fn an_accepted_uri_goes_where_we_checked(s in candidate()) {
            if let Ok(ours) = RedirectUri::parse(&s) {
                let theirs = url::Url::parse(&s).expect("a URI we accept parses in browsers too");
                prop_assert!(theirs.fragment().is_none());
                prop_assert_eq!(theirs.username(), "");
                if ours.is_loopback() {
                    prop_assert_eq!(theirs.scheme(), "http");
                    let host = theirs.host_str().unwrap_or_default();
                    prop_assert!(host == "127.0.0.1" || host == "[::1]", "{} -> {}", s, host);
                } else {
                    prop_assert_eq!(theirs.scheme(), "https");
                }
            }
        }
    }

    #[test]
    fn the_known_tricks_agree_too() {
        for s in ["http://127.0.0.1.evil.example/cb", "http://127.0.0.1:80@evil.example/"] {
            assert!(RedirectUri::parse(s).is_err());
            let host =
                url::Url::parse(s).map(|u| u.host_str().unwrap_or_default().to_owned()).unwrap_or_default();
            assert_ne!(host, "127.0.0.1", "{s}: a browser would not go to loopback either");
        }
    }
}
