//! Names in the IoT registry: the labels of the walkthrough's two CAs and
//! the two policies the JITP template and the rotation function attach.

/// Label of the Vendor CA: signs the factory certs; JITP is enabled on it.
pub const VENDOR_CA_LABEL: &str = "Vendor CA";
/// Label of the Manufacturer CA: signs the devices' CSRs in step 3b.
pub const MANUFACTURER_CA_LABEL: &str = "Manufacturer CA";

/// Policy the JITP template attaches to a vendor certificate (step 3a).
pub const IN_PROGRESS_POLICY: &str = "CrInProgressCertPolicy";
/// Policy attached to the manufacturer certificate (step 3b).
pub const ROTATION_COMPLETE_POLICY: &str = "CrCertRotationCompleteCertPolicy";
