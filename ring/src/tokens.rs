//! An ingester's tokens: generated once, kept in `<data-dir>/tokens` so that a restart keeps
//! the same series.

use std::collections::BTreeSet;
use std::path::Path;

use crate::{Error, Result};

/// `n` distinct random tokens, none of them in `taken`, sorted.
pub fn random_tokens(n: usize, taken: &BTreeSet<u32>) -> Vec<u32> {
    let mut out = BTreeSet::new();
    while out.len() < n {
        let t: u32 = rand::random();
        if !taken.contains(&t) {
            out.insert(t);
        }
    }
    out.into_iter().collect()
}

/// The tokens in `path` (JSON `{"tokens":[...]}`), or `None` if the file does not exist.
pub fn load(path: &Path) -> Result<Option<Vec<u32>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    #[derive(serde::Deserialize)]
    struct File {
        tokens: Vec<u32>,
    }
    let f: File = serde_json::from_str(&text).map_err(|e| Error::TokensFile {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut t = f.tokens;
    t.sort_unstable();
    t.dedup();
    Ok(Some(t))
}

/// Writes `tokens` to `path` atomically (temp file, fsync, rename).
pub fn save(path: &Path, tokens: &[u32]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    let tmp = path.with_extension("tmp");
    let body = serde_json::json!({ "tokens": tokens }).to_string();
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
    f.write_all(body.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming", path, e))
}

/// Tokens from `path`, or `n` new ones saved there. The flag says whether they were loaded.
pub fn load_or_create(path: &Path, n: usize) -> Result<(Vec<u32>, bool)> {
    if let Some(t) = load(path)?
        && !t.is_empty()
    {
        return Ok((t, true));
    }
    let t = random_tokens(n, &BTreeSet::new());
    save(path, &t)?;
    Ok((t, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens");
        let (a, loaded) = load_or_create(&p, 128).unwrap();
        assert!(!loaded);
        assert_eq!(a.len(), 128);
        let (b, loaded) = load_or_create(&p, 128).unwrap();
        assert!(loaded);
        assert_eq!(a, b);
        std::fs::write(&p, "garbage").unwrap();
        assert!(
            load(&p).is_err(),
            "a corrupt file is an error, not new tokens"
        );
    }
}
