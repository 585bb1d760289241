//! Log segment files: the entries of one log (main, or a branch) in files
//! annals alone writes, with durability under its own control
//! (docs/format.md, "Log segment files").
//!
//! A log is a folder of segment files, each named by the first seq it
//! holds. A segment starts with a header; then each batch written is one
//! **frame**: a header stating the batch's first and last seq, its chunk
//! count and byte length, the last seq known durable when it was written,
//! and a CRC-32 over the whole frame; then the batch's chunks, each with
//! its own CRC-32 so that a read of one chunk is checked on its own. A
//! segment that reached its size limit is **sealed**: a footer frame lists
//! where every chunk is, and a trailer at the very end points at it, so
//! opening reads a footer instead of every frame.
//!
//! Recovery is exact: opening scans the frames of the segment being
//! written. A frame that fails its length or checksum is a torn,
//! unacknowledged batch when nothing after it claims it was durable (no
//! later valid frame was written after a sync that covered it); it is then
//! cut away whole. Anything else (a bad frame that a later frame says was
//! durable, a sealed segment that does not check, seqs that do not
//! continue) is [`Error::Corruption`] naming the file, the byte offset and
//! the seq, never a silent truncation.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::sync::{read, sync_dir, write};

/// The first bytes of every segment file, then the format version.
const SEGMENT_MAGIC: &[u8; 8] = b"ANNALSEG";
/// The segment format this code writes and reads.
const SEGMENT_VERSION: u32 = 1;
/// Magic, version, CRC-32 of both.
const SEGMENT_HEADER_BYTES: u64 = 16;
/// A frame holding one batch's chunks.
const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"ANFR");
/// The footer frame of a sealed segment.
const FOOTER_MAGIC: u32 = u32::from_le_bytes(*b"ANFT");
/// The trailer's magic, the last bytes of a sealed segment.
const TRAILER_MAGIC: u32 = u32::from_le_bytes(*b"ANSL");
/// magic u32, count u32, body length u64, first seq u64, last seq u64,
/// durable-through seq u64, CRC-32 of the frame u32, CRC-32 of the header
/// before it u32 (so that headers can be walked without reading bodies).
const FRAME_HEADER_BYTES: usize = 48;
/// Per chunk in a frame: first seq u64, length u32, CRC-32 u32.
const CHUNK_HEADER_BYTES: usize = 16;
/// Per chunk in a footer: first seq u64, its frame's first seq u64,
/// offset u64, length u32, CRC-32 u32.
const FOOTER_ENTRY_BYTES: usize = 32;
/// Footer offset u64, magic u32, CRC-32 of both u32.
const TRAILER_BYTES: u64 = 16;
/// The default size at which a segment is sealed and a new one begun.
pub(crate) const DEFAULT_SEGMENT_BYTES: u64 = 128 * 1024 * 1024;

/// Where one chunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    /// Index into `Files::segments`.
    segment: u32,
    /// The first seq of the frame (batch) holding it.
    frame: u64,
    offset: u64,
    len: u32,
    crc: u32,
}

struct Segment {
    path: PathBuf,
    file: Arc<File>,
}

struct Files {
    segments: Vec<Segment>,
    /// First seq of each chunk → where it is.
    index: BTreeMap<u64, Loc>,
    /// Bytes of the last segment (where the next frame goes).
    end: u64,
    /// Whether the last segment is sealed (the next frame starts a new one).
    sealed: bool,
    /// The last seq stored, and the last one made durable.
    last_seq: u64,
    durable_seq: u64,
    /// When the oldest write not yet synced was made.
    dirty_since: Option<Instant>,
    /// A sync that failed: the kernel may have dropped the pages it could
    /// not write and a later fsync would not say so, so every later write
    /// and sync reports it until the log is reopened.
    failed: Option<String>,
}

impl Files {
    /// A log with no segment yet (the first write begins one).
    fn empty() -> Files {
        Files {
            segments: Vec::new(),
            index: BTreeMap::new(),
            end: 0,
            sealed: true,
            last_seq: 0,
            durable_seq: 0,
            dirty_since: None,
            failed: None,
        }
    }

    fn check(&self, dir: &Path) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(e) => Err(Error::io(
                dir,
                std::io::Error::other(format!("an earlier sync of this log failed: {e}")),
            )),
        }
    }
}

/// The segment files of one log.
pub(crate) struct LogFiles {
    dir: PathBuf,
    segment_bytes: u64,
    files: RwLock<Files>,
}

