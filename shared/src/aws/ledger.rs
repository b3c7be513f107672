//! The priced usage ledger in USAGE_TABLE: one item per turn (`TURN#{record_id}` / `TURN`) and
//! the rollups reports read (keys in [`crate::rollups`]). [`DynamoDbLedger`], the adapter of
//! [`TokenLedger`], writes a set of turns and their combined rollup ADDs in one
//! TransactWriteItems, each turn's put conditional on the turn not being in the ledger yet: the
//! rollups move exactly when, and only when, a turn is recorded for the first time.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, Put, TransactWriteItem, Update};
use chrono::{SecondsFormat, Utc};

use crate::ledger::{Cancellation, LedgerError, LedgerFailure, LedgerTurn, RollupUpdate, WriteOutcome};
use crate::ports::TokenLedger;
use crate::pricing::Usd;
use crate::rollups::SPEND_ATTRIBUTES;
use crate::{Error, Result};

/// Sort key of every ledger item.
pub const LEDGER_SK: &str = "TURN";

/// Partition key of a turn's ledger item.
pub fn ledger_pk(record_id: &str) -> String {
    format!("TURN#{record_id}")
}

/// The ledger and rollups in a DynamoDB table with keys `pk` and `sk`.
#[derive(Debug, Clone)]
pub struct DynamoDbLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbLedger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbLedger { client, table: table.into() }
    }

    /// The table written to.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn put_turn(&self, turn: &LedgerTurn) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(ledger_item(turn)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn update_rollup(&self, rollup: &RollupUpdate) -> Result<TransactWriteItem> {
        let d = &rollup.delta;
        let amounts = [
            d.cost.to_string(),
            d.input_tokens.to_string(),
            d.output_tokens.to_string(),
            d.cache_read_tokens.to_string(),
            d.cache_write_tokens.to_string(),
            d.turns.to_string(),
            d.unpriced_tokens.to_string(),
        ];
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut adds = Vec::new();
        for (i, (name, amount)) in SPEND_ATTRIBUTES.iter().zip(amounts).enumerate() {
            names.insert(format!("#a{i}"), name.to_string());
            values.insert(format!(":a{i}"), AttributeValue::N(amount));
            adds.push(format!("#a{i} :a{i}"));
        }
        let mut expression = format!("ADD {}", adds.join(", "));
        let sets: Vec<String> = rollup
            .labels
            .iter()
            .enumerate()
            .map(|(i, (name, value))| {
                names.insert(format!("#l{i}"), name.clone());
                values.insert(format!(":l{i}"), AttributeValue::S(value.clone()));
                format!("#l{i} = :l{i}")
            })
            .collect();
        if !sets.is_empty() {
            expression.push_str(&format!(" SET {}", sets.join(", ")));
        }
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(rollup.pk.clone()))
            .key("sk", AttributeValue::S(rollup.sk.clone()))
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[async_trait]
impl TokenLedger for DynamoDbLedger {
    async fn write(
        &self,
        turns: &[&LedgerTurn],
        rollups: &[RollupUpdate],
        token: &str,
    ) -> Result<WriteOutcome, LedgerError> {
        // Turns first: a cancellation reason's index is then the turn's index.
        let mut actions = Vec::with_capacity(turns.len() + rollups.len());
        for turn in turns {
            actions.push(self.put_turn(turn).map_err(failure)?);
        }
        for rollup in rollups {
            actions.push(self.update_rollup(rollup).map_err(failure)?);
        }
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .client_request_token(token)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(WriteOutcome::Committed),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    Ok(WriteOutcome::Cancelled(classify(c.cancellation_reasons(), turns.len())))
                }
                _ => Err(failure(Error::from_sdk("dynamodb", "TransactWriteItems", e))),
            },
        }
    }
}

/// What a failed TransactWriteItems means for the writer, from DynamoDB's error code.
fn failure(error: Error) -> LedgerError {
    let code = error.code();
    let kind = match code.as_str() {
        c if is_throttle_code(c) => LedgerFailure::Throttled,
        "ValidationException" => LedgerFailure::Invalid,
        // The same token's request is still being applied: repeating it is safe.
        "TransactionInProgressException" => LedgerFailure::Transient,
        _ if error.is_retryable() => LedgerFailure::Transient,
        _ => LedgerFailure::Failed,
    };
    LedgerError { kind, error }
}

/// Whether a DynamoDB error or cancellation-reason code is throttling.
fn is_throttle_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "ThrottlingError"
            | "ProvisionedThroughputExceeded"
    )
}

/// Reads DynamoDB's cancellation reasons (one per action, in request order).
fn classify(reasons: &[CancellationReason], turns: usize) -> Cancellation {
    let mut out = Cancellation::default();
    for (i, reason) in reasons.iter().enumerate() {
        let code = reason.code().unwrap_or("None");
        let message = reason.message().unwrap_or_default();
        match code {
            "None" => {}
            "ConditionalCheckFailed" if i < turns => out.already_logged.push(i),
            "TransactionConflict" => out.conflict = true,
            c if is_throttle_code(c) => out.throttled = true,
            c if i < turns => out.rejected.push((i, format!("{c}: {message}"))),
            c => out.other = Some(format!("{c} on rollup action {}: {message}", i - turns)),
        }
    }
    if reasons.is_empty() {
        out.other = Some("cancelled without reasons".into());
    }
    out
}

