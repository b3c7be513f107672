//! From queue bodies to ledger writes: check and price usage records, derive the rollups each turn
//! feeds, combine them, and group turns into transactions.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Timelike, Utc};
use shared::domain::UsageRecord;
use shared::ledger::{CallCost, LedgerTurn, RollupDelta, RollupUpdate};
use shared::pricing::{call_tokens, PriceTable, Usd};
use shared::rollups::{
    agent_model_sk, day_pk, day_sk, hour_agent_sk, month_sk, registry_agent_sk, registry_user_sk, user_agent_sk,
    user_pk, user_usage_sk, AGENTS_PK, USERS_PK,
};

/// A turn with more model calls than this is refused (its ledger item must stay well under
/// DynamoDB's 400 KB item limit).
pub const MAX_CALLS_PER_TURN: usize = 1_000;

/// Longest accepted record id (it is part of a DynamoDB key).
const MAX_RECORD_ID_LEN: usize = 512;

/// Name of a model that reported no id.
const UNNAMED_MODEL: &str = "unknown";

/// Parses a message body into a usage record and its timestamp; Err says what is wrong (no
/// message content beyond field names and positions).
pub fn parse_record(body: &str) -> Result<(UsageRecord, DateTime<Utc>), String> {
    let record: UsageRecord = serde_json::from_str(body).map_err(|e| e.to_string())?;
    if record.record_id.trim().is_empty() || record.record_id.len() > MAX_RECORD_ID_LEN {
        return Err(format!("record_id must be 1-{MAX_RECORD_ID_LEN} characters"));
    }
    for (field, value) in [("team_id", &record.team_id), ("user_id", &record.user_id), ("agent_id", &record.agent_id)] {
        // These are parts of rollup keys, where '#' separates the parts.
        if value.trim().is_empty() || value.contains('#') {
            return Err(format!("{field} must be non-empty and without '#'"));
        }
    }
    if record.calls.len() > MAX_CALLS_PER_TURN {
        return Err(format!("{} model calls; at most {MAX_CALLS_PER_TURN} per turn", record.calls.len()));
    }
    let at = DateTime::parse_from_rfc3339(record.timestamp.trim())
        .map_err(|e| format!("timestamp is not RFC 3339: {e}"))?
        .with_timezone(&Utc);
    Ok((record, at))
}

/// Prices every call of a turn. Each call's cost is rounded to [`Usd`] units once, so the turn,
/// the ledger and every rollup add up exactly.
pub fn price_turn(record: UsageRecord, at: DateTime<Utc>, prices: &PriceTable) -> LedgerTurn {
    let calls: Vec<CallCost> = record
        .calls
        .iter()
        .map(|call| match prices.price(&call.model_id) {
            Some(price) => CallCost { model: price.model.clone(), cost: price.cost(call).map(Usd::from_f64) },
            None => CallCost { model: unpriced_label(&call.model_id), cost: None },
        })
        .collect();
    let priced_cost: Usd = calls.iter().filter_map(|c| c.cost).sum();
    let unpriced_tokens =
        record.calls.iter().zip(&calls).filter(|(_, priced)| priced.cost.is_none()).map(|(c, _)| call_tokens(c)).sum();
    // A turn whose agent reported no usage has an unknown cost, not a cost of zero.
    let all_priced = calls.iter().all(|c| c.cost.is_some()) && !record.tokens_unreported;
    LedgerTurn {
        record,
        at,
        calls,
        priced_cost,
        cost: all_priced.then_some(priced_cost),
        unpriced_tokens,
        price_table_version: prices.version().to_string(),
    }
}

fn unpriced_label(model_id: &str) -> String {
    let id = model_id.trim();
    if id.is_empty() {
        UNNAMED_MODEL.to_string()
    } else {
        id.to_string()
    }
}

/// What a set of calls adds to a rollup (turns not counted).
fn delta_of<'a>(calls: impl Iterator<Item = (&'a shared::domain::ModelCall, &'a CallCost)>) -> RollupDelta {
    let mut d = RollupDelta::default();
    for (call, priced) in calls {
        d.input_tokens += call.input_tokens;
        d.output_tokens += call.output_tokens;
        d.cache_read_tokens += call.cache_read_tokens;
        d.cache_write_tokens += call.cache_write_tokens;
        match priced.cost {
            Some(c) => d.cost += c,
            None => d.unpriced_tokens += call_tokens(call),
        }
    }
    d
}

