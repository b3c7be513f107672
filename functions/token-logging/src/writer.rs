//! Writes priced turns to the ledger in transactions, turn puts conditional on the record id:
//! turns already in the ledger are set aside (never counted twice) and the rest retried; throttling
//! and server faults back off and retry within the Lambda deadline; a circuit breaker stops
//! calls to a table that keeps failing. Every turn ends Written, AlreadyLogged or Failed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::ledger::{Cancellation, LedgerError, LedgerFailure, LedgerTurn, WriteOutcome, MAX_TRANSACTION_ACTIONS};
use shared::ports::TokenLedger;
use shared::retry::Backoff;
use tracing::{error, warn};

use crate::breaker::CircuitBreaker;
use crate::plan::{chunks, combined_rollups};

/// Why a turn could not be written (it goes back to the queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Still throttled (or contended) when the retries or the deadline ran out.
    Throttled,
    /// The table kept failing (5xx, timeouts, access) past the retries.
    Store,
    /// The circuit breaker is open.
    CircuitOpen,
    /// The table refused this turn (validation, size): retrying will not help; the DLQ keeps it.
    Rejected,
}

impl Failure {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Throttled => "Throttled",
            Failure::Store => "Store",
            Failure::CircuitOpen => "CircuitOpen",
            Failure::Rejected => "Rejected",
        }
    }
}

/// What became of one turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnOutcome {
    /// Recorded now, with its rollups.
    Written,
    /// Already in the ledger from an earlier delivery: nothing added.
    AlreadyLogged,
    Failed(Failure),
}

/// The result of writing a batch of turns.
#[derive(Debug, Default)]
pub struct WriteReport {
    /// Every turn, by record id, with what became of it and the turn itself.
    pub outcomes: Vec<(LedgerTurn, TurnOutcome)>,
    /// Throttling responses seen (each one backed off).
    pub throttles: u64,
    /// Times the circuit breaker opened.
    pub breaker_trips: u64,
    /// Write requests sent to the table.
    pub requests: u64,
}

/// Retry and breaker settings.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub backoff: Backoff,
    /// Time kept free before the Lambda deadline for answering.
    pub deadline_reserve: Duration,
    /// Actions per transaction (DynamoDB's limit is 100).
    pub max_actions: usize,
    pub breaker_threshold: u32,
    pub breaker_cool_down: Duration,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            backoff: Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(2), max_attempts: 6 },
            deadline_reserve: Duration::from_secs(2),
            max_actions: MAX_TRANSACTION_ACTIONS,
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(60),
        }
    }
}

/// Writes turns to a [`TokenLedger`] with retries and a circuit breaker.
pub struct LedgerWriter {
    ledger: Arc<dyn TokenLedger>,
    breaker: CircuitBreaker,
    settings: WriterSettings,
}

impl LedgerWriter {
    pub fn new(ledger: Arc<dyn TokenLedger>, settings: WriterSettings) -> Self {
        let breaker = CircuitBreaker::new(settings.breaker_threshold, settings.breaker_cool_down);
        LedgerWriter { ledger, breaker, settings }
    }

    /// Whether the breaker currently refuses calls.
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Writes `turns` (distinct record ids) in transactions, one after another: concurrent
    /// transactions of one batch would contend for the same day rollups.
    pub async fn write(&self, turns: Vec<LedgerTurn>, deadline: Option<Instant>) -> WriteReport {
        let mut report = WriteReport::default();
        let mut queue: VecDeque<Vec<LedgerTurn>> = chunks(turns, self.settings.max_actions).into();
        while let Some(chunk) = queue.pop_front() {
            if let Some(split) = self.write_chunk(chunk, deadline, &mut report).await {
                // One turn made the whole request invalid: write each alone to find it.
                for turn in split.into_iter().rev() {
                    queue.push_front(vec![turn]);
                }
            }
        }
        report
    }

