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
//!
//! Known files: hashing a 9.6 MB module and checking its 21 MB entry's CRC cost a cached start
//! about 9 ms. A record in `known/` ties a module file, as the kernel names it (`Identity`), to
//! the sha256 it was hashed to and to the entry that was checked whole for it; a later start
//! whose module file and entry are both still those very files uses the entry at once, reading
//! neither (`load_known`). Why a record can be trusted:
//! - a file's identity is its inode number, birth time, change time, modification time and size,
//!   read with statx from the open file. The kernel sets the change time to the clock at every
//!   change of the file's content or metadata, and no system call sets it to a chosen value
//!   (utimensat sets only the access and modification times); the birth time is set when the
//!   inode is made and never changed; an inode number freed and given to a new file comes with
//!   a new birth time. So a file with the recorded identity is the recorded inode, unchanged.
//! - a record is written only when the module's identity read before hashing equals the one read
//!   after, so the hash is of the bytes that identity names; the entry's identity is the one it
//!   had when its trailer, length and CRC were checked. Entries are never modified after their
//!   rename.
//! - anything that does not match exactly (a record that is missing, short, damaged (its own
//!   CRC), of another engine; a module or an entry that is not the recorded file; a filesystem
//!   that gives no birth time) is a miss: the start hashes the module and checks the entry
//!   whole, as without records, and writes the record again.
//! - what the identity does not name is the filesystem: in a container the module is in an
//!   overlay whose device number differs at every mount (the inode and times are the lower
//!   file's, the same for every container of an image). A file on another filesystem would have
//!   to have the same inode number, the same birth and change times to the clock tick, size and
//!   modification time; a root who sets the clock back could make that, as he could write here.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::Result;
use rustix::fs::{fsync, mkdirat, openat, renameat, statat, statx, unlinkat, AtFlags, Dir, FileType, Mode, OFlags, StatxFlags, StatxTimestamp};
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
const KNOWN_MAGIC: &[u8; 8] = b"LRKNOWN1";
const RECORD_LEN: usize = 8 + IDENTITY_LEN + 8 + 32 + IDENTITY_LEN + 4;
const IDENTITY_LEN: usize = 52;
/// `known/` is emptied when it holds more records than this (each is rebuilt by one start).
const MAX_RECORDS: usize = 4096;

/// A file as the kernel names it: inode number, size and the birth, change and modification
/// times (see the module's documentation for why equal identities are the same unchanged file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity([u8; IDENTITY_LEN]);

impl Identity {
    /// The identity of an open regular file; None where the filesystem gives no birth time.
    pub fn of(file: impl AsFd) -> Option<Identity> {
        let st = statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS | StatxFlags::BTIME).ok()?;
        let wanted = StatxFlags::INO | StatxFlags::SIZE | StatxFlags::CTIME | StatxFlags::MTIME | StatxFlags::BTIME | StatxFlags::TYPE;
        if !StatxFlags::from_bits_retain(st.stx_mask).contains(wanted) || FileType::from_raw_mode(st.stx_mode.into()) != FileType::RegularFile {
            return None;
        }
        let mut b = [0u8; IDENTITY_LEN];
        b[..8].copy_from_slice(&st.stx_ino.to_le_bytes());
        b[8..16].copy_from_slice(&st.stx_size.to_le_bytes());
        for (i, t) in [st.stx_btime, st.stx_ctime, st.stx_mtime].iter().enumerate() {
            let at = 16 + i * 12;
            let StatxTimestamp { tv_sec, tv_nsec, .. } = *t;
            b[at..at + 8].copy_from_slice(&tv_sec.to_le_bytes());
            b[at + 8..at + 12].copy_from_slice(&tv_nsec.to_le_bytes());
        }
        Some(Identity(b))
    }
}

fn record_name(module: &Identity, engine_hash: u64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(module.0);
    hasher.update(engine_hash.to_le_bytes());
    hex(&hasher.finalize()[..16])
}

