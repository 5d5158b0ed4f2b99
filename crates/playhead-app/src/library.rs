//! The viewer's library: watched marks and My list (issue 17, decision 0090), and the watched
//! state every title summary carries.
//!
//! Rules kept here: a mark is a manual play (so history, Next up and the recommender honour it
//! through the plays they already read); marking hides the titles from Continue watching until
//! they are played again; a kids profile can neither mark nor list nor see a title above its
//! maturity limit (such a title answers 404, as if it did not exist).

use std::collections::HashMap;

use playhead_core::auth::Principal;
use playhead_core::ids::{PlayId, ProfileId, TitleId};
use playhead_core::ports::{ListQuery, PlayQuery};
use playhead_core::profile::Profile;
use playhead_core::rules::marks::{MarkScope, covered, series_of};
use playhead_core::title::{Title, TitleKind};
use playhead_core::{FieldError, StoreError, Timestamp};
use serde::{Deserialize, Serialize};

use crate::access::Operation;
use crate::apply::new_play_id;
use crate::{App, AppError};

/// Titles on a list the recommender reads as a positive signal (newest first).
const LIST_SIGNAL_MAX: u32 = 200;
/// Most real plays one unmark with `plays=all` deletes per title (a title is rarely played more).
const UNMARK_PLAYS_MAX: u32 = 1_000;

/// What a profile's plays say about one title: shown on every title summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchState {
    /// Watched: a completed play or a mark (for a series: every available episode watched).
    pub watched: bool,
    /// Plays, manual ones included (for a series: plays of its episodes).
    pub play_count: u32,
}

/// Which plays an unmark removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnmarkPlays {
    /// Only manual plays (marks): real viewings stay in history.
    #[default]
    Manual,
    /// Every play of the titles (real ones get tombstones, like deleting them one by one).
    All,
}

/// One title a mark covered, and its manual play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    /// The title.
    pub title_id: TitleId,
    /// Its manual play (history shows it with `manual: true`).
    pub play_id: PlayId,
}

/// A page of My list.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// Titles, newest addition first, each with when it was added and its watched state.
    pub items: Vec<(Title, Timestamp, WatchState)>,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
}

/// Filters of a list page.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Page size.
    pub limit: u32,
    /// Only titles playable now.
    pub available_only: bool,
}

impl App {
    /// The title, or 404 when it does not exist or is above the profile's maturity limit.
    async fn visible_title(&self, profile: &Profile, id: &TitleId) -> Result<Title, AppError> {
        let t = self.ports.catalog.title(id).await?.ok_or(AppError::NotFound("title"))?.title;
        if profile.may_see(t.maturity) { Ok(t) } else { Err(AppError::NotFound("title")) }
    }

    /// The titles a scoped request on `target` covers, within the profile's limit.
    async fn scoped_titles(
        &self,
        profile: &Profile,
        target: &Title,
        scope: MarkScope,
        available_at: Option<Timestamp>,
    ) -> Result<Vec<Title>, AppError> {
        let episodes = match series_of(target, scope) {
            Some(series) => self.ports.catalog.episodes_of(std::slice::from_ref(series)).await?,
            None => Vec::new(),
        };
        let titles = covered(target, scope, &episodes)
            .map_err(|e| AppError::invalid(FieldError::new("scope", "invalid", e.to_string())))?;
        let single = titles.len() == 1 && titles[0].id == target.id;
        Ok(titles
            .into_iter()
            .filter(|t| profile.may_see(t.maturity))
            // An episode not released yet cannot have been watched: a season or series mark
            // skips it (a mark on that one episode is taken as the viewer says).
            .filter(|t| single || available_at.is_none_or(|at| t.is_available(at)))
            .cloned()
            .collect())
    }

