//! Immutable index segments: the derived state of a range of the log
//! (events created in it, corrections and retractions made in it, posting
//! lists of the versions it made current), written once to a file of
//! annals' own and read back a block at a time.
//!
//! A segment file holds four sorted tables, each cut into blocks of about
//! 4 KiB (bincode records followed by an 8-byte BLAKE3 checksum) with a
//! block index (first key, offset, length) of its own; a Bloom filter of
//! the ids it created; the sorted list of events it changed; and a footer
//! naming all of those, checked by its own checksum. Opening a segment
//! reads only the footer; the rest is read when first needed and is
//! checked as it is read, so damage is reported, never trusted.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sync::lock;

const MAGIC: &[u8; 8] = b"annalsSG";
const VERSION: u8 = 1;
/// Blocks of the ids table, read a record at a time, are cut once they
/// pass this many bytes, so that a point read decodes little; blocks of
/// the tables read in runs (changes, postings) at [`RUN_BLOCK_BYTES`].
const POINT_BLOCK_BYTES: usize = 1024;
const RUN_BLOCK_BYTES: usize = 4096;
/// A CRC-32 per block: damage in a derived file is an accident to detect,
/// not an attack (the log's chain hash is BLAKE3), and it is cheap enough
/// to check on every point read.
const SUM_BYTES: usize = 4;
/// Footer length (u32), footer checksum, magic, version.
const TRAILER_BYTES: usize = 4 + SUM_BYTES + 8 + 1;
/// Bloom filter bits per id: about 1% false positives with 7 probes.
const BLOOM_BITS_PER_KEY: u64 = 10;
const BLOOM_PROBES: u64 = 7;
/// Most postings in one record of the postings table.
const POSTINGS_PER_RECORD: usize = 128;

/// What a segment keeps of an event it created: its first version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Created {
    pub seq: u64,
    pub recorded_at: i64,
    pub start: i64,
    pub end: i64,
}

/// A later version of an event: a correction (with its occurrence
/// interval) or a retraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Changed {
    pub retracted: bool,
    pub start: i64,
    pub end: i64,
}

/// Where a table, filter or list lies in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Region {
    offset: u64,
    len: u64,
}

/// The ranges a segment covers and where its parts are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Footer {
    /// Seqs `seq_lo..=seq_hi` of the log.
    pub seq_lo: u64,
    pub seq_hi: u64,
    /// Event numbers `ev_lo..ev_hi`, created in those seqs.
    pub ev_lo: u32,
    pub ev_hi: u32,
    /// The pages of first versions, then the block indexes of the ids,
    /// changes and postings tables.
    tables: [Region; 4],
    bloom: Region,
    changed: Region,
    /// Postings in the file (live or not).
    pub postings: u64,
}

impl Footer {
    /// Entries of the log the segment covers.
    pub(crate) fn entries(&self) -> u64 {
        self.seq_hi + 1 - self.seq_lo
    }
}

fn checksum(bytes: &[u8]) -> [u8; SUM_BYTES] {
    crc32fast::hash(bytes).to_le_bytes()
}

/// First versions are fixed-size records in pages of [`PAGE_RECORDS`],
/// each page followed by its checksum: event numbers are dense, so a
/// record's place is computed, with no block index, and a point read
/// decodes one record.
const CREATED_BYTES: usize = 32;
const PAGE_RECORDS: usize = 64;
const PAGE_BYTES: usize = PAGE_RECORDS * CREATED_BYTES + SUM_BYTES;

