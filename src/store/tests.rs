//! Opening, migrations, refusal of foreign/corrupt/newer databases, and the
//! registry's AWS IoT rules.

use super::*;
use crate::model::{CaCertificate, Certificate, CertificateStatus, RegistrationConfig};
use serde_json::Map;

fn ca(id: &str) -> CaCertificate {
    CaCertificate {
        id: id.into(),
        pem: "pem".into(),
        status: CertificateStatus::Active,
        auto_registration: false,
        registration_config: None,
        label: "Vendor CA".into(),
        created_at: 1,
    }
}

fn cert(id: &str, ca_id: &str, status: CertificateStatus) -> Certificate {
    Certificate {
        id: id.into(),
        ca_id: Some(ca_id.into()),
        pem: "pem".into(),
        status,
        created_at: 2,
    }
}

#[test]
fn a_fresh_store_is_migrated_in_wal_mode_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        Store::supported_schema_version()
    );
    let mode: String = store
        .with_conn(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
        .unwrap();
    assert_eq!(mode, "wal");
    store.register_ca(&ca("a")).unwrap();
    drop(store);
    let again = Store::open(dir.path()).unwrap();
    assert_eq!(again.list_cas().unwrap().len(), 1);
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.list_cas().unwrap()[0].id, "a");
    assert!(reader.register_ca(&ca("b")).is_err());
}

#[test]
fn garbage_in_the_database_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = b"this is not sqlite at all, just some bytes".repeat(200);
    std::fs::write(dir.path().join(DB_FILE), &garbage).unwrap();
    let err = Store::open(dir.path()).err().unwrap();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("Move it aside"));
    assert_eq!(std::fs::read(dir.path().join(DB_FILE)).unwrap(), garbage);
    assert!(
        !dir.path().join(MASTER_KEY_FILE).exists(),
        "nothing created"
    );
}

#[test]
fn a_lost_master_key_is_an_error_not_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    std::fs::remove_file(dir.path().join(MASTER_KEY_FILE)).unwrap();
    let err = Store::open(dir.path()).err().unwrap();
    assert!(matches!(err, StoreError::MasterKey { .. }), "{err}");
    assert!(!dir.path().join(MASTER_KEY_FILE).exists());
}

#[test]
fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute_batch("CREATE TABLE songs (title TEXT)")
        .unwrap();
    drop(conn);
    let err = Store::open(dir.path()).err().unwrap();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open(dir.path()).err().unwrap();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn read_only_open_of_a_missing_store_says_so() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Store::open_read_only(dir.path()),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn ca_lifecycle_follows_aws_rules() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.register_ca(&ca("v")).unwrap();
    assert!(matches!(
        store.register_ca(&ca("v")),
        Err(StoreError::AlreadyExists { .. })
    ));
    let config = RegistrationConfig {
        template_body: "{}".into(),
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
    };
    store
        .set_ca_auto_registration("v", true, Some(&config))
        .unwrap();
    let got = store.get_ca("v").unwrap().unwrap();
    assert!(got.auto_registration);
    assert_eq!(got.registration_config, Some(config));
    assert!(matches!(
        store.delete_ca("v"),
        Err(StoreError::Conflict { .. })
    ));
    store
        .set_ca_status("v", CertificateStatus::Inactive)
        .unwrap();
    assert!(store.delete_ca("v").unwrap());
    assert!(!store.delete_ca("v").unwrap());
    assert!(matches!(
        store.set_ca_status("v", CertificateStatus::Active),
        Err(StoreError::NotFound { .. })
    ));
    let code = store.registration_code().unwrap();
    assert_eq!(code.len(), 64);
    assert_eq!(store.registration_code().unwrap(), code);
}

