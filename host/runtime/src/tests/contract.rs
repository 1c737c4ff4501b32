//! Contract versions: a 0.2 eviction guest gets four words per event, a 0.1 one keeps
//! working with three (no fingerprint), and any other 0.1 guest is refused with a message
//! naming the version it was built for.

use super::*;

#[test]
fn a_v02_eviction_guest_gets_the_fingerprint_word() {
    let (rt, _) = runtime();
    rt.load_bytes("echo", wat::eviction_echo_len("0.2.0").as_bytes())
        .unwrap();
    let mut ev = rt.eviction_policy("default", Some("echo"));
    ev.configure(1 << 20, 16);
    assert_eq!(ev.observe(&inserts(), 7777, 4), vec![12]);
}

#[test]
fn a_v01_eviction_guest_keeps_working_without_fingerprints() {
    let (rt, _) = runtime();
    rt.load_bytes("old", wat::eviction_echo_len("0.1.0").as_bytes())
        .unwrap();
    assert_eq!(rt.get("old").unwrap().kinds, vec![PolicyKind::Eviction]);
    let mut ev = rt.eviction_policy("default", Some("old"));
    ev.configure(1 << 20, 16);
    // Three events of three words each: the host dropped the fingerprints.
    assert_eq!(ev.observe(&inserts(), 7777, 4), vec![9]);
    assert_eq!(ev.name(), "old");
}

#[test]
fn a_v01_quota_guest_is_refused_naming_its_version() {
    let (rt, bus) = runtime();
    let wat = wat::quota_at("(i32.store8 (i32.const 16) (i32.const 0))", "0.1.0");
    let msg = rt
        .load_bytes("oldquota", wat.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("built for rmhost:policy@0.1.0")
            && msg.contains("rmhost:policy/quota@0.1.0")
            && msg.contains("rmhost:policy@0.2.0"),
        "{msg}"
    );
    assert!(rt.list().is_empty());
    assert!(names(&bus).contains(&"PolicyReloadFailed"));
}

#[test]
fn a_guest_for_a_future_contract_is_refused_naming_its_version() {
    let (rt, _) = runtime();
    let wat = wat::eviction_at(
        r#"(func (export "configure") (param i64 i32))
           (func (export "observe") (param i32 i32 i64 i32) (result i32) (i32.const 16))"#,
        "0.3.0",
    );
    let msg = rt
        .load_bytes("future", wat.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("built for rmhost:policy@0.3.0"), "{msg}");
}
