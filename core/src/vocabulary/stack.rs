//! The stack of step 1 ("deploy"): its name, the CloudFormation template
//! deployed as-is to AWS and interpreted by the local cloud, and the JITP
//! provisioning template `init` attaches to the Vendor CA.

/// The stack's name, as the sample's `deploy_cf.bash` names it.
pub const STACK_NAME: &str = "CertRotation";
/// Where the stack template lives in the repository (what users deploy by hand).
pub const STACK_TEMPLATE_PATH: &str = "cfn/cert-rotation.json";
/// The stack template, compiled into the binary so `jitpilot` runs from anywhere.
pub const STACK_TEMPLATE: &str = include_str!("../../../cfn/cert-rotation.json");
/// The JITP provisioning template attached to the Vendor CA (step 2): thing
/// named by the cert's CommonName, cert ACTIVE, the in-progress policy.
pub const JITP_TEMPLATE: &str = include_str!("../../../assets/jitp-template.json");
