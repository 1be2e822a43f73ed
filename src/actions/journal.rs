//! The incident journal on disk: JSON lines, appended and fsync'd one by one, under
//! the XDG state dir. Lines of one incident share its id; `backout report` reads them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::engine::journal::Record;

pub struct Journal {
    file: File,
    path: PathBuf,
}

/// `$BACKOUT_JOURNAL`, else `$XDG_STATE_HOME/backout/journal.jsonl`, else
/// `~/.local/state/backout/journal.jsonl`.
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BACKOUT_JOURNAL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/state")
        });
    state.join("backout").join("journal.jsonl")
}

impl Journal {
    /// Opens for appending, private to this user. A torn last line (a process killed
    /// mid-write) is ended first, so the next record starts a line of its own instead
    /// of being lost inside the fragment.
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        let mut file = private_file(path)?;
        let torn = last_byte(path)?.is_some_and(|c| c != b'\n');
        if torn {
            file.write_all(b"\n")?;
            file.sync_data()?;
        }
        Ok(Journal {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One record, one line, on disk before this returns.
    pub fn append(&mut self, record: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }
}

/// The file's last byte, read without reading the rest.
fn last_byte(path: &Path) -> std::io::Result<Option<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(None);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut byte = [0u8];
    f.read_exact(&mut byte)?;
    Ok(Some(byte[0]))
}

/// `path` opened for appending, created 0600 in a directory created 0700: the journal
/// and the console log name people, services and incidents.
pub fn private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Every record in a journal file; unreadable lines are reported, not skipped silently.
pub fn read(path: &Path) -> std::io::Result<(Vec<Record>, Vec<String>)> {
    let bytes = std::fs::read(path)?;
    let (records, bad) = parse(&bytes);
    let bad = bad
        .into_iter()
        .map(|b| format!("{} {b}", path.display()))
        .collect();
    Ok((records, bad))
}

/// The records in a journal's bytes, and a note for each line that is not one. Bytes,
/// not text: a write cut inside a multi-byte character must cost that line only.
pub fn parse(bytes: &[u8]) -> (Vec<Record>, Vec<String>) {
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(r) => records.push(r),
            Err(e) => bad.push(format!("line {}: {e}", i + 1)),
        }
    }
    (records, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::journal::Entry;

    #[test]
    fn records_round_trip_and_a_torn_line_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/journal.jsonl");
        let mut j = Journal::open(&path).unwrap();
        let record = Record {
            at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
            incident: Some("inc".into()),
            service: "shop/checkout".into(),
            entry: Entry::IncidentOpened {
                summary: "error-rate firing".into(),
            },
        };
        j.append(&record).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"at\":")
            .unwrap();
        let (records, bad) = read(&path).unwrap();
        assert_eq!(records, std::slice::from_ref(&record));
        assert_eq!(bad.len(), 1);
        // The next process to append repairs the tail: its record is not lost.
        drop(j);
        Journal::open(&path).unwrap().append(&record).unwrap();
        let (records, bad) = read(&path).unwrap();
        assert_eq!(records, [record.clone(), record]);
        assert_eq!(bad.len(), 1, "only the fragment is unreadable");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert!(bad[0].contains("line 2"));
    }

    #[test]
    fn a_line_cut_inside_a_character_costs_that_line_only() {
        let record = Record {
            at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
            incident: Some("inc".into()),
            service: "shop/checkout".into(),
            entry: Entry::IncidentOpened {
                summary: "r2 → r1".into(),
            },
        };
        let line = serde_json::to_vec(&record).unwrap();
        let arrow = line.windows(3).position(|w| w == "→".as_bytes()).unwrap();
        let mut bytes = line[..arrow + 1].to_vec();
        bytes.push(b'\n');
        bytes.extend_from_slice(&line);
        bytes.push(b'\n');
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        std::fs::write(&path, &bytes).unwrap();
        let (records, bad) = read(&path).expect("a torn character is not an unreadable file");
        assert_eq!(records, [record]);
        assert_eq!(bad.len(), 1, "{bad:?}");
    }
}
