//! Unit tests of the PKI: real keys, real signatures, real parsing.

use super::*;

fn vendor_subject() -> Subject {
    Subject {
        common_name: Some("Vendor CA".into()),
        country: Some("US".into()),
        organization: Some("Example Vendor".into()),
        organizational_unit: Some("Factory".into()),
        state: Some("WA".into()),
        locality: Some("Seattle".into()),
        serial_number: Some("VCA-0001".into()),
    }
}

fn device_subject(serial: &str) -> Subject {
    Subject {
        common_name: Some(serial.into()),
        country: Some("DE".into()),
        organization: Some("Example Vendor".into()),
        ..Subject::default()
    }
}

#[test]
fn certificate_id_is_sha256_of_der_known_answer() {
    // FIPS 180-2 test vector: SHA-256("abc").
    assert_eq!(
        certificate_id(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // A certificate made by OpenSSL; the id is the output of
    // `openssl x509 -in openssl-ca.pem -outform der | sha256sum`.
    let pem = include_str!("testdata/openssl-ca.pem");
    assert_eq!(
        certificate_id_from_pem(pem).expect("id"),
        "5dac526d9f6b62f405b9a877b73500fc0474d71b120d90aed90247d20f8f279a"
    );
}

#[test]
fn parses_an_openssl_certificate_with_every_subject_field() {
    let info = parse_cert(include_str!("testdata/openssl-ca.pem")).expect("parse");
    let expected = Subject {
        common_name: Some("IUQWXALODJESC1".into()),
        country: Some("US".into()),
        organization: Some("Example Vendor".into()),
        organizational_unit: Some("Factory".into()),
        state: Some("WA".into()),
        locality: Some("Seattle".into()),
        serial_number: Some("SN-42".into()),
    };
    assert_eq!(info.subject, expected);
    assert_eq!(info.issuer, expected);
    assert_eq!(info.serial_hex, "7d7841d6e37e27ccc3e9ffe75a7b96859e6fdf15");
    assert_eq!(info.key_algorithm, "EC P-256");
    assert!(info.is_ca);
}

fn ca_round_trip(algorithm: KeyAlgorithm, expected_key: &str) {
    let ca = create_ca(&vendor_subject(), algorithm, 365).expect("CA");
    let info = parse_cert(&ca.cert_pem).expect("parse CA");
    assert_eq!(info.id, ca.id);
    assert_eq!(info.subject, vendor_subject());
    assert_eq!(info.issuer, vendor_subject());
    assert!(info.is_ca);
    assert_eq!(info.key_algorithm, expected_key);
    assert!(info.not_after - info.not_before >= 365 * 86_400);
    assert_eq!(
        public_key_der_of_key(&ca.key_pem).expect("key"),
        info.public_key_der
    );
    // Self-signed: verifies against itself.
    assert!(verify_signed_by(&ca.cert_pem, &ca.cert_pem).expect("verify"));

    let device = issue_device_cert(
        &ca.cert_pem,
        &ca.key_pem,
        &device_subject("IUQWXALODJESC1"),
        algorithm,
        30,
    )
    .expect("device cert");
    let dev = parse_cert(&device.cert_pem).expect("parse device");
    assert_eq!(dev.subject, device_subject("IUQWXALODJESC1"));
    assert_eq!(dev.issuer, vendor_subject());
    assert!(!dev.is_ca);
    assert_eq!(dev.key_algorithm, expected_key);
    assert_ne!(dev.public_key_der, info.public_key_der);
    assert!(verify_signed_by(&device.cert_pem, &ca.cert_pem).expect("verify"));
}

#[test]
fn ec_ca_and_device_cert_round_trip() {
    ca_round_trip(KeyAlgorithm::EcdsaP256, "EC P-256");
}

#[test]
fn rsa_ca_and_device_cert_round_trip() {
    ca_round_trip(KeyAlgorithm::Rsa2048, "RSA 2048");
}

#[test]
fn device_cert_is_ca_false_with_client_auth() {
    use x509_parser::prelude::*;
    let ca = create_ca(&vendor_subject(), KeyAlgorithm::EcdsaP256, 10).expect("CA");
    let device = issue_device_cert(
        &ca.cert_pem,
        &ca.key_pem,
        &device_subject("S1"),
        KeyAlgorithm::EcdsaP256,
        10,
    )
    .expect("device");
    let der = cert::first_cert(&device.cert_pem).expect("der");
    let (_, x509) = X509Certificate::from_der(&der).expect("x509");
    let bc = x509.basic_constraints().expect("bc").expect("present");
    assert!(!bc.value.ca);
    let eku = x509.extended_key_usage().expect("eku").expect("present");
    assert!(eku.value.client_auth);

    let ca_der = cert::first_cert(&ca.cert_pem).expect("der");
    let (_, ca_x509) = X509Certificate::from_der(&ca_der).expect("x509");
    let ku = ca_x509.key_usage().expect("ku").expect("present");
    assert!(ku.value.key_cert_sign());
    assert!(
        ca_x509
            .basic_constraints()
            .expect("bc")
            .expect("present")
            .value
            .ca
    );
}

#[test]
fn serials_are_random() {
    let ca = create_ca(&vendor_subject(), KeyAlgorithm::EcdsaP256, 10).expect("CA");
    let a = issue_device_cert(
        &ca.cert_pem,
        &ca.key_pem,
        &device_subject("S"),
        KeyAlgorithm::EcdsaP256,
        1,
    )
    .expect("a");
    let b = issue_device_cert(
        &ca.cert_pem,
        &ca.key_pem,
        &device_subject("S"),
        KeyAlgorithm::EcdsaP256,
        1,
    )
    .expect("b");
    let (sa, sb) = (
        parse_cert(&a.cert_pem).expect("a").serial_hex,
        parse_cert(&b.cert_pem).expect("b").serial_hex,
    );
    assert_ne!(sa, sb);
    assert_eq!(sa.len(), 32);
    assert_ne!(a.id, b.id);
}

#[test]
fn verification_cert_carries_the_registration_code() {
    let ca = create_ca(&vendor_subject(), KeyAlgorithm::EcdsaP256, 10).expect("CA");
    let code = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let proof = create_verification_cert(&ca.cert_pem, &ca.key_pem, code).expect("proof");
    let info = parse_cert(&proof.cert_pem).expect("parse");
    assert_eq!(info.subject.common_name.as_deref(), Some(code));
    assert!(verify_signed_by(&proof.cert_pem, &ca.cert_pem).expect("verify"));
    assert_ne!(
        public_key_der_of_key(&proof.key_pem).expect("key"),
        public_key_der_of_key(&ca.key_pem).expect("key")
    );
}

#[test]
fn csr_round_trip_and_signing_ec_and_rsa() {
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let ca = create_ca(&vendor_subject(), KeyAlgorithm::EcdsaP256, 10).expect("CA");
        let (csr, key) = create_csr(&device_subject("IUQWXALODJESC1"), algorithm).expect("csr");
        let parsed = parse_csr(&csr).expect("parse csr");
        assert_eq!(parsed.subject, device_subject("IUQWXALODJESC1"));
        assert_eq!(
            parsed.public_key_der,
            public_key_der_of_key(&key).expect("key")
        );

        let pem = sign_csr(&csr, &ca.cert_pem, &ca.key_pem, 90).expect("sign");
        let info = parse_cert(&pem).expect("parse");
        assert_eq!(info.subject, device_subject("IUQWXALODJESC1"));
        assert_eq!(info.public_key_der, parsed.public_key_der);
        assert!(!info.is_ca);
        assert!(info.not_after - info.not_before >= 90 * 86_400);
        assert!(verify_signed_by(&pem, &ca.cert_pem).expect("verify"));
    }
}

/// Flips one byte inside the CSR's subject (the signed part) and re-encodes.
fn tamper_csr(csr_pem: &str, from: &[u8], to: &[u8]) -> String {
    use base64::Engine;
    let mut der = csr::parse_csr_der(csr_pem).expect("der");
    let at = der
        .windows(from.len())
        .position(|w| w == from)
        .expect("the CN is in the DER");
    der[at..at + to.len()].copy_from_slice(to);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let body: Vec<String> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        body.join("\n")
    )
}

