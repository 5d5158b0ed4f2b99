//! [`Catalog`](playhead_core::ports::Catalog): idempotent upserts with versions, lookups,
//! id-ordered listing and episodes by series.

use std::collections::BTreeMap;

use playhead_core::ports::{StoredTitle, UpsertSummary};
use playhead_core::title::Title;

use crate::Stores;
use crate::fixtures::{at, episode, movie, series, tid};

fn summary(created: u64, updated: u64, unchanged: u64) -> UpsertSummary {
    UpsertSummary { created, updated, unchanged }
}

async fn version_of(s: &Stores, id: &str) -> i64 {
    s.catalog.title(&tid(id)).await.expect("title").expect("title exists").version
}

/// Every field of every kind of title reads back as written (genres keep the platform's order,
/// `season` distinguishes none from 0 = specials) at version 1; missing ids are simply absent.
pub async fn titles_round_trip_every_field(s: &Stores) {
    let full = Title {
        credits_start_ms: Some(6_900_000),
        genres: vec!["Drama".into(), "Crime".into(), "Art house".into()],
        maturity: 16,
        release_year: Some(1994),
        available_from: Some(at(-86_400_000)),
        external_ids: BTreeMap::from([("imdb".into(), "tt0111161".into()), ("tmdb".into(), "278".into())]),
        ..movie("tt0111161")
    };
    let show = series("show-1");
    let special = Title { maturity: 21, ..episode("show-1.s00e01", "show-1", Some(0), 1) };
    let unnumbered = episode("show-1.e7", "show-1", None, 7);
    let all = vec![full.clone(), show.clone(), special.clone(), unnumbered.clone()];
    assert_eq!(s.catalog.upsert_titles(&all, at(0)).await.expect("upsert"), summary(4, 0, 0));

    for t in &all {
        assert_eq!(
            s.catalog.title(&t.id).await.expect("title"),
            Some(StoredTitle { title: t.clone(), version: 1 }),
            "title {} must round-trip",
            t.id
        );
    }
    let mut got = s
        .catalog
        .titles(&[tid("nope"), special.id.clone(), full.id.clone(), show.id.clone(), unnumbered.id.clone()])
        .await
        .expect("titles");
    got.sort_by(|a, b| a.id.cmp(&b.id));
    let mut want = all;
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, want);
    assert_eq!(s.catalog.title(&tid("nope")).await.expect("title"), None);
    assert_eq!(s.catalog.titles(&[]).await.expect("titles"), vec![]);
}

/// Sending the same titles again changes nothing (all `unchanged`, versions kept); any changed
/// field (including to or from none, and the order of genres) is `updated` and bumps that
/// title's version only.
pub async fn upsert_is_idempotent_and_versions_follow_content(s: &Stores) {
    let a = Title { credits_start_ms: Some(6_000_000), genres: vec!["A".into(), "B".into()], ..movie("a") };
    let b = movie("b");
    assert_eq!(
        s.catalog.upsert_titles(&[a.clone(), b.clone()], at(0)).await.expect("upsert"),
        summary(2, 0, 0)
    );
    assert_eq!(
        s.catalog.upsert_titles(&[a.clone(), b.clone()], at(1)).await.expect("upsert"),
        summary(0, 0, 2)
    );
    assert_eq!((version_of(s, "a").await, version_of(s, "b").await), (1, 1));

    let changes: Vec<Title> = vec![
        Title { name: "B, renamed".into(), ..b.clone() },
        Title { available_from: Some(at(5)), ..b.clone() },
        Title { release_year: Some(2001), ..b.clone() },
        Title { external_ids: BTreeMap::from([("imdb".into(), "tt1".into())]), ..b.clone() },
        Title { maturity: 18, ..b.clone() },
    ];
    // Each round adds two versions: the change, then the change back.
    for (i, changed) in changes.iter().enumerate() {
        let sent = [a.clone(), changed.clone()];
        assert_eq!(
            s.catalog.upsert_titles(&sent, at(2)).await.expect("upsert"),
            summary(0, 1, 1),
            "change {i}"
        );
        let stored = s.catalog.title(&tid("b")).await.expect("title").expect("b");
        assert_eq!(stored, StoredTitle { title: changed.clone(), version: 2 + 2 * i as i64 }, "change {i}");
        // Back to the plain title: a change again (to none / the old value).
        assert_eq!(
            s.catalog.upsert_titles(std::slice::from_ref(&b), at(3)).await.expect("upsert"),
            summary(0, 1, 0)
        );
        assert_eq!(version_of(s, "b").await, 3 + 2 * i as i64);
        // Re-sending it is not.
        assert_eq!(
            s.catalog.upsert_titles(std::slice::from_ref(&b), at(3)).await.expect("upsert"),
            summary(0, 0, 1)
        );
        assert_eq!(version_of(s, "b").await, 3 + 2 * i as i64);
    }
    assert_eq!(version_of(s, "a").await, 1, "a was sent unchanged every time");
    let reordered = Title { genres: vec!["B".into(), "A".into()], ..a.clone() };
    assert_eq!(s.catalog.upsert_titles(&[reordered], at(4)).await.expect("upsert"), summary(0, 1, 0));
    let no_credits = Title { credits_start_ms: None, ..a };
    assert_eq!(
        s.catalog.upsert_titles(std::slice::from_ref(&no_credits), at(5)).await.expect("upsert"),
        summary(0, 1, 0)
    );
    assert_eq!(
        s.catalog.title(&tid("a")).await.expect("title"),
        Some(StoredTitle { title: no_credits, version: 3 })
    );
}

