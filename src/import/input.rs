//! Opening import files: plain, `.gz` or `.zip`, with a count of the bytes
//! read from the file itself for progress.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Counts the bytes read through it (for a compressed file: compressed
/// bytes, which is what the file's size measures).
pub(crate) struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl<R> Counting<R> {
    pub(crate) fn new(inner: R, read: Arc<AtomicU64>) -> Counting<R> {
        Counting { inner, read }
    }
}

/// Opens `path` and hands its decompressed bytes to `f`. A `.zip` must hold
/// exactly one file (as GDELT's do).
pub(crate) fn with_file<T>(
    path: &Path,
    read: Arc<AtomicU64>,
    f: impl FnOnce(&mut (dyn BufRead + Send)) -> Result<T>,
) -> Result<T> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let counted = Counting::new(file, read);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.ends_with(".gz") {
        let mut r = BufReader::new(flate2::read::MultiGzDecoder::new(BufReader::new(counted)));
        f(&mut r)
    } else if name.ends_with(".zip") {
        let bad = |why: String| Error::Invalid {
            at: path.display().to_string(),
            field: "-".into(),
            reason: why,
        };
        let mut archive = zip::ZipArchive::new(counted)
            .map_err(|e| bad(format!("not a readable zip archive ({e})")))?;
        if archive.len() != 1 {
            return Err(bad(format!(
                "the zip archive holds {} files; annals imports archives of one file \
                 (as GDELT publishes them): unzip it and import each",
                archive.len()
            )));
        }
        let member = archive
            .by_index(0)
            .map_err(|e| bad(format!("cannot read the zip archive's file ({e})")))?;
        // The member borrows the archive: finish with it before returning.
        #[allow(clippy::let_and_return)]
        let out = f(&mut BufReader::new(member));
        out
    } else {
        let mut r = BufReader::with_capacity(256 * 1024, counted);
        f(&mut r)
    }
}

/// Turns CRLF line ends into LF as the bytes stream by. The CSV reader
/// counts a CRLF file's lines one short (it ends a record at the CR), and
/// line numbers in messages must be the ones an editor shows. A CRLF
/// inside a quoted field becomes LF too, which is what the field means.
pub(crate) struct CrlfToLf<R> {
    inner: R,
    line: Vec<u8>,
    pos: usize,
}

impl<R: BufRead> CrlfToLf<R> {
    pub(crate) fn new(inner: R) -> CrlfToLf<R> {
        CrlfToLf {
            inner,
            line: Vec::new(),
            pos: 0,
        }
    }
}

impl<R: BufRead> Read for CrlfToLf<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.line.len() {
            self.line.clear();
            self.pos = 0;
            // Bounded: a line without a newline is served in pieces.
            let n = (&mut self.inner)
                .take(64 * 1024)
                .read_until(b'\n', &mut self.line)?;
            if n == 0 {
                return Ok(0);
            }
            if self.line.ends_with(b"\r\n") {
                self.line.truncate(self.line.len() - 2);
                self.line.push(b'\n');
            }
        }
        let n = buf.len().min(self.line.len() - self.pos);
        buf[..n].copy_from_slice(&self.line[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_becomes_lf_even_across_pieces() {
        let text = "a,b\r\n1,\"x\r\ny\"\r\nlone\rcr\n";
        let mut out = String::new();
        CrlfToLf::new(std::io::BufReader::with_capacity(3, text.as_bytes()))
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "a,b\n1,\"x\ny\"\nlone\rcr\n");
    }
}
