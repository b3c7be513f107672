//! The per-user budget policy: what the user's spend so far lets a turn do.

use tracing::error;

use super::Worker;
use crate::work::MessageWork;

/// Per-user spend limits in USD (USER_DAILY_BUDGET_USD, USER_MONTHLY_BUDGET_USD).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budgets {
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

/// Share of a budget at which the answer carries a notice.
pub const BUDGET_NOTICE_SHARE: f64 = 0.8;

/// What the budget check decided for one turn.
#[derive(Debug, Clone, PartialEq)]
pub enum BudgetVerdict {
    /// Under every limit (or no limits).
    Ok,
    /// Close to a limit: answer, with this notice appended.
    Notice(String),
    /// At or over a limit: refuse with this message; the agent is not invoked.
    Refuse(String),
}

impl Budgets {
    /// Whether any limit is set (otherwise no spend is read).
    pub fn enabled(&self) -> bool {
        self.daily_usd.is_some() || self.monthly_usd.is_some()
    }

    /// Checks `spend` against the limits; `now` gives the reset times. Only priced tokens count.
    pub fn verdict(&self, spend: &shared::rollups::UserSpend, now: chrono::DateTime<chrono::Utc>) -> BudgetVerdict {
        self.verdict_counting_unpriced(spend, now, None)
    }

    /// As [`Budgets::verdict`], with the tokens of unpriced models counted at
    /// `unpriced_usd_per_million` (the worker passes the price table's highest rate): a model
    /// nobody priced yet must not be a way around the budget. The ledger keeps them unpriced;
    /// the notice and the refusal say how they were counted.
    pub fn verdict_counting_unpriced(
        &self,
        spend: &shared::rollups::UserSpend,
        now: chrono::DateTime<chrono::Utc>,
        unpriced_usd_per_million: Option<f64>,
    ) -> BudgetVerdict {
        let (day_end, month_end) = shared::rollups::period_ends(now);
        let counted = |s: &shared::rollups::Spend| match unpriced_usd_per_million {
            Some(rate) if s.unpriced_tokens > 0 => (
                s.cost_usd + s.unpriced_tokens as f64 * rate / 1_000_000.0,
                format!(
                    ", counting {} tokens of a model without a price at ${rate:.2} per million, the highest known rate",
                    s.unpriced_tokens
                ),
            ),
            _ => (s.cost_usd, String::new()),
        };
        let (day_used, day_note) = counted(&spend.day);
        let (month_used, month_note) = counted(&spend.month);
        let checks = [
            ("daily", self.daily_usd, day_used, day_note, day_end),
            ("monthly", self.monthly_usd, month_used, month_note, month_end),
        ];
        let mut notice = None;
        for (name, limit, used, note, resets) in checks {
            let Some(limit) = limit else { continue };
            if used >= limit {
                return BudgetVerdict::Refuse(format!(
                    "You've reached your {name} budget for this assistant (${used:.2} of ${limit:.2}{note}), so I can't answer right now. \
                     It resets {} ({}).",
                    resets.format("%Y-%m-%d %H:%M UTC"),
                    in_words(resets - now)
                ));
            }
            if used >= limit * BUDGET_NOTICE_SHARE && notice.is_none() {
                notice = Some(format!(
                    "_You've used {:.0}% of your {name} budget (${used:.2} of ${limit:.2}{note}); it resets {}._",
                    used / limit * 100.0,
                    resets.format("%Y-%m-%d %H:%M UTC")
                ));
            }
        }
        notice.map_or(BudgetVerdict::Ok, BudgetVerdict::Notice)
    }
}

fn in_words(d: chrono::TimeDelta) -> String {
    let mins = d.num_minutes().max(1);
    match mins {
        m if m < 60 => format!("in {m} min"),
        m if m < 48 * 60 => format!("in {} h {} min", m / 60, m % 60),
        m => format!("in {} days", m / (24 * 60)),
    }
}

