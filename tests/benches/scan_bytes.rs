//! Bytes Athena would bill for the seed's three queries over a year of generated events: the
//! seed's layout (one NDJSON object per Firehose buffer, no partitions) against the archive
//! this template writes (Parquet by Firehose record format conversion, dt partitions).
//!
//! Athena bills the bytes it reads: for JSON every byte of every object in the partitions read
//! (the seed's queries filter on `timestamp`, not on a partition, so that is every object); for
//! Parquet the column chunks of the columns a query names, read from DuckDB's
//! parquet_metadata(). "pruned" also skips row groups whose `timestamp` statistics exclude the
//! seed's `timestamp >= '2026-04-01'`, as Athena's Parquet reader does.
//!
//! Run: `cargo bench --profile dev -p tests --bench scan_bytes` (it measures bytes, not speed:
//! the dev build is enough; 6 to 10 minutes for a year at 1,000 turns/day; not part of CI).
//! SCAN_TURNS_PER_DAY (default 1000) and SCAN_DAYS (default 365) change the volume; figures
//! are scaled to 365 days.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use tests::sql::{generate_events, write_archive, Archive, DuckDb, Layout, Template};

/// The columns each seed query names (seed 000).
const SEED_QUERIES: &[(&str, &[&str])] = &[
    ("most active users", &["timestamp", "user_id"]),
    ("knowledge-base usage", &["timestamp", "knowledge_bases"]),
    ("no knowledge base", &["timestamp", "user_id", "rationale", "knowledge_bases"]),
];

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn object_bytes(archive: &Archive) -> u64 {
    archive.objects.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum()
}

/// Per top-level column: (bytes of all its chunks, bytes of the chunks in row groups that the
/// seed's timestamp filter cannot skip); plus the objects' bytes outside column chunks (footers).
fn parquet_columns(root: &Path, objects: u64) -> (BTreeMap<String, (u64, u64)>, u64) {
    let glob = format!("{}/events/dt=*/*.parquet", root.display());
    let sql = format!(
        "WITH chunks AS (SELECT file_name, row_group_id, split_part(path_in_schema, ',', 1) AS col, \
                total_compressed_size AS bytes, stats_max FROM parquet_metadata('{glob}')), \
              ts AS (SELECT file_name, row_group_id, stats_max AS ts_max FROM chunks WHERE col = 'timestamp') \
         SELECT col, sum(bytes) AS all_bytes, coalesce(sum(bytes) FILTER (WHERE ts.ts_max >= '2026-04-01'), 0) \
         FROM chunks JOIN ts USING (file_name, row_group_id) GROUP BY col ORDER BY col"
    );
    let rows = DuckDb::locate().expect("duckdb").query(&[], &[("meta".into(), sql)]).expect("runner");
    let rows = rows.into_iter().next().unwrap().expect("parquet_metadata");
    let cols: BTreeMap<String, (u64, u64)> = rows
        .rows
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), (r[1].as_u64().unwrap(), r[2].as_u64().unwrap())))
        .collect();
    let chunks: u64 = cols.values().map(|c| c.0).sum();
    (cols, objects - chunks)
}

fn mib(b: f64) -> String {
    format!("{:>10.1} MiB", b / 1048576.0)
}

