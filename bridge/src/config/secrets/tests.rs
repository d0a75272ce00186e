use super::*;

fn file(yaml: &str) -> FileSecrets {
    serde_saphyr::from_str(yaml).unwrap()
}

#[test]
fn the_envelope_takes_one_key_service_and_transit_needs_vault() {
    let none = |_: &str| None;
    let local = envelope(&file("{}"), &Settings::default(), &none).unwrap();
    assert_eq!(local.wrapping, Wrapping::Local);
    let f = file("envelope:\n  kms_key_id: alias/slipway-state\n");
    let kms = envelope(&f, &Settings::default(), &none).unwrap();
    assert_eq!(
        (kms.wrapping, kms.kms_key_id.as_deref()),
        (Wrapping::Kms, Some("alias/slipway-state"))
    );
    let f = file("envelope:\n  transit_key: slipway-state\n");
    let e = envelope(&f, &Settings::default(), &none).unwrap_err();
    assert!(e.contains("secrets.vault"), "{e}");
    let env = |k: &str| (k == "SLIPWAY_STATE_KMS_KEY_ID").then(|| "k".to_string());
    let e = envelope(&f, &Settings::default(), &env).unwrap_err();
    assert!(e.contains("not both"), "{e}");
    for w in [Wrapping::Local, Wrapping::Kms, Wrapping::Transit] {
        assert_eq!(Wrapping::from_byte(w.byte()), Some(w));
    }
    assert_eq!(Wrapping::from_byte(9), None);
}

#[test]
fn refresh_timing_is_checked() {
    let none = |_: &str| None;
    let t = timing(&file("{}"), &none).unwrap();
    assert_eq!(
        (
            t.refresh_interval.as_secs(),
            t.max_staleness.as_secs(),
            t.rotation_grace.as_secs()
        ),
        (300, 3600, 600)
    );
    let e = timing(&file("refresh_interval: 2h\n"), &none).unwrap_err();
    assert!(e.contains("max_staleness"), "{e}");
}