#[test]
fn tampered_csr_is_refused() {
    let ca = create_ca(&vendor_subject(), KeyAlgorithm::EcdsaP256, 10).expect("CA");
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let (csr, _) = create_csr(&device_subject("SERIAL0001"), algorithm).expect("csr");
        // An attacker rewrites the CN to someone else's serial.
        let forged = tamper_csr(&csr, b"SERIAL0001", b"SERIAL0002");
        match parse_csr(&forged) {
            Err(PkiError::Signature(msg)) => assert!(msg.contains("altered"), "{msg}"),
            other => panic!("expected a signature error, got {other:?}"),
        }
        assert!(matches!(
            sign_csr(&forged, &ca.cert_pem, &ca.key_pem, 1),
            Err(PkiError::Signature(_))
        ));
    }
}

#[test]
fn cert_from_another_ca_is_refused() {
    let vendor = create_ca(&vendor_subject(), KeyAlgorithm::EcdsaP256, 10).expect("CA");
    // Same name, different key: only the signature tells them apart.
    let impostor = create_ca(&vendor_subject(), KeyAlgorithm::EcdsaP256, 10).expect("CA");
    let other = create_ca(
        &Subject {
            common_name: Some("Manufacturer CA".into()),
            ..Subject::default()
        },
        KeyAlgorithm::Rsa2048,
        10,
    )
    .expect("CA");
    let device = issue_device_cert(
        &impostor.cert_pem,
        &impostor.key_pem,
        &device_subject("S1"),
        KeyAlgorithm::EcdsaP256,
        10,
    )
    .expect("device");
    assert!(verify_signed_by(&device.cert_pem, &impostor.cert_pem).expect("verify"));
    assert!(!verify_signed_by(&device.cert_pem, &vendor.cert_pem).expect("verify"));
    assert!(!verify_signed_by(&device.cert_pem, &other.cert_pem).expect("verify"));
}

