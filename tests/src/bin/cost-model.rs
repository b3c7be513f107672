//! Prints the monthly infrastructure cost table of COSTS.md, computed from template.yaml, the
//! metrics registry and the measured per-turn figures in tests/src/costs.rs.
//! `cargo run -p tests --bin cost-model` (paste between the cost-model markers of COSTS.md).

use tests::costs::{inventory, table};
use tests::moto::workspace_root;
use tests::template::Template;

fn main() {
    let template = match Template::load(&workspace_root().join("template.yaml")) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cost-model: {e}");
            std::process::exit(1);
        }
    };
    print!("{}", table(&inventory(&template)));
}