impl Created {
    fn to_bytes(self) -> [u8; CREATED_BYTES] {
        let mut b = [0u8; CREATED_BYTES];
        b[..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.recorded_at.to_le_bytes());
        b[16..24].copy_from_slice(&self.start.to_le_bytes());
        b[24..].copy_from_slice(&self.end.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> Option<Created> {
        let word = |i: usize| -> Option<[u8; 8]> { b.get(i..i + 8)?.try_into().ok() };
        Some(Created {
            seq: u64::from_le_bytes(word(0)?),
            recorded_at: i64::from_le_bytes(word(8)?),
            start: i64::from_le_bytes(word(16)?),
            end: i64::from_le_bytes(word(24)?),
        })
    }
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn damaged(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::derived(path, format!("index segment is damaged ({why})"))
}

/// Reads `len` bytes at `offset` and checks the checksum that follows them.
fn read_checked(file: &File, path: &Path, r: Region) -> Result<Vec<u8>> {
    let len = usize::try_from(r.len).map_err(|_| damaged(path, "region too large"))?;
    if len < SUM_BYTES {
        return Err(damaged(path, "region shorter than its checksum"));
    }
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, r.offset)
        .map_err(|e| damaged(path, format!("reading {len} bytes at {}: {e}", r.offset)))?;
    let (body, sum) = buf.split_at(len - SUM_BYTES);
    if checksum(body) != sum {
        return Err(damaged(path, format!("checksum of bytes at {}", r.offset)));
    }
    buf.truncate(len - SUM_BYTES);
    Ok(buf)
}

fn decode<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    match bincode::serde::decode_from_slice(bytes, config()) {
        Ok((v, used)) if used == bytes.len() => Ok(v),
        Ok(_) => Err(damaged(path, "trailing bytes")),
        Err(e) => Err(damaged(path, e)),
    }
}

fn encode_into<T: Serialize>(v: &T, out: &mut Vec<u8>) -> Result<()> {
    bincode::serde::encode_into_std_write(v, out, config())
        .map(|_| ())
        .map_err(|e| Error::internal(format!("encoding an index segment: {e}")))
}

/// A Bloom filter over event ids.
struct Bloom {
    bits: Vec<u64>,
}

fn bloom_hashes(id: &[u8; 16]) -> (u64, u64) {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&id[..8]);
    hi.copy_from_slice(&id[8..]);
    // Version 7 ids share their leading bits (the time): mix both halves.
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let h1 = mix(u64::from_le_bytes(lo) ^ mix(u64::from_le_bytes(hi)));
    (h1, mix(h1) | 1)
}

impl Bloom {
    fn new(keys: u64) -> Bloom {
        let words = (keys * BLOOM_BITS_PER_KEY).div_ceil(64).max(1);
        Bloom {
            bits: vec![0; words as usize],
        }
    }

    fn probes(&self, id: &[u8; 16]) -> impl Iterator<Item = (usize, u64)> {
        let m = self.bits.len() as u64 * 64;
        let (h1, h2) = bloom_hashes(id);
        (0..BLOOM_PROBES).map(move |i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % m;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    fn insert(&mut self, id: &[u8; 16]) {
        let probes: Vec<(usize, u64)> = self.probes(id).collect();
        for (w, mask) in probes {
            if let Some(word) = self.bits.get_mut(w) {
                *word |= mask;
            }
        }
    }

    fn may_contain(&self, id: &[u8; 16]) -> bool {
        self.probes(id)
            .all(|(w, mask)| self.bits.get(w).is_some_and(|word| word & mask != 0))
    }
}

/// Writes a segment file: tables in order, then the filter, the changed
/// list and the footer. Atomic: a temporary file, fsync, rename.
struct Writer {
    out: BufWriter<File>,
    offset: u64,
    path: PathBuf,
}

impl Writer {
    fn put(&mut self, bytes: &[u8]) -> Result<Region> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io(&self.path, e))?;
        let r = Region {
            offset: self.offset,
            len: bytes.len() as u64,
        };
        self.offset += r.len;
        Ok(r)
    }

    /// Writes bytes followed by their checksum.
    fn put_checked(&mut self, mut bytes: Vec<u8>) -> Result<Region> {
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
        self.put(&bytes)
    }

    /// Writes first versions, in event-number order, as checksummed pages.
    fn created(&mut self, records: impl Iterator<Item = Result<(u32, Created)>>) -> Result<Region> {
        let start = self.offset;
        let mut page: Vec<u8> = Vec::with_capacity(PAGE_BYTES);
        for r in records {
            let (_, c) = r?;
            page.extend_from_slice(&c.to_bytes());
            if page.len() == PAGE_RECORDS * CREATED_BYTES {
                self.put_checked(std::mem::take(&mut page))?;
            }
        }
        if !page.is_empty() {
            self.put_checked(page)?;
        }
        Ok(Region {
            offset: start,
            len: self.offset - start,
        })
    }

