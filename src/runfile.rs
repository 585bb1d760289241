//! Run files: the persisted form of the built-in views. A run is an
//! immutable, sorted table of cells (a byte-string key and a signed
//! count); the views are the sum of all runs, cell by cell, so a flush
//! writes only the cells that changed since the last one and two runs
//! merge by adding their counts (a cell that sums to zero is dropped).
//!
//! Layout: blocks of about [`BLOCK_BYTES`] (cells with their keys
//! prefix-compressed against the previous key, deflated, then the CRC-32
//! of the deflated bytes),
//! the block index (each block's first key, offset and length, with its
//! own CRC-32) and a fixed trailer (index offset and length, the index's
//! CRC-32, the number of cells, the magic). Opening reads the trailer and
//! the index only; a read fetches the blocks it needs with one `pread`
//! each and checks them. Any damage is a [`Error::DerivedDamage`]: runs
//! are a cache of the log and are then rebuilt from it.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::sync::{lock, sync_dir};

/// Target size of a block before its CRC.
const BLOCK_BYTES: usize = 4096;
/// Most bytes a block inflates to (far above any block written).
const MAX_BLOCK: usize = 16 << 20;
const MAGIC: &[u8; 8] = b"annalsR2";
/// Index offset, index length, CRC of the index and cell count, cell
/// count, magic.
const TRAILER: usize = 8 + 8 + 4 + 8 + 8;
/// Decoded blocks kept per run: enough for a view read's seeks to find
/// the blocks they share, small enough that a scan of a large run keeps
/// its memory.
const CACHED_BLOCKS: usize = 256;

/// One cell: key and count.
pub(crate) type Cell = (Box<[u8]>, i64);

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn shared_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The CRC-32 of the block index and the cell count.
fn index_crc(index: &[u8], cells: u64) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(index);
    h.update(&cells.to_le_bytes());
    h.finalize()
}

/// Writes a run: cells in strictly ascending key order.
pub(crate) struct RunWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    offset: u64,
    block: Vec<u8>,
    block_first: Option<Vec<u8>>,
    last: Vec<u8>,
    index: Vec<u8>,
    cells: u64,
}

impl RunWriter {
    /// Starts a run at `path` (written to a temporary name, renamed into
    /// place by [`RunWriter::finish`]).
    pub(crate) fn create(path: &Path) -> Result<RunWriter> {
        let tmp = path.with_extension("run-tmp");
        let f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(RunWriter {
            path: path.to_path_buf(),
            tmp,
            out: BufWriter::with_capacity(1 << 16, f),
            offset: 0,
            block: Vec::with_capacity(BLOCK_BYTES + 256),
            block_first: None,
            last: Vec::new(),
            index: Vec::new(),
            cells: 0,
        })
    }

    /// Adds a cell; keys must ascend strictly (a caller bug otherwise,
    /// reported as an internal error rather than a corrupt run).
    pub(crate) fn add(&mut self, key: &[u8], value: i64) -> Result<()> {
        if self.cells > 0 && key <= self.last.as_slice() {
            return Err(Error::internal("run cells out of order"));
        }
        let shared = if self.block_first.is_none() {
            self.block_first = Some(key.to_vec());
            0
        } else {
            shared_prefix(&self.last, key)
        };
        put_varint(&mut self.block, shared as u64);
        put_varint(&mut self.block, (key.len() - shared) as u64);
        self.block.extend_from_slice(&key[shared..]);
        put_varint(&mut self.block, zigzag(value));
        self.last.clear();
        self.last.extend_from_slice(key);
        self.cells += 1;
        if self.block.len() >= BLOCK_BYTES {
            self.end_block()?;
        }
        Ok(())
    }

    fn end_block(&mut self) -> Result<()> {
        let Some(first) = self.block_first.take() else {
            return Ok(());
        };
        // Deflated: the keys' shared prefixes are gone already, but the
        // counts and time points still halve (measured on a 10M run).
        let mut z = flate2::write::DeflateEncoder::new(
            Vec::with_capacity(self.block.len() / 2 + 8),
            flate2::Compression::fast(),
        );
        let mut frame = z
            .write_all(&self.block)
            .and_then(|()| z.finish())
            .map_err(|e| Error::io(&self.tmp, e))?;
        let crc = crc32fast::hash(&frame);
        frame.extend_from_slice(&crc.to_le_bytes());
        self.out
            .write_all(&frame)
            .map_err(|e| Error::io(&self.tmp, e))?;
        put_varint(&mut self.index, first.len() as u64);
        self.index.extend_from_slice(&first);
        put_varint(&mut self.index, self.offset);
        put_varint(&mut self.index, frame.len() as u64);
        self.offset += frame.len() as u64;
        self.block.clear();
        Ok(())
    }