fn main() {
    let per_day = env_u32("SCAN_TURNS_PER_DAY", 1000);
    let days = env_u32("SCAN_DAYS", 365);
    let scale = 365.0 / f64::from(days);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scan_bytes");
    let _ = std::fs::remove_dir_all(&dir);

    let template = Template::load().expect("template");
    let columns = template.glue_columns("EventsTable", false).expect("events columns");
    let compression = template.firehose_parquet_compression("EventsStream").expect("EventsStream converts to Parquet");
    // The year ends in April 2026, the month the seed's queries ask about.
    let first = NaiveDate::from_ymd_opt(2026, 4, 30).unwrap() - chrono::Duration::days(i64::from(days) - 1);
    let events = generate_events(first, days, per_day, 42);
    println!("{} events: {per_day} turns/day for {days} days from {first}; figures per 365 days", events.len());

    // The seed's Firehose buffers 300 s; this template's 900 s (conversion needs >= 64 MB buffers).
    let seed = write_archive(&dir.join("seed"), &events, Layout::SeedJson, 300, &columns).expect("seed layout");
    let gz = write_archive(&dir.join("gzip"), &events, Layout::JsonGzip, 300, &columns).expect("gzip layout");
    let pq = write_archive(
        &dir.join("parquet"),
        &events,
        Layout::Parquet { compression: compression.clone() },
        900,
        &columns,
    )
    .expect("parquet layout");
    // What the daily compaction (cost-analyzer, compact.rs) leaves: one object per day.
    let compacted = write_archive(
        &dir.join("compacted"),
        &events,
        Layout::Parquet { compression: compression.clone() },
        86_400,
        &columns,
    )
    .expect("compacted layout");
    let snappy =
        write_archive(&dir.join("snappy"), &events, Layout::Parquet { compression: "SNAPPY".into() }, 900, &columns)
            .expect("snappy layout");

    let seed_bytes = object_bytes(&seed) as f64;
    let gz_bytes = object_bytes(&gz) as f64;
    println!("\nstored per year: seed NDJSON {}, gzip NDJSON {}", mib(seed_bytes * scale), mib(gz_bytes * scale));
    println!(
        "objects per year: seed {:.0}, gzip {:.0}, parquet {:.0}",
        seed.objects.len() as f64 * scale,
        gz.objects.len() as f64 * scale,
        pq.objects.len() as f64 * scale
    );

    let (cols, footers) = parquet_columns(&pq.root, object_bytes(&pq));
    let (snappy_cols, _) = parquet_columns(&snappy.root, object_bytes(&snappy));
    let (daily_cols, daily_footers) = parquet_columns(&compacted.root, object_bytes(&compacted));
    let headers = [
        "seed NDJSON",
        "gzip NDJSON",
        "parquet",
        "parquet pruned",
        "+footers",
        "SNAPPY parquet",
        "compacted",
        "compacted+ft",
    ];
    println!("\nparquet = {compression} column chunks the query names; pruned = only row groups whose timestamp max >= 2026-04-01;");
    println!("+footers = parquet plus every object's footer; SNAPPY parquet = Firehose's default compression;");
    println!("compacted = after the daily compaction (one object per day), column chunks; +ft with its footers");
    println!("{:<22} {}", "seed query, per year", headers.map(|h| format!("{h:>14}")).join(" "));
    let mut totals = [0.0f64; 8];
    for (name, referenced) in SEED_QUERIES {
        let sum = |c: &BTreeMap<String, (u64, u64)>, pruned: bool| -> f64 {
            referenced.iter().map(|k| c.get(*k).map_or(0, |v| if pruned { v.1 } else { v.0 }) as f64).sum()
        };
        let row = [
            seed_bytes,
            gz_bytes,
            sum(&cols, false),
            sum(&cols, true),
            sum(&cols, false) + footers as f64,
            sum(&snappy_cols, false),
            sum(&daily_cols, false),
            sum(&daily_cols, false) + daily_footers as f64,
        ];
        for (t, r) in totals.iter_mut().zip(row) {
            *t += r;
        }
        let cells: Vec<String> = row.iter().map(|b| mib(b * scale)).collect();
        println!("{name:<22} {}", cells.join(" "));
    }
    let cells: Vec<String> = totals.iter().map(|b| mib(b * scale)).collect();
    println!("{:<22} {}", "all three", cells.join(" "));
    println!(
        "\nseed layout / this archive, all three queries: {:.1}x (column chunks), {:.1}x (pruned), {:.1}x (with footers); \
         gzip NDJSON would give {:.1}x",
        totals[0] / totals[2],
        totals[0] / totals[3],
        totals[0] / totals[4],
        totals[0] / totals[1]
    );
    println!(
        "after the daily compaction: {:.1}x (column chunks), {:.1}x (with footers); objects per year {:.0}",
        totals[0] / totals[6],
        totals[0] / totals[7],
        compacted.objects.len() as f64 * scale
    );
    let all: u64 = cols.values().map(|c| c.0).sum();
    println!(
        "parquet column chunks, whole table: {}; footers {}",
        mib(all as f64 * scale),
        mib(footers as f64 * scale)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
