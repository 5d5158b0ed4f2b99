//! Watched marks, play counts and My list (the parts of
//! [`ViewingStore`](playhead_core::ports::ViewingStore) issue 17 added): one manual play per
//! title, unmarks that never touch real plays, counts that include marks, and list pages that
//! are newest first, exact under the cursor, and filtered by maturity, availability and the
//! "leave when finished" option.

use playhead_core::ports::{ListQuery, PlayQuery, WatchCount};
use playhead_core::title::Title;

use crate::Stores;
use crate::fixtures::{at, implicit, min, movie, new_profile, play, store_viewings, tid, viewing};

fn titles(ids: &[&str]) -> Vec<playhead_core::TitleId> {
    ids.iter().map(|t| tid(t)).collect()
}

/// A mark is one manual play per title: repeating it keeps the play, `move_existing` moves it,
/// history lists it as manual and completed; an unmark removes only manual plays.
pub async fn marks_are_one_manual_play_and_unmarks_leave_real_plays(s: &Stores) {
    let p = new_profile(s, 1).await;
    let other = new_profile(s, 2).await;
    s.catalog.upsert_titles(&[movie("m1"), movie("m2")], at(0)).await.expect("upsert");
    // A real, unfinished play of m2.
    store_viewings(s, &[], &[viewing(50, p, "m2", Some(implicit(Some("tv"))), min(1), min(30), true)]).await;

    let first = s
        .viewing
        .mark_watched(p, &[(tid("m1"), play(100)), (tid("m2"), play(101))], min(40), false)
        .await
        .expect("mark");
    assert_eq!(first, vec![play(100), play(101)]);
    // Again, with other ids and without moving: nothing changes.
    let again =
        s.viewing.mark_watched(p, &[(tid("m1"), play(200))], min(50), false).await.expect("mark again");
    assert_eq!(again, vec![play(100)]);
    let all = s.viewing.plays(p, &PlayQuery { limit: 10, ..Default::default() }).await.expect("plays");
    let m1: Vec<_> = all.iter().filter(|v| v.title_id == tid("m1")).collect();
    assert_eq!(m1.len(), 1, "{all:?}");
    assert!(m1[0].manual && m1[0].completed && m1[0].is_play && m1[0].key.is_none());
    assert_eq!((m1[0].started_at, m1[0].ended_at), (min(40), min(40)));
    // Moving it keeps the id.
    let moved = s.viewing.mark_watched(p, &[(tid("m1"), play(300))], min(60), true).await.expect("move");
    assert_eq!(moved, vec![play(100)]);
    let q = PlayQuery { limit: 10, title_id: Some(tid("m1")), ..Default::default() };
    let m1 = s.viewing.plays(p, &q).await.expect("plays of m1");
    assert_eq!(m1.iter().map(|v| (v.id, v.started_at)).collect::<Vec<_>>(), vec![(play(100), min(60))]);

    // Counts: m2 has a real play and a mark; the other profile has nothing.
    let mut counts = s.viewing.watch_counts(p, &titles(&["m1", "m2", "nope"])).await.expect("counts");
    counts.sort_by(|a, b| a.title_id.cmp(&b.title_id));
    assert_eq!(
        counts,
        vec![
            WatchCount { title_id: tid("m1"), plays: 1, watched: true },
            WatchCount { title_id: tid("m2"), plays: 2, watched: true },
        ]
    );
    assert!(s.viewing.watch_counts(other, &titles(&["m1"])).await.expect("other").is_empty());
    let mut watched = s.viewing.watched_titles(p).await.expect("watched");
    watched.sort();
    assert_eq!(watched, titles(&["m1", "m2"]));

    // Unmark both: the real (unfinished) play of m2 stays, so m2 is played but not watched.
    assert_eq!(s.viewing.unmark_watched(p, &titles(&["m1", "m2"])).await.expect("unmark"), 2);
    assert_eq!(s.viewing.unmark_watched(p, &titles(&["m1", "m2"])).await.expect("unmark again"), 0);
    let counts = s.viewing.watch_counts(p, &titles(&["m1", "m2"])).await.expect("counts after");
    assert_eq!(counts, vec![WatchCount { title_id: tid("m2"), plays: 1, watched: false }]);
    assert!(s.viewing.watched_titles(p).await.expect("watched after").is_empty());
    let left = s.viewing.plays(p, &PlayQuery { limit: 10, ..Default::default() }).await.expect("plays after");
    assert_eq!(left.iter().map(|v| (v.id, v.manual)).collect::<Vec<_>>(), vec![(play(50), false)]);
}

