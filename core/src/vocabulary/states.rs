//! Where a device is in the walkthrough: the four `CrState` values of its
//! device-table row, as the sample spells them.

/// The serial may onboard (written by `init`).
pub const CR_WHITELISTED: &str = "CR_WHITELISTED";
/// JITP registered the vendor cert and created the thing (step 3a done).
pub const CR_THING_CREATED: &str = "CR_THING_CREATED";
/// The manufacturer cert was issued (step 3b done).
pub const CR_MAN_CERT_CREATED: &str = "CR_MAN_CERT_CREATED";
/// The vendor cert is gone; the device uses its manufacturer cert (3c done).
pub const CR_CERT_ROTATION_COMPLETED: &str = "CR_CERT_ROTATION_COMPLETED";

/// The prefix every state shares (the TUI shows states without it).
pub const CR_STATE_PREFIX: &str = "CR_";

/// Where a device is in the rotation, as the sample names the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CrState {
    /// The serial may onboard (written by `init`).
    Whitelisted,
    /// JITP registered the vendor cert and created the thing (step 3a done).
    ThingCreated,
    /// The manufacturer cert was issued (step 3b done).
    ManCertCreated,
    /// The vendor cert is gone; the device uses its manufacturer cert (3c done).
    CertRotationCompleted,
}

impl CrState {
    /// The four states in the walkthrough's order.
    pub const ALL: [CrState; 4] = [
        CrState::Whitelisted,
        CrState::ThingCreated,
        CrState::ManCertCreated,
        CrState::CertRotationCompleted,
    ];

    /// The sample's spelling: `CR_WHITELISTED`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            CrState::Whitelisted => CR_WHITELISTED,
            CrState::ThingCreated => CR_THING_CREATED,
            CrState::ManCertCreated => CR_MAN_CERT_CREATED,
            CrState::CertRotationCompleted => CR_CERT_ROTATION_COMPLETED,
        }
    }

    /// Parses the sample's spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<CrState> {
        CrState::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

impl std::fmt::Display for CrState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_in_the_samples_spelling() {
        for state in CrState::ALL {
            assert_eq!(CrState::parse(state.as_str()), Some(state));
            assert!(state.as_str().starts_with(CR_STATE_PREFIX));
        }
        assert_eq!(CrState::parse("CR_WHITELISTED"), Some(CrState::Whitelisted));
        assert_eq!(CrState::parse("whitelisted"), None);
    }
}