/// A chunk as read: its first seq and bytes.
pub(crate) type Chunk = (u64, Vec<u8>);

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// The name of the segment whose first seq is `first`.
fn segment_name(first: u64) -> String {
    format!("{first:020}.log")
}

fn segment_header() -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES as usize];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A frame's bytes: header, then `body`.
fn frame(magic: u32, count: u32, first: u64, last: u64, durable: u64, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
    f.extend_from_slice(&magic.to_le_bytes());
    f.extend_from_slice(&count.to_le_bytes());
    f.extend_from_slice(&(body.len() as u64).to_le_bytes());
    f.extend_from_slice(&first.to_le_bytes());
    f.extend_from_slice(&last.to_le_bytes());
    f.extend_from_slice(&durable.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&f);
    h.update(body);
    f.extend_from_slice(&h.finalize().to_le_bytes());
    let header_crc = crc32fast::hash(&f);
    f.extend_from_slice(&header_crc.to_le_bytes());
    f.extend_from_slice(body);
    f
}

/// A frame read back and checked.
struct Frame {
    magic: u32,
    count: u32,
    first: u64,
    last: u64,
    durable: u64,
    body: Vec<u8>,
}

impl Frame {
    fn bytes(&self) -> u64 {
        (FRAME_HEADER_BYTES + self.body.len()) as u64
    }
}

/// Parses and checks the frame at the start of `b`; `None` if it is not a
/// whole, valid frame.
fn parse_frame(b: &[u8]) -> Option<Frame> {
    let header = b.get(..FRAME_HEADER_BYTES)?;
    let magic = u32_at(header, 0);
    if magic != FRAME_MAGIC && magic != FOOTER_MAGIC {
        return None;
    }
    if crc32fast::hash(header.get(..44)?) != u32_at(header, 44) {
        return None;
    }
    let len = usize::try_from(u64_at(header, 8)).ok()?;
    let body = b.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES.checked_add(len)?)?;
    let mut h = crc32fast::Hasher::new();
    h.update(header.get(..40)?);
    h.update(body);
    if h.finalize() != u32_at(header, 40) {
        return None;
    }
    Some(Frame {
        magic,
        count: u32_at(header, 4),
        first: u64_at(header, 16),
        last: u64_at(header, 24),
        durable: u64_at(header, 32),
        body: body.to_vec(),
    })
}

/// Reads the frame at `offset` of a file `len` bytes long; `None` if it
/// is not a whole, valid frame.
fn read_frame(file: &File, offset: u64, len: u64) -> Result<Option<Frame>> {
    let Some(room) = len.checked_sub(offset) else {
        return Ok(None);
    };
    if room < FRAME_HEADER_BYTES as u64 {
        return Ok(None);
    }
    let mut header = [0u8; FRAME_HEADER_BYTES];
    file.read_exact_at(&mut header, offset)
        .map_err(|e| Error::io("log segment", e))?;
    let body_len = u64_at(&header, 8);
    if body_len > room - FRAME_HEADER_BYTES as u64 {
        return Ok(None);
    }
    let mut b = vec![0u8; FRAME_HEADER_BYTES + body_len as usize];
    file.read_exact_at(&mut b, offset)
        .map_err(|e| Error::io("log segment", e))?;
    Ok(parse_frame(&b))
}

/// A batch frame's header and its chunks' headers, read without its
/// chunks: what opening needs of a frame it does not check whole.
struct Head {
    first: u64,
    last: u64,
    durable: u64,
    body_len: u64,
    /// (first seq, offset in the body, length, CRC-32) per chunk.
    chunks: Vec<(u64, usize, u32, u32)>,
}

/// Reads the header of the batch frame at `offset` and its chunks'
/// headers; `None` if the header does not check or the chunks do not
/// fill the body exactly.
fn read_head(file: &File, offset: u64, len: u64, path: &Path) -> Result<Option<Head>> {
    let io = |e| Error::io(path, e);
    if len.saturating_sub(offset) < FRAME_HEADER_BYTES as u64 {
        return Ok(None);
    }
    let mut h = [0u8; FRAME_HEADER_BYTES];
    file.read_exact_at(&mut h, offset).map_err(io)?;
    if u32_at(&h, 0) != FRAME_MAGIC || crc32fast::hash(&h[..44]) != u32_at(&h, 44) {
        return Ok(None);
    }
    let body_len = u64_at(&h, 8);
    let body_at = offset + FRAME_HEADER_BYTES as u64;
    if body_len > len - body_at {
        return Ok(None);
    }
    let mut chunks = Vec::new();
    let mut at = 0u64;
    for _ in 0..u32_at(&h, 4) {
        if at + CHUNK_HEADER_BYTES as u64 > body_len {
            return Ok(None);
        }
        let mut c = [0u8; CHUNK_HEADER_BYTES];
        file.read_exact_at(&mut c, body_at + at).map_err(io)?;
        at += CHUNK_HEADER_BYTES as u64;
        let clen = u32_at(&c, 8);
        chunks.push((u64_at(&c, 0), at as usize, clen, u32_at(&c, 12)));
        at += clen as u64;
    }
    if at != body_len {
        return Ok(None);
    }
    Ok(Some(Head {
        first: u64_at(&h, 16),
        last: u64_at(&h, 24),
        durable: u64_at(&h, 32),
        body_len,
        chunks,
    }))
}

