//! Keys and shapes of the usage rollups in USAGE_TABLE. token-logging writes them; budgets, the
//! action group's "my usage" and the reports read them with key lookups, never scans.
//!
//! | item                | pk                         | sk                                  |
//! |---------------------|----------------------------|-------------------------------------|
//! | user x day          | `USER#{team}#{user}`       | `DAY#{YYYY-MM-DD}`                  |
//! | user x month        | `USER#{team}#{user}`       | `MONTH#{YYYY-MM}`                   |
//! | day x agent x model | `DAY#{YYYY-MM-DD}`         | `AGENT#{agent}#MODEL#{model}`       |
//! | day x hour x agent  | `DAY#{YYYY-MM-DD}`         | `HOUR#{HH}#AGENT#{agent}`           |
//! | day x user x agent  | `DAY#{YYYY-MM-DD}`         | `USER#{team}#{user}#AGENT#{agent}`  |
//! | user x day x agent x model | `USER#{team}#{user}` | `USAGE#{YYYY-MM-DD}#AGENT#{agent}#MODEL#{model}` |
//! | day x agent feedback | `DAY#{YYYY-MM-DD}`        | `FEEDBACK#AGENT#{agent}`            |
//! | user registry       | `USERS`                    | `USER#{team}#{user}`                |
//! | agent registry      | `AGENTS`                   | `AGENT#{agent}`                     |
//! | ledger (one turn)   | `TURN#{record_id}`         | `TURN`                              |
//!
//! Dates and hours are UTC. Every rollup item carries the numeric attributes of [`Spend`]; `DAY#`
//! items also carry `agent_id` and `model_id` or `hour` as strings, so one Query on `DAY#{date}`
//! (`begins_with(sk, "AGENT#")` or `"HOUR#"`) reads a whole day for reports. `{model}` is the
//! price-table key (the reported id when unpriced); there `turns` counts turns that called the model.
//!
//! The day x user x agent items (labels `team_id`, `user_id`, `agent_id`) list who was active on a
//! day and with which agent (unique users, users with usage) at one item per active user and
//! agent, whatever the number of turns. The user x day x agent x model items (labels `agent_id`,
//! `model_id`) give one user's cost allocation with one Query on the user's `USAGE#` range. The
//! feedback item carries [`FEEDBACK_ATTRIBUTES`] (counts ADDed by whoever records feedback).
//! The registries (lifetime totals, labelled like the day x user x agent items) list every user
//! and agent ever seen with one Query each, for "users with no usage" and "unused agents".

use chrono::{DateTime, Datelike, NaiveDate, Utc};

/// Partition key of a user's rollups.
pub fn user_pk(team_id: &str, user_id: &str) -> String {
    format!("USER#{team_id}#{user_id}")
}

/// Sort key of a day rollup.
pub fn day_sk(day: NaiveDate) -> String {
    format!("DAY#{}", day.format("%Y-%m-%d"))
}

/// Sort key of a month rollup.
pub fn month_sk(day: NaiveDate) -> String {
    format!("MONTH#{:04}-{:02}", day.year(), day.month())
}

/// Partition key of a day's agent rollups.
pub fn day_pk(day: NaiveDate) -> String {
    day_sk(day)
}

/// Sort key of a day x agent x model rollup.
pub fn agent_model_sk(agent_id: &str, model: &str) -> String {
    format!("AGENT#{agent_id}#MODEL#{model}")
}

/// Sort key of a day x hour x agent rollup (`hour` 0-23, UTC).
pub fn hour_agent_sk(hour: u32, agent_id: &str) -> String {
    format!("HOUR#{hour:02}#AGENT#{agent_id}")
}

/// Sort key of a day x user x agent rollup (in the day's partition).
pub fn user_agent_sk(team_id: &str, user_id: &str, agent_id: &str) -> String {
    format!("USER#{team_id}#{user_id}#AGENT#{agent_id}")
}

/// Sort key of a user x day x agent x model rollup (in the user's partition).
pub fn user_usage_sk(day: NaiveDate, agent_id: &str, model: &str) -> String {
    format!("USAGE#{}#AGENT#{agent_id}#MODEL#{model}", day.format("%Y-%m-%d"))
}

/// Sort key of a day x agent feedback rollup (in the day's partition).
pub fn feedback_sk(agent_id: &str) -> String {
    format!("FEEDBACK#AGENT#{agent_id}")
}

/// Partition key of the user registry.
pub const USERS_PK: &str = "USERS";

/// Partition key of the agent registry.
pub const AGENTS_PK: &str = "AGENTS";

/// Sort key of a user in the user registry.
pub fn registry_user_sk(team_id: &str, user_id: &str) -> String {
    format!("USER#{team_id}#{user_id}")
}

