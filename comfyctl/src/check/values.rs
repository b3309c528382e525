//! Value helpers of the validation: model file names, combo equality as
//! the server sees it, and the guess at what an undeclared input was
//! renamed to.

use serde_json::Value;

/// File endings that mark a combo value as a model file.
const MODEL_EXTENSIONS: [&str; 9] = [
    ".safetensors",
    ".ckpt",
    ".pt",
    ".pth",
    ".bin",
    ".gguf",
    ".sft",
    ".onnx",
    ".pt2",
];

/// Which missing required input an undeclared one was probably renamed to:
/// the only one missing, else the one sharing the most `_`-separated words
/// with it (when that is unambiguous).
pub(super) fn likely_rename(unknown: &str, missing: &[String]) -> Option<String> {
    if let [only] = missing {
        return Some(only.clone());
    }
    let words = |s: &str| -> Vec<String> {
        s.to_ascii_lowercase()
            .split(['_', '.', ' '])
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mine = words(unknown);
    let mut scored: Vec<(usize, &String)> = missing
        .iter()
        .map(|m| (words(m).iter().filter(|w| mine.contains(w)).count(), m))
        .filter(|(n, _)| *n > 0)
        .collect();
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    match scored.as_slice() {
        [(best, m), rest @ ..] if rest.first().is_none_or(|(n, _)| n < best) => Some((*m).clone()),
        _ => None,
    }
}

/// Equality the way the server compares combo values (`1` equals `1.0`).
pub(super) fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Whether a value names a model file.
pub fn is_model_file(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    MODEL_EXTENSIONS.iter().any(|e| lower.ends_with(e))
}
