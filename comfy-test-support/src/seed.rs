//! Seeds of randomised tests: printed, and taken from `COMFY_TEST_SEED` to
//! rerun a failure with the same choices.

use std::hash::{BuildHasher, Hasher};

/// Environment variable that fixes the seed of every randomised test.
pub const SEED_ENV: &str = "COMFY_TEST_SEED";

/// The seed for `test`: `COMFY_TEST_SEED` (decimal, or hex with `0x`) when
/// set, a fresh random one otherwise. Printed either way (libtest shows it
/// with a failure's output) with the command-line form that reruns it.
///
/// # Panics
/// When `COMFY_TEST_SEED` is set but is not a number.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var(SEED_ENV) {
        Ok(v) => parse(&v).unwrap_or_else(|| panic!("{SEED_ENV}={v:?} is not a u64")),
        // RandomState is keyed from the OS's randomness on every platform std supports.
        Err(_) => std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish(),
    };
    eprintln!("{test}: seed {seed} (rerun with {SEED_ENV}={seed})");
    seed
}

fn parse(v: &str) -> Option<u64> {
    let v = v.trim();
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn decimal_and_hex_seeds_parse() {
        assert_eq!(parse("42"), Some(42));
        assert_eq!(parse(" 0x2a "), Some(42));
        assert_eq!(parse("forty-two"), None);
    }
}
