use super::overrides::{with_application_profiles, OverrideLocation};
use super::*;

fn call(model: &str, input: u64, output: u64) -> ModelCall {
    ModelCall {
        model_id: model.into(),
        input_tokens: input,
        output_tokens: output,
        step: "orchestration".into(),
        ..ModelCall::default()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn embedded_table_is_valid_and_covers_the_required_models() {
    let table = PriceTable::from_json(EMBEDDED).expect("embedded table parses");
    assert_eq!(table.version(), "2025-11-24.1");
    for id in [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "anthropic.claude-sonnet-4-20250514-v1:0",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        "anthropic.claude-opus-4-20250514-v1:0",
        "anthropic.claude-opus-4-1-20250805-v1:0",
        "anthropic.claude-opus-4-5-20251101-v1:0",
        "amazon.nova-micro-v1:0",
        "amazon.nova-lite-v1:0",
        "amazon.nova-pro-v1:0",
        "amazon.nova-premier-v1:0",
        "meta.llama3-8b-instruct-v1:0",
        "meta.llama3-70b-instruct-v1:0",
        "meta.llama3-1-8b-instruct-v1:0",
        "meta.llama3-1-70b-instruct-v1:0",
        "meta.llama3-1-405b-instruct-v1:0",
        "meta.llama3-2-1b-instruct-v1:0",
        "meta.llama3-2-3b-instruct-v1:0",
        "meta.llama3-2-11b-instruct-v1:0",
        "meta.llama3-2-90b-instruct-v1:0",
        "meta.llama3-3-70b-instruct-v1:0",
        "amazon.titan-embed-text-v2:0",
    ] {
        assert!(table.price(id).is_some(), "{id} must be priced");
    }
    assert_eq!(PriceTable::embedded().len(), table.len());
}

#[test]
fn worked_examples() {
    let table = PriceTable::embedded();
    // 1,000 input + 500 output on Claude 3.5 Sonnet = $0.0105 (both versions).
    for id in ["anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet-20241022-v2:0"] {
        let cost = table.cost(&call(id, 1_000, 500)).expect("priced");
        assert!(close(cost, 0.0105), "{id}: {cost}");
    }
    // 1M + 1M on Claude 3 Haiku = $1.50.
    let cost = table.cost(&call("anthropic.claude-3-haiku-20240307-v1:0", 1_000_000, 1_000_000)).expect("priced");
    assert!(close(cost, 1.50), "{cost}");
    assert_eq!(Usd::from_f64(cost).to_string(), "1.5");
}

#[test]
fn cross_region_prefixes_and_global_vs_regional() {
    let table = PriceTable::embedded();
    let sonnet_35 = table.cost(&call("us.anthropic.claude-3-5-sonnet-20241022-v2:0", 1_000, 500)).expect("priced");
    assert!(close(sonnet_35, 0.0105));
    for prefix in ["eu.", "apac.", "jp.", "au.", "us-gov.", ""] {
        let id = format!("{prefix}anthropic.claude-3-7-sonnet-20250219-v1:0");
        assert_eq!(table.price(&id).map(|p| p.input), Some(3.0), "{id}");
    }
    // Sonnet 4.5 and Haiku 4.5: regional profiles (and in-Region) are 10 % above global.
    let m = 1_000_000;
    let sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0";
    let global = table.cost(&call(&format!("global.{sonnet}"), m, m)).expect("priced");
    let us = table.cost(&call(&format!("us.{sonnet}"), m, m)).expect("priced");
    let in_region = table.cost(&call(sonnet, m, m)).expect("priced");
    assert!(close(global, 18.0), "{global}");
    assert!(close(us, 19.8), "{us}");
    assert!(close(in_region, us));
    assert_eq!(table.price(&format!("global.{sonnet}")).map(|p| p.scope), Some(Scope::Global));
    let haiku = "anthropic.claude-haiku-4-5-20251001-v1:0";
    let global = table.cost(&call(&format!("global.{haiku}"), m, m)).expect("priced");
    let eu = table.cost(&call(&format!("eu.{haiku}"), m, m)).expect("priced");
    assert!(close(global, 6.0) && close(eu, 6.6), "{global} {eu}");
    // A model without a separate global price uses its one price under global. too.
    let sonnet4 = table.cost(&call("global.anthropic.claude-sonnet-4-20250514-v1:0", m, m)).expect("priced");
    assert!(close(sonnet4, 18.0));
}

#[test]
fn arns_are_normalised() {
    let table = PriceTable::embedded();
    let fm = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0";
    assert!(close(table.cost(&call(fm, 1_000, 500)).expect("priced"), 0.0105));
    let profile =
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-haiku-4-5-20251001-v1:0";
    let price = table.price(profile).expect("priced");
    assert_eq!((price.scope, price.input), (Scope::Global, 1.0));
    let gov = "arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/meta.llama3-8b-instruct-v1:0";
    assert_eq!(table.price(gov).map(|p| p.model.as_str()), Some("meta.llama3-8b-instruct"));
    assert_eq!(table.model_label(fm), "anthropic.claude-3-5-sonnet-20240620");
    // Provisioned throughput is billed by the hour, not per token.
    assert!(table.price("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdef").is_none());
}

#[test]
fn versioned_keys_and_context_suffixes() {
    let table = PriceTable::embedded();
    assert_eq!(table.price("amazon.titan-embed-text-v2:0").map(|p| p.input), Some(0.02));
    // Titan Embeddings V1 is a different model at a different price: not V2's price.
    assert!(table.price("amazon.titan-embed-text-v1").is_none());
    assert!(table.price("anthropic.claude-3-haiku-20240307-v1:0:200k").is_some());
    assert!(table.price("  ANTHROPIC.CLAUDE-3-HAIKU-20240307-V1:0 ").is_some());
}

#[test]
fn unknown_models_are_unpriced_never_defaulted() {
    let table = PriceTable::embedded();
    for id in ["unknown", "", "anthropic.claude-9-opus", "us.mistral.pixtral-large-2502-v1:0", "global."] {
        assert!(table.price(id).is_none(), "{id}");
        assert!(table.cost(&call(id, 10, 10)).is_none(), "{id}");
    }
    let calls = vec![
        call("anthropic.claude-3-5-sonnet-20241022-v2:0", 1_000, 500),
        call("unknown", 700, 90),
        ModelCall { cache_read_tokens: 10, ..call("mistral.mistral-large-2407-v1:0", 5, 5) },
    ];
    let (total, priced, unpriced_tokens) = table.turn_cost(&calls);
    assert_eq!(total, None);
    assert!(close(priced, 0.0105));
    assert_eq!(unpriced_tokens, 790 + 20);
    assert_eq!(table.model_label(" unknown "), "unknown");
    let (total, priced, unpriced) = table.turn_cost(&calls[..1]);
    assert_eq!((total.map(|t| close(t, priced)), unpriced), (Some(true), 0));
}

#[test]
fn cache_tokens_are_priced_and_unpriceable_cache_makes_the_call_unpriced() {
    let table = PriceTable::embedded();
    let c = ModelCall {
        cache_read_tokens: 1_000_000,
        cache_write_tokens: 1_000_000,
        ..call("us.anthropic.claude-3-7-sonnet-20250219-v1:0", 0, 0)
    };
    assert!(close(table.cost(&c).expect("priced"), 0.30 + 3.75));
    // Claude 3 Haiku has no cache price on Bedrock: a call reporting cache tokens is unpriced.
    let c = ModelCall { cache_read_tokens: 5, ..call("anthropic.claude-3-haiku-20240307-v1:0", 1, 1) };
    assert!(table.cost(&c).is_none());
}

#[test]
fn application_profiles_map_to_their_base_model() {
    let arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6";
    let table = with_application_profiles(
        PriceTable::embedded(),
        &format!(r#"{{"{arn}": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"}}"#),
    )
    .expect("valid map");
    let price = table.price(arn).expect("mapped");
    assert_eq!(
        (price.model.as_str(), price.scope, price.input),
        ("anthropic.claude-sonnet-4-5-20250929", Scope::Regional, 3.3)
    );
    assert!(table.price("a1b2c3d4e5f6").is_some(), "the bare profile id works too");
    assert!(PriceTable::embedded().price(arn).is_none(), "an unmapped profile is unpriced");
    let e = with_application_profiles(PriceTable::embedded(), "[1]").unwrap_err().to_string();
    assert!(e.contains("APPLICATION_INFERENCE_PROFILES"), "{e}");
    let e = with_application_profiles(PriceTable::embedded(), &format!(r#"{{"x": "{arn}"}}"#)).unwrap_err().to_string();
    assert!(e.contains("APPLICATION_INFERENCE_PROFILES") && e.contains("another application profile"), "{e}");
}

#[test]
fn overrides_replace_and_extend_and_carry_profiles() {
    let over = PriceTable::from_json(
        r#"{
          "version": "acme-2026-02",
          "models": [
            {"model": "anthropic.claude-3-5-sonnet-20240620", "effective_date": "2026-02-01", "input": 6, "output": 30},
            {"model": "mistral.mistral-large-2407", "name": "Mistral Large 2", "effective_date": "2024-07-24",
             "input": 2, "output": 6, "cache_read": null}
          ],
          "application_inference_profiles": {"prof123": "anthropic.claude-3-haiku-20240307-v1:0"}
        }"#,
    )
    .expect("valid override");
    let table = PriceTable::embedded().merge(over);
    assert_eq!(table.version(), "2025-11-24.1+acme-2026-02");
    let cost = table.cost(&call("anthropic.claude-3-5-sonnet-20240620-v1:0", 1_000, 500)).expect("priced");
    assert!(close(cost, 0.021), "{cost}");
    assert_eq!(table.price("eu.mistral.mistral-large-2407-v1:0").map(|p| p.name.as_str()), Some("Mistral Large 2"));
    assert!(table.price("arn:aws:bedrock:us-east-1:1:application-inference-profile/prof123").is_some());
    // Untouched entries keep their embedded price.
    assert!(close(table.cost(&call("anthropic.claude-3-5-sonnet-20241022-v2:0", 1_000, 500)).expect("p"), 0.0105));
}

#[test]
fn invalid_documents_are_refused_with_the_entry_named() {
    let cases = [
        ("{", "not a price document"),
        (r#"{"version": " ", "models": []}"#, "version is empty"),
        (r#"{"version": "1", "currency": "EUR"}"#, "currency"),
        (r#"{"version": "1", "unit": "per_thousand_tokens"}"#, "per_million_tokens"),
        (
            r#"{"version": "1", "models": [{"model": "x.y", "effective_date": "2025-01-01", "input": -1, "output": 1}]}"#,
            "models[0] (x.y): input must be a non-negative",
        ),
        (
            r#"{"version": "1", "models": [{"model": "x.y", "effective_date": "2025-01-01", "input": 1, "output": 1, "cache_reads": 1}]}"#,
            "models[0] (x.y): unknown field `cache_reads`",
        ),
        (
            r#"{"version": "1", "models": [{"model": "x.y", "effective_date": "01/02/2025", "input": 1, "output": 1}]}"#,
            "models[0] (x.y): effective_date",
        ),
        (
            r#"{"version": "1", "models": [{"model": "x.y", "effective_date": "2025-01-01", "output": 1}]}"#,
            "models[0] (x.y): missing field `input`",
        ),
        (
            r#"{"version": "1", "models": [{"model": "x.y", "effective_date": "2025-01-01", "input": 3000, "output": 1}]}"#,
            "implausible",
        ),
        (
            r#"{"version": "1", "models": [{"model": "global.x.y", "effective_date": "2025-01-01", "input": 1, "output": 1}]}"#,
            "inference-profile prefix",
        ),
        (
            r#"{"version": "1", "models": [{"model": "a.b", "effective_date": "2025-01-01", "input": 1, "output": 1}, {"model": "A.B", "effective_date": "2025-01-01", "input": 1, "output": 1}]}"#,
            "models[1] (A.B): model \"a.b\" is listed twice",
        ),
        (
            r#"{"version": "1", "models": [{"model": "x.y", "effective_date": "2025-01-01", "input": 1, "output": 1, "global": {"input": 1}}]}"#,
            "models[0] (x.y): missing field `output`",
        ),
        (
            r#"{"version": "1", "models": [{"effective_date": "2025-01-01", "input": 1, "output": 1}]}"#,
            "models[0]: missing field `model`",
        ),
        (r#"{"version": "1", "regional_prefixes": ["us", "global"]}"#, "regional_prefixes"),
    ];
    for (doc, expected) in cases {
        let e = PriceTable::from_json(doc).expect_err(doc).to_string();
        assert!(e.contains("price table") && e.contains(expected), "{doc}\n  -> {e}");
    }
}

#[test]
fn override_locations() {
    assert_eq!(
        OverrideLocation::parse(" s3://bucket/prices/override.json ").expect("s3"),
        OverrideLocation::S3 { bucket: "bucket".into(), key: "prices/override.json".into() }
    );
    for bad in ["s3://bucket", "s3:///key", "https://example.com/x.json", "ssm:/prices/override"] {
        let e = OverrideLocation::parse(bad).expect_err(bad).to_string();
        assert!(e.contains("PRICE_TABLE_OVERRIDE"), "{bad}: {e}");
    }
}

#[test]
fn usd_is_exact_decimal() {
    let parts = [0.0105, 0.1, 0.2, 0.000_000_02];
    let sum: Usd = parts.iter().map(|&p| Usd::from_f64(p)).sum();
    assert_eq!(sum.to_string(), "0.31050002");
    assert_eq!(Usd::ZERO.to_string(), "0");
    assert_eq!(Usd::from_units(-5_000_000_000).to_string(), "-0.5");
    assert_eq!(Usd::from_f64(12.0).to_string(), "12");
    assert_eq!(Usd::from_f64(1.5).units(), 15_000_000_000);
}
