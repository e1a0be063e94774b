//! The shim's own timeline of one start: CLOCK_MONOTONIC stamps, the clock labreport's
//! client uses too, so the two line up without any conversion.
//!
//! A run asks for its record by the container environment variable `LABREPORT_PHASES=<token>`;
//! the shim strips that variable from the guest's environment and, when the guest has
//! returned, writes `phases/<token>.json` in its state directory (temp file, then rename).

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{openat, renameat, Mode, OFlags};
use rustix::time::{clock_gettime, ClockId};

pub const ENV: &str = "LABREPORT_PHASES";

/// When this shim process's `main` began. The container process is cloned (through the
/// zygote) from the shim daemon after this is set, so it sees the daemon's own start.
static PROCESS_START_NS: AtomicU64 = AtomicU64::new(0);

pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

pub fn mark_process_start() {
    PROCESS_START_NS.store(now_ns(), Ordering::Relaxed);
}

/// A token is a file name of labreport's choosing; anything else is ignored.
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 128
        && !token.starts_with('.')
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Phase ends in order; a phase's duration is its stamp minus the previous one.
pub struct Timeline {
    marks: Vec<(&'static str, u64)>,
    facts: Vec<(&'static str, String)>,
}

impl Timeline {
    pub fn start() -> Self {
        let mut marks = Vec::with_capacity(12);
        let process = PROCESS_START_NS.load(Ordering::Relaxed);
        if process != 0 {
            marks.push(("shim_main", process));
        }
        marks.push(("run_wasi", now_ns()));
        Timeline { marks, facts: Vec::new() }
    }

    pub fn mark(&mut self, phase: &'static str) {
        self.marks.push((phase, now_ns()));
    }

    pub fn fact(&mut self, name: &'static str, value: impl ToString) {
        self.facts.push((name, value.to_string()));
    }

    pub fn to_json(&self, shim: &str) -> String {
        let mut out = String::with_capacity(512);
        let _ = write!(out, "{{\"version\":1,\"shim\":{},\"marks\":[", quote(shim));
        for (i, (phase, ns)) in self.marks.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(out, "{comma}[{},{ns}]", quote(phase));
        }
        out.push_str("],\"facts\":{");
        for (i, (name, value)) in self.facts.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(out, "{comma}{}:{}", quote(name), quote(value));
        }
        out.push_str("}}\n");
        out
    }

    /// Writes the record as `<token>.json` in `dir`; a failure is logged, never fatal.
    pub fn write(&self, dir: impl AsFd, token: &str, shim: &str) {
        if let Err(error) = self.try_write(dir.as_fd(), token, shim) {
            log::warn!("could not write the phase record {token}: {error}");
        }
    }

    fn try_write(&self, dir: impl AsFd, token: &str, shim: &str) -> std::io::Result<()> {
        let temp = format!(".{token}.{}.tmp", std::process::id());
        let fd: OwnedFd = openat(
            &dir,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        )?;
        std::fs::File::from(fd).write_all(self.to_json(shim).as_bytes())?;
        renameat(&dir, temp.as_str(), &dir, format!("{token}.json").as_str())?;
        Ok(())
    }
}

/// A JSON string literal (the values here are short and mostly ASCII).
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_plain_file_names() {
        assert!(valid_token("labreport-abc_1.2"));
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(!valid_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_record_is_json_with_ordered_marks() {
        let mut timeline = Timeline::start();
        timeline.mark("engine");
        timeline.fact("cache", "miss: \"x\"\n");
        let json = timeline.to_json("wasmtime");
        assert!(json.starts_with("{\"version\":1,\"shim\":\"wasmtime\",\"marks\":[[\"run_wasi\","));
        assert!(json.contains("[\"engine\","));
        assert!(json.contains("\"cache\":\"miss: \\\"x\\\"\\u000a\""));
    }
}
