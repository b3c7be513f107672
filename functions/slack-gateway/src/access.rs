//! Who may use the bot. It answers with its own Jira and knowledge-base access, so by default only
//! full members of the installing workspace get answers: guests (`is_restricted` /
//! `is_ultra_restricted` in users.info) and users of other organisations in Slack Connect channels
//! (their team differs from the installing one) are refused unless ALLOW_GUESTS /
//! ALLOW_EXTERNAL_USERS say otherwise. The decision is pure; the users.info lookups are cached.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use shared::ports::{ChatClient, ChatError, SlackUser};

/// The reply a guest or external user gets instead of an answer.
pub const REFUSAL: &str =
    "Sorry, I can only help members of this workspace. Please ask a member of the workspace to look this up for you.";
/// The reply when who is asking could not be checked.
pub const CHECK_FAILED: &str = "Sorry, I couldn't confirm you can use me just now. Please try again in a moment.";
/// How long a users.info answer is reused.
const CACHE_TTL: Duration = Duration::from_secs(15 * 60);
/// Users cached at most per container (the cache is cleared when full).
const CACHE_MAX: usize = 10_000;

/// ALLOW_GUESTS and ALLOW_EXTERNAL_USERS (both default false).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    pub allow_guests: bool,
    pub allow_external_users: bool,
}

impl AccessPolicy {
    /// Reads the policy; a value that is not `true` / `false` fails init naming the variable.
    pub fn from_env() -> shared::Result<Self> {
        use shared::config::parsed;
        Ok(AccessPolicy {
            allow_guests: parsed("ALLOW_GUESTS", false)?,
            allow_external_users: parsed("ALLOW_EXTERNAL_USERS", false)?,
        })
    }

    /// Everyone may ask: no lookup needed.
    pub fn allows_everyone(&self) -> bool {
        self.allow_guests && self.allow_external_users
    }
}

/// Why a user is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A user of another team (Slack Connect).
    External,
    /// A guest of the installing workspace.
    Guest,
    /// users.info failed: refused rather than answered unchecked.
    CheckFailed,
}

impl Refusal {
    /// The error code recorded on the turn.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::External => "ExternalUser",
            Refusal::Guest => "GuestUser",
            Refusal::CheckFailed => "AccessCheckFailed",
        }
    }

    /// What the user is told.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::External | Refusal::Guest => REFUSAL,
            Refusal::CheckFailed => CHECK_FAILED,
        }
    }
}

/// Who asks, as far as the event says: the installing team, the user's team, and the
/// enterprise (Enterprise Grid org) of the installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asker<'a> {
    pub installing_team: &'a str,
    /// The event's `user_team` (or `source_team`), when Slack sent one.
    pub user_team: Option<&'a str>,
    /// The envelope's `enterprise_id`: in an org, teams differ between member workspaces.
    pub enterprise_id: Option<&'a str>,
}

/// Whether the event alone says the user is from another organisation (no lookup needed).
/// In an Enterprise Grid org the user's team may be another workspace of the same org, so
/// there the payload is not enough and users.info decides.
pub fn external_by_payload(asker: &Asker<'_>) -> bool {
    asker.enterprise_id.is_none() && asker.user_team.is_some_and(|t| !t.is_empty() && t != asker.installing_team)
}

/// The decision for a user, given what the payload says and (when looked up) users.info.
pub fn decide(policy: &AccessPolicy, asker: &Asker<'_>, user: Option<&SlackUser>) -> Option<Refusal> {
    let external = external_by_payload(asker)
        || user.is_some_and(|u| {
            let other_team = u.team_id.as_deref().is_some_and(|t| t != asker.installing_team);
            let same_org = asker.enterprise_id.is_some() && u.enterprise_id.as_deref() == asker.enterprise_id;
            u.is_stranger || (other_team && !same_org)
        });
    if external && !policy.allow_external_users {
        return Some(Refusal::External);
    }
    let guest = user.is_some_and(|u| u.is_restricted || u.is_ultra_restricted);
    if guest && !policy.allow_guests {
        return Some(Refusal::Guest);
    }
    None
}

/// users.info answers, per container: (when fetched, the user), by (team, user id).
type UserCache = Mutex<HashMap<(String, String), (Instant, SlackUser)>>;

fn cache() -> &'static UserCache {
    static CACHE: OnceLock<UserCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The user, from the per-container cache when fresh, else users.info.