/// An import of thousands of titles in one call stores them all, reads back in bulk, and a
/// re-import reports every one unchanged.
pub async fn upsert_takes_large_imports(s: &Stores) {
    let titles: Vec<Title> = (0..2_100).map(|i| movie(&format!("bulk-{i:05}"))).collect();
    assert_eq!(s.catalog.upsert_titles(&titles, at(0)).await.expect("upsert"), summary(2_100, 0, 0));
    let mut ids: Vec<_> = titles.iter().map(|t| t.id.clone()).collect();
    ids.push(tid("missing-1"));
    let mut got = s.catalog.titles(&ids).await.expect("titles");
    got.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, titles);
    assert_eq!(s.catalog.upsert_titles(&titles, at(1)).await.expect("upsert"), summary(0, 0, 2_100));
}

/// One call that sends the same id twice behaves as two calls in order: the last copy is stored.
pub async fn upsert_of_one_id_twice_keeps_the_last_copy(s: &Stores) {
    let first = movie("twice");
    let second = Title { name: "Twice, fixed".into(), ..first.clone() };
    let sum = s.catalog.upsert_titles(&[first, second.clone()], at(0)).await.expect("upsert");
    assert_eq!(sum.created + sum.updated + sum.unchanged, 2, "one outcome per title sent: {sum:?}");
    assert_eq!(s.catalog.title(&tid("twice")).await.expect("title").map(|t| t.title), Some(second.clone()));
    let sum = s.catalog.upsert_titles(&[second.clone(), second], at(1)).await.expect("upsert");
    assert_eq!(sum, summary(0, 0, 2));
}

/// `list_titles` pages by id in byte order (`"A" < "_" < "a"`, as Rust orders strings), with no
/// gaps or repeats, `after` exclusive.
pub async fn list_titles_pages_in_id_order(s: &Stores) {
    let mut ids: Vec<String> =
        ["a", "A", "_x", "-x", "0", ".x", ":x", "B", "b", "Z9", "z", "aa", "a-b", "a.b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    ids.extend((0..20).map(|i| format!("m{}", (i * 7) % 20)));
    let titles: Vec<Title> = ids.iter().rev().map(|id| movie(id)).collect();
    s.catalog.upsert_titles(&titles, at(0)).await.expect("upsert");
    ids.sort();

    let mut seen: Vec<String> = Vec::new();
    let mut after = None;
    loop {
        assert!(seen.len() <= ids.len(), "paging returned more titles than were stored: `after` repeats");
        let page = s.catalog.list_titles(after.as_ref(), 4).await.expect("list_titles");
        assert!(page.len() <= 4, "a page holds at most `limit` titles");
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(page.iter().map(|t| t.id.to_string()));
    }
    assert_eq!(seen, ids);
    assert_eq!(s.catalog.list_titles(None, 3).await.expect("list_titles").len(), 3);
    assert_eq!(s.catalog.list_titles(None, 0).await.expect("list_titles"), vec![]);
}

/// `episodes_of` returns every episode of the given series and nothing else.
pub async fn episodes_of_lists_only_those_series(s: &Stores) {
    let mut titles = vec![series("s1"), series("s2"), series("s3"), movie("m1")];
    titles.extend((1..=3).map(|n| episode(&format!("s1.e{n}"), "s1", Some(1), n)));
    titles.extend((1..=2).map(|n| episode(&format!("s2.e{n}"), "s2", Some(2), n)));
    titles.push(episode("s3.e1", "s3", None, 1));
    s.catalog.upsert_titles(&titles, at(0)).await.expect("upsert");

    let mut got: Vec<String> = s
        .catalog
        .episodes_of(&[tid("s1"), tid("s2"), tid("unknown")])
        .await
        .expect("episodes_of")
        .into_iter()
        .map(|t| t.id.to_string())
        .collect();
    got.sort();
    assert_eq!(got, ["s1.e1", "s1.e2", "s1.e3", "s2.e1", "s2.e2"]);
    assert_eq!(s.catalog.episodes_of(&[tid("m1")]).await.expect("episodes_of"), vec![]);
    assert_eq!(s.catalog.episodes_of(&[]).await.expect("episodes_of"), vec![]);
}

/// `replace_title_if` writes only at the expected version (then bumps it by one, even for an
/// identical title), answers `PreconditionFailed` for a stale version without writing, and
/// `NotFound` for a title that does not exist.
pub async fn conditional_title_replace_checks_the_version(s: &Stores) {
    let m = movie("m1");
    s.catalog.upsert_titles(std::slice::from_ref(&m), at(0)).await.expect("upsert");
    let mut renamed = m.clone();
    renamed.name = "Renamed".into();
    let stored = s.catalog.replace_title_if(&renamed, 1, at(1)).await.expect("replace at v1");
    assert_eq!(stored, StoredTitle { title: renamed.clone(), version: 2 });
    let mut again = m.clone();
    again.name = "Stale".into();
    assert!(matches!(
        s.catalog.replace_title_if(&again, 1, at(2)).await,
        Err(playhead_core::StoreError::PreconditionFailed)
    ));
    assert_eq!(
        s.catalog.title(&tid("m1")).await.expect("title"),
        Some(StoredTitle { title: renamed.clone(), version: 2 })
    );
    let same = s.catalog.replace_title_if(&renamed, 2, at(3)).await.expect("identical replace");
    assert_eq!(same.version, 3);
    assert!(matches!(
        s.catalog.replace_title_if(&movie("nope"), 1, at(4)).await,
        Err(playhead_core::StoreError::NotFound)
    ));
}