/// Sort key of an agent in the agent registry.
pub fn registry_agent_sk(agent_id: &str) -> String {
    format!("AGENT#{agent_id}")
}

/// Numeric attributes of a feedback rollup: answers rated helpful and not helpful.
pub const FEEDBACK_ATTRIBUTES: [&str; 2] = ["positive", "negative"];

/// What a rollup item adds up. `cost_usd` excludes unpriced tokens (counted apart).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spend {
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub turns: u64,
    pub unpriced_tokens: u64,
}

impl std::ops::AddAssign for Spend {
    fn add_assign(&mut self, b: Spend) {
        self.cost_usd += b.cost_usd;
        self.input_tokens += b.input_tokens;
        self.output_tokens += b.output_tokens;
        self.cache_read_tokens += b.cache_read_tokens;
        self.cache_write_tokens += b.cache_write_tokens;
        self.turns += b.turns;
        self.unpriced_tokens += b.unpriced_tokens;
    }
}

/// Numeric attribute names of a rollup item, in [`Spend`] field order.
pub const SPEND_ATTRIBUTES: [&str; 7] = [
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "turns",
    "unpriced_tokens",
];

/// A user's spend today and this month.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UserSpend {
    pub day: Spend,
    pub month: Spend,
}

/// One agent's spend on one model in a day.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentModelSpend {
    pub agent_id: String,
    pub model: String,
    pub spend: Spend,
}

/// One agent's spend in one hour (UTC) of a day.
#[derive(Debug, Clone, PartialEq)]
pub struct HourSpend {
    pub hour: u32,
    pub agent_id: String,
    pub spend: Spend,
}

/// One user's spend with one agent in a day.
#[derive(Debug, Clone, PartialEq)]
pub struct UserAgentSpend {
    pub team_id: String,
    pub user_id: String,
    pub agent_id: String,
    pub spend: Spend,
}

/// Feedback on one agent's answers in a day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Feedback {
    pub positive: u64,
    pub negative: u64,
}

impl Feedback {
    /// Share of positive ratings (0-1), None without ratings.
    pub fn score(&self) -> Option<f64> {
        let total = self.positive + self.negative;
        (total > 0).then(|| self.positive as f64 / total as f64)
    }
}

impl std::ops::AddAssign for Feedback {
    fn add_assign(&mut self, o: Feedback) {
        self.positive += o.positive;
        self.negative += o.negative;
    }
}

/// Everything the rollups hold for one UTC day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayRollups {
    pub models: Vec<AgentModelSpend>,
    pub hours: Vec<HourSpend>,
    pub users: Vec<UserAgentSpend>,
    /// agent id -> feedback.
    pub feedback: Vec<(String, Feedback)>,
}

impl DayRollups {
    /// The day's totals (turns counted once each, from the hour items).
    pub fn total(&self) -> Spend {
        let mut t = Spend::default();
        for h in &self.hours {
            t += h.spend;
        }
        t
    }
}

/// One user's spend with one agent and model in a day.
#[derive(Debug, Clone, PartialEq)]
pub struct UserUsage {
    pub day: NaiveDate,
    pub agent_id: String,
    pub model: String,
    pub spend: Spend,
}

/// A user the registry knows, with lifetime totals.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownUser {
    pub team_id: String,
    pub user_id: String,
    pub spend: Spend,
}

/// When the current day and month end (UTC), for "your budget resets at" messages.
pub fn period_ends(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = now.date_naive();
    let tomorrow = today.succ_opt().unwrap_or(today);
    let (y, m) = if today.month() == 12 { (today.year() + 1, 1) } else { (today.year(), today.month() + 1) };
    let next_month = NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(tomorrow);
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or(now);
    (midnight(tomorrow), midnight(next_month))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_period_ends() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        assert_eq!(user_pk("T1", "U1"), "USER#T1#U1");
        assert_eq!(day_sk(d), "DAY#2026-12-31");
        assert_eq!(month_sk(d), "MONTH#2026-12");
        assert_eq!(user_agent_sk("T1", "U1", "A1"), "USER#T1#U1#AGENT#A1");
        assert_eq!(user_usage_sk(d, "A1", "m"), "USAGE#2026-12-31#AGENT#A1#MODEL#m");
        assert_eq!(feedback_sk("A1"), "FEEDBACK#AGENT#A1");
        let now = d.and_hms_opt(13, 0, 0).unwrap().and_utc();
        let (day_end, month_end) = period_ends(now);
        assert_eq!(day_end.to_rfc3339(), "2027-01-01T00:00:00+00:00");
        assert_eq!(month_end.to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }
}
