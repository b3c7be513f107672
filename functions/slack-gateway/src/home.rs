//! The App Home tab: each user's own spend and turns against their budget, the last days as a
//! small chart, and the agents they use most.
//!
//! Read from the usage rollups through the same ports as budgets and the action group's "my
//! usage" ([`UsageReader`], [`UsageHistory`], [`RollupStore`]), by the user's own keys only:
//! nothing about another user is read or shown. The ingress queues `app_home_opened` (one per
//! user and minute, see [`crate::work::HOME_REFRESH_MS`]); the worker reads and publishes. A
//! failed publish is counted and not retried: the next open of the tab publishes again.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration as Days, NaiveDate, Utc};
use serde_json::{json, Value};
use shared::ports::{ChatClient, RollupStore, UsageHistory, UsageReader};
use shared::rollups::{Spend, UserSpend};
use shared::telemetry::Metrics;
use tracing::{info, warn};

use crate::classify::Decision;
use crate::work::{HomeWork, WorkItem};

/// Days in the chart, today included.
pub const CHART_DAYS: i64 = 14;
/// Agents listed at most.
pub const TOP_AGENTS: usize = 5;
/// Width of the chart's longest bar, in characters.
const BAR_WIDTH: usize = 20;

/// The rollup reads behind the Home tab besides the user's day and month spend (which come
/// through the budgets' [`UsageReader`]).
#[derive(Clone)]
pub struct HomeSources {
    pub days: Arc<dyn UsageHistory>,
    pub usage: Arc<dyn RollupStore>,
}

/// One agent's use by the user this month.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentUse {
    pub agent_id: String,
    /// Turns (per day, the most any one model of the agent counted), and cost.
    pub turns: u64,
    pub cost_usd: f64,
}

/// The user's budgets (USER_DAILY_BUDGET_USD, USER_MONTHLY_BUDGET_USD; None = no limit). The
/// worker's own type is not used: the ingress classifies with this module and must not link
/// the worker's code (tests/tests/permissions.rs holds each binary to its own calls).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

/// What the Home tab shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HomeFigures {
    pub spend: UserSpend,
    /// The last [`CHART_DAYS`] days, oldest first, days without usage at zero.
    pub days: Vec<(NaiveDate, Spend)>,
    /// This month's agents, most used first.
    pub agents: Vec<AgentUse>,
}

/// `app_home_opened`: the Home tab is queued, the Messages tab ignored; anything else is drift.
pub fn classify_home_opened(event: &Value, event_id: &str, team_id: &str, received_at_ms: i64) -> Decision {
    let event_type = "app_home_opened".to_string();
    let user = event.get("user").and_then(Value::as_str).filter(|u| !u.is_empty());
    match (event.get("tab").and_then(Value::as_str), user) {
        (Some("messages"), _) => Decision::Ignore { event_type, reason: "Messages tab opened" },
        (Some("home"), Some(user)) => Decision::Accept(Box::new(WorkItem::Home(HomeWork {
            event_id: event_id.to_string(),
            team_id: team_id.to_string(),
            user_id: user.to_string(),
            received_at_ms,
        }))),
        (Some("home"), None) => Decision::Drift { event_type, detail: "user missing".into() },
        (tab, _) => Decision::Drift { event_type, detail: format!("unexpected tab {tab:?}") },
    }
}

