//! The daily cost report: yesterday's totals by agent, model, user and hour; the change against
//! the day before and the 7-day average; month to date with a linear forecast; unpriced tokens;
//! satisfaction when there is feedback; and the last 30 days' cost by model for the chart. Built
//! from day rollups only (at most 31 day partitions), whatever the number of turns.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;
use serde_json::{json, Value};

use shared::rollups::{DayRollups, Feedback, Spend};

/// How many users the report lists.
pub const TOP_USERS: usize = 10;
/// Days of history in the chart.
pub const CHART_DAYS: i64 = 30;

/// A [`Spend`] as the reports and the API show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SpendView {
    pub cost_usd: f64,
    pub turns: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub total_tokens: u64,
    pub unpriced_tokens: u64,
}

impl From<Spend> for SpendView {
    fn from(s: Spend) -> Self {
        SpendView {
            cost_usd: round_usd(s.cost_usd),
            turns: s.turns,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cache_read_tokens: s.cache_read_tokens,
            cache_write_tokens: s.cache_write_tokens,
            total_tokens: s.input_tokens + s.output_tokens + s.cache_read_tokens + s.cache_write_tokens,
            unpriced_tokens: s.unpriced_tokens,
        }
    }
}

/// Rounds to a millionth of a dollar (the ledger's own precision), hiding float noise.
pub fn round_usd(v: f64) -> f64 {
    (v * 1_000_000.0).round() / 1_000_000.0
}

/// A cost compared with a reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Change {
    pub reference_usd: f64,
    pub delta_usd: f64,
    /// None when the reference is zero.
    pub percent: Option<f64>,
}

