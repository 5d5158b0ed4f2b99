//! Fetching external issuers' key sets (`identity.external_issuers[].jwks_uri`) over HTTP(S).
//!
//! Only configured URIs are ever fetched (never a URL taken from a token).
//! TLS uses the system's trust roots, so a platform's internal CA works when the machine trusts
//! it. Redirects are not followed (a JWKS endpoint that moves is a configuration change), the
//! whole exchange is bounded by a timeout, and the body by [`MAX_JWKS_BYTES`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use playhead_app::access::JwksFetcher;

/// Largest JWKS document read (real ones are a few KiB).
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// A [`JwksFetcher`] over reqwest.
#[derive(Debug, Clone)]
pub struct HttpJwksFetcher {
    client: reqwest::Client,
}

impl HttpJwksFetcher {
    /// A fetcher with a 5 s timeout and no redirects.
    pub fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("playhead/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }
}

impl JwksFetcher for HttpJwksFetcher {
    fn fetch<'a>(
        &'a self,
        uri: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(async move {
            let mut resp = self
                .client
                .get(uri)
                .header(reqwest::header::ACCEPT, "application/jwk-set+json, application/json")
                .send()
                .await
                .map_err(|e| format!("GET {uri}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("GET {uri}: HTTP {}", resp.status()));
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {uri}: {e}"))? {
                if body.len() + chunk.len() > MAX_JWKS_BYTES {
                    return Err(format!("GET {uri}: body larger than {MAX_JWKS_BYTES} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            String::from_utf8(body).map_err(|_| format!("GET {uri}: body is not UTF-8"))
        })
    }
}
