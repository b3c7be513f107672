//! An in-memory [`TokenLedger`] with DynamoDB's transaction semantics (conditional turn puts,
//! all-or-nothing, combined ADDs), for unit tests and the benchmark. It counts what a table
//! would be sent.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use shared::ledger::{Cancellation, LedgerError, LedgerTurn, RollupDelta, RollupUpdate, WriteOutcome};
use shared::ports::TokenLedger;

/// What the in-memory table holds.
#[derive(Debug, Default, Clone)]
pub struct MemoryState {
    /// Ledger turns by record id.
    pub turns: HashMap<String, LedgerTurn>,
    /// Rollups by (pk, sk).
    pub rollups: BTreeMap<(String, String), RollupDelta>,
    /// Transactions sent.
    pub requests: u64,
    /// Items written by committed transactions (puts plus updates).
    pub item_writes: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    state: Mutex<MemoryState>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        MemoryLedger::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of the table.
    pub fn snapshot(&self) -> MemoryState {
        self.lock().clone()
    }
}

#[async_trait]
impl TokenLedger for MemoryLedger {
    async fn write(
        &self,
        turns: &[&LedgerTurn],
        rollups: &[RollupUpdate],
        _token: &str,
    ) -> Result<WriteOutcome, LedgerError> {
        let mut state = self.lock();
        state.requests += 1;
        let already_logged: Vec<usize> = turns
            .iter()
            .enumerate()
            .filter(|(_, t)| state.turns.contains_key(&t.record.record_id))
            .map(|(i, _)| i)
            .collect();
        if !already_logged.is_empty() {
            return Ok(WriteOutcome::Cancelled(Cancellation { already_logged, ..Cancellation::default() }));
        }
        for t in turns {
            state.turns.insert(t.record.record_id.clone(), (*t).clone());
        }
        for r in rollups {
            *state.rollups.entry((r.pk.clone(), r.sk.clone())).or_default() += r.delta;
        }
        state.item_writes += (turns.len() + rollups.len()) as u64;
        Ok(WriteOutcome::Committed)
    }
}