    /// Writes a sorted table in blocks and its block index; returns the
    /// index's region.
    fn table<K: Serialize + Clone, V: Serialize>(
        &mut self,
        records: impl Iterator<Item = Result<(K, V)>>,
        block_bytes: usize,
        mut each: impl FnMut(&K, &V),
    ) -> Result<Region> {
        let mut index: Vec<(K, u64, u64)> = Vec::new();
        let mut block: Vec<u8> = Vec::with_capacity(block_bytes + 256);
        let mut first: Option<K> = None;
        for r in records {
            let (k, v) = r?;
            each(&k, &v);
            if first.is_none() {
                first = Some(k.clone());
            }
            encode_into(&(&k, &v), &mut block)?;
            if block.len() >= block_bytes {
                let region = self.put_checked(std::mem::take(&mut block))?;
                if let Some(k) = first.take() {
                    index.push((k, region.offset, region.len));
                }
            }
        }
        if !block.is_empty() {
            let region = self.put_checked(block)?;
            if let Some(k) = first.take() {
                index.push((k, region.offset, region.len));
            }
        }
        let mut bytes = Vec::new();
        encode_into(&index, &mut bytes)?;
        self.put_checked(bytes)
    }
}

/// The parts of a segment to write, each sorted by key.
pub(crate) struct Parts<C, I, X, P> {
    pub seq_lo: u64,
    pub seq_hi: u64,
    pub ev_lo: u32,
    pub ev_hi: u32,
    /// Event number → first version, for `ev_lo..ev_hi` in order.
    pub created: C,
    /// Id → event number, sorted by id.
    pub ids: I,
    /// How many ids `ids` yields (sizes the filter).
    pub id_count: u64,
    /// (event number, seq) → later version, sorted.
    pub changes: X,
    /// (list, event number), sorted: the live postings.
    pub postings: P,
    /// Event numbers with changes, sorted.
    pub changed: Vec<u32>,
}

