//! COSTS.md carries the cost table computed from the template as it is now, and a fresh install
//! (MonitoringLevel's default) meets the target: under $3 a month at 50 conversations a day.

use shared::metric_names::MetricsLevel;
use tests::costs::{inventories, inventory, monthly, table, total, with_table, BEGIN, END};
use tests::moto::workspace_root;
use tests::template::Template;

/// Issue 7: infrastructure under $3/month at 50 conversations a day, model tokens excluded.
const TARGET_USD: f64 = 3.0;

fn template() -> Template {
    Template::load(&workspace_root().join("template.yaml")).expect("template.yaml")
}

#[test]
fn costs_md_shows_the_table_computed_from_the_current_template() {
    let doc = std::fs::read_to_string(workspace_root().join("COSTS.md")).expect("COSTS.md");
    let (essential, full) = inventories(&template());
    let want = table(&essential, &full);
    let start = doc.find(BEGIN).expect("COSTS.md has the cost-model:begin marker") + BEGIN.len();
    let end = doc[start..].find(END).expect("COSTS.md has the cost-model:end marker") + start;
    assert!(
        doc[start..end] == want,
        "COSTS.md is stale: regenerate the table with `cargo run -p tests --bin cost-model`.\nexpected:\n{want}"
    );
    assert_eq!(with_table(&doc, &want).expect("markers"), doc, "regenerating changes nothing");
}

#[test]
fn a_fresh_install_costs_less_than_the_target_at_50_conversations_a_day() {
    let t = template();
    assert_eq!(
        t.parameter_default("MonitoringLevel").as_deref(),
        Some("essential"),
        "a fresh install is the essential level"
    );
    // The default template, not a level forced here: the Conditions decide what exists.
    let fresh = inventory(&t);
    assert_eq!(fresh.level, MetricsLevel::Essential);
    let bill = monthly(&fresh, 50.0);
    let usd = total(&bill);
    assert!(
        usd < TARGET_USD,
        "essential costs ${usd:.2}/month at 50 conversations a day, over the ${TARGET_USD} target:\n{bill:#?}"
    );
    assert_eq!(fresh.dashboards, 0, "dashboards are $3 each: full only");
    assert_eq!(fresh.kms_keys, 0, "the alarm topic's key is full only");
    assert!(fresh.alarm_metrics <= 8.0, "{} alarm metrics at essential", fresh.alarm_metrics);
    // Full keeps everything: it is the more expensive level, and over the target.
    let (_, full) = inventories(&t);
    assert!(full.alarms > fresh.alarms && full.dashboards == 3 && full.kms_keys == 1, "{full:?}");
    assert!(total(&monthly(&full, 50.0)) > usd);
}

#[test]
fn the_inventory_sees_the_template_as_deployed() {
    let (essential, full) = inventories(&template());
    for inv in [&essential, &full] {
        assert!(inv.functions.len() >= 4, "{:?}", inv.functions);
        assert!(inv.functions.iter().all(|(_, mb)| *mb >= 128.0), "{:?}", inv.functions);
        assert_eq!(inv.fifo_polled_queues, 1, "the work queue");
        assert!(inv.standard_polled_queues >= 1, "the usage queue");
        assert!(inv.secrets >= 1);
        // Every line is a real, non-negative amount, and more traffic never costs less.
        let (low, high) = (monthly(inv, 50.0), monthly(inv, 500_000.0));
        for (a, b) in low.iter().zip(&high) {
            assert!(a.usd >= 0.0 && a.usd.is_finite(), "{a:?}");
            assert!(b.usd >= a.usd, "{} costs less at 500,000/day than at 50/day", a.component);
        }
    }
}
