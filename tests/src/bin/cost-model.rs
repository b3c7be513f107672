//! Rewrites the monthly infrastructure cost table of COSTS.md (between its cost-model markers),
//! computed from template.yaml at both monitoring levels, the metrics registry and the measured
//! per-turn figures in tests/src/costs.rs, and prints it.
//! `cargo run -p tests --bin cost-model`

use tests::costs::{inventories, table, with_table};
use tests::moto::workspace_root;
use tests::template::Template;

fn main() {
    if let Err(e) = regenerate() {
        eprintln!("cost-model: {e}");
        std::process::exit(1);
    }
}

fn regenerate() -> Result<(), String> {
    let template = Template::load(&workspace_root().join("template.yaml"))?;
    let (essential, full) = inventories(&template);
    let table = table(&essential, &full);
    let path = workspace_root().join("COSTS.md");
    let doc = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    std::fs::write(&path, with_table(&doc, &table)?).map_err(|e| format!("writing {}: {e}", path.display()))?;
    print!("{table}");
    Ok(())
}