    /// Writes the index and trailer, makes the file durable and renames it
    /// into place.
    pub(crate) fn finish(mut self) -> Result<Run> {
        self.end_block()?;
        let mut trailer = Vec::with_capacity(TRAILER);
        trailer.extend_from_slice(&self.offset.to_le_bytes());
        trailer.extend_from_slice(&(self.index.len() as u64).to_le_bytes());
        trailer.extend_from_slice(&index_crc(&self.index, self.cells).to_le_bytes());
        trailer.extend_from_slice(&self.cells.to_le_bytes());
        trailer.extend_from_slice(MAGIC);
        let tmp = self.tmp.clone();
        let io = |e| Error::io(&tmp, e);
        self.out.write_all(&self.index).map_err(io)?;
        self.out.write_all(&trailer).map_err(io)?;
        let f = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        f.sync_all().map_err(io)?;
        drop(f);
        fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        sync_dir(&self.path)?;
        Run::open(&self.path)
    }
}

/// Writes `cells` (sorted, distinct keys) as a run at `path`.
pub(crate) fn write_run(path: &Path, cells: impl IntoIterator<Item = Cell>) -> Result<Run> {
    let mut w = RunWriter::create(path)?;
    for (k, v) in cells {
        w.add(&k, v)?;
    }
    w.finish()
}

struct BlockRef {
    first: Box<[u8]>,
    offset: u64,
    len: u64,
}

/// An open run: its trailer read at open, its block index on first use
/// (so that opening a database reads no view), its blocks on demand.
pub(crate) struct Run {
    path: PathBuf,
    file: File,
    index_at: (u64, u64, u32),
    blocks: OnceLock<Vec<BlockRef>>,
    cells: u64,
    bytes: u64,
    cache: Mutex<HashMap<usize, Arc<[Cell]>>>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("path", &self.path)
            .field("cells", &self.cells)
            .finish()
    }
}

impl Run {
    /// Opens a run, reading and checking its trailer.
    pub(crate) fn open(path: &Path) -> Result<Run> {
        let damaged = |why: &str| Error::derived(path, format!("view run: {why}"));
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let bytes = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if bytes < TRAILER as u64 {
            return Err(damaged("shorter than its trailer"));
        }
        let mut t = [0u8; TRAILER];
        file.read_exact_at(&mut t, bytes - TRAILER as u64)
            .map_err(|e| Error::io(path, e))?;
        let word = |i: usize| -> u64 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&t[i..i + 8]);
            u64::from_le_bytes(b)
        };
        if &t[28..36] != MAGIC {
            return Err(damaged("bad magic"));
        }
        let (index_off, index_len) = (word(0), word(8));
        let index_crc = u32::from_le_bytes([t[16], t[17], t[18], t[19]]);
        let cells = word(20);
        if index_off.checked_add(index_len) != Some(bytes - TRAILER as u64) {
            return Err(damaged("index out of bounds"));
        }
        Ok(Run {
            path: path.to_path_buf(),
            file,
            index_at: (index_off, index_len, index_crc),
            blocks: OnceLock::new(),
            cells,
            bytes,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The block index, read and checked on first use.
    fn blocks(&self) -> Result<&[BlockRef]> {
        if let Some(b) = self.blocks.get() {
            return Ok(b);
        }
        let b = self.read_index()?;
        Ok(self.blocks.get_or_init(|| b))
    }

    fn read_index(&self) -> Result<Vec<BlockRef>> {
        let path = &self.path;
        let damaged = |why: &str| Error::derived(path, format!("view run: {why}"));
        let (index_off, index_len, index_crc) = self.index_at;
        let len = usize::try_from(index_len).map_err(|_| damaged("index too large"))?;
        let mut index = vec![0u8; len];
        self.file
            .read_exact_at(&mut index, index_off)
            .map_err(|e| Error::io(path, e))?;
        if self::index_crc(&index, self.cells) != index_crc {
            return Err(damaged("index checksum mismatch"));
        }
        let mut blocks = Vec::new();
        let mut pos = 0;
        let mut end = 0u64;
        while pos < index.len() {
            let parse = |pos: &mut usize| -> Option<BlockRef> {
                let klen = usize::try_from(get_varint(&index, pos)?).ok()?;
                let first = index.get(*pos..pos.checked_add(klen)?)?.into();
                *pos += klen;
                let offset = get_varint(&index, pos)?;
                let len = get_varint(&index, pos)?;
                Some(BlockRef { first, offset, len })
            };
            let b = parse(&mut pos).ok_or_else(|| damaged("index entry cut short"))?;
            if b.offset != end || b.len < 4 {
                return Err(damaged("block index out of order"));
            }
            end = b.offset + b.len;
            blocks.push(b);
        }
        if end != index_off {
            return Err(damaged("blocks do not fill the file"));
        }
        Ok(blocks)
    }

    /// The run's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Its size in bytes.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn block(&self, i: usize) -> Result<Arc<[Cell]>> {
        if let Some(b) = lock(&self.cache).get(&i) {
            return Ok(b.clone());
        }
        let damaged = |why: &str| Error::derived(&self.path, format!("view run block {i}: {why}"));
        let r = self
            .blocks()?
            .get(i)
            .ok_or_else(|| damaged("no such block"))?;
        let len = usize::try_from(r.len).map_err(|_| damaged("too large"))?;
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, r.offset)
            .map_err(|e| Error::io(&self.path, e))?;
        let (z, crc) = buf.split_at(len - 4);
        if crc32fast::hash(z).to_le_bytes() != crc {
            return Err(damaged("checksum mismatch"));
        }
        let mut body = Vec::with_capacity(BLOCK_BYTES + 512);
        // A block is written at about BLOCK_BYTES; a larger one (a single
        // huge key) is bounded by the key size limit, far below this.
        std::io::Read::read_to_end(
            &mut std::io::Read::take(flate2::read::DeflateDecoder::new(z), MAX_BLOCK as u64),
            &mut body,
        )
        .map_err(|_| damaged("does not inflate"))?;
        let body = body.as_slice();
        let mut cells: Vec<Cell> = Vec::new();
        let mut pos = 0;
        let mut key: Vec<u8> = Vec::new();
        while pos < body.len() {
            let mut next = || -> Option<i64> {
                let shared = usize::try_from(get_varint(body, &mut pos)?).ok()?;
                let slen = usize::try_from(get_varint(body, &mut pos)?).ok()?;
                if shared > key.len() {
                    return None;
                }
                key.truncate(shared);
                key.extend_from_slice(body.get(pos..pos.checked_add(slen)?)?);
                pos += slen;
                Some(unzigzag(get_varint(body, &mut pos)?))
            };
            let v = next().ok_or_else(|| damaged("cell cut short"))?;
            cells.push((key.as_slice().into(), v));
        }
        if cells.first().map(|c| &c.0) != Some(&r.first) {
            return Err(damaged("first key differs from the index"));
        }
        let cells: Arc<[Cell]> = cells.into();
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHED_BLOCKS {
            cache.clear();
        }
        cache.insert(i, cells.clone());
        Ok(cells)
    }

    /// The cells with keys in `lo..hi` (`hi` none: to the end), in order.
    pub(crate) fn scan<'a>(self: &'a Arc<Self>, lo: &[u8], hi: Option<&[u8]>) -> RunScan<'a> {
        RunScan {
            run: self,
            block: None,
            cells: None,
            pos: 0,
            lo: lo.to_vec(),
            hi: hi.map(<[u8]>::to_vec),
            done: false,
        }
    }
}

