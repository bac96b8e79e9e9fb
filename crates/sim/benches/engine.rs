//! Simulator throughput benchmark (placeholder until the policies land).
fn main() {}