impl Worker {
    /// The budget verdict for the asking user; no spend is read when no limit is set.
    pub(super) async fn check_budget(&self, m: &MessageWork) -> BudgetVerdict {
        let budgets = self.settings.budgets;
        if !budgets.enabled() {
            return BudgetVerdict::Ok;
        }
        let now = chrono::Utc::now();
        match self.spend.user_spend(&m.team_id, &m.user_id, now.date_naive()).await {
            Ok(spend) => budgets.verdict_counting_unpriced(&spend, now, self.prices.highest_rate_per_million()),
            Err(e) => {
                // An unreadable ledger must not take the bot down: answer, and say so loudly.
                self.metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", "BudgetCheck")]);
                error!(error = %e, event_id = %m.event_id, "could not read the user's spend; answering without a budget check");
                BudgetVerdict::Ok
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::rollups::{Spend, UserSpend};

    fn spend(day: f64, month: f64) -> UserSpend {
        UserSpend {
            day: Spend { cost_usd: day, ..Spend::default() },
            month: Spend { cost_usd: month, ..Spend::default() },
        }
    }

    #[test]
    fn unpriced_tokens_count_toward_a_budget_at_the_highest_known_rate_and_say_so() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T22:30:00Z").unwrap().with_timezone(&chrono::Utc);
        let b = Budgets { daily_usd: Some(1.0), monthly_usd: None };
        // Only an unpriced model: no priced cost at all, 200,000 tokens.
        let mut s = spend(0.0, 0.0);
        s.day.unpriced_tokens = 200_000;
        s.month.unpriced_tokens = 200_000;
        let rate = shared::pricing::PriceTable::embedded().highest_rate_per_million().expect("a priced model");
        assert!(rate >= 10.0, "{rate}");
        match b.verdict_counting_unpriced(&s, now, Some(rate)) {
            BudgetVerdict::Refuse(t) => {
                assert!(
                    t.contains("200000 tokens of a model without a price") && t.contains("highest known rate"),
                    "{t}"
                )
            }
            other => panic!("{other:?}"),
        }
        s.day.unpriced_tokens = 1_000_000 * 85 / 100 / rate as u64;
        match b.verdict_counting_unpriced(&s, now, Some(rate)) {
            BudgetVerdict::Notice(n) => assert!(n.contains("without a price") && n.contains("daily"), "{n}"),
            other => panic!("{other:?}"),
        }
        // Without unpriced tokens the message is as before.
        assert_eq!(b.verdict_counting_unpriced(&spend(0.5, 0.5), now, Some(rate)), BudgetVerdict::Ok);
    }

    #[test]
    fn budget_verdicts() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-23T22:30:00Z").unwrap().with_timezone(&chrono::Utc);
        let off = Budgets::default();
        assert!(!off.enabled());
        assert_eq!(off.verdict(&spend(1e9, 1e9), now), BudgetVerdict::Ok);

        let b = Budgets { daily_usd: Some(10.0), monthly_usd: Some(100.0) };
        assert_eq!(b.verdict(&spend(7.99, 50.0), now), BudgetVerdict::Ok);
        match b.verdict(&spend(8.5, 50.0), now) {
            BudgetVerdict::Notice(n) => assert!(n.contains("85%") && n.contains("daily"), "{n}"),
            other => panic!("{other:?}"),
        }
        match b.verdict(&spend(10.0, 50.0), now) {
            BudgetVerdict::Refuse(t) => {
                assert!(t.contains("daily") && t.contains("2026-11-24 00:00 UTC") && t.contains("in 1 h 30 min"), "{t}")
            }
            other => panic!("{other:?}"),
        }
        match b.verdict(&spend(0.0, 120.0), now) {
            BudgetVerdict::Refuse(t) => assert!(t.contains("monthly") && t.contains("2026-12-01 00:00 UTC"), "{t}"),
            other => panic!("{other:?}"),
        }
    }
}