pub async fn user(chat: &dyn ChatClient, team_id: &str, user_id: &str) -> Result<SlackUser, ChatError> {
    let key = (team_id.to_string(), user_id.to_string());
    if let Ok(cache) = cache().lock() {
        if let Some((at, user)) = cache.get(&key) {
            if at.elapsed() < CACHE_TTL {
                return Ok(user.clone());
            }
        }
    }
    let user = chat.user_info(user_id).await?;
    if let Ok(mut cache) = cache().lock() {
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), user.clone()));
    }
    Ok(user)
}

/// The refusal for this asker under `policy`, if any. Looks the user up only when the policy
/// and the payload leave the question open; a failed lookup refuses.
pub async fn check(chat: &dyn ChatClient, policy: &AccessPolicy, asker: &Asker<'_>, user_id: &str) -> Option<Refusal> {
    if policy.allows_everyone() {
        return None;
    }
    if let Some(refusal) = decide(policy, asker, None) {
        return Some(refusal);
    }
    match user(chat, asker.installing_team, user_id).await {
        Ok(found) => decide(policy, asker, Some(&found)),
        Err(e) => {
            tracing::error!(error = %e, "users.info failed; refusing rather than answering unchecked");
            Some(Refusal::CheckFailed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> SlackUser {
        SlackUser { team_id: Some("T1".into()), ..SlackUser::default() }
    }

    const HOME: Asker<'static> = Asker { installing_team: "T1", user_team: Some("T1"), enterprise_id: None };

    #[test]
    fn members_pass_guests_and_external_users_are_refused_by_default() {
        let deny = AccessPolicy::default();
        assert_eq!(decide(&deny, &HOME, Some(&member())), None);
        let guest = SlackUser { is_restricted: true, ..member() };
        let single_channel = SlackUser { is_ultra_restricted: true, ..member() };
        assert_eq!(decide(&deny, &HOME, Some(&guest)), Some(Refusal::Guest));
        assert_eq!(decide(&deny, &HOME, Some(&single_channel)), Some(Refusal::Guest));

        let connect = Asker { user_team: Some("T2"), ..HOME };
        assert!(external_by_payload(&connect));
        assert_eq!(decide(&deny, &connect, None), Some(Refusal::External), "decided from the payload alone");
        let stranger = SlackUser { is_stranger: true, ..member() };
        assert_eq!(decide(&deny, &HOME, Some(&stranger)), Some(Refusal::External));
        let other_team = SlackUser { team_id: Some("T9".into()), ..member() };
        assert_eq!(decide(&deny, &Asker { user_team: None, ..HOME }, Some(&other_team)), Some(Refusal::External));
    }

    #[test]
    fn the_parameters_let_them_in() {
        let guests = AccessPolicy { allow_guests: true, allow_external_users: false };
        let guest = SlackUser { is_restricted: true, ..member() };
        assert_eq!(decide(&guests, &HOME, Some(&guest)), None);
        let connect = Asker { user_team: Some("T2"), ..HOME };
        assert_eq!(decide(&guests, &connect, None), Some(Refusal::External));
        let external = AccessPolicy { allow_guests: false, allow_external_users: true };
        assert_eq!(decide(&external, &connect, Some(&member())), None);
        assert_eq!(decide(&external, &connect, Some(&guest)), Some(Refusal::Guest), "an external guest is a guest");
        assert!(AccessPolicy { allow_guests: true, allow_external_users: true }.allows_everyone());
    }

    #[test]
    fn another_workspace_of_the_same_org_is_not_external() {
        let grid = Asker { installing_team: "T1", user_team: Some("T7"), enterprise_id: Some("E1") };
        assert!(!external_by_payload(&grid));
        let colleague = SlackUser { team_id: Some("T7".into()), enterprise_id: Some("E1".into()), ..member() };
        assert_eq!(decide(&AccessPolicy::default(), &grid, Some(&colleague)), None);
        let outsider = SlackUser { team_id: Some("T8".into()), enterprise_id: Some("E2".into()), ..member() };
        assert_eq!(decide(&AccessPolicy::default(), &grid, Some(&outsider)), Some(Refusal::External));
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(Refusal::Guest.code(), "GuestUser");
        assert_eq!(Refusal::External.message(), REFUSAL);
        assert_eq!(Refusal::CheckFailed.message(), CHECK_FAILED);
    }
}
