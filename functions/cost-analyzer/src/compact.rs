//! Daily compaction of the event archive.
//!
//! Firehose writes one Parquet object per buffer flush (at most every 15 minutes), so a quiet
//! day is ~96 small objects, and Athena reads each one's footer and column chunks: at 1,000
//! turns a day that per-object overhead is most of what a query bills. Once a day the previous
//! days' partitions are rewritten as one object each, sorted by `timestamp` (so row-group
//! statistics let Athena skip what a time filter excludes):
//!
//! 1. list `events/dt=D/`; with fewer than two objects there is nothing to do;
//! 2. Athena `UNLOAD`s exactly the listed objects (`"$path" IN (...)`, so an object Firehose
//!    delivers meanwhile is neither merged nor deleted) to a staging prefix outside the table;
//! 3. a plan (sources, staged objects, targets) is written next to the staged objects;
//! 4. the staged objects are copied into the partition, then the sources deleted, then the
//!    staging objects and the plan.
//!
//! A run that dies part-way is finished by the next one: a plan found at the start is carried
//! out again (every step is idempotent), and staging objects without a plan (an `UNLOAD` that
//! finished but was never planned) are deleted. Between the copy and the delete, which are one
//! request each, a query could count the day twice; runs are at 01:30 UTC when nothing else reads.

use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::athena::{AthenaAnalytics, QueryError};

/// Objects this compaction wrote into a partition start with this name.
pub const COMPACTED_PREFIX: &str = "compacted-";
/// How long one `UNLOAD` may run (the function's timeout is longer).
pub const UNLOAD_MAX_WAIT: Duration = Duration::from_secs(600);

/// The analytics bucket, as far as compaction needs it (port; S3 in production).
#[async_trait]
pub trait ArchiveObjects: Send + Sync {
    /// Every key under `prefix`, in key order.
    async fn list(&self, prefix: &str) -> shared::Result<Vec<String>>;
    async fn get(&self, key: &str) -> shared::Result<Option<Vec<u8>>>;
    async fn put(&self, key: &str, body: Vec<u8>) -> shared::Result<()>;
    async fn copy(&self, from: &str, to: &str) -> shared::Result<()>;
    /// Deletes `keys`; keys that do not exist are not an error.
    async fn delete(&self, keys: &[String]) -> shared::Result<()>;
}

/// Runs an `UNLOAD` statement to completion (port; Athena in production).
#[async_trait]
pub trait Unloader: Send + Sync {
    /// The qualified name of the events table, as the statement must name it.
    fn events_table(&self) -> String;
    async fn unload(&self, sql: &str) -> Result<(), QueryError>;
}

#[async_trait]
impl Unloader for AthenaAnalytics {
    fn events_table(&self) -> String {
        self.qualified_events_table()
    }

    async fn unload(&self, sql: &str) -> Result<(), QueryError> {
        let id = self.execute(sql, UNLOAD_MAX_WAIT).await?;
        tracing::info!(execution_id = %id, "unload finished");
        Ok(())
    }
}

/// Why a partition could not be compacted. Nothing is deleted before its replacement exists.
#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error("the analytics bucket: {0}")]
    Bucket(#[from] shared::Error),
    #[error("the unload query: {0}")]
    Unload(#[from] QueryError),
    #[error("the unload of {date} wrote no objects under {prefix}; the {sources} source objects are kept")]
    NothingUnloaded { date: NaiveDate, prefix: String, sources: usize },
    #[error("the compaction plan {key} is unreadable: {reason}")]
    BadPlan { key: String, reason: String },
}

/// What is to be moved and deleted; written before anything is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub date: NaiveDate,
    /// The objects merged, to delete once the targets exist.
    pub sources: Vec<String>,
    /// (staged key, target key in the partition).
    pub moves: Vec<(String, String)>,
}

/// What one partition's compaction did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DayCompaction {
    pub date: String,
    /// Objects in the partition before.
    pub objects_before: usize,
    /// Objects in the partition after.
    pub objects_after: usize,
    /// Interrupted earlier runs finished first.
    pub plans_resumed: usize,
    /// Staging objects of unplanned runs removed.
    pub orphans_removed: usize,
}

/// Compacts partitions of the events archive.
pub struct Compactor<'a> {
    pub objects: &'a dyn ArchiveObjects,
    pub unloader: &'a dyn Unloader,
    pub bucket: &'a str,
}

/// `events/dt=YYYY-MM-DD/`
pub fn partition_prefix(date: NaiveDate) -> String {
    format!("events/dt={}/", date.format("%Y-%m-%d"))
}

