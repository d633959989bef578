//! The walkthrough's vocabulary: every name that a device written for the
//! AWS sample, the stack's rules, the rotation function, `init`, `status`
//! and the TUI must agree on — DESIGN §1's *wire contract*, in one place.
//!
//! A device onboards by these names: it publishes to the rotation
//! [`topics`], its serial is a row of the device [`table`] whose `CrState`
//! walks the four [`states`], the function reads the Manufacturer CA's key
//! from the [`parameters`] store under `cr-ca-key-<caCertificateId>`, the
//! [`registry`] labels the Vendor and Manufacturer CAs and names the two
//! policies, and "the factory" writes its [`credentials`] folder. The
//! [`stack`] template and the AWS IoT Core [`limits`] are the same for the
//! local cloud and for AWS.
//!
//! Changing a string here breaks devices and scripts written for the sample;
//! every layer — local cloud, AWS backend, Lambda, CLI, TUI, simulated
//! devices — uses these names instead of spelling them again.

pub mod credentials;
pub mod limits;
pub mod parameters;
pub mod registry;
pub mod stack;
pub mod states;
pub mod table;
pub mod topics;

pub use credentials::*;
pub use limits::*;
pub use parameters::*;
pub use registry::*;
pub use stack::*;
pub use states::*;
pub use table::*;
pub use topics::*;
