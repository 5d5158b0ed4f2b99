//! The QR code of a device grant's `verification_uri_complete`, as SVG: a TV shows it beside the
//! user code, a phone's camera opens the device page with the code filled in.
//!
//! Anyone may fetch it: it encodes only this server's device URL and the code the caller already
//! has, and looks nothing up (so it cannot be used to probe codes). The code must have the exact
//! shape the OpenAPI document states (the schema fuzzer holds the server to it).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use playhead_core::FieldError;
use playhead_core::identity::{USER_CODE_ALPHABET, display_user_code};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use serde::Deserialize;

use crate::RestState;
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;

/// Query of the QR endpoint.
#[derive(Debug, Deserialize)]
pub struct QrParams {
    user_code: Option<String>,
}

/// `BCDF-GHJK` or `bcdfghjk`: 8 letters of the user-code alphabet, either case, one optional
/// dash in the middle (the pattern in the OpenAPI document says exactly this).
fn user_code(typed: &str) -> Option<String> {
    let b = typed.as_bytes();
    let letters: Vec<u8> = match b.len() {
        8 => b.to_vec(),
        9 if b[4] == b'-' => [&b[..4], &b[5..]].concat(),
        _ => return None,
    };
    let upper: Vec<u8> = letters.iter().map(u8::to_ascii_uppercase).collect();
    upper.iter().all(|c| USER_CODE_ALPHABET.contains(c)).then(|| String::from_utf8_lossy(&upper).into_owned())
}

/// The SVG of `text`, with a title for screen readers.
fn svg_of(text: &str, label: &str) -> Result<String, ApiError> {
    // Level M survives a glare spot on a TV screen and keeps the code small enough to scan
    // from across a room.
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| {
        ApiError::App(playhead_app::AppError::Internal(format!("encoding a QR code failed: {e}")))
    })?;
    let image = code
        .render()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    // role and title make it an image with a name for assistive technology.
    Ok(match image.find("<svg") {
        Some(i) => {
            let close = image[i..].find('>').map_or(image.len(), |j| i + j);
            format!(
                "{}<svg role=\"img\" aria-label=\"{label}\"{}<title>{label}</title>{}",
                &image[..i],
                &image[i + 4..close + 1],
                &image[close + 1..]
            )
        }
        None => image,
    })
}

/// A QR code (SVG) of the device page with this user code filled in: the device grant's
/// `verification_uri_complete`. Public; it looks nothing up, so any well-formed code gets one.
#[utoipa::path(get, path = "/device/qr", tag = "profiles",
    params(("user_code" = String, Query, description = "the user code a device grant returned",
        pattern = "^[BCDFGHJKLMNPQRSTVWXZbcdfghjklmnpqrstvwxz]{4}-?[BCDFGHJKLMNPQRSTVWXZbcdfghjklmnpqrstvwxz]{4}$")),
    responses((status = 200, description = "the QR code", content_type = "image/svg+xml", body = String),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn device_qr(
    axum::extract::State(s): axum::extract::State<RestState>,
    ApiQuery(q): ApiQuery<QrParams>,
) -> Result<Response, ApiError> {
    let code = q.user_code.as_deref().and_then(user_code).ok_or_else(|| {
        FieldError::new("user_code", "invalid", "must be 8 letters of BCDFGHJKLMNPQRSTVWXZ, like BCDF-GHJK")
    })?;
    let shown = display_user_code(&code);
    let iss = s.identity.config().issuer.trim_end_matches('/').to_owned();
    let url = format!("{iss}/device?user_code={shown}");
    let label = super::html::esc(&format!("QR code: open {iss}/device and enter {shown}"));
    let body = svg_of(&url, &label)?;
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    // The code lives minutes; the image never changes for it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=600"));
    // An SVG opened on its own is a document: it may run nothing and load nothing.
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_exactly_the_documented_shape() {
        assert_eq!(user_code("BCDF-GHJK").as_deref(), Some("BCDFGHJK"));
        assert_eq!(user_code("bcdfghjk").as_deref(), Some("BCDFGHJK"));
        for bad in ["BCDF GHJK", "BCD-FGHJK", "BCDF--GHJK", "ABCD-EFGH", "BCDFGHJ", "BCDF-GHJKL", ""] {
            assert_eq!(user_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_svg_is_a_named_image_without_scripts() {
        let svg = svg_of("https://tv.example/device?user_code=BCDF-GHJK", "QR code").expect("svg");
        assert!(svg.contains("<svg role=\"img\" aria-label=\"QR code\""), "{}", &svg[..200.min(svg.len())]);
        assert!(svg.contains("<title>QR code</title>") && svg.contains("<path"), "{svg}");
        assert!(!svg.contains("<script"));
    }
}
