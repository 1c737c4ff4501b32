//! Hot reload: watches a policies directory with `notify` and loads, reloads or unloads
//! `*.wasm` files as they change. Events are debounced (editors and `cp` write a file in
//! several steps): a path is handled once it has been quiet for [`DEBOUNCE`].
//!
//! Only notifications that can mean new content count (see [`is_change`]), and a file whose
//! (size, mtime, inode) and then content hash did not change is neither re-read nor rebuilt:
//! so the watcher never reacts to the host's own reads, and a broken file is tried once per
//! change instead of in a loop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use serde::{Deserialize, Serialize};

use super::RuntimeError;
use super::engine::content_hash;
use super::registry::{PolicyRuntime, policy_name, read_bounded};

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileMeta {
    len: u64,
    mtime: Option<std::time::SystemTime>,
    inode: u64,
}

impl FileMeta {
    fn of(m: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(m);
        #[cfg(not(unix))]
        let inode = 0;
        FileMeta {
            len: m.len(),
            mtime: m.modified().ok(),
            inode,
        }
    }
}

/// What the watcher last saw of a file: its metadata and, once read, its content hash
/// (whether or not that content loaded).
#[derive(Debug, Clone)]
struct Stamp {
    meta: FileMeta,
    hash: Option<String>,
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
        // Metadata before the load: a file rewritten meanwhile then differs from its stamp
        // and is looked at again.
        let metas: Vec<(PathBuf, FileMeta)> = wasm_files(dir)?
            .into_iter()
            .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, FileMeta::of(&m))))
            .collect();
        for o in self.load_dir(dir)? {
            if let Some(e) = o.error {
                tracing::warn!(policy = %o.name, error = %e, "policy not loaded");
            }
        }
        let seen: HashMap<PathBuf, Stamp> = metas
            .into_iter()
            .map(|(p, meta)| {
                // A file that did not load is hashed too, so a later event that leaves its
                // content alone (a writer opening and closing it) does not retry it; unless
                // it changed since the load, when its new content must still be tried.
                let hash = policy_name(&p)
                    .ok()
                    .and_then(|n| self.get(&n))
                    .filter(|i| i.path.as_deref() == Some(p.as_path()))
                    .map(|i| i.hash)
                    .or_else(|| {
                        let now = std::fs::metadata(&p).ok().map(|m| FileMeta::of(&m));
                        (now == Some(meta)).then_some(())?;
                        read_bounded(&p, self.shared.opts.max_file_bytes)
                            .ok()
                            .map(|b| content_hash(&b))
                    });
                (p, Stamp { meta, hash })
            })
            .collect();
        let rt = self.clone();
        let watched = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("rmhost-policy-watch".into())
            .spawn(move || watch_loop(&rt, &watched, &rx, seen))
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

    /// Loads, reloads or unloads `path` after a change, unless its metadata, then its
    /// content, is what was last seen (loaded or not).
    fn apply_change(&self, path: &Path, seen: &mut HashMap<PathBuf, Stamp>) {
        let Ok(name) = policy_name(path) else { return };
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file());
        let Some(meta) = meta.map(|m| FileMeta::of(&m)) else {
            seen.remove(path);
            if self
                .get(&name)
                .and_then(|i| i.path)
                .is_some_and(|p| !p.is_file())
            {
                let _ = self.unload(&name);
            }
            return;
        };
        let last = seen.get(path).cloned();
        if last.as_ref().is_some_and(|s| s.meta == meta) {
            return;
        }
        let bytes = match self.read_policy_file(&name, path) {
            Ok(b) => b,
            Err(e) => {
                seen.insert(path.to_path_buf(), Stamp { meta, hash: None });
                tracing::warn!(policy = %name, error = %e, "policy reload failed; old version kept");
                return;
            }
        };
        let hash = content_hash(&bytes);
        let same = last.and_then(|s| s.hash).as_deref() == Some(hash.as_str());
        seen.insert(
            path.to_path_buf(),
            Stamp {
                meta,
                hash: Some(hash),
            },
        );
        if same {
            return;
        }
        if let Err(e) = self.load_read(&name, &bytes, path) {
            tracing::warn!(policy = %name, error = %e, "policy reload failed; old version kept");
        }
    }
}

fn watch_loop(
    rt: &PolicyRuntime,
    dir: &Path,
    rx: &mpsc::Receiver<notify::Result<notify::Event>>,
    mut seen: HashMap<PathBuf, Stamp>,
) {
    let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
    let mut rescan: Option<Instant> = None;
    loop {
        let wait = pending
            .values()
            .chain(rescan.iter())
            .map(|t| (*t + DEBOUNCE).saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(wait) {
            Ok(Ok(ev)) => {
                if ev.need_rescan() {
                    rescan = Some(Instant::now());
                }
                if !is_change(&ev.kind) {
                    continue;
                }
                for p in ev.paths {
                    if is_wasm(&p) {
                        pending.insert(p, Instant::now());
                    } else if is_configmap_swap(&p) {
                        rescan = Some(Instant::now());
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "policy directory watch error"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        if rescan.is_some_and(|t| now.duration_since(t) >= DEBOUNCE) {
            rescan = None;
            // Every file of the directory, plus the loaded ones whose file is gone.
            let mut paths: Vec<PathBuf> = wasm_files(dir).unwrap_or_default();
            paths.extend(seen.keys().cloned());
            for p in paths {
                pending.insert(p, now - DEBOUNCE);
            }
        }
        let due: Vec<PathBuf> = pending
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= DEBOUNCE)
            .map(|(p, _)| p.clone())
            .collect();
        for p in due {
            pending.remove(&p);
            rt.apply_change(&p, &mut seen);
        }
    }
}

/// Whether a notification can mean new content. Reads (open, close without writing,
/// access) never do; reacting to them made the host's own reads of a policy file queue
/// another reload forever. Metadata-only changes (chmod, touch) do not either. A close
/// after writing does: it is the writer saying it is done.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(m) => matches!(
            m,
            ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any
        ),
        EventKind::Access(a) => matches!(a, AccessKind::Close(AccessMode::Write)),
        EventKind::Any | EventKind::Other => false,
    }
}

/// A Kubernetes ConfigMap volume publishes a new version by renaming a `..data_tmp`
/// symlink over `..data` (the files are symlinks through it), so no `*.wasm` path is
/// touched: that rename is the signal to re-scan the directory.
fn is_configmap_swap(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n == "..data" || n == "..data_tmp")
}