    /// Mark a title (or its season or series) watched as of `watched_at` (default now): one
    /// manual play per title, hidden from Continue watching until played again. Repeating a mark
    /// keeps its play; a mark with `watched_at` moves it there.
    pub async fn mark_watched(
        &self,
        p: &Principal,
        profile_id: ProfileId,
        title: &TitleId,
        scope: MarkScope,
        watched_at: Option<Timestamp>,
    ) -> Result<Vec<Marked>, AppError> {
        let profile = self.reachable_profile(p, profile_id, Operation::MarkWatched).await?;
        let target = self.visible_title(&profile, title).await?;
        let now = self.clock.now();
        if let Some(at) = watched_at
            && at.0 > now.0 + self.config.rules.skew_allowance_ms
        {
            return Err(AppError::invalid(FieldError::new(
                "watched_at",
                "in_future",
                "must not be in the future",
            )));
        }
        let at = watched_at.unwrap_or(now);
        let titles = self.scoped_titles(&profile, &target, scope, Some(at)).await?;
        if titles.is_empty() {
            return Err(AppError::invalid(FieldError::new(
                "scope",
                "nothing_to_mark",
                "no episode in this scope is available to this profile",
            )));
        }
        let pairs: Vec<(TitleId, PlayId)> = titles.iter().map(|t| (t.id.clone(), new_play_id(at))).collect();
        let ids = self.ports.viewing.mark_watched(profile_id, &pairs, at, watched_at.is_some()).await?;
        // Marked means done: leave Continue watching until the next play (the resume point is kept).
        let ids_only: Vec<TitleId> = titles.iter().map(|t| t.id.clone()).collect();
        for r in self.ports.viewing.progress_of(profile_id, &ids_only).await? {
            self.ports.viewing.hide(profile_id, &r.progress.title_id, now).await?;
        }
        self.cache.invalidate(profile_id).await;
        Ok(pairs.into_iter().zip(ids).map(|((title_id, _), play_id)| Marked { title_id, play_id }).collect())
    }