/// Writes a segment to `path` (atomically, durably) and opens it.
pub(crate) fn write<C, I, X, P>(path: &Path, parts: Parts<C, I, X, P>) -> Result<Segment>
where
    C: Iterator<Item = Result<(u32, Created)>>,
    I: Iterator<Item = Result<([u8; 16], u32)>>,
    X: Iterator<Item = Result<((u32, u64), Changed)>>,
    P: Iterator<Item = Result<(u64, u32)>>,
{
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = Writer {
        out: BufWriter::with_capacity(1 << 16, file),
        offset: 0,
        path: tmp.clone(),
    };
    let created = w.created(parts.created)?;
    let mut bloom = Bloom::new(parts.id_count);
    let ids = w.table(parts.ids, POINT_BLOCK_BYTES, |id, _| bloom.insert(id))?;
    let changes = w.table(parts.changes, RUN_BLOCK_BYTES, |_, _| {})?;
    let mut postings_total = 0u64;
    let postings = w.table(
        chunk_postings(parts.postings),
        RUN_BLOCK_BYTES,
        |_, gaps: &Vec<u32>| {
            postings_total += 1 + gaps.len() as u64;
        },
    )?;
    let mut bytes = Vec::with_capacity(bloom.bits.len() * 8);
    for word in &bloom.bits {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    let bloom_region = w.put_checked(bytes)?;
    let mut bytes = Vec::new();
    encode_into(&parts.changed, &mut bytes)?;
    let changed = w.put_checked(bytes)?;
    let footer = Footer {
        seq_lo: parts.seq_lo,
        seq_hi: parts.seq_hi,
        ev_lo: parts.ev_lo,
        ev_hi: parts.ev_hi,
        tables: [created, ids, changes, postings],
        bloom: bloom_region,
        changed,
        postings: postings_total,
    };
    let mut bytes = Vec::new();
    encode_into(&footer, &mut bytes)?;
    let len = u32::try_from(bytes.len())
        .map_err(|_| Error::internal("index segment footer too large"))?;
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&sum);
    bytes.extend_from_slice(MAGIC);
    bytes.push(VERSION);
    w.put(&bytes)?;
    let file = w
        .out
        .into_inner()
        .map_err(|e| Error::io(&tmp, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    crate::sync::sync_dir(path)?;
    Segment::open(path)
}

/// Groups sorted (list, event number) postings into records of up to
/// [`POSTINGS_PER_RECORD`]: key (list, first number), value the gaps to
/// the following numbers (small numbers, short varints).
fn chunk_postings(
    postings: impl Iterator<Item = Result<(u64, u32)>>,
) -> impl Iterator<Item = Result<((u64, u32), Vec<u32>)>> {
    let mut postings = postings.peekable();
    std::iter::from_fn(move || {
        let (list, first) = match postings.next()? {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let mut gaps = Vec::new();
        let mut last = first;
        while gaps.len() + 1 < POSTINGS_PER_RECORD {
            match postings.peek() {
                Some(Ok((l, n))) if *l == list && *n > last => {
                    gaps.push(*n - last);
                    last = *n;
                    postings.next();
                }
                _ => break,
            }
        }
        Some(Ok(((list, first), gaps)))
    })
}

type BlockIndex<K> = Arc<Vec<(K, u64, u64)>>;
type Block<K, V> = Arc<Vec<(K, V)>>;

/// Where a scan is: block `i` of the index, record `pos` of it.
struct Cursor<K, V> {
    ix: BlockIndex<K>,
    i: usize,
    block: Option<Block<K, V>>,
    pos: usize,
}

/// One table of an open segment: its block index (read on first use) and
/// the last block read (queries read neighbouring records).
struct Table<K, V> {
    region: Region,
    index: Mutex<Option<BlockIndex<K>>>,
    last: Mutex<Option<(usize, Block<K, V>)>>,
}

impl<K: DeserializeOwned + Ord + Clone, V: DeserializeOwned + Clone> Table<K, V> {
    fn new(region: Region) -> Table<K, V> {
        Table {
            region,
            index: Mutex::new(None),
            last: Mutex::new(None),
        }
    }

    fn index(&self, file: &File, path: &Path) -> Result<BlockIndex<K>> {
        let mut slot = lock(&self.index);
        if let Some(ix) = &*slot {
            return Ok(Arc::clone(ix));
        }
        let ix: BlockIndex<K> = Arc::new(decode(path, &read_checked(file, path, self.region)?)?);
        *slot = Some(Arc::clone(&ix));
        Ok(ix)
    }

    fn block(&self, file: &File, path: &Path, ix: &BlockIndex<K>, i: usize) -> Result<Block<K, V>> {
        if let Some((at, b)) = &*lock(&self.last) {
            if *at == i {
                return Ok(Arc::clone(b));
            }
        }
        let &(_, offset, len) = ix.get(i).ok_or_else(|| damaged(path, "block index"))?;
        let bytes = read_checked(file, path, Region { offset, len })?;
        let mut records = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (r, used): ((K, V), usize) =
                bincode::serde::decode_from_slice(rest, config()).map_err(|e| damaged(path, e))?;
            records.push(r);
            rest = rest.get(used..).unwrap_or_default();
        }
        let b = Arc::new(records);
        *lock(&self.last) = Some((i, Arc::clone(&b)));
        Ok(b)
    }

    /// The block that may hold `key`.
    fn block_of(&self, ix: &BlockIndex<K>, key: &K) -> Option<usize> {
        ix.partition_point(|(first, _, _)| first <= key)
            .checked_sub(1)
    }

    fn get(&self, file: &File, path: &Path, key: &K) -> Result<Option<V>> {
        let ix = self.index(file, path)?;
        let Some(i) = self.block_of(&ix, key) else {
            return Ok(None);
        };
        let b = self.block(file, path, &ix, i)?;
        Ok(b.binary_search_by(|(k, _)| k.cmp(key))
            .ok()
            .and_then(|at| b.get(at))
            .map(|(_, v)| v.clone()))
    }

    /// Records from the first with a key at or above `from`, in order.
    fn scan<'a>(
        &'a self,
        file: &'a File,
        path: &'a Path,
        from: Option<K>,
    ) -> impl Iterator<Item = Result<(K, V)>> + 'a {
        let mut state: Option<Cursor<K, V>> = None;
        let mut failed = false;
        std::iter::from_fn(move || loop {
            if failed {
                return None;
            }
            if state.is_none() {
                let ix = match self.index(file, path) {
                    Ok(ix) => ix,
                    Err(e) => {
                        failed = true;
                        return Some(Err(e));
                    }
                };
                let start = from
                    .as_ref()
                    .and_then(|k| self.block_of(&ix, k))
                    .unwrap_or(0);
                state = Some(Cursor {
                    ix,
                    i: start,
                    block: None,
                    pos: 0,
                });
            }
            let Cursor { ix, i, block, pos } = state.as_mut()?;
            if block.is_none() {
                if *i >= ix.len() {
                    return None;
                }
                match self.block(file, path, ix, *i) {
                    Ok(b) => *block = Some(b),
                    Err(e) => {
                        failed = true;
                        return Some(Err(e));
                    }
                }
                *pos = 0;
            }
            let b = block.as_ref()?;
            match b.get(*pos) {
                Some((k, v)) => {
                    *pos += 1;
                    if from.as_ref().is_some_and(|f| k < f) {
                        continue;
                    }
                    return Some(Ok((k.clone(), v.clone())));
                }
                None => {
                    *block = None;
                    *i += 1;
                }
            }
        })
    }
}

