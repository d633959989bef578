//! The control plane's decisions, without a cloud: what `--devices N`
//! means, which rows and CAs `init` keeps, one subject line for both clouds.

use super::*;
use crate::fleet::SAMPLE_SERIAL;
use crate::pki::KeyAlgorithm;
use serde_json::json;

fn fleet() -> Fleet {
    Fleet::builtin().expect("the built-in fleet")
}

fn jitp(role: &str) -> RegistrationConfig {
    RegistrationConfig {
        template_body: crate::vocabulary::JITP_TEMPLATE.to_string(),
        role_arn: role.to_string(),
    }
}

fn found(label: &str, ca: &pki::Issued, registration: Option<RegistrationConfig>) -> FoundCa {
    FoundCa {
        id: ca.id.clone(),
        label: label.to_string(),
        pem: ca.cert_pem.clone(),
        status: "ACTIVE".into(),
        auto_registration: registration.is_some(),
        registration,
    }
}

fn ca(cn: &str) -> pki::Issued {
    let subject = Subject {
        common_name: Some(cn.into()),
        organization: Some("Example".into()),
        country: Some("US".into()),
        ..Default::default()
    };
    pki::create_ca(&subject, KeyAlgorithm::EcdsaP256, 1).expect("CA")
}

fn row(serial: &str, state: &str, ca: &str) -> Item {
    json!({"SerialNumber": serial, "CrState": state, "ManufacturerCaCertId": ca})
        .as_object()
        .cloned()
        .expect("object")
}

#[test]
fn devices_n_means_n_serials_the_samples_first() {
    let fleet = fleet();
    for n in [1, 2, 3, 10] {
        let serials = fleet_serials(&fleet, n);
        assert_eq!(serials.len(), n, "--devices {n}");
        assert_eq!(serials[0], SAMPLE_SERIAL);
    }
    assert!(fleet_serials(&fleet, 0).is_empty());
    // A larger fleet extends a smaller one: init --devices 3 then 5 keeps the 3.
    assert_eq!(fleet_serials(&fleet, 5)[..3], fleet_serials(&fleet, 3)[..]);
}

#[test]
fn the_whitelist_adds_new_serials_and_leaves_progressed_rows_alone() {
    let serials: Vec<String> = ["A", "B", "C", "D"].map(String::from).to_vec();
    let existing = vec![
        row("A", "CR_WHITELISTED", "man-1"),
        row("B", "CR_WHITELISTED", "man-0"),
        row("C", "CR_THING_CREATED", "man-0"),
        row("Z", "CR_WHITELISTED", "man-0"),
    ];
    let rows = whitelist_rows(&serials, &existing, "man-1");
    let written: Vec<&str> = rows
        .iter()
        .map(|r| r["SerialNumber"].as_str().expect("serial"))
        .collect();
    // A is current; B follows the new Manufacturer CA; C progressed; D is new;
    // Z is not asked for.
    assert_eq!(written, ["B", "D"]);
    for r in &rows {
        assert_eq!(r["CrState"], "CR_WHITELISTED");
        assert_eq!(r["ManufacturerCaCertId"], "man-1");
    }
    assert!(whitelist_rows(&serials[..1], &existing, "man-1").is_empty());
}

#[test]
fn the_vendor_ca_is_reused_with_its_key_and_kept_on_the_current_role() {
    let vendor = ca("Vendor CA");
    let cas = [found(VENDOR_CA_LABEL, &vendor, Some(jitp("arn:role/old")))];
    assert_eq!(
        choose_vendor_ca(&[], None, &jitp("arn:role/new")).expect("choice"),
        CaChoice::Create
    );
    let reuse =
        choose_vendor_ca(&cas, Some(&vendor.key_pem), &jitp("arn:role/old")).expect("choice");
    assert!(
        matches!(reuse, CaChoice::Reuse { enable_jitp: false, ref id, .. } if *id == vendor.id)
    );
    let redeployed =
        choose_vendor_ca(&cas, Some(&vendor.key_pem), &jitp("arn:role/new")).expect("choice");
    assert!(matches!(
        redeployed,
        CaChoice::Reuse {
            enable_jitp: true,
            ..
        }
    ));
}

