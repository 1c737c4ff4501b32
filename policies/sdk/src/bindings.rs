//! The wit-bindgen bindings, one `generate!` per world so that each export macro carries
//! only its own world's exports: a component built with `export_quota!` exports `quota`
//! and nothing else. (With `pub_export_macro`, wit-bindgen puts the world's full type
//! section inside the export macro's expansion, and only an imports-only section here, so
//! worlds that a policy does not export never reach its component.)
//!
//! `host` is generated once (in `eviction`) and `types` once (in `quota`); the other worlds
//! reuse them through `with`, so the SDK has one `Usage`, one `LogLevel`, ...

/// World `eviction-policy`; also the home of the `host` import bindings.
pub mod eviction {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "eviction-policy",
        pub_export_macro: true,
        export_macro_name: "export_eviction_world",
        default_bindings_module: "::rmhost_policy::__private::eviction",
        additional_derives: [PartialEq],
    });
}

/// World `eviction-run-only`: the victim-runs export alone (a policy with runs exports the
/// `eviction` world too; wit-component merges the two into one component).
pub mod eviction_run {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "eviction-run-only",
        pub_export_macro: true,
        export_macro_name: "export_eviction_run_world",
        default_bindings_module: "::rmhost_policy::__private::eviction_run",
        additional_derives: [PartialEq],
        with: {
            "rmhost:policy/host@0.2.0": super::eviction::rmhost::policy::host,
        },
    });
}

/// World `quota-policy`; also the home of the `types` bindings.
pub mod quota {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "quota-policy",
        pub_export_macro: true,
        export_macro_name: "export_quota_world",
        default_bindings_module: "::rmhost_policy::__private::quota",
        additional_derives: [PartialEq],
        with: {
            "rmhost:policy/host@0.2.0": super::eviction::rmhost::policy::host,
        },
    });
}

/// World `priority-policy`.
pub mod priority {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "priority-policy",
        pub_export_macro: true,
        export_macro_name: "export_priority_world",
        default_bindings_module: "::rmhost_policy::__private::priority",
        additional_derives: [PartialEq],
        with: {
            "rmhost:policy/host@0.2.0": super::eviction::rmhost::policy::host,
        },
    });
}

/// World `pressure-policy`.
pub mod pressure {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "pressure-policy",
        pub_export_macro: true,
        export_macro_name: "export_pressure_world",
        default_bindings_module: "::rmhost_policy::__private::pressure",
        additional_derives: [PartialEq],
        with: {
            "rmhost:policy/host@0.2.0": super::eviction::rmhost::policy::host,
            "rmhost:policy/types@0.2.0": super::quota::rmhost::policy::types,
        },
    });
}
