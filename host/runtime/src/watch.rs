//! Hot reload: watches a policies directory with `notify` and loads, reloads or unloads
//! `*.wasm` files as they change. Events are debounced (editors and `cp` write a file in
//! several steps): a path is handled once it has been quiet for [`DEBOUNCE`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use serde::{Deserialize, Serialize};

use super::RuntimeError;
use super::registry::{PolicyRuntime, policy_name};

/// Quiet time before a changed file is (re)loaded.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Keeps a directory watched; dropping it stops the watcher and its thread.
#[derive(Debug)]
pub struct WatchHandle {
    dir: PathBuf,
    watcher: Option<RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl WatchHandle {
    /// The watched directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        // Dropping the watcher drops the channel's sender, which ends the thread.
        drop(self.watcher.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a directory (re)load did with one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadOutcome {
    /// Policy name.
    pub name: String,
    /// What happened to it.
    pub action: ReloadAction,
    /// Why it failed.
    pub error: Option<String>,
}

/// What a (re)load did with one file; serialized as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadAction {
    /// Loaded (new, or its content changed).
    Loaded,
    /// Same content as the version already loaded.
    Unchanged,
    /// Could not be loaded; the outcome's `error` says why.
    Failed,
    /// Its file is gone, so it was unloaded.
    Unloaded,
}

impl ReloadAction {
    /// The snake_case name, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadAction::Loaded => "loaded",
            ReloadAction::Unchanged => "unchanged",
            ReloadAction::Failed => "failed",
            ReloadAction::Unloaded => "unloaded",
        }
    }
}

fn is_wasm(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "wasm")
}

fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, RuntimeError> {
    let rd = std::fs::read_dir(dir).map_err(|source| RuntimeError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_wasm(p) && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

impl PolicyRuntime {
    /// Loads every `*.wasm` in `dir` (a broken file is reported and skipped) and remembers
    /// `dir` for [`Self::reload_dir`].
    pub fn load_dir(&self, dir: &Path) -> Result<Vec<ReloadOutcome>, RuntimeError> {
        {
            let mut dirs = self.shared.dirs.lock();
            if !dirs.iter().any(|d| d == dir) {
                dirs.push(dir.to_path_buf());
            }
        }
        let mut out = Vec::new();
        for f in wasm_files(dir)? {
            let name = policy_name(&f)?;
            let before = self.get(&name).map(|i| i.hash);
            out.push(match self.load_file(&f) {
                Ok(i) if before.as_deref() == Some(i.hash.as_str()) => ReloadOutcome {
                    name,
                    action: ReloadAction::Unchanged,
                    error: None,
                },
                Ok(_) => ReloadOutcome {
                    name,
                    action: ReloadAction::Loaded,
                    error: None,
                },
                Err(e) => ReloadOutcome {
                    name,
                    action: ReloadAction::Failed,
                    error: Some(e.to_string()),
                },
            });
        }
        Ok(out)
    }

    /// `rmhost policy reload`: reloads every watched or loaded directory, and unloads the
    /// policies whose file is gone.
    pub fn reload_dir(&self) -> Result<Vec<ReloadOutcome>, RuntimeError> {
        let dirs = self.shared.dirs.lock().clone();
        let mut out = Vec::new();
        for dir in dirs {
            for info in self.list() {
                let gone = info
                    .path
                    .as_ref()
                    .is_some_and(|p| p.parent() == Some(dir.as_path()) && !p.exists());
                if gone && self.unload(&info.name).is_ok() {
                    out.push(ReloadOutcome {
                        name: info.name,
                        action: ReloadAction::Unloaded,
                        error: None,
                    });
                }
            }
            out.extend(self.load_dir(&dir)?);
        }
        Ok(out)
    }

    /// Loads every `*.wasm` in `dir`, then watches it: a new or changed file is loaded (a
    /// broken one keeps the old version and emits `PolicyReloadFailed`), a deleted file is
    /// unloaded.
    pub fn watch_dir(&self, dir: &Path) -> Result<WatchHandle, RuntimeError> {
        let werr = |e: notify::Error| RuntimeError::Watch {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        };
        let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
        let mut watcher = notify::recommended_watcher(move |ev| {
            let _ = tx.send(ev);
        })
        .map_err(werr)?;
        // Watch before the initial load, so a file written during it is not missed.
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(werr)?;
        for o in self.load_dir(dir)? {
            if let Some(e) = o.error {
                tracing::warn!(policy = %o.name, error = %e, "policy not loaded");
            }
        }
        let rt = self.clone();
        let thread = std::thread::Builder::new()
            .name("rmhost-policy-watch".into())
            .spawn(move || watch_loop(&rt, &rx))
            .map_err(|e| RuntimeError::Watch {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(WatchHandle {
            dir: dir.to_path_buf(),
            watcher: Some(watcher),
            thread: Some(thread),
        })
    }

    fn apply_change(&self, path: &Path) {
        let Ok(name) = policy_name(path) else { return };
        if path.is_file() {
            if let Err(e) = self.load_file(path) {
                tracing::warn!(policy = %name, error = %e, "policy reload failed; old version kept");
            }
        } else if self
            .get(&name)
            .and_then(|i| i.path)
            .is_some_and(|p| !p.is_file())
        {
            let _ = self.unload(&name);
        }
    }
}

fn watch_loop(rt: &PolicyRuntime, rx: &mpsc::Receiver<notify::Result<notify::Event>>) {
    let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
    loop {
        let wait = pending
            .values()
            .map(|t| (*t + DEBOUNCE).saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(wait) {
            Ok(Ok(ev)) => {
                for p in ev.paths.into_iter().filter(|p| is_wasm(p)) {
                    pending.insert(p, Instant::now());
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "policy directory watch error"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let due: Vec<PathBuf> = pending
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= DEBOUNCE)
            .map(|(p, _)| p.clone())
            .collect();
        for p in due {
            pending.remove(&p);
            rt.apply_change(&p);
        }
    }
}
