//! The OpenAPI document, snapshotted: any change to the public contract shows up in review as a
//! diff of `snapshots/openapi_snapshot__openapi.snap`. Accept an intended change with
//! `INSTA_UPDATE=always cargo test -p playhead-api-rest --test openapi_snapshot` (or cargo-insta).

#[test]
fn openapi() {
    let doc = serde_json::to_value(playhead_api_rest::openapi()).expect("the document serialises");
    insta::assert_json_snapshot!("openapi", doc);
}

#[test]
fn every_operation_documents_the_shared_failures() {
    let doc = serde_json::to_value(playhead_api_rest::openapi()).expect("the document serialises");
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

/// The document lists exactly the documented routes of the route table (the OAuth endpoints and
/// pages are served outside it), each with the operation id of its handler.
#[test]
fn the_document_is_the_route_table() {
    let doc = serde_json::to_value(playhead_api_rest::openapi()).expect("the document serialises");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut table: Vec<(String, String)> = playhead_api_rest::table()
        .iter()
        .filter(|e| e.documented())
        .map(|e| (e.method().to_string(), e.path().to_owned()))
        .collect();
    table.sort();
    assert_eq!(documented, table);
    let undocumented: Vec<String> =
        playhead_api_rest::table().iter().filter(|e| !e.documented()).map(|e| e.path().to_owned()).collect();
    assert!(
        undocumented
            .iter()
            .all(|p| p.starts_with("/oauth/") || p.starts_with("/.well-known/") || !p.starts_with("/v1/")),
        "every /v1 route is documented: {undocumented:?}"
    );
}
