//! `sim-device`: one device against any endpoint, local or AWS.
fn main() {}
