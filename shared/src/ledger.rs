//! The priced usage ledger, as the domain sees it: a turn ready to be recorded with its priced
//! calls, the rollups it grows, and how a write ended. The port is [`crate::ports::TokenLedger`];
//! the DynamoDB adapter is [`crate::aws::ledger::DynamoDbLedger`].

use std::ops::AddAssign;

use chrono::{DateTime, Utc};

use crate::domain::UsageRecord;
use crate::pricing::Usd;
use crate::Error;

/// At most this many turns and rollups go in one write (DynamoDB's TransactWriteItems limit).
pub const MAX_TRANSACTION_ACTIONS: usize = 100;

/// The price of one model call of a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct CallCost {
    /// The model's name in metrics and rollups ([`crate::pricing::PriceTable::model_label`]).
    pub model: String,
    /// None when the call is unpriced.
    pub cost: Option<Usd>,
}

/// A turn ready for the ledger: the usage record, when it happened, and its priced calls.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerTurn {
    pub record: UsageRecord,
    /// The record's timestamp, parsed (UTC); it decides the day, month and hour rollups.
    pub at: DateTime<Utc>,
    /// One per `record.calls`, in the same order.
    pub calls: Vec<CallCost>,
    /// Cost of the priced calls.
    pub priced_cost: Usd,
    /// The turn's cost; None when any call is unpriced.
    pub cost: Option<Usd>,
    /// Tokens of the unpriced calls.
    pub unpriced_tokens: u64,
    pub price_table_version: String,
}

/// What a rollup item grows by (the attributes of [`crate::rollups::Spend`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupDelta {
    pub cost: Usd,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub turns: u64,
    pub unpriced_tokens: u64,
}

impl AddAssign for RollupDelta {
    fn add_assign(&mut self, o: RollupDelta) {
        self.cost += o.cost;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cache_read_tokens += o.cache_read_tokens;
        self.cache_write_tokens += o.cache_write_tokens;
        self.turns += o.turns;
        self.unpriced_tokens += o.unpriced_tokens;
    }
}

/// An ADD to one rollup item, with the descriptive strings it carries (set, not added).
#[derive(Debug, Clone, PartialEq)]
pub struct RollupUpdate {
    pub pk: String,
    pub sk: String,
    pub delta: RollupDelta,
    pub labels: Vec<(String, String)>,
}

/// How a ledger write ended.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    /// Every turn and every rollup was written.
    Committed,
    /// Nothing was written; why, per action.
    Cancelled(Cancellation),
}

/// Why a write was cancelled. Indexes refer to the `turns` of the request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cancellation {
    /// Turns already in the ledger (their condition failed).
    pub already_logged: Vec<usize>,
    /// Turns the table refused, with the reason.
    pub rejected: Vec<(usize, String)>,
    /// Some action was throttled.
    pub throttled: bool,
    /// Some action collided with a concurrent transaction.
    pub conflict: bool,
    /// A reason on a rollup, or one not understood.
    pub other: Option<String>,
}

/// Why a write failed before the table decided on it, as the adapter read its own error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerFailure {
    /// The table is throttling: back off, then repeat the same request.
    Throttled,
    /// A hiccup, or the same request still in progress: repeat it with the same token.
    Transient,
    /// The table refused the request as invalid: retrying it unchanged cannot succeed.
    Invalid,
    /// Anything else: retrying cannot be expected to help.
    Failed,
}

/// A failed ledger write: what kind of failure, and the error to log.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct LedgerError {
    pub kind: LedgerFailure,
    pub error: Error,
}
