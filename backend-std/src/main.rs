//! Placeholder entry point; replaced when this binary is built.

fn main() {}