/// Reads the user's figures as of `today` (UTC).
pub async fn read_figures(
    spend: &dyn UsageReader,
    sources: &HomeSources,
    team: &str,
    user: &str,
    today: NaiveDate,
) -> shared::Result<HomeFigures> {
    let from = today - Days::days(CHART_DAYS - 1);
    let month_start = today.with_day(1).unwrap_or(today);
    let (spend, days, usage) = futures::try_join!(
        spend.user_spend(team, user, today),
        sources.days.days(team, user, from, today),
        sources.usage.user_usage(team, user, month_start, today),
    )?;
    let days = (0..CHART_DAYS)
        .map(|n| from + Days::days(n))
        .map(|d| (d, days.iter().find(|(day, _)| *day == d).map(|(_, s)| *s).unwrap_or_default()))
        .collect();
    let mut agents: Vec<AgentUse> = Vec::new();
    let mut per_day: Vec<(NaiveDate, String, u64)> = Vec::new();
    for u in usage {
        match agents.iter_mut().find(|a| a.agent_id == u.agent_id) {
            Some(a) => a.cost_usd += u.spend.cost_usd,
            None => agents.push(AgentUse { agent_id: u.agent_id.clone(), turns: 0, cost_usd: u.spend.cost_usd }),
        }
        // Model items count the turns that called the model: a turn calling two models is in
        // both, so a day's turns with an agent are the most any one of its models counted.
        match per_day.iter_mut().find(|(d, a, _)| *d == u.day && *a == u.agent_id) {
            Some((_, _, turns)) => *turns = (*turns).max(u.spend.turns),
            None => per_day.push((u.day, u.agent_id, u.spend.turns)),
        }
    }
    for (_, agent, turns) in per_day {
        if let Some(a) = agents.iter_mut().find(|a| a.agent_id == agent) {
            a.turns += turns;
        }
    }
    agents.sort_by(|a, b| b.turns.cmp(&a.turns).then(b.cost_usd.total_cmp(&a.cost_usd)));
    agents.truncate(TOP_AGENTS);
    Ok(HomeFigures { spend, days, agents })
}

fn section(mrkdwn: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": mrkdwn } })
}

fn context(mrkdwn: &str) -> Value {
    json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": mrkdwn }] })
}

/// `$used` and, with a limit, `of $limit (N%)`.
fn against(used: f64, limit: Option<f64>) -> String {
    match limit {
        Some(limit) => format!("${used:.2} of ${limit:.2} ({:.0}%)", used / limit * 100.0),
        None => format!("${used:.2} (no limit)"),
    }
}

/// The Home view's blocks for `figures`, read at `now`.
pub fn view(figures: &HomeFigures, budgets: &Limits, now: DateTime<Utc>) -> Vec<Value> {
    let month = &figures.spend.month;
    let mut blocks =
        vec![json!({ "type": "header", "text": { "type": "plain_text", "text": "Your assistant usage" } })];
    let empty = month.turns == 0 && figures.days.iter().all(|(_, s)| s.turns == 0) && figures.agents.is_empty();
    if empty {
        blocks.push(section(
            "You haven't asked me anything this month yet. :wave:\nMention me in a channel or send me a message, and your usage shows up here.",
        ));
    }
    blocks.push(section(&format!(
        "*This month ({})*: {} · {} {}\n*Today*: {} · {} {}",
        now.format("%B %Y"),
        against(month.cost_usd, budgets.monthly_usd),
        month.turns,
        if month.turns == 1 { "turn" } else { "turns" },
        against(figures.spend.day.cost_usd, budgets.daily_usd),
        figures.spend.day.turns,
        if figures.spend.day.turns == 1 { "turn" } else { "turns" },
    )));
    if !empty {
        blocks.push(json!({ "type": "divider" }));
        blocks.push(section(&format!("*Last {CHART_DAYS} days*\n```\n{}\n```", chart(&figures.days))));
        if !figures.agents.is_empty() {
            let lines: Vec<String> = figures
                .agents
                .iter()
                .map(|a| format!("• `{}`: {} turns, ${:.2}", a.agent_id, a.turns, a.cost_usd))
                .collect();
            blocks.push(section(&format!("*Most used agents this month*\n{}", lines.join("\n"))));
        }
    }
    let mut note = format!("As of {} UTC. Amounts are estimates in USD.", now.format("%Y-%m-%d %H:%M"));
    if month.unpriced_tokens > 0 {
        note.push_str(&format!(" {} tokens of models without a price are not in the amounts.", month.unpriced_tokens));
    }
    blocks.push(context(&note));
    blocks
}