/// An open segment file.
pub(crate) struct Segment {
    path: PathBuf,
    file: File,
    pub footer: Footer,
    /// The last page of first versions read: (page, records).
    created_page: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
    ids: Table<[u8; 16], u32>,
    changes: Table<(u32, u64), Changed>,
    postings: Table<(u64, u32), Vec<u32>>,
    bloom: Mutex<Option<Arc<Bloom>>>,
    changed: Mutex<Option<Arc<Vec<u32>>>>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.path)
            .field("footer", &self.footer)
            .finish()
    }
}

impl Segment {
    /// Opens a segment, reading and checking only its footer.
    pub(crate) fn open(path: &Path) -> Result<Segment> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let t = TRAILER_BYTES as u64;
        if size < t {
            return Err(damaged(path, "shorter than its trailer"));
        }
        let mut trailer = [0u8; TRAILER_BYTES];
        file.read_exact_at(&mut trailer, size - t)
            .map_err(|e| Error::io(path, e))?;
        let (len, rest) = trailer.split_at(4);
        let (sum, rest) = rest.split_at(SUM_BYTES);
        let (magic, version) = rest.split_at(8);
        if magic != MAGIC || version != [VERSION] {
            return Err(damaged(path, "not an annals index segment of this version"));
        }
        let mut l = [0u8; 4];
        l.copy_from_slice(len);
        let len = u64::from(u32::from_le_bytes(l));
        if len + t > size {
            return Err(damaged(path, "footer length"));
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, size - t - len)
            .map_err(|e| Error::io(path, e))?;
        if checksum(&bytes) != sum {
            return Err(damaged(path, "footer checksum"));
        }
        let footer: Footer = decode(path, &bytes)?;
        if footer.seq_hi < footer.seq_lo || footer.ev_hi < footer.ev_lo {
            return Err(damaged(path, "footer ranges"));
        }
        Ok(Segment {
            path: path.to_path_buf(),
            file,
            created_page: Mutex::new(None),
            ids: Table::new(footer.tables[1]),
            changes: Table::new(footer.tables[2]),
            postings: Table::new(footer.tables[3]),
            bloom: Mutex::new(None),
            changed: Mutex::new(None),
            footer,
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The records of page `p` of first versions.
    fn created_page(&self, p: u64) -> Result<Arc<Vec<u8>>> {
        if let Some((at, page)) = &*lock(&self.created_page) {
            if *at == p {
                return Ok(Arc::clone(page));
            }
        }
        let count = u64::from(self.footer.ev_hi - self.footer.ev_lo);
        let first = p * PAGE_RECORDS as u64;
        let records = count.saturating_sub(first).min(PAGE_RECORDS as u64);
        if records == 0 {
            return Err(damaged(
                &self.path,
                format!("no page {p} of first versions"),
            ));
        }
        let region = self.footer.tables[0];
        let offset = region.offset + p * PAGE_BYTES as u64;
        let len = records * CREATED_BYTES as u64 + SUM_BYTES as u64;
        if offset + len > region.offset + region.len {
            return Err(damaged(&self.path, "first versions region too short"));
        }
        let page = Arc::new(read_checked(
            &self.file,
            &self.path,
            Region { offset, len },
        )?);
        *lock(&self.created_page) = Some((p, Arc::clone(&page)));
        Ok(page)
    }

    /// The first version of event `n`, created in this segment.
    pub(crate) fn created(&self, n: u32) -> Result<Created> {
        let i = u64::from(n.wrapping_sub(self.footer.ev_lo));
        if n < self.footer.ev_lo || n >= self.footer.ev_hi {
            return Err(damaged(&self.path, format!("event number {n} is not here")));
        }
        let page = self.created_page(i / PAGE_RECORDS as u64)?;
        let at = (i % PAGE_RECORDS as u64) as usize * CREATED_BYTES;
        page.get(at..at + CREATED_BYTES)
            .and_then(Created::from_bytes)
            .ok_or_else(|| damaged(&self.path, format!("event number {n} missing")))
    }

    /// Every event created here, in order.
    pub(crate) fn scan_created(&self) -> impl Iterator<Item = Result<(u32, Created)>> + '_ {
        let (lo, hi) = (self.footer.ev_lo, self.footer.ev_hi);
        let mut failed = false;
        (lo..hi).map_while(move |n| {
            if failed {
                return None;
            }
            let r = self.created(n).map(|c| (n, c));
            failed = r.is_err();
            Some(r)
        })
    }

    fn bloom(&self) -> Result<Arc<Bloom>> {
        let mut slot = lock(&self.bloom);
        if let Some(b) = &*slot {
            return Ok(Arc::clone(b));
        }
        let bytes = read_checked(&self.file, &self.path, self.footer.bloom)?;
        let bits = bytes
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect();
        let b = Arc::new(Bloom { bits });
        // An empty filter (only a damaged file has one) would divide by zero.
        if b.bits.is_empty() {
            return Err(damaged(&self.path, "empty Bloom filter"));
        }
        *slot = Some(Arc::clone(&b));
        Ok(b)
    }

    /// The number of the event with this id, if created here.
    pub(crate) fn id(&self, id: &[u8; 16]) -> Result<Option<u32>> {
        if !self.bloom()?.may_contain(id) {
            return Ok(None);
        }
        self.ids.get(&self.file, &self.path, id)
    }

    /// Every id created here, sorted.
    pub(crate) fn scan_ids(&self) -> impl Iterator<Item = Result<([u8; 16], u32)>> + '_ {
        self.ids.scan(&self.file, &self.path, None)
    }

