//! The event archive's daily compaction end to end: Parquet objects as Firehose writes them (the
//! project's own event encoder, converted with the Glue table's columns) in moto's S3, the real
//! S3 adapter and the real Athena adapter (moto's Athena accepts the UNLOAD and records its text;
//! it cannot run it, so this test's unloader then does what Athena would with DuckDB: the listed
//! objects' rows, the table's columns, sorted by timestamp, GZIP Parquet into the UNLOAD's
//! location). Afterwards every compacted day is one object and the seed's three queries return
//! exactly what they returned before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use cost_analyzer::athena::{AthenaAnalytics, QueryError};
use cost_analyzer::compact::{unload_sql, ArchiveObjects, Unloader};
use cost_analyzer::handler::{compaction_dates, ArchiveCompaction, COMPACT_TASK};
use cost_analyzer::s3::S3Archive;
use serde_json::{json, Value};
use tests::harness::emulators;
use tests::sql::{generate_events, write_archive, Archive, DuckDb, Layout, Rows, Template, SEED_QUERIES};

const BUCKET: &str = "compaction-archive";
const WORKGROUP: &str = "compaction-wg";

/// moto's Athena for the request, DuckDB for the work Athena would do.
struct MotoAthenaWithDuckDb {
    athena: AthenaAnalytics,
    s3: S3Archive,
    scratch: PathBuf,
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map(|i| i + start.len()).expect(start);
    let to = text[from..].find(end).map(|i| from + i).expect(end);
    &text[from..to]
}

#[async_trait]
impl Unloader for MotoAthenaWithDuckDb {
    fn events_table(&self) -> String {
        self.athena.qualified_events_table()
    }