/// The rollup items one turn adds to (see [`shared::rollups`] for the keys).
pub fn rollups_of(turn: &LedgerTurn) -> Vec<RollupUpdate> {
    let r = &turn.record;
    let day = turn.at.date_naive();
    let mut totals = delta_of(r.calls.iter().zip(&turn.calls));
    totals.turns = 1;
    let user = user_pk(&r.team_id, &r.user_id);
    let label = |k: &str, v: &str| (k.to_string(), v.to_string());
    let mut out = vec![
        RollupUpdate { pk: user.clone(), sk: day_sk(day), delta: totals, labels: vec![] },
        RollupUpdate { pk: user.clone(), sk: month_sk(day), delta: totals, labels: vec![] },
        RollupUpdate {
            pk: day_pk(day),
            sk: hour_agent_sk(turn.at.hour(), &r.agent_id),
            delta: totals,
            labels: vec![label("agent_id", &r.agent_id), label("hour", &format!("{:02}", turn.at.hour()))],
        },
        RollupUpdate {
            pk: day_pk(day),
            sk: user_agent_sk(&r.team_id, &r.user_id, &r.agent_id),
            delta: totals,
            labels: vec![label("team_id", &r.team_id), label("user_id", &r.user_id), label("agent_id", &r.agent_id)],
        },
        RollupUpdate {
            pk: USERS_PK.to_string(),
            sk: registry_user_sk(&r.team_id, &r.user_id),
            delta: totals,
            labels: vec![label("team_id", &r.team_id), label("user_id", &r.user_id)],
        },
        RollupUpdate {
            pk: AGENTS_PK.to_string(),
            sk: registry_agent_sk(&r.agent_id),
            delta: totals,
            labels: vec![label("agent_id", &r.agent_id)],
        },
    ];
    let mut models: Vec<&str> = Vec::new();
    for c in &turn.calls {
        if !models.contains(&c.model.as_str()) {
            models.push(&c.model);
        }
    }
    for model in models {
        let mut delta = delta_of(r.calls.iter().zip(&turn.calls).filter(|(_, p)| p.model == model));
        delta.turns = 1;
        out.push(RollupUpdate {
            pk: day_pk(day),
            sk: agent_model_sk(&r.agent_id, model),
            delta,
            labels: vec![label("agent_id", &r.agent_id), label("model_id", model)],
        });
        out.push(RollupUpdate {
            pk: user.clone(),
            sk: user_usage_sk(day, &r.agent_id, model),
            delta,
            labels: vec![label("agent_id", &r.agent_id), label("model_id", model)],
        });
    }
    out
}

/// The rollups of several turns, combined per item (one update per item), in key order.
pub fn combined_rollups(turns: &[&LedgerTurn]) -> Vec<RollupUpdate> {
    let mut items: BTreeMap<(String, String), RollupUpdate> = BTreeMap::new();
    for turn in turns {
        for r in rollups_of(turn) {
            match items.get_mut(&(r.pk.clone(), r.sk.clone())) {
                Some(existing) => existing.delta += r.delta,
                None => {
                    items.insert((r.pk.clone(), r.sk.clone()), r);
                }
            }
        }
    }
    items.into_values().collect()
}

