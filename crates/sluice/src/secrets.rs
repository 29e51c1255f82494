//! Local secrets for `sluice serve`: the envelope signing key and the cursor key.
//!
//! On AWS these come from SSM Parameter Store; on one machine they are random 256-bit keys
//! generated on first start into `<data dir>/secrets/`, readable by the owner only, so restarts
//! keep verifying messages already in the queue and cursors already handed out.

use anyhow::{Context, bail};
use std::fs;
use std::io::Write;
use std::path::Path;

/// Reads the key in `dir/name`, creating it (0600) with 32 random bytes if absent.
pub fn load_or_create(dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    create_private_dir(dir)?;
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let key = hex::decode(text.trim()).with_context(|| format!("{} is not hex", path.display()))?;
            if key.len() < 32 {
                bail!("{} holds fewer than 32 bytes", path.display());
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            f.write_all(hex::encode(key).as_bytes())?;
            f.sync_all()?;
            Ok(key.to_vec())
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `bytes` to `path` (replacing it), readable by the owner only, and syncs it.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Creates `dir` (and parents) readable by the owner only.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).with_context(|| format!("creating {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(&dir.path().join("s"), "k").unwrap();
        let b = load_or_create(&dir.path().join("s"), "k").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("s/k")).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "secret readable by others: {mode:o}");
        }
    }
}
