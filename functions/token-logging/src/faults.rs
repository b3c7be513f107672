//! A ledger that fails the way DynamoDB does, around a real one, for the tests of the writer and
//! the handler in this crate and end to end over moto (feature `test-support`): one fault model,
//! so both layers mean the same thing by "throttled" or "the answer was lost".

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use shared::ledger::{Cancellation, LedgerError, LedgerFailure, LedgerTurn, RollupUpdate, WriteOutcome};
use shared::ports::TokenLedger;

/// How a failing call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerFault {
    /// The request is throttled (ProvisionedThroughputExceededException): nothing written.
    Throttled,
    /// The transaction is cancelled for throttling: nothing written.
    ThrottledCancellation,
    /// Written, then the answer is lost (a timeout after DynamoDB applied the transaction).
    LostAnswer,
    /// Refused as invalid (an oversized item): nothing written, retrying cannot help.
    Refused,
}

/// Which calls fail: by their number (1 = the first call) and the turns they carry.
type Rule = Box<dyn Fn(u32, &[&LedgerTurn]) -> bool + Send + Sync>;

/// Delegates to `inner`, failing the calls its rule picks with its fault.
pub struct FaultyLedger {
    inner: Arc<dyn TokenLedger>,
    fault: LedgerFault,
    rule: Rule,
    calls: AtomicU32,
    healed: AtomicBool,
}

impl FaultyLedger {
    /// Fails the calls `rule(call number, turns)` picks.
    pub fn new(
        inner: Arc<dyn TokenLedger>,
        fault: LedgerFault,
        rule: impl Fn(u32, &[&LedgerTurn]) -> bool + Send + Sync + 'static,
    ) -> Self {
        FaultyLedger { inner, fault, rule: Box::new(rule), calls: AtomicU32::new(0), healed: AtomicBool::new(false) }
    }

    /// Fails the first `n` calls.
    pub fn first(inner: Arc<dyn TokenLedger>, fault: LedgerFault, n: u32) -> Self {
        FaultyLedger::new(inner, fault, move |call, _| call <= n)
    }

    /// Fails every call that carries the turn of `record_id`.
    pub fn refusing(inner: Arc<dyn TokenLedger>, record_id: &'static str) -> Self {
        FaultyLedger::new(inner, LedgerFault::Refused, move |_, turns| {
            turns.iter().any(|t| t.record.record_id == record_id)
        })
    }

    /// From now on every call goes through.
    pub fn heal(&self) {
        self.healed.store(true, Ordering::SeqCst);
    }

    /// Calls made so far.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

fn aws_error(kind: LedgerFailure, code: &str, message: &str, retryable: bool) -> LedgerError {
    LedgerError {
        kind,
        error: shared::Error::Aws {
            service: "dynamodb",
            operation: "TransactWriteItems",
            code: code.into(),
            message: message.into(),
            retryable,
        },
    }
}

#[async_trait]
impl TokenLedger for FaultyLedger {
    async fn write(
        &self,
        turns: &[&LedgerTurn],
        rollups: &[RollupUpdate],
        token: &str,
    ) -> Result<WriteOutcome, LedgerError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.healed.load(Ordering::SeqCst) || !(self.rule)(call, turns) {
            return self.inner.write(turns, rollups, token).await;
        }
        match self.fault {
            LedgerFault::Throttled => Err(aws_error(
                LedgerFailure::Throttled,
                "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded",
                true,
            )),
            LedgerFault::ThrottledCancellation => {
                Ok(WriteOutcome::Cancelled(Cancellation { throttled: true, ..Default::default() }))
            }
            LedgerFault::LostAnswer => {
                self.inner.write(turns, rollups, token).await?;
                Err(aws_error(LedgerFailure::Transient, "Timeout", "request timed out", true))
            }
            LedgerFault::Refused => Err(aws_error(
                LedgerFailure::Invalid,
                "ValidationException",
                "Item size has exceeded the maximum allowed size",
                false,
            )),
        }
    }
}
