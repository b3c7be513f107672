//! "My usage": the asking user's spend and tokens for today, this month or a period, from the
//! usage rollups (keys in [`shared::rollups`]). Today and this month are two key lookups through
//! [`shared::ports::UsageReader`]; a period is the user's day rollups through
//! [`shared::ports::UsageHistory`] (both adapted by [`shared::aws::usage`]).

use chrono::{Datelike, Duration as Days, NaiveDate};
use serde_json::{json, Value};
use shared::rollups::{month_sk, Spend};

/// The longest period one question may cover.
pub const MAX_PERIOD_DAYS: i64 = 366;

/// Which figures the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsagePeriod {
    /// Today and this month (the default).
    TodayAndMonth,
    Today,
    ThisMonth,
    /// Inclusive UTC dates.
    Range {
        from: NaiveDate,
        to: NaiveDate,
    },
}

/// Period words the agent may pass.
pub const PERIODS: &str =
    "today, this_month, yesterday, last_7_days, last_30_days, last_month, or start_date/end_date as YYYY-MM-DD";

/// Reads the period from the `period`, `start_date` and `end_date` parameters. An error is the
/// user's to fix (a message to re-prompt with).
pub fn parse_period(
    period: Option<&str>,
    start_date: Option<&str>,
    end_date: Option<&str>,
    today: NaiveDate,
) -> Result<UsagePeriod, String> {
    let date = |name: &str, v: &str| {
        NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").map_err(|_| {
            format!("{name} must be a date like {}, not {:?}.", today.format("%Y-%m-%d"), crate::jira::cut(v, 40))
        })
    };
    let start = start_date.map(str::trim).filter(|s| !s.is_empty());
    let end = end_date.map(str::trim).filter(|s| !s.is_empty());
    if start.is_some() || end.is_some() {
        let Some(start) = start else {
            return Err("Give a start_date too (YYYY-MM-DD), or a period such as last_7_days.".into());
        };
        let from = date("start_date", start)?;
        let to = end.map(|e| date("end_date", e)).transpose()?.unwrap_or(today).min(today);
        if from > today {
            return Err("That period is in the future: there is no usage to show yet.".into());
        }
        return range(from, to);
    }
    let word = period.unwrap_or_default().trim().to_lowercase().replace(['-', ' '], "_");
    match word.as_str() {
        "" | "all" | "both" | "current" => Ok(UsagePeriod::TodayAndMonth),
        "today" | "day" => Ok(UsagePeriod::Today),
        "this_month" | "month" | "current_month" | "mtd" => Ok(UsagePeriod::ThisMonth),
        "yesterday" => {
            let y = today - Days::days(1);
            range(y, y)
        }
        "last_7_days" | "7_days" | "week" | "this_week" | "past_week" => range(today - Days::days(6), today),
        "last_30_days" | "30_days" | "past_month" => range(today - Days::days(29), today),
        "last_month" | "previous_month" => {
            let first_this = today.with_day(1).unwrap_or(today);
            let last_prev = first_this - Days::days(1);
            range(last_prev.with_day(1).unwrap_or(last_prev), last_prev)
        }
        _ => Err(format!("I don't know the period {:?}. Use {PERIODS}.", crate::jira::cut(&word, 40))),
    }
}

fn range(from: NaiveDate, to: NaiveDate) -> Result<UsagePeriod, String> {
    if from > to {
        return Err("start_date is after end_date.".into());
    }
    if (to - from).num_days() + 1 > MAX_PERIOD_DAYS {
        return Err(format!("That period is too long: at most {MAX_PERIOD_DAYS} days at a time."));
    }
    Ok(UsagePeriod::Range { from, to })
}

/// The figures of one period as the agent gets them.
pub fn spend_json(spend: &Spend) -> Value {
    json!({
        "cost_usd": (spend.cost_usd * 10_000.0).round() / 10_000.0,
        "input_tokens": spend.input_tokens,
        "output_tokens": spend.output_tokens,
        "total_tokens": spend.input_tokens + spend.output_tokens,
        "cache_read_tokens": spend.cache_read_tokens,
        "cache_write_tokens": spend.cache_write_tokens,
        "turns": spend.turns,
        "unpriced_tokens": spend.unpriced_tokens,
    })
}

