//! Answers one prompt with a local GGUF model and prints the speed.
//!
//! `cargo run --release -p gardefou-local --example generate -- models/SmolLM2-135M-Instruct/model.gguf "Hi" [MAX_TOKENS]`

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use gardefou_local::{GenerateParams, LocalModel, Turn};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "models/SmolLM2-135M-Instruct/model.gguf".to_owned());
    let prompt = args.next().unwrap_or_else(|| "Tell me about the Moon in three sentences.".to_owned());
    let max_tokens = args.next().map(|m| m.parse()).transpose()?.unwrap_or(128);
    let started = Instant::now();
    let model = LocalModel::load(path.as_ref(), None)?;
    println!("loaded {path} in {:.2}s", started.elapsed().as_secs_f64());
    let params =
        GenerateParams { temperature: Some(0.0), max_tokens: Some(max_tokens), ..Default::default() };
    let started = Instant::now();
    let mut first = None;
    let out = model.generate(&[Turn::new("user", prompt)], &params, &AtomicBool::new(false), |piece| {
        first.get_or_insert_with(|| started.elapsed());
        print!("{piece}");
        true
    })?;
    let total = started.elapsed().as_secs_f64();
    let first = first.map_or(0.0, |d| d.as_secs_f64());
    println!(
        "\n\n{} prompt tokens, {} completion tokens ({:?}); first piece after {:.3}s; {:.1} tokens/s decoding, {:.2}s total",
        out.prompt_tokens,
        out.completion_tokens,
        out.finish,
        first,
        (out.completion_tokens.saturating_sub(1)) as f64 / (total - first).max(1e-9),
        total
    );
    Ok(())
}