#[test]
fn certificates_things_and_policies_attach_and_delete_in_aws_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .register_certificate(&cert("c1", "v", CertificateStatus::PendingActivation))
        .unwrap();
    store
        .register_certificate(&cert("c2", "v", CertificateStatus::Active))
        .unwrap();
    assert!(matches!(
        store.register_certificate(&cert("c1", "v", CertificateStatus::Active)),
        Err(StoreError::AlreadyExists { .. })
    ));
    store
        .set_certificate_status("c1", CertificateStatus::Active)
        .unwrap();
    assert_eq!(
        store.count_certificates_by_status("v").unwrap(),
        vec![(CertificateStatus::Active, 2)]
    );

    let thing = store.create_thing("SER1", &Map::new()).unwrap();
    assert_eq!(store.create_thing("SER1", &Map::new()).unwrap(), thing);
    assert!(matches!(
        store.attach_thing_principal("SER1", "nope"),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.attach_thing_principal("NOPE", "c1"),
        Err(StoreError::NotFound { .. })
    ));
    store.attach_thing_principal("SER1", "c1").unwrap();
    store.attach_thing_principal("SER1", "c1").unwrap();
    assert_eq!(store.list_thing_principals("SER1").unwrap(), ["c1"]);
    assert_eq!(store.list_principal_things("c1").unwrap(), ["SER1"]);

    store
        .create_policy("CrInProgressCertPolicy", "{\"v\":1}")
        .unwrap();
    assert!(matches!(
        store.create_policy("CrInProgressCertPolicy", "{}"),
        Err(StoreError::AlreadyExists { .. })
    ));
    let updated = store
        .update_policy("CrInProgressCertPolicy", "{\"v\":2}")
        .unwrap();
    assert_eq!(updated.version, 2);
    assert!(matches!(
        store.attach_policy("Nope", "c1"),
        Err(StoreError::NotFound { .. })
    ));
    store.attach_policy("CrInProgressCertPolicy", "c1").unwrap();
    assert_eq!(
        store.list_attached_policies("c1").unwrap()[0].document,
        "{\"v\":2}"
    );
    assert_eq!(
        store.list_policy_targets("CrInProgressCertPolicy").unwrap(),
        ["c1"]
    );
    assert!(matches!(
        store.delete_policy("CrInProgressCertPolicy"),
        Err(StoreError::Conflict { .. })
    ));

    // The sample's cleanup order: detach, deactivate, delete.
    assert!(matches!(
        store.delete_thing("SER1"),
        Err(StoreError::Conflict { .. })
    ));
    store
        .set_certificate_status("c1", CertificateStatus::Inactive)
        .unwrap();
    assert!(matches!(
        store.delete_certificate("c1"),
        Err(StoreError::Conflict { .. })
    ));
    store.detach_thing_principal("SER1", "c1").unwrap();
    assert!(matches!(
        store.delete_certificate("c2"),
        Err(StoreError::Conflict { .. })
    ));
    assert!(store.delete_certificate("c1").unwrap());
    assert!(!store.delete_certificate("c1").unwrap());
    // Force-delete removed the policy attachment with the certificate.
    assert!(store
        .list_policy_targets("CrInProgressCertPolicy")
        .unwrap()
        .is_empty());
    assert!(store.delete_policy("CrInProgressCertPolicy").unwrap());
    assert!(store.delete_thing("SER1").unwrap());
    assert!(!store.delete_thing("SER1").unwrap());
}

#[test]
fn rules_and_functions_are_replaced_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut rule = crate::model::TopicRule {
        name: "rule_jitp".into(),
        sql: "SELECT * FROM 'a'".into(),
        actions: serde_json::json!([{"Lambda": {"FunctionArn": "arn"}}]),
        enabled: true,
    };
    store.put_topic_rule(&rule).unwrap();
    rule.enabled = false;
    store.put_topic_rule(&rule).unwrap();
    assert_eq!(store.list_topic_rules().unwrap(), vec![rule]);
    assert!(store.delete_topic_rule("rule_jitp").unwrap());
    let f = crate::model::Function {
        name: "cert-rotation".into(),
        arn: "arn:aws:lambda:us-east-1:123456789012:function:cert-rotation".into(),
        handler: "cert-rotation".into(),
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
        environment: Map::new(),
    };
    store.put_function(&f).unwrap();
    assert_eq!(
        store.get_function("cert-rotation").unwrap(),
        Some(f.clone())
    );
    assert_eq!(store.list_functions().unwrap(), vec![f]);
    assert!(store.delete_function("cert-rotation").unwrap());
    assert!(store.get_function("cert-rotation").unwrap().is_none());
}

#[test]
fn a_batch_lands_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.register_ca(&ca("ca1")).unwrap();
    // A second connection, as `jitpilot status` reads beside a running cloud.
    let reader = Store::open_read_only(dir.path()).unwrap();
    store
        .batch(|| -> StoreResult<()> {
            store.register_certificate(&cert("c1", "ca1", CertificateStatus::Active))?;
            // A write that fails inside the batch is undone alone (a savepoint).
            let again = store.register_certificate(&cert("c1", "ca1", CertificateStatus::Active));
            assert!(matches!(again, Err(StoreError::AlreadyExists { .. })));
            store.create_thing("t1", &Map::new())?;
            store.attach_thing_principal("t1", "c1")?;
            // One transaction: nothing is visible outside before it ends.
            assert!(reader.get_certificate("c1")?.is_none());
            Ok(())
        })
        .unwrap();
    assert!(reader.get_certificate("c1").unwrap().is_some());
    assert_eq!(reader.list_thing_principals("t1").unwrap(), vec!["c1"]);

    // A batch that fails leaves nothing behind.
    let failed: StoreResult<()> = store.batch(|| {
        store.register_certificate(&cert("c2", "ca1", CertificateStatus::Active))?;
        Err(StoreError::Invalid {
            what: "test".into(),
            reason: "stop here".into(),
        })
    });
    assert!(failed.is_err());
    assert!(store.get_certificate("c2").unwrap().is_none());

    // Nor does one that panics; the store goes on working (autocommit).
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.batch(|| -> StoreResult<()> {
            store.register_certificate(&cert("c3", "ca1", CertificateStatus::Active))?;
            panic!("a bug in the middle of a batch");
        })
    }));
    assert!(panicked.is_err());
    assert!(store.get_certificate("c3").unwrap().is_none());
    store
        .register_certificate(&cert("c4", "ca1", CertificateStatus::Active))
        .unwrap();
    assert!(reader.get_certificate("c4").unwrap().is_some());
}