#[test]
fn ca_key_must_match_ca_cert() {
    let a = create_ca(&vendor_subject(), KeyAlgorithm::EcdsaP256, 10).expect("CA");
    let b = create_ca(&vendor_subject(), KeyAlgorithm::EcdsaP256, 10).expect("CA");
    let err = issue_device_cert(
        &a.cert_pem,
        &b.key_pem,
        &device_subject("S"),
        KeyAlgorithm::EcdsaP256,
        1,
    )
    .expect_err("mismatched key");
    assert!(err.to_string().contains("does not belong"), "{err}");
}

#[test]
fn a_chain_pem_lists_every_certificate_in_order() {
    let ca = create_ca(&vendor_subject(), KeyAlgorithm::EcdsaP256, 10).expect("CA");
    let dev = issue_device_cert(
        &ca.cert_pem,
        &ca.key_pem,
        &device_subject("S"),
        KeyAlgorithm::EcdsaP256,
        1,
    )
    .expect("dev");
    let chain = format!("{}{}", dev.cert_pem, ca.cert_pem);
    let ders = pem_certificates(&chain).expect("chain");
    assert_eq!(ders.len(), 2);
    assert_eq!(certificate_id(&ders[0]), dev.id);
    assert_eq!(certificate_id(&ders[1]), ca.id);
    assert_eq!(certificate_id_from_pem(&chain).expect("id"), dev.id);
}

#[test]
fn garbage_is_a_clear_error_not_a_panic() {
    let inputs = [
        "",
        "hello",
        "-----BEGIN CERTIFICATE-----\nnot base64!!\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nMIIB",
    ];
    for input in inputs {
        assert!(parse_cert(input).is_err(), "{input:?}");
        assert!(certificate_id_from_pem(input).is_err(), "{input:?}");
        assert!(parse_csr(input).is_err(), "{input:?}");
        assert!(public_key_der_of_key(input).is_err(), "{input:?}");
        assert!(verify_signed_by(input, input).is_err(), "{input:?}");
    }
    let msg = parse_cert("hello").expect_err("garbage").to_string();
    assert!(msg.contains("BEGIN CERTIFICATE"), "{msg}");
    // A certificate where a CSR is expected says which it wanted.
    let ca = create_ca(&vendor_subject(), KeyAlgorithm::EcdsaP256, 10).expect("CA");
    let msg = parse_csr(&ca.cert_pem).expect_err("not a CSR").to_string();
    assert!(msg.contains("CERTIFICATE REQUEST"), "{msg}");
    assert!(sign_csr("junk", &ca.cert_pem, &ca.key_pem, 1).is_err());
    assert!(create_ca(&vendor_subject(), KeyAlgorithm::EcdsaP256, 0).is_err());
}

#[test]
fn subject_rejects_a_country_that_is_not_printable() {
    let subject = Subject {
        common_name: Some("x".into()),
        country: Some("Ü".into()),
        ..Subject::default()
    };
    let err = create_ca(&subject, KeyAlgorithm::EcdsaP256, 1).expect_err("bad C");
    assert!(err.to_string().contains("PrintableString"), "{err}");
}
