//! The daemon's policies: runtime options from `[policies]`, the policies given on the
//! command line, the watched directory and the config's default bindings.

use super::{Daemon, DaemonError};
use rmhost_core::config::Config;
use rmhost_core::host::binding;
use rmhost_runtime::{PolicyOptions, RuntimeOptions, WatchHandle};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runtime options from the config's `[policies]`.
pub fn runtime_options(config: &Config) -> RuntimeOptions {
    let p = &config.policies;
    let mut opts = RuntimeOptions {
        deadline: Duration::from_millis(p.deadline_ms),
        memory_cap_bytes: (p.memory_cap_mb as usize) << 20,
        max_faults: p.max_faults,
        fault_window: Duration::from_millis(p.fault_window_ms),
        max_file_bytes: p.max_file_bytes,
        ..RuntimeOptions::default()
    };
    if let Some(dir) = &p.cache_dir {
        opts.cache_dir = Some(PathBuf::from(dir));
    }
    for (name, s) in &p.policy {
        opts.per_policy.insert(
            name.clone(),
            PolicyOptions {
                settings: s.settings.clone(),
                deadline: s.deadline_ms.map(Duration::from_millis),
                memory_cap_bytes: s.memory_cap_mb.map(|m| (m as usize) << 20),
            },
        );
    }
    opts
}

impl Daemon {
    /// Loads the `--policy` files and binds each as the default for the kinds it exports.
    /// Errors name the file and the reason.
    pub fn load_policy_files(&self, files: &[PathBuf]) -> Result<(), DaemonError> {
        for f in files {
            let failed = |source| DaemonError::Policy {
                file: f.display().to_string(),
                source,
            };
            let info = self.runtime.load_file(f).map_err(failed)?;
            let kinds = self.runtime.bind_defaults_for(&info.name).map_err(failed)?;
            tracing::info!(policy = %info.name, ?kinds, "bound as the default");
        }
        Ok(())
    }

    /// Applies `[policies.bindings]` (kind -> policy name) as default bindings.
    pub fn apply_config_bindings(&self) -> Result<(), DaemonError> {
        for (kind, name) in &self.host.config.policies.bindings {
            self.runtime
                .bind(None, *kind, Some(name))
                .map_err(|source| DaemonError::Policy {
                    file: format!("policies.bindings.{kind}"),
                    source,
                })?;
        }
        Ok(())
    }

    /// Seeds the shared ledger with this host's default bindings (`--policy`, config) where
    /// it holds none, then applies what it holds: every host on one ledger binds the same
    /// policies and declares the same caches, and a restart keeps what the API set. Call
    /// it once the policies are loaded. Nothing here stops the host: what cannot be
    /// applied is logged (and without a shared ledger there is nothing to do).
    pub fn restore_catalog(&self) {
        if self.host.resources.shared_ledger().is_none() {
            return;
        }
        for b in self.runtime.bindings() {
            if b.tenant.is_some() {
                continue;
            }
            let seed = binding(None, b.kind, Some(&b.policy));
            if let Err(e) = self.host.store_binding(&seed, true) {
                tracing::warn!(error = %e, kind = %b.kind, "default binding not stored");
            }
        }
        match self.host.restore_catalog() {
            Ok(r) => tracing::info!(
                bindings = r.bindings,
                caches = r.caches,
                skipped = r.skipped.len(),
                "applied the shared ledger's bindings and caches"
            ),
            Err(e) => tracing::warn!(error = %e, "shared bindings and caches not applied"),
        }
    }

    /// Loads every `*.wasm` in `dir` and watches it for changes. A broken file is reported
    /// (event and log) and skipped; it never stops the host.
    pub fn watch_policies(&self, dir: &Path) -> Result<WatchHandle, DaemonError> {
        self.runtime
            .watch_dir(dir)
            .map_err(|source| DaemonError::Policy {
                file: dir.display().to_string(),
                source,
            })
    }
}