impl LogFiles {
    /// Opens the log in `dir` (created, empty, if missing), recovering
    /// from a torn last batch; see the module's documentation.
    pub(crate) fn open(dir: &Path, segment_bytes: u64) -> Result<LogFiles> {
        create_dir_synced(dir)?;
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let e = e.map_err(|e| Error::io(dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(first) = name.strip_suffix(".log").and_then(|s| s.parse().ok()) {
                names.push((first, e.path()));
            }
        }
        names.sort();
        let mut files = Files::empty();
        let count = names.len();
        for (i, (first, path)) in names.into_iter().enumerate() {
            load_segment(&mut files, first, path, i + 1 == count)?;
        }
        files.durable_seq = files.last_seq;
        Ok(LogFiles {
            dir: dir.to_path_buf(),
            segment_bytes: segment_bytes.max(SEGMENT_HEADER_BYTES + 1),
            files: RwLock::new(files),
        })
    }

    /// Appends one batch, `chunks` (first seq, bytes) in order, as one
    /// frame. Not durable until [`LogFiles::sync`].
    pub(crate) fn append(&self, chunks: &[(u64, Vec<u8>)]) -> Result<()> {
        let Some(first) = chunks.first().map(|c| c.0) else {
            return Ok(());
        };
        let mut files = write(&self.files);
        files.check(&self.dir)?;
        // A branch's log starts after its base, anywhere.
        if !files.index.is_empty() && first != files.last_seq + 1 {
            return Err(Error::internal(format!(
                "a batch starting at seq {first} does not continue the log at {}",
                files.last_seq
            )));
        }
        let encoded = EncodedFrame::new(chunks, files.durable_seq)?;
        let full = files.end + encoded.bytes.len() as u64 > self.segment_bytes
            && files.end > SEGMENT_HEADER_BYTES;
        if files.sealed || full {
            self.roll(&mut files, first)?;
        }
        write_frame(&mut files, encoded)?;
        files.dirty_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Copies this log into the folder `dest`: a segment none of whose
    /// chunks `edit` replaces is hard-linked as it is; any other is
    /// rewritten frame by frame with the replaced chunks (and a new
    /// footer, if it was sealed), so that what they replace is in no file
    /// of the copy. Everything is synced.
    pub(crate) fn copy_to(&self, dest: &Path, edit: &dyn Fn(u64) -> Option<Vec<u8>>) -> Result<()> {
        create_dir_synced(dest)?;
        let (segments, index, sealed) = {
            let files = read(&self.files);
            let segments: Vec<(PathBuf, Arc<File>)> = files
                .segments
                .iter()
                .map(|s| (s.path.clone(), Arc::clone(&s.file)))
                .collect();
            let index: Vec<(u64, Loc)> = files.index.iter().map(|(f, l)| (*f, *l)).collect();
            (segments, index, files.sealed)
        };
        let n = segments.len();
        for (i, seg) in segments.iter().enumerate() {
            let Some(name) = seg.0.file_name() else {
                continue;
            };
            let to = dest.join(name);
            let chunks: Vec<&(u64, Loc)> = index
                .iter()
                .filter(|(_, l)| l.segment as usize == i)
                .collect();
            let edited: BTreeMap<u64, Vec<u8>> = chunks
                .iter()
                .filter_map(|(first, _)| edit(*first).map(|b| (*first, b)))
                .collect();
            if edited.is_empty() {
                // A file system without hard links gets a copy.
                if std::fs::hard_link(&seg.0, &to).is_err() {
                    std::fs::copy(&seg.0, &to)
                        .and_then(|_| File::open(&to)?.sync_all())
                        .map_err(|e| Error::io(&to, e))?;
                }
                continue;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&to)
                .map_err(|e| Error::io(&to, e))?;
            file.write_all_at(&segment_header(), 0)
                .map_err(|e| Error::io(&to, e))?;
            let mut files = Files::empty();
            push_segment(&mut files, to.clone(), file, SEGMENT_HEADER_BYTES, false);
            let mut k = 0;
            while let Some((_, loc)) = chunks.get(k) {
                let mut batch = Vec::new();
                while let Some((first, l)) = chunks.get(k).filter(|(_, l)| l.frame == loc.frame) {
                    let bytes = match edited.get(first) {
                        Some(b) => b.clone(),
                        None => read_chunk(*first, l, seg)?.1,
                    };
                    batch.push((*first, bytes));
                    k += 1;
                }
                // Every frame copied was durable before the next.
                let encoded = EncodedFrame::new(&batch, files.last_seq)?;
                write_frame(&mut files, encoded)?;
            }
            if i + 1 < n || sealed {
                seal(&mut files)?;
            }
            if let Some(s) = files.segments.first() {
                s.file.sync_all().map_err(|e| Error::io(&to, e))?;
            }
        }
        File::open(dest)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dest, e))
    }

