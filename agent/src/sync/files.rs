//! Reading a registry directory into `(name, text)` pairs for the engine.

use crate::policy::SourceFile;
use std::path::Path;

/// Subdirectory holding policy test cases, not registry files.
pub const TESTS_DIR: &str = "tests";

/// Registry files and test-case files of a policy directory.
#[derive(Debug, Default)]
pub struct DirContents {
    pub registry: Vec<SourceFile>,
    pub cases: Vec<SourceFile>,
}

/// Reads every `*.toml` under `root` (following symlinks, skipping hidden
/// entries such as editor swap files and Kubernetes' `..data`), sorted by
/// name. Files under `root/tests/` are test cases.
pub fn read_dir(root: &Path) -> std::io::Result<DirContents> {
    let mut out = DirContents::default();
    walk(root, root, 0, &mut out)?;
    out.registry.sort_by(|a, b| a.name.cmp(&b.name));
    out.cases.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut DirContents) -> std::io::Result<()> {
    // A symlink loop must not hang the reload.
    if depth > 8 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            walk(root, &path, depth + 1, out)?;
        } else if meta.is_file() && name.ends_with(".toml") {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let file = SourceFile { name: rel, text };
            if file.name.starts_with("tests/") {
                out.cases.push(file);
            } else {
                out.registry.push(file);
            }
        }
    }
    Ok(())
}