/// `compaction/dt=YYYY-MM-DD/`: outside the table's location, so staged objects are never read.
pub fn staging_prefix(date: NaiveDate) -> String {
    format!("compaction/dt={}/", date.format("%Y-%m-%d"))
}

fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The `UNLOAD` that rewrites `sources` (keys in `bucket`) of partition `date` into `to`.
pub fn unload_sql(table: &str, bucket: &str, date: NaiveDate, sources: &[String], to: &str) -> String {
    let columns: Vec<String> = shared::domain::ANALYTICS_COLUMNS.iter().map(|c| format!("\"{c}\"")).collect();
    let paths: Vec<String> = sources.iter().map(|k| sql_literal(&format!("s3://{bucket}/{k}"))).collect();
    format!(
        "UNLOAD (SELECT {} FROM {table} WHERE dt = {} AND \"$path\" IN ({}) ORDER BY \"timestamp\") \
         TO {} WITH (format = 'PARQUET', compression = 'GZIP')",
        columns.join(", "),
        sql_literal(&date.format("%Y-%m-%d").to_string()),
        paths.join(", "),
        sql_literal(&format!("s3://{bucket}/{to}")),
    )
}

impl Compactor<'_> {
    /// Compacts the partition of `date`; `run_id` names this run's staging and target objects.
    pub async fn compact(&self, date: NaiveDate, run_id: &str) -> Result<DayCompaction, CompactionError> {
        let mut done = DayCompaction { date: date.format("%Y-%m-%d").to_string(), ..Default::default() };
        self.recover(date, &mut done).await?;

        let partition = partition_prefix(date);
        let sources = self.objects.list(&partition).await?;
        done.objects_before = sources.len();
        if sources.len() < 2 {
            done.objects_after = sources.len();
            return Ok(done);
        }
        let run_prefix = format!("{}run={run_id}/", staging_prefix(date));
        let data_prefix = format!("{run_prefix}data/");
        let sql = unload_sql(&self.unloader.events_table(), self.bucket, date, &sources, &data_prefix);
        self.unloader.unload(&sql).await?;

        let staged = self.objects.list(&data_prefix).await?;
        if staged.is_empty() {
            return Err(CompactionError::NothingUnloaded { date, prefix: data_prefix, sources: sources.len() });
        }
        let moves: Vec<(String, String)> = staged
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), format!("{partition}{COMPACTED_PREFIX}{run_id}-{i:03}.parquet")))
            .collect();
        let plan = Plan { date, sources, moves };
        let plan_key = format!("{run_prefix}plan.json");
        let body = serde_json::to_vec(&plan)
            .map_err(|e| CompactionError::BadPlan { key: plan_key.clone(), reason: e.to_string() })?;
        self.objects.put(&plan_key, body).await?;
        self.carry_out(&plan, &run_prefix).await?;
        done.objects_after = self.objects.list(&partition).await?.len();
        tracing::info!(date = %done.date, before = done.objects_before, after = done.objects_after, "partition compacted");
        Ok(done)
    }

    /// Finishes planned runs and removes unplanned staging left by earlier runs of `date`.
    async fn recover(&self, date: NaiveDate, done: &mut DayCompaction) -> Result<(), CompactionError> {
        let staging = staging_prefix(date);
        let keys = self.objects.list(&staging).await?;
        let mut runs: Vec<String> = keys
            .iter()
            .filter_map(|k| k.strip_prefix(&staging).and_then(|rest| rest.split_once('/')).map(|(run, _)| run))
            .map(|run| format!("{staging}{run}/"))
            .collect();
        runs.dedup();
        for run_prefix in runs {
            let plan_key = format!("{run_prefix}plan.json");
            match self.objects.get(&plan_key).await? {
                Some(body) => {
                    let plan: Plan = serde_json::from_slice(&body)
                        .map_err(|e| CompactionError::BadPlan { key: plan_key.clone(), reason: e.to_string() })?;
                    tracing::warn!(plan = %plan_key, "finishing a compaction an earlier run left part-way");
                    self.carry_out(&plan, &run_prefix).await?;
                    done.plans_resumed += 1;
                }
                None => {
                    let orphans: Vec<String> = keys.iter().filter(|k| k.starts_with(&run_prefix)).cloned().collect();
                    tracing::warn!(run = %run_prefix, objects = orphans.len(), "removing the staging of an unplanned run");
                    done.orphans_removed += orphans.len();
                    self.objects.delete(&orphans).await?;
                }
            }
        }
        Ok(())
    }

    /// Copies what is staged into the partition, deletes the sources, then the staging.
    async fn carry_out(&self, plan: &Plan, run_prefix: &str) -> Result<(), CompactionError> {
        let present = self.objects.list(&partition_prefix(plan.date)).await?;
        let staged = self.objects.list(run_prefix).await?;
        for (from, to) in &plan.moves {
            if present.contains(to) {
                continue;
            }
            if !staged.contains(from) {
                // Neither staged nor in place: the sources are the only copy, keep them.
                return Err(CompactionError::BadPlan {
                    key: format!("{run_prefix}plan.json"),
                    reason: format!("{from} is gone and {to} was never written"),
                });
            }
            self.objects.copy(from, to).await?;
        }
        self.objects.delete(&plan.sources).await?;
        let mut cleanup: Vec<String> = staged.into_iter().filter(|k| !k.ends_with("plan.json")).collect();
        self.objects.delete(&cleanup).await?;
        // The plan goes last: until it is gone a later run can still finish this one.
        cleanup.clear();
        cleanup.push(format!("{run_prefix}plan.json"));
        self.objects.delete(&cleanup).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// An in-memory bucket that can fail one operation once.
    #[derive(Default)]
    struct Bucket {
        objects: Mutex<BTreeMap<String, Vec<u8>>>,
        fail_delete_once: Mutex<bool>,
    }

    #[async_trait]
    impl ArchiveObjects for Bucket {
        async fn list(&self, prefix: &str) -> shared::Result<Vec<String>> {
            Ok(self.objects.lock().unwrap().keys().filter(|k| k.starts_with(prefix)).cloned().collect())
        }
        async fn get(&self, key: &str) -> shared::Result<Option<Vec<u8>>> {
            Ok(self.objects.lock().unwrap().get(key).cloned())
        }
        async fn put(&self, key: &str, body: Vec<u8>) -> shared::Result<()> {
            self.objects.lock().unwrap().insert(key.into(), body);
            Ok(())
        }
        async fn copy(&self, from: &str, to: &str) -> shared::Result<()> {
            let mut o = self.objects.lock().unwrap();
            let body = o.get(from).cloned().expect("copy of a missing key");
            o.insert(to.into(), body);
            Ok(())
        }
        async fn delete(&self, keys: &[String]) -> shared::Result<()> {
            let mut fail = self.fail_delete_once.lock().unwrap();
            if *fail {
                *fail = false;
                return Err(shared::Error::Malformed { what: "test", reason: "injected delete failure".into() });
            }
            let mut o = self.objects.lock().unwrap();
            for k in keys {
                o.remove(k);
            }
            Ok(())
        }
    }

    /// "Unloads" by concatenating the sources named in the statement into one staged object.
    struct FakeAthena<'a> {
        bucket: &'a Bucket,
        statements: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Unloader for FakeAthena<'_> {
        fn events_table(&self) -> String {
            "\"db\".\"events\"".into()
        }
        async fn unload(&self, sql: &str) -> Result<(), QueryError> {
            self.statements.lock().unwrap().push(sql.into());
            let to = sql.split("TO 's3://b/").nth(1).and_then(|r| r.split('\'').next()).unwrap().to_string();
            let mut merged = Vec::new();
            let objects = self.bucket.objects.lock().unwrap().clone();
            for (k, v) in &objects {
                if sql.contains(&format!("'s3://b/{k}'")) {
                    merged.extend_from_slice(v);
                }
            }
            self.bucket.objects.lock().unwrap().insert(format!("{to}part-0000"), merged);
            Ok(())
        }
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    fn seeded() -> Bucket {
        let b = Bucket::default();
        for i in 0..4 {
            b.objects.lock().unwrap().insert(format!("events/dt=2026-11-22/stream-{i}.parquet"), vec![b'a' + i]);
        }
        b.objects.lock().unwrap().insert("events/dt=2026-11-23/stream-9.parquet".into(), vec![b'z']);
        b
    }

    fn partition(b: &Bucket, date: &str) -> BTreeMap<String, Vec<u8>> {
        let prefix = format!("events/dt={date}/");
        b.objects
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    #[tokio::test]
    async fn a_day_becomes_one_object_with_every_row_and_other_days_are_untouched() {
        let b = seeded();
        let athena = FakeAthena { bucket: &b, statements: Mutex::default() };
        let c = Compactor { objects: &b, unloader: &athena, bucket: "b" };
        let done = c.compact(day(), "r1").await.unwrap();
        assert_eq!((done.objects_before, done.objects_after), (4, 1));
        let p = partition(&b, "2026-11-22");
        assert_eq!(p.len(), 1);
        let (key, body) = p.into_iter().next().unwrap();
        assert_eq!(key, "events/dt=2026-11-22/compacted-r1-000.parquet");
        assert_eq!(body, b"abcd".to_vec());
        assert_eq!(partition(&b, "2026-11-23").len(), 1, "another day is not touched");
        assert!(b.objects.lock().unwrap().keys().all(|k| !k.starts_with("compaction/")), "staging cleaned up");
        let sql = athena.statements.lock().unwrap()[0].clone();
        assert!(sql.starts_with("UNLOAD (SELECT \"timestamp\", \"user_id\""), "{sql}");
        assert!(sql.contains("FROM \"db\".\"events\" WHERE dt = '2026-11-22' AND \"$path\" IN ('s3://b/events/dt=2026-11-22/stream-0.parquet', "), "{sql}");
        assert!(sql.contains("ORDER BY \"timestamp\") TO 's3://b/compaction/dt=2026-11-22/run=r1/data/'"), "{sql}");
        assert!(sql.ends_with("WITH (format = 'PARQUET', compression = 'GZIP')"), "{sql}");

        // Again: one object, nothing to do, no query.
        let again = c.compact(day(), "r2").await.unwrap();
        assert_eq!((again.objects_before, again.objects_after), (1, 1));
        assert_eq!(athena.statements.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_late_object_is_merged_with_the_compacted_one_next_time() {
        let b = seeded();
        let athena = FakeAthena { bucket: &b, statements: Mutex::default() };
        let c = Compactor { objects: &b, unloader: &athena, bucket: "b" };
        c.compact(day(), "r1").await.unwrap();
        b.objects.lock().unwrap().insert("events/dt=2026-11-22/stream-late.parquet".into(), b"e".to_vec());
        let done = c.compact(day(), "r2").await.unwrap();
        assert_eq!((done.objects_before, done.objects_after), (2, 1));
        let p = partition(&b, "2026-11-22");
        assert_eq!(p.values().next().unwrap(), &b"abcde".to_vec());
    }

    #[tokio::test]
    async fn a_run_that_failed_after_planning_is_finished_by_the_next_and_nothing_doubles() {
        let b = seeded();
        let athena = FakeAthena { bucket: &b, statements: Mutex::default() };
        let c = Compactor { objects: &b, unloader: &athena, bucket: "b" };
        *b.fail_delete_once.lock().unwrap() = true;
        let err = c.compact(day(), "r1").await.unwrap_err();
        assert!(err.to_string().contains("injected delete failure"), "{err}");
        // The copy happened, the sources are still there: the day is (briefly) doubled.
        assert_eq!(partition(&b, "2026-11-22").len(), 5);
        let done = c.compact(day(), "r2").await.unwrap();
        assert_eq!(done.plans_resumed, 1);
        let p = partition(&b, "2026-11-22");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p.values().next().unwrap(), &b"abcd".to_vec(), "every row once");
        assert_eq!(athena.statements.lock().unwrap().len(), 1, "the finished plan needed no second unload");
    }

    #[tokio::test]
    async fn staging_without_a_plan_is_removed_and_the_day_compacted() {
        let b = seeded();
        b.objects.lock().unwrap().insert("compaction/dt=2026-11-22/run=old/data/part-0000".into(), b"xx".to_vec());
        let athena = FakeAthena { bucket: &b, statements: Mutex::default() };
        let c = Compactor { objects: &b, unloader: &athena, bucket: "b" };
        let done = c.compact(day(), "r1").await.unwrap();
        assert_eq!(done.orphans_removed, 1);
        assert_eq!(partition(&b, "2026-11-22").values().next().unwrap(), &b"abcd".to_vec());
        assert!(b.objects.lock().unwrap().keys().all(|k| !k.starts_with("compaction/")));
    }

    #[tokio::test]
    async fn an_unload_that_wrote_nothing_deletes_nothing() {
        struct Empty;
        #[async_trait]
        impl Unloader for Empty {
            fn events_table(&self) -> String {
                "events".into()
            }
            async fn unload(&self, _: &str) -> Result<(), QueryError> {
                Ok(())
            }
        }
        let b = seeded();
        let c = Compactor { objects: &b, unloader: &Empty, bucket: "b" };
        let err = c.compact(day(), "r1").await.unwrap_err();
        assert!(matches!(err, CompactionError::NothingUnloaded { sources: 4, .. }), "{err}");
        assert_eq!(partition(&b, "2026-11-22").len(), 4);
    }

    #[test]
    fn paths_and_dates_are_quoted() {
        let sql = unload_sql("events", "b", day(), &["events/dt=2026-11-22/o'brien".into()], "compaction/x/");
        assert!(sql.contains("'s3://b/events/dt=2026-11-22/o''brien'"), "{sql}");
    }
}
