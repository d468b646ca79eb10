//! The model's eleven fields are written in four places: wit/pow.wit's `record model-params`,
//! the plugin kit's one list (`powhost_plugin_kit::PARAMS_FIELDS`, from which its
//! `PartialParams`, params parser, `to_json` and `fill_params` follow), and the core crate's
//! `ModelParams` and `PartialParams` (their serde names are the JSON the host reads and writes).
//! The kit checks its list against the WIT (its test `params_fields_are_the_wit_records`); this
//! test checks core's two structs against the kit's list, so a field renamed, added or dropped
//! in one place and not the others fails here. (The host's WIT conversions, `to_wit` and
//! `from_wit`, spell every field in a struct literal: they fail to compile instead.)

use powhost_core::params::{ModelParams, PartialParams};
use powhost_plugin_kit::PARAMS_FIELDS;

/// Core's `ModelParams` serialises exactly the kit's fields, in the kit's (the WIT's) order.
#[test]
fn core_model_params_has_the_kits_fields_in_order() {
    let text = serde_json::to_string(&ModelParams::reference_default()).unwrap();
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut ours = PARAMS_FIELDS.to_vec();
    names.sort_unstable();
    ours.sort_unstable();
    assert_eq!(
        names, ours,
        "core's ModelParams and the kit's PARAMS_FIELDS differ"
    );
    let positions: Vec<usize> = PARAMS_FIELDS
        .iter()
        .map(|name| text.find(&format!("\"{name}\":")).unwrap())
        .collect();
    assert!(
        positions.is_sorted(),
        "core's ModelParams writes its fields in another order than the kit's: {text}"
    );
}

/// Core's `PartialParams` (which refuses unknown fields) takes every one of the kit's fields,
/// and carries each: the full set written by `ModelParams` reads back to the same params.
#[test]
fn core_partial_params_takes_every_kit_field() {
    for name in PARAMS_FIELDS {
        let json = format!("{{\"{name}\": null}}");
        serde_json::from_str::<PartialParams>(&json)
            .unwrap_or_else(|e| panic!("core's PartialParams refuses `{name}`: {e}"));
    }
    assert!(serde_json::from_str::<PartialParams>(r#"{"depth": 3}"#).is_err());
    // Every field differs from reference-default (which fills what is missing), so one that
    // is not carried shows.
    let all_differ = ModelParams {
        dim: 64,
        n_layers: 3,
        n_heads: 4,
        n_kv_heads: 2,
        vocab_size: 100,
        ffn_dim_multiplier: 2.5,
        multiple_of: 8,
        norm_eps: 1e-6,
        rope_theta: 1234.0,
        use_scaled_rope: true,
        seq_len: 5,
    };
    let all = serde_json::to_string(&all_differ).unwrap();
    let partial: PartialParams = serde_json::from_str(&all).unwrap();
    assert_eq!(ModelParams::from_partial(&partial), all_differ);
}