/// My list: adding twice keeps the first place, pages are newest first and exact under the
/// cursor, removal reports what was there, and the filters apply.
pub async fn the_list_pages_newest_first_and_filters(s: &Stores) {
    let p = new_profile(s, 1).await;
    let other = new_profile(s, 2).await;
    let adult = Title { maturity: 18, ..movie("adult") };
    let later = Title { available_from: Some(min(1_000)), ..movie("later") };
    s.catalog
        .upsert_titles(&[movie("a"), movie("b"), movie("c"), adult, later, movie("done")], at(0))
        .await
        .expect("upsert");
    for (i, t) in ["a", "b", "c", "adult", "later", "done"].iter().enumerate() {
        assert!(s.viewing.list_add(p, &tid(t), min(i as i64 + 1)).await.expect("add"));
    }
    assert!(
        s.viewing.list_add(p, &tid("b"), min(99)).await.is_ok_and(|added| !added),
        "re-add keeps its place"
    );
    assert!(s.viewing.list_add(other, &tid("a"), min(1)).await.expect("other's list"));
    // "ghost" is listed, then leaves the catalog: never listed.
    assert!(s.viewing.list_add(p, &tid("ghost"), min(7)).await.expect("add ghost"));

    let page = move |q: ListQuery| async move {
        s.viewing
            .list_page(p, &q)
            .await
            .expect("list page")
            .into_iter()
            .map(|e| e.title_id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        page(ListQuery { limit: 10, ..Default::default() }).await,
        ["done", "later", "adult", "c", "b", "a"]
    );
    // Keyset pages see every entry once.
    let first = s.viewing.list_page(p, &ListQuery { limit: 2, ..Default::default() }).await.expect("first");
    assert_eq!(first.len(), 2);
    let last = first.last().expect("an entry");
    let rest = page(ListQuery {
        limit: 10,
        before: Some((last.added_at, last.title_id.clone())),
        ..Default::default()
    })
    .await;
    assert_eq!(rest, ["adult", "c", "b", "a"]);
    // Maturity and availability.
    assert_eq!(
        page(ListQuery {
            limit: 10,
            max_maturity: Some(12),
            available_at: Some(min(500)),
            ..Default::default()
        })
        .await,
        ["done", "c", "b", "a"]
    );
    // Finished after it was added: left out only when asked. A play finished before the title
    // was added does not count (a rewatch wish).
    let mut finished = viewing(60, p, "done", Some(implicit(None)), min(10), min(20), true);
    finished.completed = true;
    let mut before = viewing(61, p, "a", Some(implicit(None)), at(0), at(1), true);
    before.completed = true;
    store_viewings(s, &[], &[finished, before]).await;
    assert_eq!(
        page(ListQuery { limit: 10, hide_finished: true, ..Default::default() }).await,
        ["later", "adult", "c", "b", "a"]
    );
    assert_eq!(page(ListQuery { limit: 10, ..Default::default() }).await.len(), 6);
    assert_eq!(s.viewing.list_titles(p, 3).await.expect("titles"), titles(&["ghost", "done", "later"]));

    assert_eq!(s.viewing.list_remove(p, &titles(&["a", "zzz"])).await.expect("remove"), 1);
    assert_eq!(s.viewing.list_remove(p, &titles(&["a"])).await.expect("remove again"), 0);
    assert_eq!(s.viewing.list_titles(other, 10).await.expect("other"), titles(&["a"]));

    // The option.
    assert!(!s.viewing.list_leaves_when_finished(p).await.expect("default"));
    s.viewing.set_list_leaves_when_finished(p, true).await.expect("set");
    assert!(s.viewing.list_leaves_when_finished(p).await.expect("on"));
    assert!(!s.viewing.list_leaves_when_finished(other).await.expect("other's"));
    s.viewing.set_list_leaves_when_finished(p, false).await.expect("unset");
    assert!(!s.viewing.list_leaves_when_finished(p).await.expect("off"));
}
