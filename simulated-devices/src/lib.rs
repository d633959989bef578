//! The jitpilot device agent.