    /// Seals the last segment (if any and not yet sealed) and begins a
    /// new one whose first seq is `first`: the new file's header and name
    /// are durable before any frame goes in.
    fn roll(&self, files: &mut Files, first: u64) -> Result<()> {
        if !files.sealed {
            seal(files)?;
        }
        let path = self.dir.join(segment_name(first));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.write_all_at(&segment_header(), 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(&path, e))?;
        sync_dir(&path)?;
        files.segments.push(Segment {
            path,
            file: Arc::new(file),
        });
        files.end = SEGMENT_HEADER_BYTES;
        files.sealed = false;
        Ok(())
    }

    /// Makes every frame written so far durable.
    pub(crate) fn sync(&self) -> Result<()> {
        let mut files = write(&self.files);
        files.check(&self.dir)?;
        if files.dirty_since.is_none() {
            return Ok(());
        }
        let synced = match files.segments.last() {
            Some(seg) => seg.file.sync_data().map_err(|e| (seg.path.clone(), e)),
            None => Ok(()),
        };
        if let Err((path, e)) = synced {
            files.failed = Some(e.to_string());
            return Err(Error::io(path, e));
        }
        files.durable_seq = files.last_seq;
        files.dirty_since = None;
        Ok(())
    }

    /// How long the oldest write not yet durable has waited, if any.
    pub(crate) fn unsynced_for(&self) -> Option<std::time::Duration> {
        read(&self.files).dirty_since.map(|t| t.elapsed())
    }

    /// The first seq of the chunk holding `seq` (the greatest at or below
    /// it), without reading it.
    pub(crate) fn first_at(&self, seq: u64) -> Option<u64> {
        read(&self.files)
            .index
            .range(..=seq)
            .next_back()
            .map(|(f, _)| *f)
    }

    /// The chunk with the greatest first seq at or below `seq`.
    pub(crate) fn chunk_at(&self, seq: u64) -> Result<Option<Chunk>> {
        let found = {
            let files = read(&self.files);
            files
                .index
                .range(..=seq)
                .next_back()
                .map(|(first, loc)| (*first, *loc, segment_of(&files, loc)))
        };
        match found {
            None => Ok(None),
            Some((first, loc, seg)) => read_chunk(first, &loc, &seg?).map(Some),
        }
    }

    /// The last chunk.
    pub(crate) fn last_chunk(&self) -> Result<Option<Chunk>> {
        match read(&self.files).index.keys().next_back() {
            None => Ok(None),
            Some(&first) => self.chunk_at(first),
        }
    }

    /// Chunks whose first seq is at or above `from`, in order, read one at
    /// a time.
    pub(crate) fn scan(&self, from: u64) -> impl Iterator<Item = Result<Chunk>> + '_ {
        let mut next = from;
        std::iter::from_fn(move || {
            let found = {
                let files = read(&self.files);
                let (first, loc) = files.index.range(next..).next()?;
                (*first, *loc, segment_of(&files, loc))
            };
            let (first, loc, seg) = found;
            next = first + 1;
            Some(seg.and_then(|seg| read_chunk(first, &loc, &seg)))
        })
    }
}

/// A batch frame's bytes, with where its chunks are in them.
struct EncodedFrame {
    bytes: Vec<u8>,
    first: u64,
    last: u64,
    /// (first seq, offset in the body, length, CRC-32) per chunk.
    chunks: Vec<(u64, usize, u32, u32)>,
}

