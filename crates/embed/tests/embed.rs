//! gardefou-embed against the real all-MiniLM-L6-v2 files: vectors match sentence-transformers.
//!
//! The model folder comes from `GARDEFOU_EMBED_MODEL_DIR`, else `<repo>/models/all-MiniLM-L6-v2`
//! (written by `scripts/fetch-models.sh`). Without it these tests fail when `CI=true` and are
//! skipped with a note otherwise.

// Helpers outside `#[test]` functions fail the test the same way the tests do.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gardefou_embed::{cosine, EmbedError, Embedder};
use serde::Deserialize;

/// Largest difference allowed between one of our components and sentence-transformers' one.
const TOLERANCE: f32 = 1e-5;

#[derive(Deserialize)]
struct Reference {
    max_seq_length: usize,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    text: String,
    tokens: usize,
    vector: Vec<f32>,
}

fn model_dir() -> PathBuf {
    match std::env::var_os("GARDEFOU_EMBED_MODEL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2"),
    }
}

/// The shared embedder, or `None` when the model is not there outside CI (said once on stderr,
/// past the test harness's capture, so the skip shows in the run's output).
fn embedder() -> Option<&'static Embedder> {
    static EMBEDDER: OnceLock<Result<Embedder, String>> = OnceLock::new();
    let loaded = EMBEDDER.get_or_init(|| {
        Embedder::load(&model_dir()).map_err(|err| {
            let note = format!("skipped: model-backed tests ({err}); run scripts/fetch-models.sh\n");
            let _ = std::io::stderr().write_all(note.as_bytes());
            err.to_string()
        })
    });
    match loaded {
        Ok(embedder) => Some(embedder),
        Err(err) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the embedding model is required in CI: {err}")
        }
        Err(_) => None,
    }
}

fn reference() -> Reference {
    let text = include_str!("fixtures/minilm_reference.json");
    serde_json::from_str(text).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn vectors_match_sentence_transformers() {
    let Some(embedder) = embedder() else { return };
    let reference = reference();
    assert_eq!(embedder.max_tokens(), reference.max_seq_length);
    let texts: Vec<&str> = reference.cases.iter().map(|c| c.text.as_str()).collect();

    // All in one call (one padded batch) and each text alone must both match.
    let batched = embedder.embed(&texts).unwrap();
    let mut worst = (0.0f32, "");
    for (case, got) in reference.cases.iter().zip(&batched) {
        let alone = embedder.embed(&[case.text.as_str()]).unwrap();
        for vector in [got, &alone[0]] {
            assert_eq!(vector.len(), 384, "{}", case.name);
            let diff = max_abs_diff(vector, &case.vector);
            if diff > worst.0 {
                worst = (diff, &case.name);
            }
        }
    }
    eprintln!("largest difference from sentence-transformers: {:e} ({})", worst.0, worst.1);
    assert!(worst.0 <= TOLERANCE, "case {} differs by {:e} > {TOLERANCE:e}", worst.1, worst.0);
}

#[test]
fn token_counts_are_before_truncation() {
    let Some(embedder) = embedder() else { return };
    for case in reference().cases {
        assert_eq!(embedder.count_tokens(&case.text).unwrap(), case.tokens, "{}", case.name);
    }
}

#[test]
fn text_past_the_limit_embeds_like_its_first_tokens() {
    let Some(embedder) = embedder() else { return };
    let words: Vec<String> = (0..400).map(|i| format!("word{i}")).collect();
    let long = words.join(" ");
    assert!(embedder.count_tokens(&long).unwrap() > embedder.max_tokens());
    let longer = format!("{long} and then a completely different ending about volcanoes");
    let vectors = embedder.embed(&[&long, &longer]).unwrap();
    assert!(max_abs_diff(&vectors[0], &vectors[1]) <= TOLERANCE);
}

#[test]
fn similar_sentences_are_closer_than_unrelated_ones() {
    let Some(embedder) = embedder() else { return };
    let v = embedder
        .embed(&[
            "How do I reset my password?",
            "I forgot my password, how can I change it?",
            "The recipe needs two eggs and a cup of flour.",
        ])
        .unwrap();
    let close = cosine(&v[0], &v[1]);
    let far = cosine(&v[0], &v[2]);
    assert!(close > 0.6 && far < 0.2 && close > far, "close {close}, far {far}");
    for vector in &v {
        assert!((cosine(vector, vector) - 1.0).abs() < 1e-5);
    }
}

#[test]
fn empty_input_gives_no_vectors() {
    let Some(embedder) = embedder() else { return };
    assert!(embedder.embed(&[]).unwrap().is_empty());
    assert_eq!(embedder.dimension(), 384);
    assert_eq!(embedder.model_id(), "all-MiniLM-L6-v2");
}

#[test]
fn more_texts_than_one_batch_keep_their_order() {
    let Some(embedder) = embedder() else { return };
    let texts: Vec<String> = (0..70).map(|i| "token ".repeat(1 + (i * 7) % 40) + &i.to_string()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let all = embedder.embed(&refs).unwrap();
    assert_eq!(all.len(), texts.len());
    for i in [0, 31, 32, 69] {
        let alone = embedder.embed(&[refs[i]]).unwrap();
        assert!(max_abs_diff(&all[i], &alone[0]) <= TOLERANCE, "text {i}");
    }
}

#[test]
fn a_folder_without_weights_names_the_weights_file() {
    let Some(_) = embedder() else { return };
    let dir = std::env::temp_dir().join(format!("gardefou-embed-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in [gardefou_embed::CONFIG_FILE, gardefou_embed::TOKENIZER_FILE] {
        std::fs::copy(model_dir().join(file), dir.join(file)).unwrap();
    }
    let err = Embedder::load(&dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(&err, EmbedError::MissingFile { path } if path.ends_with("model.safetensors")), "{err}");
}

#[test]
fn a_truncated_weights_file_is_reported_as_unusable() {
    let Some(_) = embedder() else { return };
    let dir = std::env::temp_dir().join(format!("gardefou-embed-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in [gardefou_embed::CONFIG_FILE, gardefou_embed::TOKENIZER_FILE] {
        std::fs::copy(model_dir().join(file), dir.join(file)).unwrap();
    }
    std::fs::write(dir.join(gardefou_embed::WEIGHTS_FILE), b"not safetensors").unwrap();
    let err = Embedder::load(&dir).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(err.kind(), "bad_file", "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}