    /// Writes one chunk to the end; returns its remaining turns when they must be written one by one.
    async fn write_chunk(
        &self,
        chunk: Vec<LedgerTurn>,
        deadline: Option<Instant>,
        report: &mut WriteReport,
    ) -> Option<Vec<LedgerTurn>> {
        let mut pending = chunk;
        let mut attempt = 0u32;
        let mut token = new_token();
        while !pending.is_empty() {
            let retry_as = match self.send(&mut pending, &mut token, attempt, report).await {
                Step::Settled => return None,
                Step::Split => return Some(pending),
                Step::Resend => continue,
                Step::BackOff(failure) => failure,
            };
            match self.settings.backoff.next_delay(attempt, None, deadline, self.settings.deadline_reserve) {
                Some(delay) => {
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                None => {
                    settle(report, &mut pending, TurnOutcome::Failed(retry_as));
                    return None;
                }
            }
        }
        None
    }

    /// Sends one request for the `pending` turns and says what the chunk does next.
    async fn send(
        &self,
        pending: &mut Vec<LedgerTurn>,
        token: &mut String,
        attempt: u32,
        report: &mut WriteReport,
    ) -> Step {
        let refs: Vec<&LedgerTurn> = pending.iter().collect();
        let rollups = combined_rollups(&refs);
        if refs.len() + rollups.len() > self.settings.max_actions {
            // Only a single turn with a great many models can get here.
            error!(record_id = %pending[0].record.record_id, "turn needs more actions than one transaction holds");
            settle(report, pending, TurnOutcome::Failed(Failure::Rejected));
            return Step::Settled;
        }
        if !self.breaker.allow() {
            settle(report, pending, TurnOutcome::Failed(Failure::CircuitOpen));
            return Step::Settled;
        }
        report.requests += 1;
        let result = self.ledger.write(&refs, &rollups, token).await;
        drop(refs);
        match result {
            Ok(WriteOutcome::Committed) => {
                self.breaker.record_success();
                settle(report, pending, TurnOutcome::Written);
                Step::Settled
            }
            Ok(WriteOutcome::Cancelled(c)) => {
                // Nothing was written: the next request is a new one.
                *token = new_token();
                self.on_cancelled(c, pending, report)
            }
            Err(LedgerError { kind: kind @ (LedgerFailure::Throttled | LedgerFailure::Transient), error }) => {
                let throttled = kind == LedgerFailure::Throttled;
                if throttled {
                    report.throttles += 1;
                }
                self.trip_on_failure(report);
                // The outcome of a timed-out request is unknown: repeat it with the same token
                // so that DynamoDB applies it at most once.
                warn!(error = %error, attempt, "ledger write failed; retrying");
                Step::BackOff(if throttled { Failure::Throttled } else { Failure::Store })
            }
            Err(LedgerError { kind: LedgerFailure::Invalid, error }) => {
                // The table answered: the request, not the table, is at fault.
                self.breaker.record_success();
                if pending.len() > 1 {
                    warn!(turns = pending.len(), "request refused as invalid; writing its turns one by one");
                    return Step::Split;
                }
                error!(error = %error, record_id = %pending[0].record.record_id, "the table refused a turn");
                settle(report, pending, TurnOutcome::Failed(Failure::Rejected));
                Step::Settled
            }
            Err(LedgerError { kind: LedgerFailure::Failed, error }) => {
                self.trip_on_failure(report);
                error!(error = %error, turns = pending.len(), "ledger write failed");
                settle(report, pending, TurnOutcome::Failed(Failure::Store));
                Step::Settled
            }
        }
    }

    /// Sets aside the turns a cancelled transaction names and says whether to resend the rest.
    fn on_cancelled(&self, c: Cancellation, pending: &mut Vec<LedgerTurn>, report: &mut WriteReport) -> Step {
        if c.throttled {
            report.throttles += 1;
            self.trip_on_failure(report);
        } else {
            self.breaker.record_success();
        }
        let mut settled: Vec<(usize, TurnOutcome)> =
            c.already_logged.iter().map(|&i| (i, TurnOutcome::AlreadyLogged)).collect();
        for (i, reason) in &c.rejected {
            if let Some(t) = pending.get(*i) {
                error!(record_id = %t.record.record_id, reason = %reason, "the table refused a turn");
            }
            settled.push((*i, TurnOutcome::Failed(Failure::Rejected)));
        }
        if !settled.is_empty() {
            // Set those aside and retry the rest at once: no transient failure to wait out.
            settled.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
            for (i, outcome) in settled {
                if i < pending.len() {
                    report.outcomes.push((pending.remove(i), outcome));
                }
            }
            return Step::Resend;
        }
        if let Some(other) = c.other {
            error!(reason = %other, turns = pending.len(), "ledger write cancelled for a reason that retrying cannot fix");
            settle(report, pending, TurnOutcome::Failed(Failure::Rejected));
            return Step::Settled;
        }
        if !(c.throttled || c.conflict) {
            settle(report, pending, TurnOutcome::Failed(Failure::Rejected));
            return Step::Settled;
        }
        Step::BackOff(Failure::Throttled)
    }

    fn trip_on_failure(&self, report: &mut WriteReport) {
        if self.breaker.record_failure() {
            report.breaker_trips += 1;
            error!(
                cool_down_s = self.settings.breaker_cool_down.as_secs(),
                "circuit breaker opened on the usage table"
            );
        }
    }
}

/// What a chunk does after one request.
enum Step {
    /// Every turn of the chunk has its outcome in the report.
    Settled,
    /// The request was invalid as a whole: write its turns one by one.
    Split,
    /// Some turns were set aside: send the rest at once.
    Resend,
    /// A transient failure: back off and send again, failing as this when time runs out.
    BackOff(Failure),
}

/// Gives every pending turn `outcome`, leaving none pending.
fn settle(report: &mut WriteReport, pending: &mut Vec<LedgerTurn>, outcome: TurnOutcome) {
    report.outcomes.extend(pending.drain(..).map(|t| (t, outcome)));
}

/// A ClientRequestToken (1-36 characters).
fn new_token() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}