impl EncodedFrame {
    fn new(chunks: &[(u64, Vec<u8>)], durable: u64) -> Result<EncodedFrame> {
        let (Some(first), Some(last_chunk)) = (chunks.first(), chunks.last()) else {
            return Err(Error::internal("an empty frame"));
        };
        let mut body = Vec::with_capacity(
            chunks
                .iter()
                .map(|(_, c)| c.len() + CHUNK_HEADER_BYTES)
                .sum(),
        );
        let mut locs = Vec::with_capacity(chunks.len());
        for (seq, bytes) in chunks {
            let len =
                u32::try_from(bytes.len()).map_err(|_| Error::internal("a chunk over 4 GiB"))?;
            let crc = crc32fast::hash(bytes);
            body.extend_from_slice(&seq.to_le_bytes());
            body.extend_from_slice(&len.to_le_bytes());
            body.extend_from_slice(&crc.to_le_bytes());
            locs.push((*seq, body.len(), len, crc));
            body.extend_from_slice(bytes);
        }
        let last = last_seq_of(last_chunk)?;
        let count = chunks.len() as u32;
        Ok(EncodedFrame {
            bytes: frame(FRAME_MAGIC, count, first.0, last, durable, &body),
            first: first.0,
            last,
            chunks: locs,
        })
    }
}

/// Writes a frame at the end of the last segment and indexes its chunks.
fn write_frame(files: &mut Files, f: EncodedFrame) -> Result<()> {
    let segment = files.segments.len().saturating_sub(1) as u32;
    let Some(seg) = files.segments.last() else {
        return Err(Error::internal("no segment to write to"));
    };
    seg.file
        .write_all_at(&f.bytes, files.end)
        .map_err(|e| Error::io(&seg.path, e))?;
    let base = files.end + FRAME_HEADER_BYTES as u64;
    for (seq, at, len, crc) in f.chunks {
        let loc = Loc {
            segment,
            frame: f.first,
            offset: base + at as u64,
            len,
            crc,
        };
        files.index.insert(seq, loc);
    }
    files.end += f.bytes.len() as u64;
    files.last_seq = f.last;
    Ok(())
}

/// The last seq of a chunk, from its header (`codec`'s layout: the entry
/// count follows the version byte).
fn last_seq_of((first, bytes): &(u64, Vec<u8>)) -> Result<u64> {
    let n = crate::codec::unpack_chunk(*first, bytes)?.len() as u64;
    Ok(first + n.max(1) - 1)
}

fn segment_of(files: &Files, loc: &Loc) -> Result<(PathBuf, Arc<File>)> {
    files
        .segments
        .get(loc.segment as usize)
        .map(|s| (s.path.clone(), Arc::clone(&s.file)))
        .ok_or_else(|| Error::internal("a chunk's segment is not open"))
}

fn read_chunk(first: u64, loc: &Loc, (path, file): &(PathBuf, Arc<File>)) -> Result<Chunk> {
    let mut bytes = vec![0u8; loc.len as usize];
    file.read_exact_at(&mut bytes, loc.offset).map_err(|e| {
        Error::corruption(
            first,
            format!(
                "log segment {} at byte {}: cannot read the chunk ({e})",
                path.display(),
                loc.offset
            ),
        )
    })?;
    if crc32fast::hash(&bytes) != loc.crc {
        return Err(Error::corruption(
            first,
            format!(
                "log segment {} at byte {}: the chunk of seq {first} fails its checksum",
                path.display(),
                loc.offset
            ),
        ));
    }
    Ok((first, bytes))
}

