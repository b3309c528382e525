//! Redis backend (written in a later step).
