//! The write-ahead log: numbered files of checksummed records.
//!
//! A file is `wal/<seq:08>.wal`: an 8-byte magic, then records
//! `[u32 le payload length][u32 le crc32 of kind+payload][u8 kind][payload]`.
//! A new file is started at every seal, so "everything up to file N is in
//! segments" is a single number in the catalog.
//!
//! Reading stops at the first record that is incomplete or fails its
//! checksum (a torn tail after a crash): it is logged, and the file is
//! truncated there so later appends follow valid data.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::error::StoreError;

const MAGIC: &[u8; 8] = b"ASHWAL01";
const HEADER_LEN: usize = 9;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Spans = 1,
    Logs = 2,
}

impl RecordKind {
    fn from_u8(value: u8) -> Option<RecordKind> {
        match value {
            1 => Some(RecordKind::Spans),
            2 => Some(RecordKind::Logs),
            _ => None,
        }
    }
}

pub fn io_error(path: &Path, source: io::Error) -> StoreError {
    if crate::error::is_no_space(&source) {
        return StoreError::DiskFull {
            path: path.to_path_buf(),
            detail: source.to_string(),
        };
    }
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn wal_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:08}.wal"))
}

/// Largest payload one record may carry (the length field is 32 bits).
pub const MAX_PAYLOAD: usize = u32::MAX as usize;

/// Frames one record, ready to be appended to a WAL file; `None` when the
/// payload does not fit a record.
#[cfg(test)]
pub fn frame(kind: RecordKind, payload: &[u8]) -> Option<Vec<u8>> {
    let mut record = record_buffer(payload.len());
    record.extend_from_slice(payload);
    finish_record(kind, record)
}

/// An empty record with room for `payload_capacity` bytes: the header is
/// reserved up front so the payload is encoded in place and never copied.
pub fn record_buffer(payload_capacity: usize) -> Vec<u8> {
    let mut record = Vec::with_capacity(HEADER_LEN + payload_capacity);
    record.resize(HEADER_LEN, 0);
    record
}

/// Fills in the header of a buffer from `record_buffer` whose payload has
/// been appended; `None` when the payload does not fit a record.
pub fn finish_record(kind: RecordKind, mut record: Vec<u8>) -> Option<Vec<u8>> {
    let length = record.len().checked_sub(HEADER_LEN)?;
    if length > MAX_PAYLOAD {
        return None;
    }
    record[8] = kind as u8;
    let crc = crc32fast::hash(&record[8..]);
    record[..4].copy_from_slice(&(length as u32).to_le_bytes());
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    Some(record)
}

/// Sequence numbers of the WAL files in `dir`, ascending.
pub fn list_files(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        seqs.push(seq);
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Makes a created, renamed or deleted directory entry durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// The open, append-only WAL file the writer thread owns.
pub struct WalFile {
    pub seq: u64,
    path: PathBuf,
    file: File,
    /// Length of the valid prefix; a failed write is cut back to it.
    good_len: u64,
}

impl WalFile {
    /// Creates a fresh file (durably: file, header and directory entry).
    pub fn create(dir: &Path, seq: u64) -> Result<WalFile, StoreError> {
        let path = wal_path(dir, seq);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        file.write_all(MAGIC)
            .and_then(|()| file.sync_data())
            .map_err(|e| io_error(&path, e))?;
        sync_dir(dir)?;
        Ok(WalFile {
            seq,
            path,
            file,
            good_len: MAGIC.len() as u64,
        })
    }

    /// Appends the records (one vectored write, not a copy into one
    /// buffer) and fdatasyncs; on failure the file is cut back so no partial
    /// record precedes later ones.
    pub fn append_and_sync(&mut self, records: &[&[u8]]) -> Result<(), StoreError> {
        let result =
            write_all_vectored(&mut self.file, records).and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.good_len += records.iter().map(|r| r.len() as u64).sum::<u64>();
                Ok(())
            }
            Err(error) => {
                if let Err(undo) = self.cut_back() {
                    warn!(path = %self.path.display(), error = %undo, "could not cut back wal after failed write");
                }
                Err(io_error(&self.path, error))
            }
        }
    }

    fn cut_back(&mut self) -> io::Result<()> {
        self.file.set_len(self.good_len)?;
        self.file.seek(SeekFrom::Start(self.good_len))?;
        self.file.sync_data()
    }
}

