//! The files a landing reads: which ones a directory holds, how each is read
//! (plain or gzip), and the fingerprint that tells whether they were landed before.

use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// An input file and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct InputFile {
    /// Webhook payloads sort after line files: they are newer news.
    pub kind: InputKind,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InputKind {
    /// One JSON record per line: bulk JSONL or web-pixel events.
    Lines,
    /// One REST payload (or a REST list such as `{"orders": [...]}`) per file.
    Payload,
}

/// Expands arguments into input files: a directory gives its `*.jsonl[.gz]` /
/// `*.ndjson[.gz]` files and its `webhooks/*.json[.gz]`; a file is taken as it is.
/// Other files in a directory (a manifest, notes) are ignored.
pub fn collect_inputs(args: &[PathBuf]) -> Result<Vec<InputFile>> {
    let mut inputs = Vec::new();
    for arg in args {
        let meta = std::fs::metadata(arg).with_context(|| format!("cannot read {}", arg.display()))?;
        if meta.is_dir() {
            inputs.extend(files_in(arg, InputKind::Lines)?);
            let hooks = arg.join("webhooks");
            if hooks.is_dir() {
                inputs.extend(files_in(&hooks, InputKind::Payload)?);
            }
        } else {
            match kind_of(arg) {
                Some(kind) => inputs.push(InputFile { kind, path: arg.clone() }),
                None => bail!("{}: not a .jsonl, .ndjson or .json file (optionally .gz)", arg.display()),
            }
        }
    }
    inputs.sort();
    inputs.dedup();
    Ok(inputs)
}

fn kind_of(path: &Path) -> Option<InputKind> {
    let name = path.file_name()?.to_str()?;
    let name = name.strip_suffix(".gz").unwrap_or(name);
    if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        Some(InputKind::Lines)
    } else if name.ends_with(".json") {
        Some(InputKind::Payload)
    } else {
        None
    }
}

fn files_in(dir: &Path, want: InputKind) -> Result<Vec<InputFile>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() && kind_of(&path) == Some(want) {
            found.push(InputFile { kind: want, path });
        }
    }
    Ok(found)
}

/// The longest line (or payload file) landed; a longer one is reported and
/// skipped without being held in memory.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// A gzip file may expand to this many times its size (and at least 1 GiB):
/// beyond, the rest is reported and skipped (a decompression bomb).
const MAX_GZIP_RATIO: u64 = 200;

pub(super) fn open_input(path: &Path, progress: &Progress) -> Result<Box<dyn BufRead>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let counted = progress.wrap_read(file);
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        let limit = (size.saturating_mul(MAX_GZIP_RATIO)).max(1 << 30);
        Box::new(Capped { inner: flate2::read::MultiGzDecoder::new(counted), left: limit, limit })
    } else {
        Box::new(counted)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, reader)))
}

/// A reader that fails once more than `limit` bytes came out of it.
struct Capped<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| std::io::Error::other(format!("the gzip stream expands past {} MB", self.limit >> 20)))?;
        Ok(n)
    }
}

/// One line of a line file.
pub(super) enum Line {
    /// Read into the buffer (without the newline).
    Read,
    /// Longer than the limit: skipped to its end, not kept.
    TooLong,
    End,
}

/// Reads the next line into `buf`, holding at most `limit` bytes of it.
pub(super) fn read_line(reader: &mut dyn BufRead, buf: &mut Vec<u8>, limit: usize) -> std::io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        any = true;
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], i + 1),
            None => (available, available.len()),
        };
        if !too_long && buf.len() + chunk.len() > limit {
            too_long = true;
            buf.clear();
        }
        if !too_long {
            buf.extend_from_slice(chunk);
        }
        let ended = done > chunk.len();
        reader.consume(done);
        if ended {
            break;
        }
    }
    Ok(match (any, too_long) {
        (false, _) => Line::End,
        (true, true) => Line::TooLong,
        (true, false) => Line::Read,
    })
}

/// FNV-1a over the inputs' file names and bytes: the same files give the same
/// fingerprint on any machine (no path, time or order of listing enters it).
pub fn fingerprint(inputs: &[InputFile]) -> Result<String> {
    let mut hash = crate::hash::Fnv1a::default();
    for input in inputs {
        hash.update(input.path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        let mut file = std::fs::File::open(&input.path).with_context(|| format!("cannot open {}", input.path.display()))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
    }
    Ok(format!("{:016x}", hash.finish()))
}

