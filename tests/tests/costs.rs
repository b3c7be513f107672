//! COSTS.md carries the cost table computed from the template as it is now.

use tests::costs::{inventory, monthly, table};
use tests::moto::workspace_root;
use tests::template::Template;

const BEGIN: &str = "<!-- cost-model:begin -->\n";
const END: &str = "<!-- cost-model:end -->";

fn template() -> Template {
    Template::load(&workspace_root().join("template.yaml")).expect("template.yaml")
}

#[test]
fn costs_md_shows_the_table_computed_from_the_current_template() {
    let doc = std::fs::read_to_string(workspace_root().join("COSTS.md")).expect("COSTS.md");
    let start = doc.find(BEGIN).expect("COSTS.md has the cost-model:begin marker") + BEGIN.len();
    let end = doc[start..].find(END).expect("COSTS.md has the cost-model:end marker") + start;
    let want = table(&inventory(&template()));
    assert!(
        doc[start..end] == want,
        "COSTS.md is stale: regenerate the table with `cargo run -p tests --bin cost-model`.\nexpected:\n{want}"
    );
}

#[test]
fn the_inventory_sees_the_template_as_deployed() {
    let inv = inventory(&template());
    assert!(inv.functions.len() >= 4, "{:?}", inv.functions);
    assert!(inv.functions.iter().all(|(_, mb)| *mb >= 128.0), "{:?}", inv.functions);
    assert_eq!(inv.fifo_polled_queues, 1, "the work queue");
    assert!(inv.standard_polled_queues >= 1, "the usage queue");
    assert!(inv.secrets >= 1);
    // Every line is a real, non-negative amount, and more traffic never costs less.
    let (low, high) = (monthly(&inv, 50.0), monthly(&inv, 500_000.0));
    for (a, b) in low.iter().zip(&high) {
        assert!(a.usd >= 0.0 && a.usd.is_finite(), "{a:?}");
        assert!(b.usd >= a.usd, "{} costs less at 500,000/day than at 50/day", a.component);
    }
}