/// Writes the footer and trailer of the last segment and syncs it.
fn seal(files: &mut Files) -> Result<()> {
    let segment = files.segments.len().saturating_sub(1) as u32;
    let Some(seg) = files.segments.last() else {
        return Ok(());
    };
    let mut body = Vec::new();
    let mut count = 0u32;
    let mut first_seq = None;
    for (first, loc) in files.index.iter().filter(|(_, l)| l.segment == segment) {
        first_seq.get_or_insert(*first);
        body.extend_from_slice(&first.to_le_bytes());
        body.extend_from_slice(&loc.frame.to_le_bytes());
        body.extend_from_slice(&loc.offset.to_le_bytes());
        body.extend_from_slice(&loc.len.to_le_bytes());
        body.extend_from_slice(&loc.crc.to_le_bytes());
        count += 1;
    }
    let footer = frame(
        FOOTER_MAGIC,
        count,
        first_seq.unwrap_or(0),
        files.last_seq,
        files.durable_seq,
        &body,
    );
    let at = files.end;
    let mut trailer = Vec::with_capacity(TRAILER_BYTES as usize);
    trailer.extend_from_slice(&at.to_le_bytes());
    trailer.extend_from_slice(&TRAILER_MAGIC.to_le_bytes());
    let crc = crc32fast::hash(&trailer);
    trailer.extend_from_slice(&crc.to_le_bytes());
    let mut bytes = footer;
    bytes.extend_from_slice(&trailer);
    seg.file
        .write_all_at(&bytes, at)
        .and_then(|()| seg.file.sync_data())
        .map_err(|e| Error::io(&seg.path, e))?;
    files.end = at + bytes.len() as u64;
    files.sealed = true;
    files.durable_seq = files.last_seq;
    files.dirty_since = None;
    Ok(())
}

fn damaged(path: &Path, offset: u64, seq: u64, what: &str) -> Error {
    Error::corruption(
        seq,
        format!("log segment {} at byte {offset}: {what}", path.display()),
    )
}

/// Reads a sealed segment's footer: `None` if the file has no valid
/// trailer and footer (it is not sealed, or its sealing was torn).
fn read_footer(file: &File, len: u64) -> Result<Option<(u64, Frame)>> {
    if len < SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES as u64 + TRAILER_BYTES {
        return Ok(None);
    }
    let mut t = [0u8; TRAILER_BYTES as usize];
    file.read_exact_at(&mut t, len - TRAILER_BYTES)
        .map_err(|e| Error::io("log segment", e))?;
    if u32_at(&t, 8) != TRAILER_MAGIC || crc32fast::hash(&t[..12]) != u32_at(&t, 12) {
        return Ok(None);
    }
    let at = u64_at(&t, 0);
    match read_frame(file, at, len - TRAILER_BYTES)? {
        Some(f) if f.magic == FOOTER_MAGIC && at + f.bytes() == len - TRAILER_BYTES => {
            Ok(Some((at, f)))
        }
        _ => Ok(None),
    }
}

/// Adds one segment file to `files`: from its footer when sealed, else by
/// scanning its frames (recovering a torn tail when it is the last).
fn load_segment(files: &mut Files, first: u64, path: PathBuf, last: bool) -> Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
    // The seq the log continues at (a branch's log starts anywhere).
    let next_seq = |files: &Files| match files.index.is_empty() {
        true => first,
        false => files.last_seq + 1,
    };
    let expected = next_seq(files);
    let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
    let header_ok = len >= SEGMENT_HEADER_BYTES
        && file.read_exact_at(&mut header, 0).is_ok()
        && header == segment_header();
    if !header_ok {
        // A segment is created, its header written and synced, before any
        // frame goes in: a last segment no longer than a header is one
        // whose creation was cut short.
        if last && len <= SEGMENT_HEADER_BYTES {
            file.set_len(0)
                .and_then(|()| file.write_all_at(&segment_header(), 0))
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(&path, e))?;
            push_segment(files, path, file, SEGMENT_HEADER_BYTES, false);
            return Ok(());
        }
        return Err(damaged(
            &path,
            0,
            expected,
            "not a segment file of this format",
        ));
    }
    if first != expected && len > SEGMENT_HEADER_BYTES {
        return Err(damaged(
            &path,
            0,
            expected,
            &format!("the segment starts at seq {first}, but the log continues at {expected}"),
        ));
    }
    let segment = files.segments.len() as u32;
    if let Some((at, footer)) = read_footer(&file, len)? {
        for e in footer.body.chunks(FOOTER_ENTRY_BYTES) {
            let loc = Loc {
                segment,
                frame: u64_at(e, 8),
                offset: u64_at(e, 16),
                len: u32_at(e, 24),
                crc: u32_at(e, 28),
            };
            if loc.offset + loc.len as u64 > at {
                return Err(damaged(
                    &path,
                    at,
                    expected,
                    "the footer points past the frames",
                ));
            }
            files.index.insert(u64_at(e, 0), loc);
        }
        if footer.count > 0 && footer.first != expected {
            return Err(damaged(
                &path,
                at,
                expected,
                "the footer does not continue the log",
            ));
        }
        files.last_seq = files.last_seq.max(footer.last);
        push_segment(files, path, file, len, true);
        return Ok(());
    }
    // Frames are walked by their headers; a frame is read and checked
    // whole only if no frame says it was durable when written (the tail
    // since the last sync), or if the segment is not the last.
    let mut heads = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut cut = None;
    while offset < len {
        match read_head(&file, offset, len, &path)? {
            Some(h) => {
                let next = offset + FRAME_HEADER_BYTES as u64 + h.body_len;
                heads.push((offset, h));
                offset = next;
            }
            None => {
                cut = Some(offset);
                break;
            }
        }
    }
    let vouched = heads.iter().map(|(_, h)| h.durable).max().unwrap_or(0);
    if let Some(i) = heads
        .iter()
        .position(|(at, h)| (!last || h.last > vouched) && !frame_checks(&file, *at, len))
    {
        cut = heads.get(i).map(|(at, _)| *at);
        heads.truncate(i);
    }
    for (at, h) in heads {
        let next = next_seq(files);
        let first_chunk = h.chunks.first().map(|c| c.0);
        if h.first != next || h.last < h.first || first_chunk != Some(h.first) {
            return Err(damaged(
                &path,
                at,
                next,
                &format!(
                    "the frame holds seqs {}-{}, but the log continues at {next}",
                    h.first, h.last
                ),
            ));
        }
        let base = at + FRAME_HEADER_BYTES as u64;
        for (seq, off, clen, crc) in h.chunks {
            let loc = Loc {
                segment,
                frame: h.first,
                offset: base + off as u64,
                len: clen,
                crc,
            };
            files.index.insert(seq, loc);
        }
        files.last_seq = h.last;
    }
    let end = match cut {
        Some(at) if !last => {
            return Err(damaged(
                &path,
                at,
                next_seq(files),
                "a frame fails its checksum",
            ));
        }
        Some(at) => {
            cut_torn_tail(&file, &path, at, len, next_seq(files))?;
            at
        }
        None => len,
    };
    push_segment(files, path, file, end, false);
    Ok(())
}