/// Groups turns into transactions of at most `max_actions` actions (one put per turn and one
/// update per distinct rollup item). A user's turns are kept together so that their day and
/// month rollups combine into one update.
pub fn chunks(mut turns: Vec<LedgerTurn>, max_actions: usize) -> Vec<Vec<LedgerTurn>> {
    turns.sort_by(|a, b| {
        (&a.record.team_id, &a.record.user_id, a.at).cmp(&(&b.record.team_id, &b.record.user_id, b.at))
    });
    let mut groups: Vec<Vec<LedgerTurn>> = Vec::new();
    for turn in turns {
        match groups.last_mut() {
            Some(g) if g[0].record.team_id == turn.record.team_id && g[0].record.user_id == turn.record.user_id => {
                g.push(turn)
            }
            _ => groups.push(vec![turn]),
        }
    }
    let keys_of = |t: &LedgerTurn| rollups_of(t).into_iter().map(|r| (r.pk, r.sk)).collect::<Vec<_>>();
    let mut out: Vec<Vec<LedgerTurn>> = Vec::new();
    let mut current: Vec<LedgerTurn> = Vec::new();
    let mut keys: HashSet<(String, String)> = HashSet::new();
    for group in groups {
        let group_keys: HashSet<(String, String)> = group.iter().flat_map(keys_of).collect();
        let needed = group.len() + group_keys.difference(&keys).count();
        if !current.is_empty() && current.len() + keys.len() + needed > max_actions {
            out.push(std::mem::take(&mut current));
            keys.clear();
        }
        // Turn by turn: only a single user's turns exceeding a whole transaction split here.
        for turn in group {
            let own = keys_of(&turn);
            let new_keys = own.iter().filter(|k| !keys.contains(*k)).count();
            if !current.is_empty() && current.len() + 1 + keys.len() + new_keys > max_actions {
                out.push(std::mem::take(&mut current));
                keys.clear();
            }
            keys.extend(own);
            current.push(turn);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Actions a write of `turns` needs.
pub fn actions_for(turns: &[&LedgerTurn]) -> usize {
    turns.len() + combined_rollups(turns).len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::ModelCall;

    fn record(id: &str, user: &str, ts: &str, calls: Vec<(&str, u64, u64)>) -> UsageRecord {
        UsageRecord {
            record_id: id.into(),
            timestamp: ts.into(),
            user_id: user.into(),
            team_id: "T1".into(),
            channel_id: "C1".into(),
            thread_id: "1.2".into(),
            agent_id: "AGENT1".into(),
            agent_alias_id: "ALIAS1".into(),
            agent_backend: Default::default(),
            tokens_unreported: false,
            calls: calls
                .into_iter()
                .map(|(m, i, o)| ModelCall {
                    model_id: m.into(),
                    input_tokens: i,
                    output_tokens: o,
                    step: "orchestration".into(),
                    ..ModelCall::default()
                })
                .collect(),
        }
    }

    const SONNET: &str = "us.anthropic.claude-3-5-sonnet-20241022-v2:0";
    const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    #[test]
    fn parse_refuses_what_cannot_be_keyed_or_dated() {
        let ok =
            serde_json::to_string(&record("r1", "U1", "2026-01-31T23:59:59.500Z", vec![(SONNET, 1, 1)])).expect("json");
        let (rec, at) = parse_record(&ok).expect("valid");
        assert_eq!((rec.record_id.as_str(), at.to_rfc3339()), ("r1", "2026-01-31T23:59:59.500+00:00".to_string()));
        let bad = |mutate: fn(&mut UsageRecord)| {
            let mut r = record("r1", "U1", "2026-01-31T23:59:59Z", vec![]);
            mutate(&mut r);
            parse_record(&serde_json::to_string(&r).expect("json")).expect_err("refused")
        };
        assert!(bad(|r| r.record_id.clear()).contains("record_id"));
        assert!(bad(|r| r.user_id = "U#1".into()).contains("user_id"));
        assert!(bad(|r| r.timestamp = "yesterday".into()).contains("timestamp"));
        assert!(parse_record("{\"record_id\": 1}").is_err());
        assert!(parse_record("not json").is_err());
    }

    #[test]
    fn a_turn_feeds_user_day_month_hour_and_one_item_per_model() {
        let prices = PriceTable::embedded();
        let rec = record(
            "r1",
            "U1",
            "2026-01-31T23:10:00Z",
            vec![(SONNET, 1_000, 500), (HAIKU, 1_000_000, 0), ("x.new", 7, 3)],
        );
        let at = DateTime::parse_from_rfc3339(&rec.timestamp).expect("ts").with_timezone(&Utc);
        let turn = price_turn(rec, at, &prices);
        assert_eq!(turn.cost, None, "one call is unpriced");
        assert_eq!(turn.priced_cost.to_string(), "0.2605");
        assert_eq!(turn.unpriced_tokens, 10);
        let keys: Vec<(String, String)> = rollups_of(&turn).into_iter().map(|r| (r.pk, r.sk)).collect();
        let expect = |pk: &str, sk: &str| (pk.to_string(), sk.to_string());
        assert_eq!(
            keys,
            vec![
                expect("USER#T1#U1", "DAY#2026-01-31"),
                expect("USER#T1#U1", "MONTH#2026-01"),
                expect("DAY#2026-01-31", "HOUR#23#AGENT#AGENT1"),
                expect("DAY#2026-01-31", "USER#T1#U1#AGENT#AGENT1"),
                expect("USERS", "USER#T1#U1"),
                expect("AGENTS", "AGENT#AGENT1"),
                expect("DAY#2026-01-31", "AGENT#AGENT1#MODEL#anthropic.claude-3-5-sonnet-20241022"),
                expect("USER#T1#U1", "USAGE#2026-01-31#AGENT#AGENT1#MODEL#anthropic.claude-3-5-sonnet-20241022"),
                expect("DAY#2026-01-31", "AGENT#AGENT1#MODEL#anthropic.claude-3-haiku-20240307"),
                expect("USER#T1#U1", "USAGE#2026-01-31#AGENT#AGENT1#MODEL#anthropic.claude-3-haiku-20240307"),
                expect("DAY#2026-01-31", "AGENT#AGENT1#MODEL#x.new"),
                expect("USER#T1#U1", "USAGE#2026-01-31#AGENT#AGENT1#MODEL#x.new"),
            ]
        );
        let rollups = rollups_of(&turn);
        assert_eq!(rollups[0].delta.cost, turn.priced_cost);
        assert_eq!((rollups[0].delta.turns, rollups[0].delta.unpriced_tokens), (1, 10));
        for r in &rollups[3..6] {
            assert_eq!(r.delta, rollups[0].delta, "day x user x agent and the registries see the whole turn");
        }
        let per_model: Usd = rollups[6..].iter().step_by(2).map(|r| r.delta.cost).sum();
        assert_eq!(per_model, turn.priced_cost);
        let per_user_model: Usd = rollups[7..].iter().step_by(2).map(|r| r.delta.cost).sum();
        assert_eq!(per_user_model, turn.priced_cost);
        assert_eq!((rollups[10].delta.unpriced_tokens, rollups[11].delta.unpriced_tokens), (10, 10));
    }

    #[test]
    fn rollups_combine_and_chunks_respect_the_transaction_limit() {
        let prices = PriceTable::embedded();
        let turns: Vec<LedgerTurn> = (0..60)
            .map(|i| {
                let rec =
                    record(&format!("r{i}"), &format!("U{}", i % 20), "2026-02-01T10:00:00Z", vec![(SONNET, 10, 10)]);
                let at = DateTime::parse_from_rfc3339(&rec.timestamp).expect("ts").with_timezone(&Utc);
                price_turn(rec, at, &prices)
            })
            .collect();
        let refs: Vec<&LedgerTurn> = turns.iter().collect();
        // 20 users x (day + month + day x agent + user x model + registry) + 1 hour item + 1 model
        // item + 1 agent registry item.
        let combined = combined_rollups(&refs);
        assert_eq!(combined.len(), 103);
        assert_eq!(combined.iter().map(|r| r.delta.turns).sum::<u64>(), 60 * 8);
        let chunks = chunks(turns, 30);
        assert!(chunks.len() > 1);
        let mut seen = 0;
        for c in &chunks {
            let refs: Vec<&LedgerTurn> = c.iter().collect();
            assert!(actions_for(&refs) <= 30, "{}", actions_for(&refs));
            // A user's turns stay in one chunk.
            for t in c {
                let same_user =
                    chunks.iter().filter(|o| o.iter().any(|x| x.record.user_id == t.record.user_id)).count();
                assert_eq!(same_user, 1);
            }
            seen += c.len();
        }
        assert_eq!(seen, 60);
    }
}
