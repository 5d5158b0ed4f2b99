//! Running one admitted call: the principal the gate verified, the use case, the audit of a
//! service's `profiles:any` use of a profile, and `idempotency-key` metadata on mutating unary
//! calls, with REST's Idempotency-Key semantics through the application's idempotency store:
//! a completed outcome (success, INVALID_ARGUMENT, NOT_FOUND: the deterministic ones) is replayed
//! with `idempotent-replayed: true` metadata; the same key while the first call runs is ABORTED
//! (REST: 409); the same key with another request is INVALID_ARGUMENT (REST: 422). Keys are
//! scoped to the principal and shared with REST: a key sent once over REST and once over gRPC is
//! a reuse with another request (the fingerprint includes the transport and method).

use std::future::Future;
use std::sync::Arc;

use playhead_app::AppError;
use playhead_app::access::partition_of;
use playhead_core::auth::Principal;
use playhead_core::ports::{IdempotencyBegin, StoredResponse};
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Response, Status};

use crate::GrpcState;
use crate::error::{field, status};
use crate::gate::Call;

/// The admitted call of a request (the gate put it there; its absence is a wiring bug).
pub(crate) fn admitted<T>(req: &Request<T>) -> Result<Arc<Call>, Status> {
    req.extensions()
        .get::<Arc<Call>>()
        .cloned()
        .ok_or_else(|| status(AppError::Internal("a gRPC call reached its handler without the gate".into())))
}

/// The verified caller of an admitted call.
pub(crate) fn principal(call: &Call) -> Result<Principal, Status> {
    call.admission.principal.clone().ok_or_else(|| Status::unauthenticated("a bearer credential is required"))
}

impl GrpcState {
    /// Run a unary call: `profile` names the profile the request acts on (for the audit), `f`
    /// is the use case.
    pub(crate) async fn unary<Q, R, F, Fut>(
        &self,
        req: Request<Q>,
        profile: impl FnOnce(&Q) -> Option<String>,
        f: F,
    ) -> Result<Response<R>, Status>
    where
        Q: Message,
        R: Message + Default,
        F: FnOnce(Principal, Q) -> Fut,
        Fut: Future<Output = Result<R, Status>>,
    {
        let call = admitted(&req)?;
        let p = principal(&call)?;
        let key = if call.method.idempotent { idempotency_key(&req)? } else { None };
        let msg = req.into_inner();
        let audited = call.admission.audit.then(|| profile(&msg)).flatten();
        let out = match key {
            None => f(p.clone(), msg).await.map(Response::new),
            Some(key) => self.idempotent(&call, &p, &key, msg, f).await,
        };
        if let Some(profile) = audited {
            let code = out.as_ref().map_or_else(|s| s.code() as u16, |_| 0);
            self.gate
                .audit_profile_access(
                    &p,
                    call.method.op,
                    call.method.path,
                    &profile,
                    code,
                    call.client_addr.clone(),
                )
                .await;
        }
        out
    }

    async fn idempotent<Q, R, F, Fut>(
        &self,
        call: &Call,
        p: &Principal,
        key: &str,
        msg: Q,
        f: F,
    ) -> Result<Response<R>, Status>
    where
        Q: Message,
        R: Message + Default,
        F: FnOnce(Principal, Q) -> Fut,
        Fut: Future<Output = Result<R, Status>>,
    {
        let scoped = format!("{}:{key}", partition_of(p));
        let mut h = Sha256::new();
        h.update(b"grpc");
        h.update([0]);
        h.update(call.method.path);
        h.update([0]);
        h.update(msg.encode_to_vec());
        let fingerprint: [u8; 32] = h.finalize().into();
        match self.app.idempotency_begin(&scoped, fingerprint).await.map_err(status)? {
            IdempotencyBegin::InFlight => Err(Status::aborted(
                "a call with this idempotency-key is still running; retry after it has finished",
            )),
            IdempotencyBegin::Mismatch => Err(field(
                "idempotency-key",
                "reused",
                "was already used with a different request; use a new key for a new request",
            )),
            IdempotencyBegin::Completed(stored) => replay(stored),
            IdempotencyBegin::Started => {
                let out = f(p.clone(), msg).await;
                let stored = match &out {
                    Ok(r) => {
                        Some(StoredResponse { status: 200, headers: Vec::new(), body: r.encode_to_vec() })
                    }
                    Err(s) if matches!(s.code(), Code::InvalidArgument | Code::NotFound) => {
                        Some(StoredResponse {
                            status: if s.code() == Code::NotFound { 404 } else { 400 },
                            headers: vec![
                                ("grpc-status".into(), (s.code() as i32).to_string()),
                                ("grpc-message".into(), s.message().to_owned()),
                            ],
                            body: s.details().to_vec(),
                        })
                    }
                    // Not deterministic (quota, conflict, unavailable): the key stays free for a retry.
                    Err(_) => None,
                };
                match stored {
                    Some(stored) => {
                        if let Err(e) = self.app.idempotency_complete(&scoped, fingerprint, &stored).await {
                            tracing::error!(error = %e, "storing an idempotent outcome failed; a retry will run again");
                        }
                    }
                    None => {
                        if let Err(e) = self.app.idempotency_release(&scoped, fingerprint).await {
                            tracing::error!(error = %e, "releasing an idempotency key failed; it frees itself when its lease ends");
                        }
                    }
                }
                out.map(Response::new)
            }
        }
    }
}

/// The `idempotency-key` metadata, if sent (1-255 visible ASCII characters, as in REST).
fn idempotency_key<T>(req: &Request<T>) -> Result<Option<String>, Status> {
    let Some(raw) = req.metadata().get("idempotency-key") else { return Ok(None) };
    match raw.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 => Ok(Some(k.to_owned())),
        _ => Err(field(
            "idempotency-key",
            "invalid",
            "must be 1-255 visible ASCII characters (a UUID is ideal)",
        )),
    }
}

/// A stored outcome, answered again.
fn replay<R: Message + Default>(stored: StoredResponse) -> Result<Response<R>, Status> {
    let replayed = MetadataValue::from_static("true");
    if stored.status == 200 {
        let msg = R::decode(stored.body.as_slice()).map_err(|e| {
            status(AppError::Internal(format!("a stored idempotent response does not decode: {e}")))
        })?;
        let mut res = Response::new(msg);
        res.metadata_mut().insert("idempotent-replayed", replayed);
        return Ok(res);
    }
    let header = |name: &str| stored.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let code = header("grpc-status").and_then(|c| c.parse::<i32>().ok()).map_or(Code::Unknown, Code::from);
    let mut s = Status::with_details(code, header("grpc-message").unwrap_or_default(), stored.body.into());
    s.metadata_mut().insert("idempotent-replayed", replayed);
    Err(s)
}