/// Writes every byte of `parts` in as few `writev` calls as the kernel
/// allows (it may write less than asked; the rest is retried).
fn write_all_vectored(file: &mut File, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
    let mut remaining: &mut [io::IoSlice<'_>] = &mut slices;
    io::IoSlice::advance_slices(&mut remaining, 0);
    while !remaining.is_empty() {
        match file.write_vectored(remaining) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => io::IoSlice::advance_slices(&mut remaining, written),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// One decoded-frame record read back from a WAL file.
pub struct Record {
    pub kind: RecordKind,
    pub payload: Vec<u8>,
}

/// Reads every intact record of a file. A torn or corrupt tail is logged and
/// truncated away; only real IO errors fail.
pub fn read_file(path: &Path) -> Result<Vec<Record>, StoreError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| io_error(path, e))?;
    let (records, valid_len) = parse(&bytes);
    if valid_len < bytes.len() {
        warn!(
            path = %path.display(),
            valid_bytes = valid_len,
            dropped_bytes = bytes.len() - valid_len,
            "skipped torn wal tail"
        );
        truncate(path, valid_len)?;
    }
    Ok(records)
}

fn truncate(path: &Path, len: usize) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    file.set_len(len as u64)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))
}

/// Splits file bytes into intact records; returns them and the length of the
/// valid prefix. A bad magic leaves nothing valid.
pub fn parse(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return (records, 0);
    }
    let mut offset = MAGIC.len();
    while let Some((record, next)) = parse_record(bytes, offset) {
        records.push(record);
        offset = next;
    }
    (records, offset)
}

fn parse_record(bytes: &[u8], offset: usize) -> Option<(Record, usize)> {
    let header = bytes.get(offset..offset.checked_add(HEADER_LEN)?)?;
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let kind_byte = header[8];
    let start = offset + HEADER_LEN;
    let payload = bytes.get(start..start.checked_add(length)?)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind_byte]);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return None;
    }
    let kind = RecordKind::from_u8(kind_byte)?;
    Some((
        Record {
            kind,
            payload: payload.to_vec(),
        },
        start + length,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(payloads: &[&[u8]]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        for payload in payloads {
            bytes.extend(frame(RecordKind::Spans, payload).unwrap());
        }
        bytes
    }

    #[test]
    fn test_parse_reads_intact_records() {
        let bytes = file_with(&[b"one", b"", b"three"]);
        let (records, valid) = parse(&bytes);
        assert_eq!(valid, bytes.len());
        let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
        assert_eq!(payloads, vec![&b"one"[..], b"", b"three"]);
    }

    #[test]
    fn test_parse_stops_at_torn_or_flipped_record() {
        let bytes = file_with(&[b"one", b"two", b"three"]);
        let second_end = MAGIC.len() + 2 * HEADER_LEN + 6;
        for cut in 0..bytes.len() {
            let (records, valid) = parse(&bytes[..cut]);
            assert!(valid <= cut);
            assert!(records.len() <= 3);
        }
        for bit in 0..(bytes.len() - second_end) * 8 {
            let mut flipped = bytes.clone();
            flipped[second_end + bit / 8] ^= 1 << (bit % 8);
            let (records, valid) = parse(&flipped);
            assert_eq!(records.len(), 2, "bit {bit}");
            assert_eq!(valid, second_end);
        }
    }

    #[test]
    fn test_vectored_append_writes_every_record_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = WalFile::create(dir.path(), 1).unwrap();
        let big = vec![7u8; 300_000];
        let records: Vec<Vec<u8>> = [&b"one"[..], &[], &big, b"four"]
            .iter()
            .map(|payload| frame(RecordKind::Logs, payload).unwrap())
            .collect();
        let parts: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        wal.append_and_sync(&parts[..2]).unwrap();
        wal.append_and_sync(&parts[2..]).unwrap();
        let read = read_file(&wal_path(dir.path(), 1)).unwrap();
        let payloads: Vec<&[u8]> = read.iter().map(|r| r.payload.as_slice()).collect();
        assert_eq!(payloads, vec![&b"one"[..], b"", &big, b"four"]);
        assert!(read.iter().all(|r| r.kind == RecordKind::Logs));
    }

    #[test]
    fn test_finish_record_refuses_a_buffer_without_header() {
        assert_eq!(finish_record(RecordKind::Spans, vec![0; 3]), None);
        let empty = finish_record(RecordKind::Spans, record_buffer(0)).unwrap();
        assert_eq!(parse(&[&MAGIC[..], &empty].concat()).0.len(), 1);
    }

    #[test]
    fn test_bad_magic_leaves_nothing() {
        let mut bytes = file_with(&[b"one"]);
        bytes[0] = b'X';
        assert_eq!(parse(&bytes).1, 0);
        assert_eq!(parse(&[]).1, 0);
    }
}