/// The ledger item of a turn: the record, every call priced, the turn's totals and cost.
pub fn ledger_item(turn: &LedgerTurn) -> HashMap<String, AttributeValue> {
    let r = &turn.record;
    let s = |v: &str| AttributeValue::S(v.to_string());
    let n = |v: u64| AttributeValue::N(v.to_string());
    let usd = |v: Option<Usd>| v.map_or(AttributeValue::Null(true), |c| AttributeValue::N(c.to_string()));
    let calls: Vec<AttributeValue> = r
        .calls
        .iter()
        .zip(&turn.calls)
        .map(|(c, priced)| {
            AttributeValue::M(HashMap::from([
                ("model_id".to_string(), s(&c.model_id)),
                ("model".to_string(), s(&priced.model)),
                ("step".to_string(), s(&c.step)),
                ("input_tokens".to_string(), n(c.input_tokens)),
                ("output_tokens".to_string(), n(c.output_tokens)),
                ("cache_read_tokens".to_string(), n(c.cache_read_tokens)),
                ("cache_write_tokens".to_string(), n(c.cache_write_tokens)),
                ("latency_ms".to_string(), n(c.latency_ms)),
                ("cost_usd".to_string(), usd(priced.cost)),
            ]))
        })
        .collect();
    let sum = |f: fn(&crate::domain::ModelCall) -> u64| r.calls.iter().map(f).sum::<u64>();
    HashMap::from([
        ("pk".to_string(), s(&ledger_pk(&r.record_id))),
        ("sk".to_string(), s(LEDGER_SK)),
        ("record_id".to_string(), s(&r.record_id)),
        ("timestamp".to_string(), s(&r.timestamp)),
        ("user_id".to_string(), s(&r.user_id)),
        ("team_id".to_string(), s(&r.team_id)),
        ("channel_id".to_string(), s(&r.channel_id)),
        ("thread_id".to_string(), s(&r.thread_id)),
        ("agent_id".to_string(), s(&r.agent_id)),
        ("agent_alias_id".to_string(), s(&r.agent_alias_id)),
        ("agent_backend".to_string(), s(r.agent_backend.as_str())),
        ("tokens_unreported".to_string(), AttributeValue::Bool(r.tokens_unreported)),
        ("calls".to_string(), AttributeValue::L(calls)),
        ("input_tokens".to_string(), n(sum(|c| c.input_tokens))),
        ("output_tokens".to_string(), n(sum(|c| c.output_tokens))),
        ("cache_read_tokens".to_string(), n(sum(|c| c.cache_read_tokens))),
        ("cache_write_tokens".to_string(), n(sum(|c| c.cache_write_tokens))),
        ("cost_usd".to_string(), usd(turn.cost)),
        ("priced_cost_usd".to_string(), usd(Some(turn.priced_cost))),
        ("unpriced_tokens".to_string(), n(turn.unpriced_tokens)),
        ("price_table_version".to_string(), s(&turn.price_table_version)),
        ("logged_at".to_string(), s(&Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true))),
    ])
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> Error {
    Error::Malformed { what: "ledger request", reason: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).message("m").build()
    }

    #[test]
    fn cancellation_reasons_are_attributed_to_turns_and_rollups() {
        let reasons = [
            reason("None"),
            reason("ConditionalCheckFailed"),
            reason("ValidationError"),
            reason("ThrottlingError"),
            reason("TransactionConflict"),
        ];
        let c = classify(&reasons, 3);
        assert_eq!(c.already_logged, vec![1]);
        assert_eq!(c.rejected, vec![(2, "ValidationError: m".to_string())]);
        assert!(c.throttled && c.conflict && c.other.is_none());
        let c = classify(&[reason("None"), reason("ValidationError")], 1);
        assert_eq!(c.other.as_deref(), Some("ValidationError on rollup action 0: m"));
        assert!(classify(&[], 0).other.is_some());
    }

    #[test]
    fn the_adapter_reads_its_own_error_codes() {
        let aws = |code: &str, retryable: bool| Error::Aws {
            service: "dynamodb",
            operation: "TransactWriteItems",
            code: code.into(),
            message: "m".into(),
            retryable,
        };
        let kind = |e| failure(e).kind;
        assert_eq!(kind(aws("ProvisionedThroughputExceededException", true)), LedgerFailure::Throttled);
        assert_eq!(kind(aws("RequestLimitExceeded", true)), LedgerFailure::Throttled);
        assert_eq!(kind(aws("TransactionInProgressException", false)), LedgerFailure::Transient);
        assert_eq!(kind(aws("Timeout", true)), LedgerFailure::Transient);
        assert_eq!(kind(aws("ValidationException", false)), LedgerFailure::Invalid);
        assert_eq!(kind(aws("AccessDeniedException", false)), LedgerFailure::Failed);
        assert_eq!(kind(Error::Malformed { what: "ledger request", reason: "r".into() }), LedgerFailure::Failed);
    }
}