    /// Unmark a title (or its season or series): remove its manual plays, and with
    /// [`UnmarkPlays::All`] its real plays too. The title is unwatched afterwards unless a
    /// remaining play completed it.
    pub async fn unmark_watched(
        &self,
        p: &Principal,
        profile_id: ProfileId,
        title: &TitleId,
        scope: MarkScope,
        plays: UnmarkPlays,
    ) -> Result<(), AppError> {
        let profile = self.reachable_profile(p, profile_id, Operation::UnmarkWatched).await?;
        let target = self.visible_title(&profile, title).await?;
        let titles = self.scoped_titles(&profile, &target, scope, None).await?;
        let ids: Vec<TitleId> = titles.iter().map(|t| t.id.clone()).collect();
        self.ports.viewing.unmark_watched(profile_id, &ids).await?;
        if plays == UnmarkPlays::All {
            let now = self.clock.now();
            for id in &ids {
                let q =
                    PlayQuery { limit: UNMARK_PLAYS_MAX, title_id: Some(id.clone()), ..Default::default() };
                for v in self.ports.viewing.plays(profile_id, &q).await? {
                    match self.ports.viewing.delete_play(profile_id, v.id, now).await {
                        // Deleted meanwhile by another request: the outcome is the same.
                        Ok(()) | Err(StoreError::NotFound) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        self.cache.invalidate(profile_id).await;
        Ok(())
    }

    /// The watched state of these titles for a profile, in one read of plays (plus one of the
    /// catalog when a series is among them). Callers have authorized the profile.
    pub(crate) async fn watch_states(
        &self,
        profile: ProfileId,
        titles: &[&Title],
    ) -> Result<HashMap<TitleId, WatchState>, AppError> {
        let series: Vec<TitleId> =
            titles.iter().filter(|t| t.kind == TitleKind::Series).map(|t| t.id.clone()).collect();
        let episodes =
            if series.is_empty() { Vec::new() } else { self.ports.catalog.episodes_of(&series).await? };
        let mut ids: Vec<TitleId> = titles.iter().map(|t| t.id.clone()).collect();
        ids.extend(episodes.iter().map(|e| e.id.clone()));
        ids.sort();
        ids.dedup();
        let counts: HashMap<TitleId, WatchState> = self
            .ports
            .viewing
            .watch_counts(profile, &ids)
            .await?
            .into_iter()
            .map(|c| (c.title_id, WatchState { watched: c.watched, play_count: c.plays }))
            .collect();
        let now = self.clock.now();
        let mut out = HashMap::with_capacity(titles.len());
        for t in titles {
            let state = if t.kind == TitleKind::Series {
                let eps: Vec<&Title> = episodes
                    .iter()
                    .filter(|e| e.series_id.as_ref() == Some(&t.id) && e.is_available(now))
                    .collect();
                let states: Vec<WatchState> =
                    eps.iter().map(|e| counts.get(&e.id).copied().unwrap_or_default()).collect();
                WatchState {
                    watched: !states.is_empty() && states.iter().all(|s| s.watched),
                    play_count: states.iter().map(|s| s.play_count).sum(),
                }
            } else {
                counts.get(&t.id).copied().unwrap_or_default()
            };
            out.insert(t.id.clone(), state);
        }
        Ok(out)
    }

    /// Put a title on the profile's list (a title already there keeps its place).
    pub async fn list_add(
        &self,
        p: &Principal,
        profile_id: ProfileId,
        title: &TitleId,
    ) -> Result<bool, AppError> {
        let profile = self.reachable_profile(p, profile_id, Operation::AddToList).await?;
        self.visible_title(&profile, title).await?;
        let added = self.ports.viewing.list_add(profile_id, title, self.clock.now()).await?;
        // The list is a recommendation signal: the profile's cached rows change with it.
        self.cache.invalidate(profile_id).await;
        Ok(added)
    }

    /// Take a title off the profile's list (404 when it is not on it).
    pub async fn list_remove(
        &self,
        p: &Principal,
        profile_id: ProfileId,
        title: &TitleId,
    ) -> Result<(), AppError> {
        self.reachable_profile(p, profile_id, Operation::RemoveFromList).await?;
        if self.ports.viewing.list_remove(profile_id, std::slice::from_ref(title)).await? == 0 {
            return Err(AppError::NotFound("list entry"));
        }
        self.cache.invalidate(profile_id).await;
        Ok(())
    }

    /// A page of the profile's list, newest first, within its maturity limit.
    pub async fn list(
        &self,
        p: &Principal,
        profile_id: ProfileId,
        f: ListFilter,
    ) -> Result<ListPage, AppError> {
        let profile = self.reachable_profile(p, profile_id, Operation::GetList).await?;
        let scope = format!("list:{profile_id}:{}", f.available_only);
        let before = f
            .cursor
            .as_deref()
            .map(|c| self.cursors.decode::<(i64, String)>(&scope, c))
            .transpose()
            .map_err(AppError::invalid)?
            .map(|(at, id)| {
                TitleId::parse(&id)
                    .map(|id| (Timestamp(at), id))
                    .map_err(|_| AppError::invalid(FieldError::new("cursor", "invalid", "is not a cursor")))
            })
            .transpose()?;
        let now = self.clock.now();
        let query = ListQuery {
            before,
            limit: f.limit + 1,
            max_maturity: profile.effective_maturity_limit(),
            available_at: f.available_only.then_some(now),
            hide_finished: self.ports.viewing.list_leaves_when_finished(profile_id).await?,
        };
        let mut entries = self.ports.viewing.list_page(profile_id, &query).await?;
        let next_cursor = if entries.len() > f.limit as usize {
            entries.truncate(f.limit as usize);
            entries
                .last()
                .map(|e| self.cursors.encode(&scope, &(e.added_at.0, e.title_id.as_str().to_owned())))
        } else {
            None
        };
        let titles = self.title_map(entries.iter().map(|e| e.title_id.clone())).await?;
        let refs: Vec<&Title> = titles.values().collect();
        let states = self.watch_states(profile_id, &refs).await?;
        let items = entries
            .into_iter()
            .filter_map(|e| {
                let t = titles.get(&e.title_id)?.clone();
                let s = states.get(&e.title_id).copied().unwrap_or_default();
                Some((t, e.added_at, s))
            })
            .collect();
        Ok(ListPage { items, next_cursor })
    }

    /// The profile's "leave My list when finished" option.
    pub async fn list_settings(&self, p: &Principal, profile_id: ProfileId) -> Result<bool, AppError> {
        self.reachable_profile(p, profile_id, Operation::GetListSettings).await?;
        Ok(self.ports.viewing.list_leaves_when_finished(profile_id).await?)
    }

    /// Set the profile's "leave My list when finished" option.
    pub async fn set_list_settings(
        &self,
        p: &Principal,
        profile_id: ProfileId,
        leave_when_finished: bool,
    ) -> Result<bool, AppError> {
        self.reachable_profile(p, profile_id, Operation::UpdateListSettings).await?;
        self.ports.viewing.set_list_leaves_when_finished(profile_id, leave_when_finished).await?;
        Ok(leave_when_finished)
    }

    /// Titles on the list, for the recommender's positive signal.
    pub(crate) async fn listed_titles(&self, profile: ProfileId) -> Result<Vec<TitleId>, AppError> {
        Ok(self.ports.viewing.list_titles(profile, LIST_SIGNAL_MAX).await?)
    }
}
