//! Retry safety on a real store: concurrent duplicates, and attempts that
//! stopped half-way (a crash between two registry writes).

use super::local_store::LocalCloud;
use super::*;
use crate::rotation::wire::*;
use crate::rotation::Outcome;
use crate::vocabulary::DEVICE_TABLE;

#[test]
fn concurrent_duplicate_requests_issue_one_certificate() {
    let cloud = LocalCloud::new();
    let vendor = &pki().vendor;
    assert_eq!(cloud.jitp(vendor, SERIAL), Outcome::ThingCreated);
    let csrs: Vec<String> = (0..6).map(|_| new_csr(SERIAL).0).collect();
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = csrs
            .iter()
            .map(|csr| scope.spawn(|| cloud.create(SERIAL, &vendor.id, csr)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let created = outcomes
        .iter()
        .filter(|o| **o == Outcome::ManCertCreated)
        .count();
    let republished = outcomes
        .iter()
        .filter(|o| **o == Outcome::Republished)
        .count();
    assert_eq!((created, republished), (1, 5), "{outcomes:?}");
    // Vendor cert + exactly one manufacturer cert.
    assert_eq!(cloud.store.list_certificates().expect("list").len(), 2);
    let published = cloud.published.take();
    assert_eq!(published.len(), 6);
    assert!(published.iter().all(|p| p == &published[0]));
}

#[test]
fn a_create_that_stopped_half_way_is_completed_without_a_second_active_cert() {
    let cloud = LocalCloud::new();
    let vendor = &pki().vendor;
    assert_eq!(cloud.jitp(vendor, SERIAL), Outcome::ThingCreated);
    // An earlier attempt registered and attached a manufacturer cert, then
    // the process died before it recorded it in the row.
    let orphan = orphan_manufacturer_cert();
    cloud.store.register_certificate(&orphan).expect("register");
    cloud
        .store
        .attach_thing_principal(SERIAL, &orphan.id)
        .expect("attach");
    cloud
        .store
        .attach_policy(ROTATION_COMPLETE_POLICY, &orphan.id)
        .expect("policy");

    let (csr, _) = new_csr(SERIAL);
    assert_eq!(
        cloud.create(SERIAL, &vendor.id, &csr),
        Outcome::ManCertCreated
    );
    let man_id = cloud
        .row(SERIAL)
        .manufacturer_cert_id()
        .expect("recorded")
        .to_string();
    assert_ne!(man_id, orphan.id);
    assert!(cloud
        .store
        .get_certificate(&orphan.id)
        .expect("read")
        .is_none());
    let mut principals = cloud.store.list_thing_principals(SERIAL).expect("list");
    principals.sort();
    let mut expected = vec![vendor.id.clone(), man_id];
    expected.sort();
    assert_eq!(principals, expected);
}

#[test]
fn a_create_that_died_before_attaching_its_cert_leaves_no_second_cert() {
    let cloud = LocalCloud::new();
    let vendor = &pki().vendor;
    assert_eq!(cloud.jitp(vendor, SERIAL), Outcome::ThingCreated);
    // An earlier attempt recorded the pending id and registered the cert,
    // then died before attaching it to the thing.
    let orphan = orphan_manufacturer_cert();
    cloud.store.register_certificate(&orphan).expect("register");
    let mut item = cloud
        .store
        .get_item(DEVICE_TABLE, SERIAL)
        .expect("read")
        .expect("row");
    item.insert(
        ATTR_PENDING_MANUFACTURER_CERT_ID.into(),
        orphan.id.clone().into(),
    );
    cloud.store.put_item(DEVICE_TABLE, &item).expect("write");

    let (csr, _) = new_csr(SERIAL);
    assert_eq!(
        cloud.create(SERIAL, &vendor.id, &csr),
        Outcome::ManCertCreated
    );
    assert!(
        cloud
            .store
            .get_certificate(&orphan.id)
            .expect("read")
            .is_none(),
        "the unattached certificate of the dead attempt is retired"
    );
    let row = cloud.row(SERIAL);
    assert!(row.pending_manufacturer_cert_id().is_none());
    let man_id = row.manufacturer_cert_id().expect("recorded").to_string();
    let manufacturer_certs: Vec<_> = cloud
        .store
        .list_certificates()
        .expect("list")
        .into_iter()
        .filter(|c| c.ca_id.as_deref() == Some(pki().manufacturer_ca.id.as_str()))
        .map(|c| c.id)
        .collect();
    assert_eq!(manufacturer_certs, vec![man_id]);
}

#[test]
fn an_ack_that_stopped_half_way_completes_on_retry() {
    let cloud = LocalCloud::new();
    let vendor = &pki().vendor;
    assert_eq!(cloud.jitp(vendor, SERIAL), Outcome::ThingCreated);
    let (csr, _) = new_csr(SERIAL);
    assert_eq!(
        cloud.create(SERIAL, &vendor.id, &csr),
        Outcome::ManCertCreated
    );
    let man_id = cloud
        .row(SERIAL)
        .manufacturer_cert_id()
        .expect("recorded")
        .to_string();
    cloud.published.take();
    // An earlier ack retired the vendor cert, then died before the row update.
    cloud
        .store
        .detach_thing_principal(SERIAL, &vendor.id)
        .expect("detach");
    cloud
        .store
        .set_certificate_status(&vendor.id, CertificateStatus::Inactive)
        .expect("inactive");
    assert!(cloud.store.delete_certificate(&vendor.id).expect("delete"));

    assert_eq!(
        cloud.ack(SERIAL, &man_id, &man_id),
        Outcome::CertRotationCompleted
    );
    assert_eq!(cloud.published.take().len(), 1);
    let row = cloud.row(SERIAL);
    assert_eq!(row.state(), Some(CrState::CertRotationCompleted));
    assert_eq!(row.vendor_cert_id(), None);
}

/// A manufacturer certificate for `SERIAL` as an attempt that died half-way
/// leaves it: signed and ACTIVE, not recorded in the row.
fn orphan_manufacturer_cert() -> Certificate {
    let pem = pki::sign_csr(
        &new_csr(SERIAL).0,
        &pki().manufacturer_ca.cert_pem,
        &pki().manufacturer_ca.key_pem,
        1,
    )
    .expect("sign");
    Certificate {
        id: pki::certificate_id_from_pem(&pem).expect("id"),
        ca_id: Some(pki().manufacturer_ca.id.clone()),
        pem,
        status: CertificateStatus::Active,
        created_at: now_millis(),
    }
}
