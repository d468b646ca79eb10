use anyhow::Result;
use powhost_core::params::PRESETS;

pub fn run(json: bool) -> Result<()> {
    if json {
        let list: Vec<_> = PRESETS
            .iter()
            .map(|(name, about, p)| serde_json::json!({"name": name, "about": about, "params": p}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for (name, about, p) in PRESETS {
            println!(
                "{name:<18} dim {:>5}, {:>2} layers, {:>2} heads ({:>2} kv), vocab {:>6}, seq_len {:>4}  {about}",
                p.dim, p.n_layers, p.n_heads, p.n_kv_heads, p.vocab_size, p.seq_len
            );
        }
    }
    Ok(())
}