fn record(module: &Identity, engine_hash: u64, digest: &[u8; 32], entry: &Identity) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    let mut at = 0;
    for part in [&KNOWN_MAGIC[..], &module.0, &engine_hash.to_le_bytes(), digest, &entry.0] {
        r[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    let crc = crc32fast::hash(&r[..at]);
    r[at..].copy_from_slice(&crc.to_le_bytes());
    r
}

/// The module digest and entry identity a record holds for this module file and engine.
fn read_record(bytes: &[u8], module: &Identity, engine_hash: u64) -> Result<([u8; 32], Identity), &'static str> {
    if bytes.len() != RECORD_LEN || &bytes[..8] != KNOWN_MAGIC {
        return Err("record damaged");
    }
    if bytes[RECORD_LEN - 4..] != crc32fast::hash(&bytes[..RECORD_LEN - 4]).to_le_bytes() {
        return Err("record damaged");
    }
    let (file, rest) = bytes[8..].split_at(IDENTITY_LEN);
    if file != module.0 || rest[..8] != engine_hash.to_le_bytes() {
        return Err("record of another file");
    }
    let digest: [u8; 32] = rest[8..40].try_into().map_err(|_| "record damaged")?;
    let entry = Identity(rest[40..40 + IDENTITY_LEN].try_into().map_err(|_| "record damaged")?);
    Ok((digest, entry))
}

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

/// The cache's `modules/` and `known/` directories, opened once; every access is relative to them.
pub struct Cache {
    dir: OwnedFd,
    known: OwnedFd,
    max_bytes: u64,
}

fn open_dir(root: &impl AsFd, name: &str) -> std::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    match openat(root, name, flags, Mode::empty()) {
        Err(Errno::NOENT) => {
            mkdirat(root, name, Mode::from_raw_mode(0o700))?;
            Ok(openat(root, name, flags, Mode::empty())?)
        }
        other => Ok(other?),
    }
}

impl Cache {
    /// Opens (creating) `modules/` and `known/` under the shim's state directory.
    pub fn open(root: impl AsFd, max_bytes: u64) -> std::io::Result<Cache> {
        Ok(Cache { dir: open_dir(&root, "modules")?, known: open_dir(&root, "known")?, max_bytes })
    }