/// The last days as text: date, a bar scaled to the busiest day's cost, cost and turns.
fn chart(days: &[(NaiveDate, Spend)]) -> String {
    let top = days.iter().map(|(_, s)| s.cost_usd).fold(0.0_f64, f64::max);
    days.iter()
        .map(|(day, s)| {
            let width = if top > 0.0 { (s.cost_usd / top * BAR_WIDTH as f64).round() as usize } else { 0 };
            let width = if s.turns > 0 { width.max(1) } else { width };
            format!(
                "{} {:<w$} ${:>6.2} {:>3}",
                day.format("%b %d"),
                "█".repeat(width),
                s.cost_usd,
                s.turns,
                w = BAR_WIDTH
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Shown when the rollups cannot be read.
pub fn unavailable_view() -> Vec<Value> {
    vec![section("I couldn't read your usage just now. Open this tab again in a minute.")]
}

/// Reads the user's figures and publishes their Home tab.
pub async fn publish(
    chat: &dyn ChatClient,
    spend: &dyn UsageReader,
    sources: &HomeSources,
    budgets: &Limits,
    h: &HomeWork,
    metrics: &Metrics,
) {
    let now = Utc::now();
    let blocks = match read_figures(spend, sources, &h.team_id, &h.user_id, now.date_naive()).await {
        Ok(figures) => view(&figures, budgets, now),
        Err(e) => {
            metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", &e.code())]);
            warn!(error = %e, event_id = %h.event_id, "could not read the user's usage for the Home tab");
            unavailable_view()
        }
    };
    match chat.publish_home(&h.user_id, &blocks).await {
        Ok(()) => info!(event_id = %h.event_id, "Home tab published"),
        Err(e) => {
            metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", "SlackViewsPublish")]);
            warn!(error = %e, event_id = %h.event_id, "could not publish the Home tab");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn text(blocks: &[Value]) -> String {
        serde_json::to_string(blocks).unwrap()
    }

    #[test]
    fn the_view_shows_the_month_against_the_budget_the_chart_and_the_agents() {
        let now = DateTime::parse_from_rfc3339("2026-04-14T09:30:00Z").unwrap().with_timezone(&Utc);
        let spent = |cost_usd, turns| Spend { cost_usd, turns, ..Spend::default() };
        let mut days: Vec<(NaiveDate, Spend)> =
            (0..CHART_DAYS).map(|n| (day("2026-04-01") + Days::days(n), Spend::default())).collect();
        days[12].1 = spent(1.0, 4);
        days[13].1 = spent(0.25, 1);
        let figures = HomeFigures {
            spend: UserSpend { day: spent(0.25, 1), month: spent(3.5, 12) },
            days,
            agents: vec![AgentUse { agent_id: "AGENT12345".into(), turns: 12, cost_usd: 3.5 }],
        };
        let budgets = Limits { daily_usd: Some(1.0), monthly_usd: Some(10.0) };
        let shown = text(&view(&figures, &budgets, now));
        assert!(shown.contains("*This month (April 2026)*: $3.50 of $10.00 (35%) · 12 turns"), "{shown}");
        assert!(shown.contains("*Today*: $0.25 of $1.00 (25%) · 1 turn"), "{shown}");
        assert!(shown.contains(&format!("Apr 13 {} $  1.00   4", "█".repeat(BAR_WIDTH))), "{shown}");
        assert!(shown.contains("Apr 01"), "{shown}");
        assert!(shown.contains("`AGENT12345`: 12 turns, $3.50"), "{shown}");
        assert!(!shown.contains("haven't asked"), "{shown}");
        assert!(text(&view(&figures, &Limits::default(), now)).contains("$3.50 (no limit)"));
    }

    #[test]
    fn a_user_without_usage_gets_a_friendly_empty_view() {
        let now = DateTime::parse_from_rfc3339("2026-04-14T09:30:00Z").unwrap().with_timezone(&Utc);
        let shown = text(&view(&HomeFigures::default(), &Limits::default(), now));
        assert!(shown.contains("haven't asked me anything this month yet"), "{shown}");
        assert!(!shown.contains("Last 14 days") && !shown.contains("Most used"), "{shown}");
    }

    #[test]
    fn only_the_home_tab_is_queued() {
        let home = serde_json::json!({"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home"});
        assert!(matches!(classify_home_opened(&home, "Ev1", "T1", 0), Decision::Accept(_)));
        let messages = serde_json::json!({"type": "app_home_opened", "user": "U1", "tab": "messages"});
        assert!(matches!(classify_home_opened(&messages, "Ev1", "T1", 0), Decision::Ignore { .. }));
        let odd = serde_json::json!({"type": "app_home_opened", "user": "U1", "tab": "about"});
        assert!(matches!(classify_home_opened(&odd, "Ev1", "T1", 0), Decision::Drift { .. }));
        let no_user = serde_json::json!({"type": "app_home_opened", "tab": "home"});
        assert!(matches!(classify_home_opened(&no_user, "Ev1", "T1", 0), Decision::Drift { .. }));
    }
}