#[test]
fn a_registered_ca_without_its_key_says_how_to_start_over() {
    let vendor = ca("Vendor CA");
    let cas = [found(VENDOR_CA_LABEL, &vendor, None)];
    let err = choose_vendor_ca(&cas, None, &jitp("r"))
        .expect_err("no key")
        .to_string();
    assert!(
        err.contains(VENDOR_KEY_PARAMETER) && err.contains("jitpilot cleanup"),
        "{err}"
    );
    let other = ca("Someone else");
    let err = choose_vendor_ca(&cas, Some(&other.key_pem), &jitp("r"))
        .expect_err("another key")
        .to_string();
    assert!(err.contains("another key"), "{err}");

    let manufacturer = ca("Manufacturer CA");
    let cas = [found(MANUFACTURER_CA_LABEL, &manufacturer, None)];
    let candidate = manufacturer_candidates(&cas).into_iter().next();
    let err = choose_manufacturer_ca(candidate, None)
        .expect_err("no key")
        .to_string();
    assert!(
        err.contains(&format!("cr-ca-key-{}", manufacturer.id)),
        "{err}"
    );
    assert!(matches!(
        choose_manufacturer_ca(candidate, Some(&manufacturer.key_pem)),
        Ok(CaChoice::Reuse { .. })
    ));
}

#[test]
fn an_inactive_manufacturer_ca_is_not_reused() {
    let manufacturer = ca("Manufacturer CA");
    let mut inactive = found(MANUFACTURER_CA_LABEL, &manufacturer, None);
    inactive.status = "INACTIVE".into();
    assert!(manufacturer_candidates(&[inactive]).is_empty());
}

#[test]
fn one_subject_line_most_specific_first() {
    let subject = Subject {
        common_name: Some("Vendor CA".into()),
        organization: Some("Example Vendor".into()),
        country: Some("US".into()),
        state: Some("WA".into()),
        ..Default::default()
    };
    assert_eq!(
        subject_line(&subject),
        "CN=Vendor CA, O=Example Vendor, ST=WA, C=US"
    );
    assert_eq!(subject_line(&Subject::default()), "(empty)");
}

#[test]
fn a_ca_summary_reads_the_same_on_both_clouds() {
    let vendor = ca("Vendor CA");
    let summary = ca_summary(
        &found(
            VENDOR_CA_LABEL,
            &vendor,
            Some(jitp("arn:aws:iam::1:role/p")),
        ),
        BTreeMap::from([("ACTIVE".to_string(), 3)]),
        key_parameter(VENDOR_CA_LABEL, &vendor.id),
    );
    assert_eq!(summary.subject, "CN=Vendor CA, O=Example, C=US");
    assert_eq!(summary.key_parameter.as_deref(), Some(VENDOR_KEY_PARAMETER));
    let template = summary.jitp_template.expect("JITP");
    assert!(
        template.contains("CrInProgressCertPolicy") && template.contains("arn:aws:iam::1:role/p"),
        "{template}"
    );
    assert!(summary.not_after > summary.not_before);
    assert_eq!(
        key_parameter(MANUFACTURER_CA_LABEL, "abc").as_deref(),
        Some("cr-ca-key-abc")
    );
}

#[test]
fn cleanup_deletes_the_retired_cas_keys_and_orphans_not_another_cas() {
    let vendor = ca("Vendor CA");
    let manufacturer = ca("Manufacturer CA");
    let retired = [
        found(VENDOR_CA_LABEL, &vendor, None),
        found(MANUFACTURER_CA_LABEL, &manufacturer, None),
    ];
    let listed: Vec<String> = [
        format!("cr-ca-key-{}", manufacturer.id),
        "cr-ca-key-gone".to_string(),
        "cr-ca-key-someone-elses".to_string(),
        VENDOR_KEY_PARAMETER.to_string(),
        "/jitpilot/vendor-ca-id".to_string(),
    ]
    .into();
    let names = parameters_to_delete(&retired, &listed, &["someone-elses".to_string()]);
    assert_eq!(
        names,
        [
            VENDOR_KEY_PARAMETER.to_string(),
            format!("cr-ca-key-{}", manufacturer.id),
            "cr-ca-key-gone".to_string(),
        ],
        "each once: the retired CAs' keys, then the orphan; another CA's key and the id parameter stay"
    );
}

#[test]
fn cleanup_deactivates_only_what_aws_would_refuse_to_delete() {
    assert!(needs_deactivation("ACTIVE") && needs_deactivation("PENDING_ACTIVATION"));
    assert!(!needs_deactivation("INACTIVE") && !needs_deactivation("REVOKED"));
    let mut vendor = found(VENDOR_CA_LABEL, &ca("Vendor CA"), Some(jitp("r")));
    assert!(ca_needs_deactivation(&vendor), "ACTIVE with JITP on");
    vendor.status = "INACTIVE".into();
    assert!(ca_needs_deactivation(&vendor), "INACTIVE but JITP still on");
    vendor.auto_registration = false;
    assert!(!ca_needs_deactivation(&vendor));
}