/// Says what the figures mean, so the agent does not guess.
pub fn notes(unpriced: bool) -> Vec<&'static str> {
    let mut notes = vec!["Amounts are estimates in USD from the bot's price table; dates are UTC."];
    if unpriced {
        notes.push("Some tokens came from models without a price: they are counted in the tokens but not in cost_usd.");
    }
    notes
}

/// The month label of a day (`2026-04`), as the rollup key has it.
pub fn month_label(day: NaiveDate) -> String {
    month_sk(day).trim_start_matches("MONTH#").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn parses_periods() {
        let today = d("2026-03-15");
        let p = |period: Option<&str>, s: Option<&str>, e: Option<&str>| parse_period(period, s, e, today);
        assert_eq!(p(None, None, None), Ok(UsagePeriod::TodayAndMonth));
        assert_eq!(p(Some("Today"), None, None), Ok(UsagePeriod::Today));
        assert_eq!(p(Some("this month"), None, None), Ok(UsagePeriod::ThisMonth));
        assert_eq!(
            p(Some("yesterday"), None, None),
            Ok(UsagePeriod::Range { from: d("2026-03-14"), to: d("2026-03-14") })
        );
        assert_eq!(p(Some("last-7-days"), None, None), Ok(UsagePeriod::Range { from: d("2026-03-09"), to: today }));
        assert_eq!(p(Some("last_30_days"), None, None), Ok(UsagePeriod::Range { from: d("2026-02-14"), to: today }));
        assert_eq!(
            p(Some("last_month"), None, None),
            Ok(UsagePeriod::Range { from: d("2026-02-01"), to: d("2026-02-28") })
        );
        assert_eq!(
            p(Some("today"), Some("2026-03-01"), Some("2026-03-10")),
            Ok(UsagePeriod::Range { from: d("2026-03-01"), to: d("2026-03-10") }),
            "explicit dates win"
        );
        assert_eq!(p(None, Some("2026-03-01"), None), Ok(UsagePeriod::Range { from: d("2026-03-01"), to: today }));
        assert_eq!(
            p(None, Some("2026-03-01"), Some("2026-12-31")),
            Ok(UsagePeriod::Range { from: d("2026-03-01"), to: today }),
            "the future is cut off"
        );
    }

    #[test]
    fn refuses_unusable_periods_with_a_reason() {
        let today = d("2026-03-15");
        let e =
            |period: Option<&str>, s: Option<&str>, en: Option<&str>| parse_period(period, s, en, today).unwrap_err();
        assert!(e(Some("fortnight"), None, None).contains("last_7_days"));
        assert!(e(None, None, Some("2026-03-01")).contains("start_date"));
        assert!(e(None, Some("March 1st"), None).contains("start_date must be a date like 2026-03-15"));
        assert!(e(None, Some("2026-03-10"), Some("2026-03-01")).contains("after"));
        assert!(e(None, Some("2026-04-01"), None).contains("future"));
        assert!(e(None, Some("2024-01-01"), Some("2026-01-01")).contains("too long"));
    }

    #[test]
    fn sums_and_formats_spend() {
        let mut total = Spend::default();
        total += Spend { cost_usd: 0.123456, input_tokens: 10, output_tokens: 5, turns: 1, ..Spend::default() };
        total += Spend { cost_usd: 0.1, input_tokens: 1, unpriced_tokens: 7, turns: 1, ..Spend::default() };
        let v = spend_json(&total);
        assert_eq!(v["cost_usd"], 0.2235);
        assert_eq!(v["total_tokens"], 16);
        assert_eq!(v["turns"], 2);
        assert_eq!(v["unpriced_tokens"], 7);
        assert_eq!(notes(true).len(), 2);
        assert_eq!(month_label(d("2026-03-15")), "2026-03");
    }
}
