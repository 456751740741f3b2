//! The apply lock: two applies that share something on disk (the cache directory, an OCI
//! layout destination) take turns instead of interleaving their writes.
//!
//! The lock is an advisory file lock (`flock`) on `apply.lock` in the cache directory and
//! `.houba-apply.lock` in every layout destination, always taken in path order so two applies
//! never deadlock. The kernel releases it when the process ends, however it ends: a killed
//! apply never leaves a stale lock behind. The holder writes who it is and since when into the
//! file, so a waiter can say "another apply holds the lock since …". Applies on different
//! machines against HTTP registries share no file: in Kubernetes the CronJob's
//! `concurrencyPolicy: Forbid` and shard ownership keep them apart (docs/concurrency.md).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::notify::alertmanager::rfc3339;
use super::run_report::unix_now;

/// File name of the lock inside the cache directory.
pub const CACHE_LOCK: &str = "apply.lock";
/// File name of the lock inside an OCI layout destination.
pub const LAYOUT_LOCK: &str = ".houba-apply.lock";

#[derive(Debug, thiserror::Error)]
/// Why the apply lock could not be taken.
pub enum LockError {
    #[error(
        "another apply still holds the lock {path} ({holder}) after waiting {waited:.0}s; deferred: nothing was applied"
    )]
    /// Another apply still held it when `--lock-timeout` ran out.
    Timeout {
        /// The lock file.
        path: PathBuf,
        /// Who holds it (the line the holder wrote: host, pid, since).
        holder: String,
        /// Seconds waited.
        waited: f64,
    },
    #[error("cannot open the apply lock {path}: {error}")]
    /// The lock file cannot be created or opened.
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause; its text is part of the message, so it is not also a `source()` (a
        /// report would print it twice).
        error: std::io::Error,
    },
}

/// Held locks; released on drop (or when the process ends).
#[derive(Debug)]
pub struct ApplyLock {
    files: Vec<(PathBuf, File)>,
    /// Time spent waiting for other applies.
    pub waited: Duration,
}

impl ApplyLock {
    /// The lock files held.
    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(|(p, _)| p.as_path()).collect()
    }
}

/// What a waiter reads before the holder has written its line.
const UNKNOWN_HOLDER: &str = "holder unknown";

/// Who holds a lock, as its holder wrote it.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        "holder unknown".to_string()
    } else {
        text.to_string()
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".to_string())
}

/// Takes every lock in `paths` (sorted, deduplicated), waiting at most `timeout` in total.
/// `waiting` is called once per lock that is held by someone else, with its holder line.
pub fn acquire(
    paths: &[PathBuf],
    timeout: Duration,
    mut waiting: impl FnMut(&Path, &str),
) -> Result<ApplyLock, LockError> {
    let mut paths = paths.to_vec();
    paths.sort();
    paths.dedup();
    let started = Instant::now();
    let mut files = Vec::new();
    for path in paths {
        let io = |error| LockError::Io {
            path: path.clone(),
            error,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut told = false;
        let first_try = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if !told {
                        // The holder writes its line just after taking the lock: give it a
                        // moment, so the waiter can say who it waits for.
                        let who = holder(&mut file);
                        if who != UNKNOWN_HOLDER || first_try.elapsed() >= Duration::from_secs(1) {
                            waiting(&path, &who);
                            told = true;
                        }
                    }
                    if started.elapsed() >= timeout {
                        return Err(LockError::Timeout {
                            holder: holder(&mut file),
                            path,
                            waited: started.elapsed().as_secs_f64(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        let line = format!(
            "since {} (pid {} on {})",
            rfc3339(unix_now()),
            std::process::id(),
            host_name()
        );
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(line.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        files.push((path, file));
    }
    Ok(ApplyLock {
        files,
        waited: started.elapsed(),
    })
}

impl Drop for ApplyLock {
    fn drop(&mut self) {
        for (_, f) in &mut self.files {
            // Leave no holder line behind for a lock nobody holds.
            let _ = f.set_len(0);
            let _ = f.unlock();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_waits_then_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cache/apply.lock");
        let first = acquire(std::slice::from_ref(&p), Duration::ZERO, |_, _| {}).unwrap();
        let mut seen = String::new();
        let err = acquire(
            std::slice::from_ref(&p),
            Duration::from_millis(300),
            |_, h| seen = h.to_string(),
        )
        .unwrap_err();
        assert!(seen.starts_with("since "), "{seen}");
        assert!(err.to_string().contains("deferred"), "{err}");
        drop(first);
        let again = acquire(&[p], Duration::ZERO, |_, _| panic!("free")).unwrap();
        assert_eq!(again.paths().len(), 1);
    }
}