/// An iterator over a range of one run's cells.
pub(crate) struct RunScan<'a> {
    run: &'a Arc<Run>,
    /// The block being read (none: not started).
    block: Option<usize>,
    cells: Option<Arc<[Cell]>>,
    pos: usize,
    lo: Vec<u8>,
    hi: Option<Vec<u8>>,
    done: bool,
}

impl Iterator for RunScan<'_> {
    type Item = Result<Cell>;

    fn next(&mut self) -> Option<Result<Cell>> {
        loop {
            if self.done {
                return None;
            }
            let blocks = match self.run.blocks() {
                Ok(b) => b,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            // The last block whose first key is at or below `lo`.
            let block = *self.block.get_or_insert_with(|| {
                blocks
                    .partition_point(|b| &*b.first <= self.lo.as_slice())
                    .saturating_sub(1)
            });
            let cells = match &self.cells {
                Some(c) => c.clone(),
                None => {
                    if block >= blocks.len() {
                        self.done = true;
                        return None;
                    }
                    match self.run.block(block) {
                        Ok(c) => {
                            self.pos = c.partition_point(|(k, _)| **k < *self.lo);
                            self.cells = Some(c.clone());
                            c
                        }
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
            };
            match cells.get(self.pos) {
                Some((k, v)) => {
                    if self.hi.as_deref().is_some_and(|hi| &**k >= hi) {
                        self.done = true;
                        return None;
                    }
                    self.pos += 1;
                    return Some(Ok((k.clone(), *v)));
                }
                None => {
                    self.cells = None;
                    self.block = Some(block + 1);
                }
            }
        }
    }
}

/// Sums sorted streams of cells key by key, leaving out cells that sum
/// to zero: the views as one stream, whatever the number of runs.
pub(crate) struct Merge<'a> {
    sources: Vec<std::iter::Peekable<Box<dyn Iterator<Item = Result<Cell>> + 'a>>>,
}

impl<'a> Merge<'a> {
    /// Merges `sources`, each sorted by key with distinct keys.
    pub(crate) fn new(sources: Vec<Box<dyn Iterator<Item = Result<Cell>> + 'a>>) -> Merge<'a> {
        Merge {
            sources: sources.into_iter().map(Iterator::peekable).collect(),
        }
    }
}

impl Iterator for Merge<'_> {
    type Item = Result<Cell>;

    fn next(&mut self) -> Option<Result<Cell>> {
        loop {
            let mut least: Option<Box<[u8]>> = None;
            for s in &mut self.sources {
                match s.peek() {
                    Some(Ok((k, _))) if least.as_ref().is_none_or(|l| k < l) => {
                        least = Some(k.clone());
                    }
                    Some(Err(_)) => return s.next(),
                    _ => {}
                }
            }
            let key = least?;
            let mut sum = 0i64;
            for s in &mut self.sources {
                if let Some(Ok((k, v))) = s.peek() {
                    if *k == key {
                        sum = sum.wrapping_add(*v);
                        s.next();
                    }
                }
            }
            if sum != 0 {
                return Some(Ok((key, sum)));
            }
        }
    }
}

/// Merges runs `older` and `newer` into one run at `path`.
pub(crate) fn merge_runs(older: &Arc<Run>, newer: &Arc<Run>, path: &Path) -> Result<Run> {
    let merged = Merge::new(vec![
        Box::new(older.scan(&[], None)),
        Box::new(newer.scan(&[], None)),
    ]);
    let mut w = RunWriter::create(path)?;
    for cell in merged {
        let (k, v) = cell?;
        w.add(&k, v)?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(pairs: &[(&str, i64)]) -> Vec<Cell> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().into(), *v))
            .collect()
    }

    #[test]
    fn a_run_reads_back_by_range_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let all: Vec<Cell> = (0..5000)
            .map(|i| (format!("key{i:06}").into_bytes().into(), i as i64 - 2500))
            .collect();
        let run = Arc::new(write_run(&dir.path().join("a.run"), all.clone()).unwrap());
        assert!(run.blocks().unwrap().len() > 5);
        assert_eq!(run.cells, 5000);
        let got: Vec<Cell> = run.scan(&[], None).map(|c| c.unwrap()).collect();
        assert_eq!(got, all);
        let mid: Vec<Cell> = run
            .scan(b"key001000", Some(b"key001010"))
            .map(|c| c.unwrap())
            .collect();
        assert_eq!(mid, all[1000..1010].to_vec());
        let between: Vec<Cell> = run
            .scan(b"key0010005", Some(b"key001002"))
            .map(|c| c.unwrap())
            .collect();
        assert_eq!(between, all[1001..1002].to_vec());
        assert_eq!(run.scan(b"zzz", None).count(), 0);
    }

    #[test]
    fn merging_adds_counts_and_drops_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let a = Arc::new(
            write_run(
                &dir.path().join("a.run"),
                cells(&[("a", 1), ("b", 2), ("d", 1)]),
            )
            .unwrap(),
        );
        let b = Arc::new(
            write_run(
                &dir.path().join("b.run"),
                cells(&[("b", -2), ("c", 5), ("d", 1)]),
            )
            .unwrap(),
        );
        let m = merge_runs(&a, &b, &dir.path().join("m.run")).unwrap();
        let got: Vec<Cell> = Arc::new(m).scan(&[], None).map(|c| c.unwrap()).collect();
        assert_eq!(got, cells(&[("a", 1), ("c", 5), ("d", 2)]));
    }

    #[test]
    fn damage_is_detected_on_open_or_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.run");
        let all: Vec<Cell> = (0..2000)
            .map(|i| (format!("k{i:05}").into_bytes().into(), 1))
            .collect();
        write_run(&path, all).unwrap();
        let good = fs::read(&path).unwrap();
        let n = good.len();
        for at in [0, n / 5, n / 2, n - 40, n - 10, n - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            fs::write(&path, &bad).unwrap();
            let outcome = Run::open(&path)
                .map(Arc::new)
                .and_then(|r| r.scan(&[], None).collect::<Result<Vec<_>>>());
            assert!(
                matches!(outcome, Err(Error::DerivedDamage { .. })),
                "flip at {at} of {}: {:?}",
                good.len(),
                outcome.map(|v| v.len())
            );
        }
        fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert!(Run::open(&path).is_err());
    }

    #[test]
    fn varints_and_zigzag_round_trip() {
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN, 1 << 40] {
            let mut b = Vec::new();
            put_varint(&mut b, zigzag(v));
            let mut pos = 0;
            assert_eq!(get_varint(&b, &mut pos).map(unzigzag), Some(v));
        }
    }
}