/// Whether the frame at `offset` reads back whole and checks.
fn frame_checks(file: &File, offset: u64, len: u64) -> bool {
    matches!(read_frame(file, offset, len), Ok(Some(f)) if f.magic == FRAME_MAGIC)
}

/// Creates `dir` and any missing parent, each fsynced into its parent,
/// so that the folder survives a power loss once anything in it does.
fn create_dir_synced(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d);
        at = d.parent();
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for d in missing.into_iter().rev() {
        sync_dir(d)?;
    }
    Ok(())
}

fn push_segment(files: &mut Files, path: PathBuf, file: File, end: u64, sealed: bool) {
    files.segments.push(Segment {
        path,
        file: Arc::new(file),
    });
    files.end = end;
    files.sealed = sealed;
}

/// The frame at `offset` of the last segment does not check. It is a
/// torn batch, cut away, unless a valid frame after it was written once
/// its seq `next` was durable (then the damage is in acknowledged data).
fn cut_torn_tail(file: &File, path: &Path, offset: u64, len: u64, next: u64) -> Result<()> {
    let mut tail = vec![0u8; (len - offset) as usize];
    file.read_exact_at(&mut tail, offset)
        .map_err(|e| Error::io(path, e))?;
    let magic = FRAME_MAGIC.to_le_bytes();
    for at in 1..tail.len().saturating_sub(FRAME_HEADER_BYTES) {
        if tail.get(at..at + 4) != Some(&magic[..]) {
            continue;
        }
        if let Some(later) = tail.get(at..).and_then(parse_frame) {
            if later.durable >= next {
                return Err(damaged(
                    path,
                    offset,
                    next,
                    &format!(
                        "a frame fails its checksum, but the frame at byte {} was written after it was durable",
                        offset + at as u64
                    ),
                ));
            }
        }
    }
    file.set_len(offset)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::chunk_bytes;

    fn chunk(first: u64, n: u64) -> (u64, Vec<u8>) {
        let entries: Vec<Vec<u8>> = (0..n).map(|i| vec![(first + i) as u8; 10]).collect();
        (first, chunk_bytes(&entries))
    }

    fn seqs(log: &LogFiles) -> Vec<u64> {
        log.scan(0).map(|c| c.unwrap().0).collect()
    }

    #[test]
    fn batches_round_trip_across_segments_and_reopen() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let log = LogFiles::open(dir.path(), 300)?;
        let mut seq = 1;
        for n in [1, 3, 2, 5, 1, 4] {
            log.append(&[chunk(seq, n), chunk(seq + n, 1)])?;
            seq += n + 1;
            log.sync()?;
        }
        let before = seqs(&log);
        assert!(std::fs::read_dir(dir.path()).unwrap().count() > 2);
        drop(log);
        let log = LogFiles::open(dir.path(), 300)?;
        assert_eq!(seqs(&log), before);
        assert_eq!(log.chunk_at(4)?.map(|c| c.0), Some(3));
        log.append(&[chunk(seq, 2)])?;
        assert_eq!(log.last_chunk()?.map(|c| c.0), Some(seq));
        Ok(())
    }

    #[test]
    fn a_copy_links_untouched_segments_and_rewrites_edited_ones() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let log = LogFiles::open(&dir.path().join("from"), 300)?;
        let mut seq = 1;
        for n in [2, 3, 1, 4, 2, 3] {
            log.append(&[chunk(seq, n), chunk(seq + n, 1)])?;
            seq += n + 1;
        }
        log.sync()?;
        let edited = chunk(4, 3).1.iter().map(|b| b ^ 0x5a).collect::<Vec<u8>>();
        let replacement = edited.clone();
        let to = dir.path().join("to");
        log.copy_to(&to, &|first| (first == 4).then(|| replacement.clone()))?;
        let copy = LogFiles::open(&to, 300)?;
        let (a, b): (Vec<Chunk>, Vec<Chunk>) = (
            log.scan(0).collect::<Result<_>>()?,
            copy.scan(0).collect::<Result<_>>()?,
        );
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.0, y.0);
            if x.0 == 4 {
                assert_eq!(y.1, edited);
            } else {
                assert_eq!(x.1, y.1);
            }
        }
        // Only the segment holding seq 4 was written anew.
        use std::os::unix::fs::MetadataExt;
        let mut linked = 0;
        for e in std::fs::read_dir(&to).map_err(|e| Error::io(&to, e))? {
            let e = e.map_err(|e| Error::io(&to, e))?;
            let nlink = e.metadata().map_err(|e| Error::io(&to, e))?.nlink();
            if nlink == 2 {
                linked += 1;
            } else {
                assert_eq!(e.file_name().to_string_lossy(), segment_name(1));
            }
        }
        assert!(linked >= 2, "{linked}");
        // The copy goes on like the original.
        copy.append(&[chunk(seq, 1)])?;
        Ok(())
    }

    #[test]
    fn a_torn_last_frame_is_cut_and_damage_before_a_durable_one_is_reported() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let log = LogFiles::open(dir.path(), 1 << 20)?;
        log.append(&[chunk(1, 2)])?;
        log.sync()?;
        log.append(&[chunk(3, 2)])?;
        drop(log);
        let path = dir.path().join(segment_name(1));
        let len = std::fs::metadata(&path).unwrap().len();
        // Torn: the last frame loses its last bytes.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let log = LogFiles::open(dir.path(), 1 << 20)?;
        assert_eq!(seqs(&log), vec![1]);
        // Now written durably after the first frame: damage in the first
        // frame is corruption, not a torn tail.
        log.append(&[chunk(3, 2)])?;
        log.sync()?;
        log.append(&[chunk(5, 1)])?;
        log.sync()?;
        drop(log);
        let b = std::fs::read(&path).unwrap();
        // A flipped byte in the first frame's chunk: it opens (a later
        // frame vouches for it, so opening does not read it) and the read
        // of that chunk reports it, with the file and the byte.
        let mut b2 = b.clone();
        let in_chunk = SEGMENT_HEADER_BYTES as usize + FRAME_HEADER_BYTES + CHUNK_HEADER_BYTES + 9;
        b2[in_chunk] ^= 1;
        std::fs::write(&path, &b2).unwrap();
        let log = LogFiles::open(dir.path(), 1 << 20)?;
        match log.chunk_at(1) {
            Err(Error::Corruption { seq, reason }) => {
                assert_eq!(seq, 1);
                assert!(reason.contains("fails its checksum"), "{reason}");
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        drop(log);
        // A flipped byte in its header: a bad frame followed by one
        // written once it was durable is corruption, never cut away.
        let mut b3 = b.clone();
        b3[SEGMENT_HEADER_BYTES as usize + 20] ^= 1;
        std::fs::write(&path, &b3).unwrap();
        match LogFiles::open(dir.path(), 1 << 20) {
            Err(Error::Corruption { seq, reason }) => {
                assert_eq!(seq, 1);
                assert!(reason.contains("at byte 16"), "{reason}");
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert_eq!(std::fs::read(&path).unwrap(), b3, "nothing was cut");
        Ok(())
    }
}
