//! The local cloud's control plane.

/// The embedded local cloud.
pub struct LocalCloud {}