    fn open_entry(&self, digest: &[u8; 32], engine_hash: u64) -> Result<OwnedFd, String> {
        let name = entry_name(digest, engine_hash);
        match openat(&self.dir, name.as_str(), OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOENT) => Err("no entry".into()),
            Err(error) => Err(format!("entry not readable: {error}")),
        }
    }

    /// The compiled module of a module file that a record names, with its sha256, reading
    /// neither the module nor the entry (the module's documentation says why that is safe);
    /// Err(reason) is a miss.
    pub fn load_known(&self, engine: &Engine, module: &Identity, engine_hash: u64) -> Result<(Module, [u8; 32]), &'static str> {
        let name = record_name(module, engine_hash);
        let fd = openat(&self.known, name.as_str(), OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW, Mode::empty()).map_err(|_| "no record")?;
        let mut bytes = [0u8; RECORD_LEN + 1];
        let mut len = 0;
        while len < bytes.len() {
            match rustix::io::read(&fd, &mut bytes[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(Errno::INTR) => {}
                Err(_) => return Err("record not readable"),
            }
        }
        let (digest, recorded) = read_record(&bytes[..len], module, engine_hash)?;
        let entry = self.open_entry(&digest, engine_hash).map_err(|_| "no entry for the record")?;
        if Identity::of(&entry) != Some(recorded) {
            return Err("entry is not the one checked");
        }
        // SAFETY: the record shows this entry is the file whose trailer named this module and
        // this engine and whose length and checksum matched, unchanged since; wasmtime checks
        // compatibility once more.
        let module = unsafe { Module::deserialize_open_file(engine, File::from(entry)) }.map_err(|_| "wasmtime refused the entry")?;
        Ok((module, digest))
    }

    /// Records that `module` (a file whose identity was the same before and after it was
    /// hashed to `digest`) has the entry `entry` (checked whole). A failure is only a lost
    /// shortcut: the start says why in its timeline.
    pub fn remember(&self, module: &Identity, engine_hash: u64, digest: &[u8; 32], entry: &Identity) -> std::io::Result<()> {
        let name = record_name(module, engine_hash);
        let temp = format!(".{name}.{}.tmp", std::process::id());
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let mut file = File::from(openat(&self.known, temp.as_str(), flags, Mode::from_raw_mode(0o600))?);
        let written = file.write_all(&record(module, engine_hash, digest, entry)).and_then(|()| Ok(renameat(&self.known, temp.as_str(), &self.known, name.as_str())?));
        if written.is_err() {
            let _ = unlinkat(&self.known, temp.as_str(), AtFlags::empty());
        }
        written
    }

    /// The compiled module from its entry, mapped, with the entry's identity; Err(reason) is a
    /// miss.
    pub fn load(&self, engine: &Engine, digest: &[u8; 32], engine_hash: u64) -> Result<(Module, Option<Identity>), String> {
        let fd = self.open_entry(digest, engine_hash)?;
        let identity = Identity::of(&fd);
        let stat = rustix::fs::fstat(&fd).map_err(|e| format!("entry not readable: {e}"))?;
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
        let module = unsafe { Module::deserialize_open_file(engine, File::from(fd)) }
            .map_err(|e| format!("wasmtime refused the entry: {e}"))?;
        Ok((module, identity))
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
        self.bound_records();
        Ok(size)
    }

    /// Empties `known/` when it holds more than MAX_RECORDS files (a record is rebuilt by the
    /// next start of its module).
    fn bound_records(&self) {
        let names = |dir: &OwnedFd| -> Vec<String> {
            let Ok(mut listing) = Dir::read_from(dir) else { return Vec::new() };
            let mut names = Vec::new();
            while let Some(Ok(entry)) = listing.next() {
                if let Ok(name) = entry.file_name().to_str() {
                    if name != "." && name != ".." {
                        names.push(name.to_owned());
                    }
                }
            }
            names
        };
        let records = names(&self.known);
        if records.len() > MAX_RECORDS {
            for name in records {
                let _ = unlinkat(&self.known, name.as_str(), AtFlags::empty());
            }
        }
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

    #[test]
    fn a_record_holds_only_for_its_file_and_engine_and_every_damage_is_a_miss() {
        let module = Identity([1; IDENTITY_LEN]);
        let entry = Identity([2; IDENTITY_LEN]);
        let digest = module_digest(b"\0asm module");
        let r = record(&module, 7, &digest, &entry);
        assert_eq!(read_record(&r, &module, 7), Ok((digest, entry)));
        assert_eq!(read_record(&r, &module, 8), Err("record of another file"));
        let mut other = module;
        other.0[20] ^= 1; // another birth time
        assert_eq!(read_record(&r, &other, 7), Err("record of another file"));
        assert_ne!(record_name(&module, 7), record_name(&other, 7));
        for at in [0, 30, 100, RECORD_LEN - 1] {
            let mut damaged = r;
            damaged[at] ^= 1;
            assert_eq!(read_record(&damaged, &module, 7), Err("record damaged"));
        }
        assert_eq!(read_record(&r[..RECORD_LEN - 1], &module, 7), Err("record damaged"));
    }

    #[test]
    fn a_file_changed_in_place_has_another_identity() {
        let dir = std::env::temp_dir().join(format!("labreport-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.wasm");
        std::fs::write(&path, b"\0asm one").unwrap();
        let before = Identity::of(File::open(&path).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_at(&file, b"two", 5).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let after_write = Identity::of(&file);
        file.set_modified(mtime - std::time::Duration::from_secs(60)).unwrap(); // mtime put back: ctime moves on
        let after_touch = Identity::of(&file);
        let again = Identity::of(&file);
        std::fs::remove_dir_all(&dir).unwrap();
        if before.is_none() {
            return; // this filesystem gives no birth time: no record is ever made on it
        }
        assert_ne!(before, after_write);
        assert_ne!(after_write, after_touch);
        assert_eq!(after_touch, again);
    }
}
