//! Finding and reading the vector files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::chat::{parse_chat_cases, ChatCase};
use crate::http::{parse_http_cases, HttpCase};
use crate::vector::{parse_cases, VectorError, WsCase};

/// Returns the `vectors/` directory of this crate's source tree.
pub fn default_vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Returns the files of `dir` ending in `.extension`, sorted by name.
///
/// # Errors
///
/// Fails when the directory cannot be read.
pub fn files_with_extension(dir: &Path, extension: &str) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads every WebSocket case of `vectors/ws/*.vec`, in file order.
///
/// # Errors
///
/// Fails when a file cannot be read or parsed, naming the file and line.
pub fn ws_cases(vectors: &Path) -> io::Result<Vec<WsCase>> {
    cases_in(&vectors.join("ws"), "vec", parse_cases)
}

/// Reads every chat case of `vectors/chat/*.chat`, in file order.
///
/// # Errors
///
/// Fails when a file cannot be read or parsed, naming the file and line.
pub fn chat_cases(vectors: &Path) -> io::Result<Vec<ChatCase>> {
    cases_in(&vectors.join("chat"), "chat", parse_chat_cases)
}

/// Reads every HTTP case of `vectors/http/*.http`, in file order.
///
/// # Errors
///
/// Fails when a file cannot be read or parsed, naming the file and line.
pub fn http_cases(vectors: &Path) -> io::Result<Vec<HttpCase>> {
    cases_in(&vectors.join("http"), "http", parse_http_cases)
}

/// Parses every file of `dir` ending in `extension` with `parse`, in file
/// order, naming the file in any error.
fn cases_in<C>(
    dir: &Path,
    extension: &str,
    parse: impl Fn(&str) -> Result<Vec<C>, VectorError>,
) -> io::Result<Vec<C>> {
    let mut cases = Vec::new();
    for path in files_with_extension(dir, extension)? {
        let text = fs::read_to_string(&path)?;
        let parsed = parse(&text).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {error}", path.display()),
            )
        })?;
        cases.extend(parsed);
    }
    Ok(cases)
}

/// Writes the generated WebSocket vector files into `vectors/ws/`.
///
/// # Errors
///
/// Fails when a file cannot be written.
pub fn write_generated(vectors: &Path) -> io::Result<usize> {
    let dir = vectors.join("ws");
    fs::create_dir_all(&dir)?;
    let files = crate::generate::vector_files();
    for file in &files {
        fs::write(dir.join(file.name), file.render())?;
    }
    Ok(files.len())
}

/// Tells whether a case id matches a glob of `*` wildcards, such as `6.4.*`
/// or `*.1`.
pub fn glob_matches(pattern: &str, id: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    if parts.len() == 1 {
        return pattern == id;
    }
    if !id.starts_with(first) || !id[first.len()..].ends_with(last) {
        return false;
    }

    let mut rest = &id[first.len()..id.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::glob_matches;

    #[test]
    fn globs_match_case_ids() {
        assert!(glob_matches("6.4.*", "6.4.1"));
        assert!(glob_matches("*", "natter.1"));
        assert!(glob_matches("9.*.1", "9.3.1"));
        assert!(glob_matches("1.1.1", "1.1.1"));
        assert!(!glob_matches("1.1.1", "1.1.10"));
        assert!(!glob_matches("6.*", "16.1"));
        assert!(!glob_matches("9.*.1", "9.1"));
    }
}