    async fn unload(&self, sql: &str) -> Result<(), QueryError> {
        self.athena.unload(sql).await?;
        // Do what Athena would: read exactly the listed objects, write one sorted object.
        let prefix = format!("s3://{BUCKET}/");
        let sources: Vec<&str> = between(sql, "\"$path\" IN (", ")")
            .split(", ")
            .map(|p| p.trim_matches('\'').strip_prefix(&prefix).expect("a path in the bucket"))
            .collect();
        let to = between(sql, &format!(" TO '{prefix}"), "'");
        let dir = self.scratch.join(to.replace('/', "_"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut local = Vec::new();
        for (i, key) in sources.iter().enumerate() {
            let body = self.s3.get(key).await?.expect("a listed source exists");
            let path = dir.join(format!("src-{i}.parquet"));
            std::fs::write(&path, body).unwrap();
            local.push(format!("'{}'", path.display()));
        }
        let columns = shared::domain::ANALYTICS_COLUMNS.map(|c| format!("\"{c}\"")).join(", ");
        let out = dir.join("out.parquet");
        let copy = format!(
            "COPY (SELECT {columns} FROM read_parquet([{}]) ORDER BY \"timestamp\") TO '{}' (FORMAT parquet, COMPRESSION gzip)",
            local.join(", "),
            out.display()
        );
        DuckDb::locate().unwrap().query(&[copy], &[]).unwrap();
        self.s3.put(&format!("{to}20261123_000000_00000_abcde"), std::fs::read(&out).unwrap()).await?;
        Ok(())
    }
}

async fn upload_archive(s3: &S3Archive, archive: &Archive) {
    for path in &archive.objects {
        let key = path.strip_prefix(&archive.root).unwrap().to_str().unwrap().to_string();
        s3.put(&key, std::fs::read(path).unwrap()).await.unwrap();
    }
}

/// Downloads everything under `events/` into a fresh directory with the archive's layout.
async fn download(s3: &S3Archive, into: &Path, like: &Archive) -> Archive {
    let mut objects = Vec::new();
    for key in s3.list("events/").await.unwrap() {
        let path = into.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, s3.get(&key).await.unwrap().unwrap()).unwrap();
        objects.push(path);
    }
    Archive { root: into.to_path_buf(), layout: like.layout.clone(), objects, columns: like.columns.clone() }
}

/// The seed's three queries, reduced to what ties cannot reorder (the counts of the top users,
/// the knowledge bases and their hits, the timestamps of the latest questions without one), and
/// the whole archive's content: per-user counts and a digest of every event.
fn seed_results(archive: &Archive) -> Vec<Value> {
    let mut queries: Vec<(String, String)> =
        SEED_QUERIES.iter().map(|(id, q)| (id.to_string(), q.to_string())).collect();
    queries.push(("count".into(), "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM events".into()));
    queries.push(("users".into(), "SELECT user_id, count(*) FROM events GROUP BY 1 ORDER BY 1".into()));
    queries.push((
        "digest".into(),
        "SELECT md5(string_agg(event_id || timestamp || cast(input_tokens AS VARCHAR) || coalesce(rationale, '')          || cast(knowledge_bases AS VARCHAR), ',' ORDER BY event_id)) FROM events"
            .into(),
    ));
    let rows: Vec<Rows> = DuckDb::locate()
        .unwrap()
        .query(&archive.setup().unwrap(), &queries)
        .unwrap()
        .into_iter()
        .map(|r| r.expect("query runs"))
        .collect();
    let column = |r: &Rows, i: usize| Value::Array(r.rows.iter().map(|row| row[i].clone()).collect());
    let mut kb = rows[1].rows.clone();
    kb.sort_by_key(|r| r[0].to_string());
    vec![
        column(&rows[0], 1),
        json!(kb),
        column(&rows[2], 0),
        json!(rows[3].rows),
        json!(rows[4].rows),
        json!(rows[5].rows),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn each_day_becomes_one_object_and_the_seed_queries_answer_the_same() {
    let template = Template::load().unwrap();
    let columns = template.glue_columns("EventsTable", false).unwrap();
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, shared::domain::ANALYTICS_COLUMNS, "the compaction selects the Glue table's columns in order");

    let emu = emulators();
    let sdk = emu.moto.sdk_config();
    aws_sdk_s3::Client::new(&sdk).create_bucket().bucket(BUCKET).send().await.unwrap();
    aws_sdk_athena::Client::new(&sdk)
        .create_work_group()
        .name(WORKGROUP)
        .configuration(
            aws_sdk_athena::types::WorkGroupConfiguration::builder()
                .result_configuration(
                    aws_sdk_athena::types::ResultConfiguration::builder()
                        .output_location(format!("s3://{BUCKET}/athena-results/"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();

    let scratch = tempdir("compaction");
    let first = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let events = generate_events(first, 3, 400, 7);
    let archive = write_archive(
        &scratch.join("firehose"),
        &events,
        Layout::Parquet { compression: "GZIP".into() },
        900,
        &columns,
    )
    .unwrap();
    let s3 = S3Archive::new(aws_sdk_s3::Client::new(&sdk), BUCKET);
    upload_archive(&s3, &archive).await;
    let before = seed_results(&archive);
    assert_eq!(before[3][0][0], json!(events.len()), "every event is in the archive");
    assert_eq!(before[3][0][1], json!(events.len()), "event ids are distinct");
    let per_day_before =
        |d: &str| archive.objects.iter().filter(|p| p.to_string_lossy().contains(&format!("dt={d}"))).count();
    assert!(per_day_before("2026-11-21") > 50, "Firehose-sized objects: {}", per_day_before("2026-11-21"));

    // The scheduled run on 2026-11-23 takes the two days before it; the 20th stays as it was.
    let now = "2026-11-23T01:30:00Z".parse::<chrono::DateTime<Utc>>().unwrap();
    let days = compaction_dates(&json!({"task": COMPACT_TASK}), now).unwrap();
    let unloader = MotoAthenaWithDuckDb {
        athena: AthenaAnalytics::new(
            aws_sdk_athena::Client::new(&sdk),
            WORKGROUP,
            "slack_bot_analytics",
            "events",
            Duration::from_secs(10),
        ),
        s3: S3Archive::new(aws_sdk_s3::Client::new(&sdk), BUCKET),
        scratch: scratch.join("unload"),
    };
    let job = ArchiveCompaction {
        objects: std::sync::Arc::new(S3Archive::new(aws_sdk_s3::Client::new(&sdk), BUCKET)),
        unloader: std::sync::Arc::new(unloader),
        bucket: BUCKET.into(),
    };
    let listed_21 = s3.list("events/dt=2026-11-21/").await.unwrap();
    let compactor = cost_analyzer::compact::Compactor {
        objects: job.objects.as_ref(),
        unloader: job.unloader.as_ref(),
        bucket: &job.bucket,
    };
    for day in &days {
        let done = compactor.compact(*day, "20261123T013000000Z").await.unwrap();
        assert_eq!(done.objects_after, 1, "{done:?}");
        assert!(done.objects_before > 50, "{done:?}");
    }
    for d in ["2026-11-21", "2026-11-22"] {
        let keys = s3.list(&format!("events/dt={d}/")).await.unwrap();
        assert_eq!(keys, [format!("events/dt={d}/compacted-20261123T013000000Z-000.parquet")]);
    }
    assert_eq!(s3.list("events/dt=2026-11-20/").await.unwrap().len(), per_day_before("2026-11-20"));
    assert!(s3.list("compaction/").await.unwrap().is_empty(), "staging and plans cleaned up");

    // Same answers, every event exactly once.
    let after = seed_results(&download(&s3, &scratch.join("after"), &archive).await);
    assert_eq!(after, before);

    // What went to Athena: the UNLOAD of exactly the objects listed, in the workgroup.
    let athena = aws_sdk_athena::Client::new(&sdk);
    let ids = athena.list_query_executions().work_group(WORKGROUP).send().await.unwrap().query_execution_ids;
    let mut sent = Vec::new();
    for id in ids.unwrap_or_default() {
        let q = athena.get_query_execution().query_execution_id(id).send().await.unwrap();
        sent.push(q.query_execution.and_then(|e| e.query).unwrap_or_default());
    }
    let want = unload_sql(
        "\"slack_bot_analytics\".\"events\"",
        BUCKET,
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
        &listed_21,
        "compaction/dt=2026-11-21/run=20261123T013000000Z/data/",
    );
    assert!(sent.contains(&want), "sent {sent:#?}");
    assert_eq!(sent.len(), 2);
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slackbr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
