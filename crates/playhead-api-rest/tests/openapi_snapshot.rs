//! The OpenAPI document, snapshotted: any change to the public contract shows up in review as a
//! diff of `snapshots/openapi_snapshot__openapi.snap`. Accept an intended change with
//! `INSTA_UPDATE=always cargo test -p playhead-api-rest --test openapi_snapshot` (or cargo-insta).

use utoipa::OpenApi;

#[test]
fn openapi() {
    let doc = serde_json::to_value(playhead_api_rest::ApiDoc::openapi()).expect("the document serialises");
    insta::assert_json_snapshot!("openapi", doc);
}

#[test]
fn every_operation_documents_the_shared_failures() {
    let doc = serde_json::to_value(playhead_api_rest::ApiDoc::openapi()).expect("the document serialises");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, op) in item.as_object().expect("item") {
            for code in ["400", "401", "406", "429", "500", "503"] {
                let r = &op["responses"][code];
                assert!(r.is_object(), "{method} {path} does not document {code}");
                assert!(
                    r["content"]["application/problem+json"]["example"].is_object(),
                    "{method} {path} {code} has no example"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 18, "{checked} operations");
}

/// Every documented operation declares its access requirement in the policy's route table, and
/// the table names nothing the API does not serve (the OAuth routes and pages are listed apart).
#[test]
fn every_route_declares_its_requirement() {
    let doc = serde_json::to_value(playhead_api_rest::ApiDoc::openapi()).expect("the document serialises");
    let mut served: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            served.push((method.to_uppercase(), path.clone()));
        }
    }
    for (method, path) in playhead_api_rest::OAUTH_ROUTES {
        served.push(((*method).to_owned(), (*path).to_owned()));
    }
    for (method, path) in &served {
        assert!(
            playhead_app::policy::route_requirement(method, path).is_some(),
            "{method} {path} has no requirement in playhead_app::policy::ROUTES"
        );
    }
    for (method, path, _) in playhead_app::policy::ROUTES {
        assert!(
            served.iter().any(|(m, p)| m == method && p == path),
            "ROUTES declares {method} {path}, which is not served"
        );
    }
}
