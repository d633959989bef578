//! Names in the parameter store and in the rotation function's environment:
//! where `init` keeps the CAs' keys, and the variables the stack hands the
//! function (its table, its data endpoint, its `CsrKeyReuse` setting).

/// Prefix of the parameter holding a CA's private key (SecureString, PEM);
/// the CA's certificateId follows.
pub const CA_KEY_PARAMETER_PREFIX: &str = "cr-ca-key-";

/// Name of the parameter holding the Manufacturer CA's key, which the
/// rotation function signs CSRs with (step 3b): `cr-ca-key-<caCertificateId>`.
pub fn ca_key_parameter(ca_cert_id: &str) -> String {
    format!("{CA_KEY_PARAMETER_PREFIX}{ca_cert_id}")
}

/// Where the Vendor CA's key — the factory's signing key — is kept
/// (jitpilot's own parameter; the sample keeps it in a local file).
pub const VENDOR_KEY_PARAMETER: &str = "/jitpilot/vendor-ca-key";

/// The function's environment variable naming the device table
/// (`cfn/cert-rotation.json`, `Environment.Variables`).
pub const DEVICE_TABLE_ENV: &str = "DEVICE_TABLE";
/// The function's environment variable naming the IoT data endpoint it
/// answers devices through; without it the function asks `DescribeEndpoint`.
pub const IOT_DATA_ENDPOINT_ENV: &str = "IOT_DATA_ENDPOINT";
/// The function's environment variable carrying the stack parameter
/// `CsrKeyReuse` (`cfn/cert-rotation.json`, `Environment.Variables`).
pub const CSR_KEY_REUSE_ENV: &str = "CSR_KEY_REUSE";