    /// Sorted numbers of the events changed here.
    pub(crate) fn changed(&self) -> Result<Arc<Vec<u32>>> {
        let mut slot = lock(&self.changed);
        if let Some(c) = &*slot {
            return Ok(Arc::clone(c));
        }
        let c: Arc<Vec<u32>> = Arc::new(decode(
            &self.path,
            &read_checked(&self.file, &self.path, self.footer.changed)?,
        )?);
        *slot = Some(Arc::clone(&c));
        Ok(c)
    }

    /// Whether event `n` has versions here after its creation.
    pub(crate) fn has_changes(&self, n: u32) -> Result<bool> {
        Ok(self.changed()?.binary_search(&n).is_ok())
    }

    /// Event `n`'s later versions made here, in seq order.
    pub(crate) fn changes_of(&self, n: u32) -> Result<Vec<(u64, Changed)>> {
        if !self.has_changes(n)? {
            return Ok(Vec::new());
        }
        self.changes
            .scan(&self.file, &self.path, Some((n, 0)))
            .take_while(|r| r.as_ref().map_or(true, |((m, _), _)| *m == n))
            .map(|r| r.map(|((_, seq), c)| (seq, c)))
            .collect()
    }

    /// Every later version made here, sorted by (event number, seq).
    pub(crate) fn scan_changes(&self) -> impl Iterator<Item = Result<((u32, u64), Changed)>> + '_ {
        self.changes.scan(&self.file, &self.path, None)
    }

    /// The postings of one list, in order (live or not: the caller checks).
    pub(crate) fn postings(&self, list: u64) -> impl Iterator<Item = Result<u32>> + '_ {
        self.postings
            .scan(&self.file, &self.path, Some((list, 0)))
            .take_while(move |r| r.as_ref().map_or(true, |((l, _), _)| *l == list))
            .flat_map(|r| expand(r.map(|((_, first), gaps)| (first, gaps))))
    }

    /// The postings of every list numbered `lo..=hi`, sorted by (list,
    /// event number).
    pub(crate) fn postings_between(
        &self,
        lo: u64,
        hi: u64,
    ) -> impl Iterator<Item = Result<(u64, u32)>> + '_ {
        self.postings
            .scan(&self.file, &self.path, Some((lo, 0)))
            .take_while(move |r| r.as_ref().map_or(true, |((l, _), _)| *l <= hi))
            .flat_map(|r| match r {
                Ok(((list, first), gaps)) => expand(Ok((first, gaps)))
                    .map(|n| n.map(|n| (list, n)))
                    .collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
    }

    /// Every posting, sorted by (list, event number).
    pub(crate) fn scan_postings(&self) -> impl Iterator<Item = Result<(u64, u32)>> + '_ {
        self.postings
            .scan(&self.file, &self.path, None)
            .flat_map(|r| match r {
                Ok(((list, first), gaps)) => expand(Ok((first, gaps)))
                    .map(|n| n.map(|n| (list, n)))
                    .collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
    }

    /// Reads every byte of the file and checks every checksum (for
    /// `verify`).
    pub(crate) fn check_all(&self) -> Result<()> {
        self.bloom()?;
        self.changed()?;
        for r in self.scan_created() {
            r?;
        }
        for r in self.scan_ids() {
            r?;
        }
        for r in self.scan_changes() {
            r?;
        }
        for r in self.scan_postings() {
            r?;
        }
        Ok(())
    }
}

fn expand(r: Result<(u32, Vec<u32>)>) -> impl Iterator<Item = Result<u32>> {
    let items: Vec<Result<u32>> = match r {
        Err(e) => vec![Err(e)],
        Ok((first, gaps)) => {
            let mut n = first;
            std::iter::once(Ok(first))
                .chain(gaps.into_iter().map(move |g| {
                    n = n.saturating_add(g);
                    Ok(n)
                }))
                .collect()
        }
    };
    items.into_iter()
}

/// Merges two adjacent segments (`older` right before `newer`) into one
/// file at `path`. Postings of `older` for events that `newer` changed are
/// dead (their current version is elsewhere) and are dropped.
pub(crate) fn merge(older: &Segment, newer: &Segment, path: &Path) -> Result<Segment> {
    let (a, b) = (&older.footer, &newer.footer);
    if a.seq_hi + 1 != b.seq_lo || a.ev_hi != b.ev_lo {
        return Err(Error::Internal(format!(
            "segments {} and {} are not adjacent",
            older.path.display(),
            newer.path.display()
        )));
    }
    let newer_changed = newer.changed()?;
    let older_changed = older.changed()?;
    let mut changed: Vec<u32> = older_changed
        .iter()
        .chain(newer_changed.iter())
        .copied()
        .collect();
    changed.sort_unstable();
    changed.dedup();
    let live_older = older.scan_postings().filter(|r| {
        r.as_ref()
            .map_or(true, |(_, n)| newer_changed.binary_search(n).is_err())
    });
    write(
        path,
        Parts {
            seq_lo: a.seq_lo,
            seq_hi: b.seq_hi,
            ev_lo: a.ev_lo,
            ev_hi: b.ev_hi,
            created: older.scan_created().chain(newer.scan_created()),
            ids: merge_sorted(older.scan_ids(), newer.scan_ids()),
            id_count: u64::from(b.ev_hi - a.ev_lo),
            changes: merge_sorted(older.scan_changes(), newer.scan_changes()),
            postings: merge_sorted(
                live_older.map(|r| r.map(|p| (p, ()))),
                newer.scan_postings().map(|r| r.map(|p| (p, ()))),
            )
            .map(|r| r.map(|(p, ())| p)),
            changed,
        },
    )
}

/// Merges two sorted fallible streams by key.
pub(crate) fn merge_sorted<K: Ord, V>(
    a: impl Iterator<Item = Result<(K, V)>>,
    b: impl Iterator<Item = Result<(K, V)>>,
) -> impl Iterator<Item = Result<(K, V)>> {
    let mut a = a.peekable();
    let mut b = b.peekable();
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(Err(_)), _) | (Some(Ok(_)), None) => a.next(),
        (_, Some(Err(_))) | (None, Some(Ok(_))) => b.next(),
        (Some(Ok((ka, _))), Some(Ok((kb, _)))) => {
            if ka <= kb {
                a.next()
            } else {
                b.next()
            }
        }
        (None, None) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::type_complexity)]
    fn parts(
        seq: (u64, u64),
        ev: (u32, u32),
        changes: Vec<((u32, u64), Changed)>,
        postings: Vec<(u64, u32)>,
    ) -> Parts<
        impl Iterator<Item = Result<(u32, Created)>>,
        impl Iterator<Item = Result<([u8; 16], u32)>>,
        impl Iterator<Item = Result<((u32, u64), Changed)>>,
        impl Iterator<Item = Result<(u64, u32)>>,
    > {
        let mut ids: Vec<([u8; 16], u32)> = (ev.0..ev.1)
            .map(|n| (*blake3::hash(&n.to_le_bytes()).as_bytes(), n))
            .map(|(h, n)| {
                let mut id = [0u8; 16];
                id.copy_from_slice(&h[..16]);
                (id, n)
            })
            .collect();
        ids.sort();
        let mut changed: Vec<u32> = changes.iter().map(|((n, _), _)| *n).collect();
        changed.dedup();
        Parts {
            seq_lo: seq.0,
            seq_hi: seq.1,
            ev_lo: ev.0,
            ev_hi: ev.1,
            created: (ev.0..ev.1).map(|n| {
                Ok((
                    n,
                    Created {
                        seq: u64::from(n) + 1,
                        recorded_at: 7,
                        start: i64::from(n),
                        end: i64::from(n) + 1,
                    },
                ))
            }),
            id_count: ids.len() as u64,
            ids: ids.into_iter().map(Ok),
            changes: changes.into_iter().map(Ok),
            postings: postings.into_iter().map(Ok),
            changed,
        }
    }

    #[test]
    fn write_read_merge() {
        let dir = tempfile::tempdir().unwrap();
        let ch = Changed {
            retracted: false,
            start: 1,
            end: 2,
        };
        let mut postings: Vec<(u64, u32)> = (0..3000).map(|n| (u64::from(n % 3), n)).collect();
        postings.sort();
        let a = write(
            &dir.path().join("a.seg"),
            parts((1, 3000), (0, 3000), vec![((5, 2999), ch)], postings),
        )
        .unwrap();
        assert_eq!(a.created(17).unwrap().seq, 18);
        assert_eq!(a.postings(1).count(), 1000);
        assert!(a.postings(1).all(|n| n.unwrap() % 3 == 1));
        let all: Vec<_> = a.scan_ids().map(|r| r.unwrap()).collect();
        for (id, n) in &all {
            assert_eq!(a.id(id).unwrap(), Some(*n));
        }
        assert_eq!(a.id(&[9; 16]).unwrap(), None);
        assert_eq!(a.changes_of(5).unwrap(), vec![(2999, ch)]);
        let b = write(
            &dir.path().join("b.seg"),
            parts(
                (3001, 3010),
                (3000, 3005),
                vec![((7, 3003), ch)],
                vec![(1, 7), (1, 3001)],
            ),
        )
        .unwrap();
        let m = merge(&a, &b, &dir.path().join("m.seg")).unwrap();
        assert_eq!((m.footer.seq_lo, m.footer.seq_hi), (1, 3010));
        let ones: Vec<u32> = m.postings(1).map(|r| r.unwrap()).collect();
        // 7 appears once (b's posting; a's is dead), 3001 from b.
        assert_eq!(ones.iter().filter(|&&n| n == 7).count(), 1);
        assert!(ones.contains(&3001));
        assert_eq!(ones.len(), 1000 + 1);
        assert!(m.has_changes(7).unwrap() && m.has_changes(5).unwrap());
        m.check_all().unwrap();
    }

    #[test]
    fn damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.seg");
        let seg = write(
            &path,
            parts((1, 500), (0, 500), Vec::new(), vec![(1, 2), (1, 3)]),
        )
        .unwrap();
        seg.check_all().unwrap();
        let bytes = fs::read(&path).unwrap();
        for at in (0..bytes.len()).step_by(97) {
            let mut b = bytes.clone();
            b[at] ^= 0x40;
            fs::write(&path, &b).unwrap();
            let checked = Segment::open(&path).and_then(|s| s.check_all());
            assert!(checked.is_err(), "flip at {at} not detected");
        }
    }
}
