//! The contract versions the host serves, and the refusal of any other: a component built
//! for `rmhost:policy@0.2.0` (`wit/policy.wit`) is served for every kind it exports; one
//! built for 0.1.0 (`wit/v0.1`) only for eviction, whose events lose their fingerprint word
//! at the edge (`version.rs`); anything else is refused with a message naming the version.

use rmhost_core::policy::PolicyKind;

/// The contract version the host implements (`wit/policy.wit`).
pub(crate) const CONTRACT: &str = "0.2.0";
/// The older contract whose eviction policies the host still serves (`wit/v0.1`).
pub(crate) const CONTRACT_V01: &str = "0.1.0";

/// The export name of each kind's interface.
pub(crate) fn export_name(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Eviction => "rmhost:policy/eviction@0.2.0",
        PolicyKind::Quota => "rmhost:policy/quota@0.2.0",
        PolicyKind::Priority => "rmhost:policy/priority@0.2.0",
        PolicyKind::Pressure => "rmhost:policy/pressure@0.2.0",
    }
}

/// Refuses a component built for a contract version the host does not serve, naming the
/// version: anything but 0.2.0, except 0.1.0 eviction exports and the 0.1.0 `host` import
/// they come with. Without this a 0.1 quota policy would fail to link with a message about
/// a missing `rmhost:policy/types@0.1.0` instance.
pub(crate) fn check_versions<'a>(
    imports: impl Iterator<Item = &'a str>,
    exports: &[String],
) -> Result<(), String> {
    let served = |name: &str, export: bool| {
        let Some((iface, version)) = name.split_once('@') else {
            return true; // unversioned names are left to the linker's own message
        };
        version == CONTRACT
            || (version == CONTRACT_V01
                && if export {
                    iface == "rmhost:policy/eviction"
                } else {
                    iface == "rmhost:policy/host"
                })
    };
    let mut refused: Vec<&str> = imports
        .filter(|i| i.starts_with("rmhost:policy/") && !served(i, false))
        .collect();
    refused.extend(
        exports
            .iter()
            .map(String::as_str)
            .filter(|e| e.starts_with("rmhost:policy/") && !served(e, true)),
    );
    let Some(first) = refused.first() else {
        return Ok(());
    };
    let built_for = first.split_once('@').map_or("?", |(_, v)| v);
    Err(format!(
        "was built for rmhost:policy@{built_for} ({}); this host implements          rmhost:policy@{CONTRACT} and still serves eviction policies built for          rmhost:policy@{CONTRACT_V01}. Rebuild the policy against wit/policy.wit          (rmhost:policy@{CONTRACT})",
        refused.join(", ")
    ))
}
