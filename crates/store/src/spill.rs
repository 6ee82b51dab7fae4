//! `Spill`: the bounded local file (one JSON record per line) that keeps the records the store
//! would not take, until the writer re-inserts them ("replays") and truncates it.
//!
//! Only the writer task touches the file, one call at a time. Replay walks the file in chunks
//! from `replayed_to`; appends go to the end meanwhile; once the walk reaches the end the file
//! is truncated. A file left by a previous run is replayed too (records re-inserted twice are
//! skipped by `ON CONFLICT DO NOTHING`).

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};

use crate::record::InferenceRecord;
use crate::StoreError;

pub(crate) struct Spill {
    path: PathBuf,
    max_bytes: u64,
    /// Bytes in the file, including a replayed prefix not truncated yet.
    len: u64,
    /// Offset of the first line not re-inserted yet.
    replayed_to: u64,
    /// Lines past `replayed_to` (`Recorder::spilled`).
    pending: Arc<AtomicU64>,
}

/// Lines read from the spill file for one replay step.
pub(crate) struct Chunk {
    pub(crate) records: Vec<InferenceRecord>,
    /// Lines that were not a record (a write torn by a crash, an edited file).
    pub(crate) malformed: u64,
    end: u64,
}

impl Spill {
    /// Takes over the file at `path` if a previous run left one. Never fails: a file that
    /// cannot be read is logged and then appended to (its unreadable part is lost to replay).
    pub(crate) async fn open(path: PathBuf, max_bytes: u64, pending: Arc<AtomicU64>) -> Spill {
        let mut spill = Spill { path, max_bytes, len: 0, replayed_to: 0, pending };
        match scan(&spill.path).await {
            Ok(None) => {}
            Ok(Some((len, lines))) => {
                spill.len = len;
                spill.pending.store(lines, Ordering::Relaxed);
                tracing::warn!(path = %spill.path.display(), records = lines, "spill file from an earlier run found, will replay it");
            }
            Err(err) => tracing::error!(error = %err, "cannot read the spill file left by an earlier run"),
        }
        spill
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.replayed_to < self.len
    }

    /// Appends as many of `records` as fit under `max_bytes`; returns how many were kept. On a
    /// write error nothing is kept (a torn tail is cut off again).
    pub(crate) async fn append(&mut self, records: &[InferenceRecord]) -> Result<u64, StoreError> {
        let mut buf = Vec::new();
        let mut kept = 0;
        for r in records {
            let Ok(line) = serde_json::to_vec(r) else { continue };
            if self.len + (buf.len() + line.len() + 1) as u64 > self.max_bytes {
                break;
            }
            buf.extend_from_slice(&line);
            buf.push(b'\n');
            kept += 1;
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let mut file =
            OpenOptions::new().create(true).append(true).open(&self.path).await.map_err(|e| self.error(e))?;
        if let Err(e) = write_all(&mut file, &buf).await {
            let _ = file.set_len(self.len).await;
            return Err(self.error(e));
        }
        self.len += buf.len() as u64;
        self.pending.fetch_add(kept, Ordering::Relaxed);
        Ok(kept)
    }

    /// Reads up to `max` lines from where replay stands.
    pub(crate) async fn read_chunk(&self, max: usize) -> Result<Chunk, StoreError> {
        let mut file = File::open(&self.path).await.map_err(|e| self.error(e))?;
        file.seek(SeekFrom::Start(self.replayed_to)).await.map_err(|e| self.error(e))?;
        let mut reader = BufReader::new(file.take(self.len - self.replayed_to));
        let mut chunk = Chunk { records: Vec::new(), malformed: 0, end: self.replayed_to };
        let mut line = Vec::new();
        while chunk.records.len() + (chunk.malformed as usize) < max.max(1) {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).await.map_err(|e| self.error(e))?;
            if n == 0 {
                break;
            }
            chunk.end += n as u64;
            match serde_json::from_slice(line.strip_suffix(b"\n").unwrap_or(&line)) {
                Ok(record) => chunk.records.push(record),
                Err(_) => chunk.malformed += 1,
            }
        }
        Ok(chunk)
    }

    /// Marks `chunk` as re-inserted; truncates the file once every line is.
    pub(crate) async fn advance(&mut self, chunk: &Chunk) {
        self.replayed_to = chunk.end;
        self.forget(chunk.records.len() as u64 + chunk.malformed);
        if self.replayed_to >= self.len {
            self.truncate().await;
        }
    }

    /// Gives up on every line not replayed yet (the file vanished or cannot be read); returns
    /// how many records that was, for the caller to count as dropped.
    pub(crate) async fn abandon(&mut self) -> u64 {
        let lost = self.pending.swap(0, Ordering::Relaxed);
        self.truncate().await;
        lost
    }

    fn forget(&self, n: u64) {
        let _ =
            self.pending.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| Some(p.saturating_sub(n)));
    }

    async fn truncate(&mut self) {
        let result = match OpenOptions::new().write(true).open(&self.path).await {
            Ok(file) => file.set_len(0).await,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                self.len = 0;
                self.replayed_to = 0;
            }
            // The replayed lines stay on disk; they are past `replayed_to` no more.
            Err(e) => tracing::warn!(error = %self.error(e), "cannot truncate the spill file"),
        }
    }

    fn error(&self, source: std::io::Error) -> StoreError {
        StoreError::Spill { path: self.path.display().to_string(), source }
    }
}

async fn write_all(file: &mut File, buf: &[u8]) -> std::io::Result<()> {
    file.write_all(buf).await?;
    file.flush().await
}

/// The size and line count of an existing spill file (`None` if there is none or it is
/// empty). A last line cut short by a crash gets its newline, so later appends start clean.
async fn scan(path: &Path) -> std::io::Result<Option<(u64, u64)>> {
    let mut file = match File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let (mut len, mut lines, mut last) = (0u64, 0u64, b'\n');
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        len += n as u64;
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    if len == 0 {
        return Ok(None);
    }
    if last != b'\n' {
        let mut file = OpenOptions::new().append(true).open(path).await?;
        write_all(&mut file, b"\n").await?;
        len += 1;
        lines += 1;
    }
    Ok(Some((len, lines)))
}
