//! Chunk segment files (`chunks/000001`...): an 8-byte header (magic 0x85BD40DD, version 1),
//! then chunks `uvarint len | encoding byte | data | CRC32C(encoding, data)`. A chunk
//! reference is the segment's sequence (file `000001` is 0) in its high 32 bits and the
//! chunk's offset in the low 32.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{be_u32, corrupt, crc32c, uvarint};
use crate::Result;

const MAGIC: u32 = 0x85BD_40DD;
/// Read at once; most chunks (≤ 120 samples) fit.
const FIRST_READ: usize = 512;

/// A block's segment files, opened.
pub struct Segments {
    files: Vec<(PathBuf, File, u64)>,
}

impl Segments {
    pub fn open(dir: &Path) -> Result<Self> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| corrupt(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for (i, p) in paths.into_iter().enumerate() {
            let expected = format!("{:06}", i + 1);
            if p.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
                return Err(corrupt(
                    &p,
                    format!("segment files are not numbered from 000001 (expected {expected})"),
                ));
            }
            let f = File::open(&p).map_err(|e| corrupt(&p, e))?;
            let len = f.metadata().map_err(|e| corrupt(&p, e))?.len();
            let mut head = [0u8; 8];
            f.read_exact_at(&mut head, 0).map_err(|e| corrupt(&p, e))?;
            if be_u32(&head, 0) != Some(MAGIC) {
                return Err(corrupt(&p, "not a chunk segment (bad magic)"));
            }
            files.push((p, f, len));
        }
        Ok(Self { files })
    }

    /// The chunk at `reference`: (encoding, data), its checksum verified.
    pub fn chunk(&self, reference: u64, buf: &mut Vec<u8>) -> Result<u8> {
        let seq = (reference >> 32) as usize;
        let offset = reference & 0xffff_ffff;
        let (path, file, len) = self.files.get(seq).ok_or_else(|| {
            crate::Error::Block(format!(
                "chunk reference {reference:#x} names a missing segment"
            ))
        })?;
        if offset >= *len {
            return Err(corrupt(path, format!("chunk offset {offset} past the end")));
        }
        let want = FIRST_READ.min((*len - offset) as usize);
        buf.resize(want, 0);
        file.read_exact_at(buf, offset)
            .map_err(|e| corrupt(path, e))?;
        let mut pos = 0;
        let n = uvarint(buf, &mut pos)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| corrupt(path, format!("bad chunk length at {offset}")))?;
        // encoding + data + crc
        let total = n
            .checked_add(pos + 5)
            .filter(|t| offset.checked_add(*t as u64).is_some_and(|end| end <= *len))
            .ok_or_else(|| corrupt(path, format!("chunk at {offset} runs past the end")))?;
        if total > buf.len() {
            buf.resize(total, 0);
            file.read_exact_at(buf, offset)
                .map_err(|e| corrupt(path, e))?;
        }
        let enc_and_data = &buf[pos..pos + 1 + n];
        if be_u32(buf, pos + 1 + n) != Some(crc32c(enc_and_data)) {
            return Err(corrupt(
                path,
                format!("chunk at {offset}: checksum mismatch"),
            ));
        }
        let encoding = enc_and_data[0];
        buf.copy_within(pos + 1..pos + 1 + n, 0);
        buf.truncate(n);
        Ok(encoding)
    }
}