impl Change {
    pub fn of(current: f64, reference: f64) -> Change {
        let percent = (reference.abs() > 1e-12).then(|| ((current - reference) / reference * 1000.0).round() / 10.0);
        Change { reference_usd: round_usd(reference), delta_usd: round_usd(current - reference), percent }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentLine {
    pub agent_id: String,
    pub name: String,
    #[serde(flatten)]
    pub spend: SpendView,
    pub unique_users: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelLine {
    pub model: String,
    #[serde(flatten)]
    pub spend: SpendView,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserLine {
    pub team_id: String,
    pub user_id: String,
    #[serde(flatten)]
    pub spend: SpendView,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HourLine {
    pub hour: u32,
    pub cost_usd: f64,
    pub turns: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthToDate {
    pub month: String,
    pub cost_usd: f64,
    pub turns: u64,
    pub days_elapsed: u32,
    pub days_in_month: u32,
    /// Month to date extended at its average daily cost to the month's end.
    pub forecast_usd: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Satisfaction {
    pub positive: u64,
    pub negative: u64,
    /// Share of positive ratings, 0-1.
    pub score: f64,
}

impl Satisfaction {
    pub fn of(f: Feedback) -> Option<Satisfaction> {
        f.score().map(|score| Satisfaction {
            positive: f.positive,
            negative: f.negative,
            score: (score * 1000.0).round() / 1000.0,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayModelCost {
    pub date: String,
    pub by_model: BTreeMap<String, f64>,
}

/// The report written to `reports/daily/DATE.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyReport {
    pub date: String,
    pub totals: SpendView,
    pub vs_previous_day: Change,
    pub vs_7_day_average: Change,
    pub by_agent: Vec<AgentLine>,
    pub by_model: Vec<ModelLine>,
    pub top_users: Vec<UserLine>,
    pub by_hour: Vec<HourLine>,
    pub month_to_date: MonthToDate,
    /// Models that reported tokens the price table does not know.
    pub unpriced_models: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub satisfaction: Option<Satisfaction>,
    /// The last 30 days' cost by model, oldest first (the chart).
    pub daily_cost_by_model: Vec<DayModelCost>,
}

/// The days a report on `date` reads: the last 30 days and the month so far.
pub fn days_needed(date: NaiveDate) -> Vec<NaiveDate> {
    let first = (date - Duration::days(CHART_DAYS - 1)).min(date.with_day(1).unwrap_or(date));
    first.iter_days().take_while(|d| *d <= date).collect()
}

fn days_in_month(date: NaiveDate) -> u32 {
    let (y, m) = if date.month() == 12 { (date.year() + 1, 1) } else { (date.year(), date.month() + 1) };
    NaiveDate::from_ymd_opt(y, m, 1).and_then(|d| d.pred_opt()).map_or(30, |d| d.day())
}

/// Spend per agent and unique users per agent of one day.
pub fn agent_lines(day: &DayRollups, names: &BTreeMap<String, String>) -> Vec<AgentLine> {
    let mut spend: BTreeMap<&str, Spend> = BTreeMap::new();
    for h in &day.hours {
        *spend.entry(&h.agent_id).or_default() += h.spend;
    }
    let mut users: HashMap<&str, BTreeSet<(&str, &str)>> = HashMap::new();
    for u in &day.users {
        users.entry(&u.agent_id).or_default().insert((&u.team_id, &u.user_id));
    }
    let mut lines: Vec<AgentLine> = spend
        .into_iter()
        .map(|(agent, s)| AgentLine {
            agent_id: agent.to_string(),
            name: names.get(agent).cloned().unwrap_or_else(|| agent.to_string()),
            spend: s.into(),
            unique_users: users.get(agent).map_or(0, BTreeSet::len),
        })
        .collect();
    lines.sort_by(|a, b| b.spend.cost_usd.total_cmp(&a.spend.cost_usd).then_with(|| a.agent_id.cmp(&b.agent_id)));
    lines
}

/// Spend per model of one day (turns: turns that called the model).
pub fn model_lines(day: &DayRollups) -> Vec<ModelLine> {
    let mut spend: BTreeMap<&str, Spend> = BTreeMap::new();
    for m in &day.models {
        *spend.entry(&m.model).or_default() += m.spend;
    }
    let mut lines: Vec<ModelLine> =
        spend.into_iter().map(|(model, s)| ModelLine { model: model.to_string(), spend: s.into() }).collect();
    lines.sort_by(|a, b| b.spend.cost_usd.total_cmp(&a.spend.cost_usd).then_with(|| a.model.cmp(&b.model)));
    lines
}

/// Spend per user over some days, most expensive first.
pub fn user_lines<'a>(days: impl IntoIterator<Item = &'a DayRollups>) -> Vec<UserLine> {
    let mut spend: BTreeMap<(&str, &str), Spend> = BTreeMap::new();
    for day in days {
        for u in &day.users {
            *spend.entry((&u.team_id, &u.user_id)).or_default() += u.spend;
        }
    }
    let mut lines: Vec<UserLine> = spend
        .into_iter()
        .map(|((t, u), s)| UserLine { team_id: t.to_string(), user_id: u.to_string(), spend: s.into() })
        .collect();
    lines.sort_by(|a, b| {
        b.spend
            .cost_usd
            .total_cmp(&a.spend.cost_usd)
            .then_with(|| (&a.team_id, &a.user_id).cmp(&(&b.team_id, &b.user_id)))
    });
    lines
}

/// Builds the report on `date` from the day rollups (missing days count as no usage).
pub fn build(date: NaiveDate, days: &BTreeMap<NaiveDate, DayRollups>, names: &BTreeMap<String, String>) -> DailyReport {
    let empty = DayRollups::default();
    let get = |d: NaiveDate| days.get(&d).unwrap_or(&empty);
    let today = get(date);
    let totals = today.total();
    let previous = get(date - Duration::days(1)).total().cost_usd;
    let week_avg = (1..=7).map(|i| get(date - Duration::days(i)).total().cost_usd).sum::<f64>() / 7.0;

    let mut by_hour: Vec<HourLine> = (0..24).map(|hour| HourLine { hour, cost_usd: 0.0, turns: 0 }).collect();
    for h in &today.hours {
        if let Some(line) = by_hour.get_mut(h.hour as usize) {
            line.cost_usd += h.spend.cost_usd;
            line.turns += h.spend.turns;
        }
    }
    for line in &mut by_hour {
        line.cost_usd = round_usd(line.cost_usd);
    }

    let month_start = date.with_day(1).unwrap_or(date);
    let mut mtd = Spend::default();
    for d in month_start.iter_days().take_while(|d| *d <= date) {
        mtd += get(d).total();
    }
    let (elapsed, in_month) = (date.day(), days_in_month(date));
    let forecast = mtd.cost_usd / f64::from(elapsed) * f64::from(in_month);

    let mut feedback = Feedback::default();
    for (_, f) in &today.feedback {
        feedback += *f;
    }

    let unpriced_models: BTreeSet<String> =
        today.models.iter().filter(|m| m.spend.unpriced_tokens > 0).map(|m| m.model.clone()).collect();

    let daily_cost_by_model = (0..CHART_DAYS)
        .rev()
        .map(|i| {
            let d = date - Duration::days(i);
            let mut by_model: BTreeMap<String, f64> = BTreeMap::new();
            for m in &get(d).models {
                *by_model.entry(m.model.clone()).or_default() += m.spend.cost_usd;
            }
            by_model.values_mut().for_each(|v| *v = round_usd(*v));
            DayModelCost { date: d.format("%Y-%m-%d").to_string(), by_model }
        })
        .collect();

    let mut top_users = user_lines([today]);
    top_users.truncate(TOP_USERS);
    DailyReport {
        date: date.format("%Y-%m-%d").to_string(),
        totals: totals.into(),
        vs_previous_day: Change::of(totals.cost_usd, previous),
        vs_7_day_average: Change::of(totals.cost_usd, week_avg),
        by_agent: agent_lines(today, names),
        by_model: model_lines(today),
        top_users,
        by_hour,
        month_to_date: MonthToDate {
            month: date.format("%Y-%m").to_string(),
            cost_usd: round_usd(mtd.cost_usd),
            turns: mtd.turns,
            days_elapsed: elapsed,
            days_in_month: in_month,
            forecast_usd: round_usd(forecast),
        },
        unpriced_models: unpriced_models.into_iter().collect(),
        satisfaction: Satisfaction::of(feedback),
        daily_cost_by_model,
    }
}

fn usd(v: f64) -> String {
    if v.abs() < 0.01 && v != 0.0 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

fn change_text(c: &Change) -> String {
    match c.percent {
        Some(p) => format!("{}{:.1}% ({})", if p >= 0.0 { "+" } else { "" }, p, usd(c.reference_usd)),
        None => "n/a (no spend before)".to_string(),
    }
}

/// The report's one-line notification text.
pub fn summary_text(r: &DailyReport) -> String {
    format!(
        "Bedrock cost report for {}: {} over {} turns ({} vs the day before)",
        r.date,
        usd(r.totals.cost_usd),
        r.totals.turns,
        change_text(&r.vs_previous_day)
    )
}

/// The Block Kit summary posted to Slack.
pub fn blocks(r: &DailyReport) -> Value {
    let list = |lines: Vec<String>| if lines.is_empty() { "_none_".to_string() } else { lines.join("\n") };
    let agents = list(
        r.by_agent
            .iter()
            .take(5)
            .map(|a| {
                format!("• {}: {} ({} turns, {} users)", a.name, usd(a.spend.cost_usd), a.spend.turns, a.unique_users)
            })
            .collect(),
    );
    let models =
        list(r.by_model.iter().take(5).map(|m| format!("• `{}`: {}", m.model, usd(m.spend.cost_usd))).collect());
    let users = list(
        r.top_users
            .iter()
            .take(5)
            .map(|u| format!("• <@{}>: {} ({} turns)", u.user_id, usd(u.spend.cost_usd), u.spend.turns))
            .collect(),
    );
    let busiest = r.by_hour.iter().max_by(|a, b| a.cost_usd.total_cmp(&b.cost_usd)).filter(|h| h.turns > 0);
    let mut out = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": format!("Bedrock cost report: {}", r.date)}}),
        json!({"type": "section", "fields": [
            {"type": "mrkdwn", "text": format!("*Total*\n{} ({} turns)", usd(r.totals.cost_usd), r.totals.turns)},
            {"type": "mrkdwn", "text": format!("*Tokens*\n{} in / {} out", r.totals.input_tokens, r.totals.output_tokens)},
            {"type": "mrkdwn", "text": format!("*vs day before*\n{}", change_text(&r.vs_previous_day))},
            {"type": "mrkdwn", "text": format!("*vs 7-day average*\n{}", change_text(&r.vs_7_day_average))},
            {"type": "mrkdwn", "text": format!("*Month to date ({})*\n{}", r.month_to_date.month, usd(r.month_to_date.cost_usd))},
            {"type": "mrkdwn", "text": format!("*Forecast to month end*\n{}", usd(r.month_to_date.forecast_usd))},
        ]}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*By agent*\n{agents}")}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*By model*\n{models}")}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Top users*\n{users}")}}),
    ];
    let mut context = Vec::new();
    if let Some(h) = busiest {
        context.push(format!("Busiest hour: {:02}:00 UTC ({})", h.hour, usd(h.cost_usd)));
    }
    if let Some(s) = r.satisfaction {
        context.push(format!("Satisfaction: {:.0}% ({} up, {} down)", s.score * 100.0, s.positive, s.negative));
    }
    if r.totals.unpriced_tokens > 0 {
        context.push(format!(
            ":warning: {} unpriced tokens (not in the price table): {}",
            r.totals.unpriced_tokens,
            r.unpriced_models.join(", ")
        ));
    }
    if !context.is_empty() {
        out.push(json!({"type": "context", "elements": context.into_iter().map(|t| json!({"type": "mrkdwn", "text": t})).collect::<Vec<_>>()}));
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::rollups::{AgentModelSpend, HourSpend, UserAgentSpend};

    fn spend(cost: f64, turns: u64) -> Spend {
        Spend { cost_usd: cost, turns, input_tokens: turns * 100, output_tokens: turns * 10, ..Spend::default() }
    }

    fn day(cost: f64) -> DayRollups {
        DayRollups {
            models: vec![
                AgentModelSpend { agent_id: "A1".into(), model: "m-big".into(), spend: spend(cost * 0.75, 4) },
                AgentModelSpend { agent_id: "A2".into(), model: "m-small".into(), spend: spend(cost * 0.25, 2) },
            ],
            hours: vec![
                HourSpend { hour: 9, agent_id: "A1".into(), spend: spend(cost * 0.75, 4) },
                HourSpend { hour: 14, agent_id: "A2".into(), spend: spend(cost * 0.25, 2) },
            ],
            users: vec![
                UserAgentSpend {
                    team_id: "T".into(),
                    user_id: "U1".into(),
                    agent_id: "A1".into(),
                    spend: spend(cost * 0.5, 3),
                },
                UserAgentSpend {
                    team_id: "T".into(),
                    user_id: "U2".into(),
                    agent_id: "A1".into(),
                    spend: spend(cost * 0.25, 1),
                },
                UserAgentSpend {
                    team_id: "T".into(),
                    user_id: "U2".into(),
                    agent_id: "A2".into(),
                    spend: spend(cost * 0.25, 2),
                },
            ],
            feedback: vec![("A1".into(), Feedback { positive: 3, negative: 1 })],
        }
    }

    #[test]
    fn the_report_compares_forecasts_and_ranks() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let mut days = BTreeMap::new();
        for (i, d) in days_needed(date).into_iter().enumerate() {
            days.insert(d, day(if d == date { 20.0 } else { 10.0 + (i % 2) as f64 }));
        }
        // Days 1..9 of March alternate 10/11; the day before the report is index 37-... compute.
        let r = build(date, &days, &BTreeMap::from([("A1".to_string(), "Helpdesk".to_string())]));
        assert_eq!(r.totals.cost_usd, 20.0);
        assert_eq!(r.totals.turns, 6);
        let prev = days[&(date - Duration::days(1))].total().cost_usd;
        assert_eq!(r.vs_previous_day.reference_usd, prev);
        assert_eq!(r.vs_previous_day.percent, Some(((20.0 - prev) / prev * 1000.0).round() / 10.0));
        assert_eq!(r.by_agent[0].name, "Helpdesk");
        assert_eq!((r.by_agent[0].unique_users, r.by_agent[1].unique_users), (2, 1));
        assert_eq!(r.by_model[0].model, "m-big");
        assert_eq!(r.top_users[0].user_id, "U1");
        assert_eq!((r.top_users[1].user_id.as_str(), r.top_users[1].spend.turns), ("U2", 3));
        assert_eq!(r.by_hour.len(), 24);
        assert_eq!(r.by_hour[9].cost_usd, 15.0);
        let mtd: f64 = (1..=10).map(|d| days[&NaiveDate::from_ymd_opt(2026, 3, d).unwrap()].total().cost_usd).sum();
        assert_eq!(r.month_to_date.cost_usd, round_usd(mtd));
        assert_eq!(r.month_to_date.forecast_usd, round_usd(mtd / 10.0 * 31.0));
        assert_eq!(r.satisfaction.map(|s| s.score), Some(0.75));
        assert_eq!(r.daily_cost_by_model.len(), 30);
        assert_eq!(r.daily_cost_by_model[29].date, "2026-03-10");
        assert!(
            days_needed(date).len() == 30 && days_needed(NaiveDate::from_ymd_opt(2026, 3, 31).unwrap()).len() == 31
        );
        let text = serde_json::to_string(&blocks(&r)).unwrap();
        assert!(text.contains("Helpdesk") && text.contains("Satisfaction: 75%"), "{text}");
    }

    #[test]
    fn no_usage_reports_zero_without_dividing_by_zero() {
        let date = NaiveDate::from_ymd_opt(2026, 2, 1).unwrap();
        let r = build(date, &BTreeMap::new(), &BTreeMap::new());
        assert_eq!((r.totals.cost_usd, r.vs_previous_day.percent, r.satisfaction), (0.0, None, None));
        assert_eq!((r.month_to_date.forecast_usd, r.month_to_date.days_in_month), (0.0, 28));
        assert!(summary_text(&r).contains("n/a"));
    }
}
