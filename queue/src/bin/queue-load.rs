//! Load tool (written in a later step).
fn main() {}
