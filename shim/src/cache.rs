//! The compiled-module cache: files keyed by the module itself, loaded by mapping them.
//!
//! An entry is `modules/<sha256 of the module>-<engine hash>.cwasm`: wasmtime's precompiled
//! artifact followed by a 64-byte trailer (magic, the module's sha256, the engine hash, the
//! artifact's length and its CRC-32). Because the key is the module's bytes and the engine's
//! precompile-compatibility hash (wasmtime version, target, settings), the same entry serves
//! `ctr run`, `docker run` and any image layout.
//!
//! Fail-safe: an entry is used only if it is a regular file whose trailer names this module
//! and this engine, whose length matches and whose CRC-32 matches, and which wasmtime's own
//! compatibility check accepts. Anything else (missing, truncated, corrupt, foreign, stale,
//! a directory that is missing or read-only) is a miss with its reason: the module is compiled
//! again, never run from a doubtful file. Entries are written to a temp file, synced and
//! renamed into place, so a reader sees a whole entry or none, and are never modified after:
//! the mapping wasmtime keeps stays valid even if the entry is evicted meanwhile.
//!
//! The CRC guards against accidental damage, not against a deliberate forgery: writing here
//! takes root, who could replace the shim binary just as well.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::Result;
use rustix::fs::{fstat, fsync, mkdirat, openat, renameat, statat, unlinkat, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

const MAGIC: &[u8; 8] = b"LRCWASM1";
pub const TRAILER_LEN: usize = 64;
const SUFFIX: &str = ".cwasm";
/// Entries beyond this many bytes in all are evicted, oldest first.
pub const DEFAULT_MAX_BYTES: u64 = 512 << 20;
/// A temp file older than this was left by a writer that died.
const STALE_TEMP_S: i64 = 3600;

pub fn module_digest(module: &[u8]) -> [u8; 32] {
    Sha256::digest(module).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn entry_name(digest: &[u8; 32], engine_hash: u64) -> String {
    format!("{}-{engine_hash:016x}{SUFFIX}", hex(digest))
}

fn trailer(digest: &[u8; 32], engine_hash: u64, artifact: &[u8]) -> [u8; TRAILER_LEN] {
    let mut t = [0u8; TRAILER_LEN];
    t[..8].copy_from_slice(MAGIC);
    t[8..40].copy_from_slice(digest);
    t[40..48].copy_from_slice(&engine_hash.to_le_bytes());
    t[48..56].copy_from_slice(&(artifact.len() as u64).to_le_bytes());
    t[56..60].copy_from_slice(&crc32fast::hash(artifact).to_le_bytes());
    t
}

/// Why an entry's bytes cannot be used, or None when they can.
fn fault(bytes: &[u8], digest: &[u8; 32], engine_hash: u64) -> Option<&'static str> {
    if bytes.len() < TRAILER_LEN {
        return Some("shorter than its trailer (truncated)");
    }
    let (artifact, t) = bytes.split_at(bytes.len() - TRAILER_LEN);
    if &t[..8] != MAGIC {
        return Some("no trailer (truncated or not an entry)");
    }
    if &t[8..40] != digest {
        return Some("its trailer names another module");
    }
    if t[40..48] != engine_hash.to_le_bytes() {
        return Some("written by another engine (stale)");
    }
    if t[48..56] != (artifact.len() as u64).to_le_bytes() {
        return Some("length differs from its trailer (truncated)");
    }
    if t[56..60] != crc32fast::hash(artifact).to_le_bytes() {
        return Some("checksum mismatch (corrupt)");
    }
    None
}

/// The cache's `modules/` directory, opened once; every access is relative to it.
pub struct Cache {
    dir: OwnedFd,
    max_bytes: u64,
}

impl Cache {
    /// Opens (creating) `modules/` under the shim's state directory.
    pub fn open(root: impl AsFd, max_bytes: u64) -> std::io::Result<Cache> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let dir = match openat(&root, "modules", flags, Mode::empty()) {
            Err(Errno::NOENT) => {
                mkdirat(&root, "modules", Mode::from_raw_mode(0o700))?;
                openat(&root, "modules", flags, Mode::empty())?
            }
            other => other?,
        };
        Ok(Cache { dir, max_bytes })
    }

    /// The compiled module from its entry, mapped; Err(reason) is a miss.
    pub fn load(&self, engine: &Engine, digest: &[u8; 32], engine_hash: u64) -> Result<Module, String> {
        let name = entry_name(digest, engine_hash);
        let fd = match openat(&self.dir, name.as_str(), OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err("no entry".into()),
            Err(error) => return Err(format!("entry not readable: {error}")),
        };
        let stat = fstat(&fd).map_err(|e| format!("entry not readable: {e}"))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err("entry is not a regular file".into());
        }
        let len = stat.st_size as usize;
        if len < TRAILER_LEN {
            return Err("entry shorter than its trailer (truncated)".into());
        }
        // SAFETY: a read-only private mapping of a file this function holds open, unmapped
        // below before anything else uses it; entries are never modified in place.
        let verdict = unsafe {
            let ptr = mmap(std::ptr::null_mut(), len, ProtFlags::READ, MapFlags::PRIVATE, &fd, 0)
                .map_err(|e| format!("entry not mappable: {e}"))?;
            let verdict = fault(std::slice::from_raw_parts(ptr.cast::<u8>(), len), digest, engine_hash);
            let _ = munmap(ptr, len);
            verdict
        };
        if let Some(reason) = verdict {
            return Err(format!("entry {reason}"));
        }
        // SAFETY: the trailer shows this artifact was written by this shim's engine for this
        // very module, and its checksum matches; wasmtime checks compatibility once more.
        unsafe { Module::deserialize_open_file(engine, File::from(fd)) }
            .map_err(|e| format!("wasmtime refused the entry: {e}"))
    }

    /// Stores `artifact` as the entry of this module (temp file, sync, rename), then evicts
    /// the oldest entries beyond the bound. Returns the entry's size.
    pub fn store(&self, digest: &[u8; 32], engine_hash: u64, artifact: &[u8]) -> std::io::Result<u64> {
        let name = entry_name(digest, engine_hash);
        let temp = format!(".{name}.{}.tmp", std::process::id());
        let fd = openat(
            &self.dir,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        )?;
        let written = (|| {
            let mut file = File::from(fd);
            file.write_all(artifact)?;
            file.write_all(&trailer(digest, engine_hash, artifact))?;
            fsync(&file)?;
            renameat(&self.dir, temp.as_str(), &self.dir, name.as_str())?;
            Ok::<u64, std::io::Error>((artifact.len() + TRAILER_LEN) as u64)
        })();
        if written.is_err() {
            let _ = unlinkat(&self.dir, temp.as_str(), AtFlags::empty());
        }
        let size = written?;
        self.evict(&name);
        Ok(size)
    }

    /// Keeps the entries within `max_bytes` (oldest first out, never `keep`) and removes
    /// temp files that a dead writer left.
    fn evict(&self, keep: &str) {
        let Ok(mut listing) = Dir::read_from(&self.dir) else { return };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut entries = Vec::new();
        while let Some(Ok(entry)) = listing.next() {
            let Ok(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            let Ok(stat) = statat(&self.dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) else { continue };
            if name.starts_with('.') && name.ends_with(".tmp") {
                if now - stat.st_mtime > STALE_TEMP_S {
                    let _ = unlinkat(&self.dir, name.as_str(), AtFlags::empty());
                }
            } else if name.ends_with(SUFFIX) && name != keep {
                entries.push((stat.st_mtime, name, stat.st_size as u64));
            }
        }
        let kept = statat(&self.dir, keep, AtFlags::SYMLINK_NOFOLLOW).map_or(0, |s| s.st_size as u64);
        let mut total = kept + entries.iter().map(|e| e.2).sum::<u64>();
        entries.sort();
        for (_, name, size) in entries {
            if total <= self.max_bytes {
                break;
            }
            if unlinkat(&self.dir, name.as_str(), AtFlags::empty()).is_ok() {
                total -= size;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_entry_passes_and_every_damage_is_named() {
        let digest = module_digest(b"\0asm module");
        let artifact = vec![7u8; 1000];
        let mut entry = artifact.clone();
        entry.extend_from_slice(&trailer(&digest, 42, &artifact));
        assert_eq!(fault(&entry, &digest, 42), None);
        assert_eq!(fault(&entry, &digest, 43), Some("written by another engine (stale)"));
        assert_eq!(fault(&entry, &module_digest(b"other"), 42), Some("its trailer names another module"));
        assert_eq!(fault(&entry[..entry.len() - 1], &digest, 42), Some("no trailer (truncated or not an entry)"));
        assert_eq!(fault(&entry[..10], &digest, 42), Some("shorter than its trailer (truncated)"));
        let mut corrupt = entry.clone();
        corrupt[500] ^= 1;
        assert_eq!(fault(&corrupt, &digest, 42), Some("checksum mismatch (corrupt)"));
        let mut cut = artifact[..900].to_vec();
        cut.extend_from_slice(&entry[1000..]);
        assert_eq!(fault(&cut, &digest, 42), Some("length differs from its trailer (truncated)"));
    }
}
