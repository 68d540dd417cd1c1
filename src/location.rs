//! Where a path of the pipeline points: a local file or directory, or an
//! object store URL. Classified once, when the config is compiled; nothing
//! downstream looks at the text again.

use std::fmt;
use std::path::{Path, PathBuf};

/// URL schemes that name an object store.
pub const SCHEMES: &[&str] = &["s3", "s3a", "gs", "az", "azure", "abfs", "abfss"];

/// Characters that make a path a glob; the path components before the first
/// one holding any of them are its literal root (local) or the listed prefix
/// (object stores).
pub const GLOB_CHARS: [char; 3] = ['*', '?', '['];

/// The literal root of a local glob (the components before the first one
/// holding a glob character), or `None` when `path` is not a glob.
pub fn glob_root(path: &Path) -> Option<PathBuf> {
    path.to_string_lossy().contains(GLOB_CHARS).then(|| {
        path.components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(GLOB_CHARS))
            .collect()
    })
}

/// A classified `source.path` / `sink.path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local path (`file://` URLs are converted), resolved against the
    /// pipeline file's directory.
    Local(PathBuf),
    /// An object store URL.
    Remote(StoreUrl),
}

/// An object store URL: lower-case scheme, a bucket or container, no
/// trailing slash (`s3://bucket/prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// The URL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Location {
    /// Classifies a path string of the pipeline; relative local paths are
    /// resolved against `base`.
    ///
    /// # Errors
    /// A message for an unsupported scheme, a URL without a bucket, or a
    /// malformed `file://` URL.
    pub fn parse(text: &str, base: &Path) -> Result<Location, String> {
        let Some((scheme, _)) = text.split_once("://") else {
            return Ok(Location::local(PathBuf::from(text), base));
        };
        let lower = scheme.to_ascii_lowercase();
        if lower == "file" {
            return file_url_path(&text[scheme.len() + 3..])
                .map(|p| Location::local(p, base))
                .map_err(|why| format!("`{text}` is not a local file:// URL: {why}"));
        }
        if SCHEMES.contains(&lower.as_str()) {
            let rest = &text[scheme.len() + 3..];
            if rest.split('/').next().unwrap_or("").is_empty() {
                return Err(format!("`{text}` names no bucket or container"));
            }
            return Ok(Location::Remote(StoreUrl(format!(
                "{lower}://{}",
                rest.trim_end_matches('/')
            ))));
        }
        Err(format!(
            "unsupported URL scheme `{scheme}://` (supported: file, {})",
            SCHEMES.join(", ")
        ))
    }

    fn local(path: PathBuf, base: &Path) -> Location {
        if path.is_absolute() {
            Location::Local(path)
        } else {
            Location::Local(base.join(path))
        }
    }

    /// The location as a path, for messages and reports (URLs as they are).
    pub fn to_path_buf(&self) -> PathBuf {
        match self {
            Location::Local(p) => p.clone(),
            Location::Remote(u) => PathBuf::from(u.as_str()),
        }
    }

    /// Whether the location is an object store URL.
    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Remote(_))
    }
}

/// The path of a `file://` URL (the text after `file://`): an empty or
/// `localhost` host, an absolute path, `%XX` escapes decoded; a query or
/// fragment (`?…`, `#…`) is not part of the path, as in RFC 8089.
fn file_url_path(rest: &str) -> Result<PathBuf, String> {
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
        return Err(format!("it names the host `{host}`"));
    }
    if path.is_empty() {
        return Err("it names no path".into());
    }
    let mut bytes = Vec::with_capacity(path.len());
    let mut rest = path.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let hex = |i: usize| tail.get(i).and_then(|&c| (c as char).to_digit(16));
        match (b, hex(0), hex(1)) {
            (b'%', Some(hi), Some(lo)) => {
                bytes.push((hi * 16 + lo) as u8);
                rest = &tail[2..];
            }
            _ => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    path_from_bytes(bytes)
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> Result<PathBuf, String> {
    use std::os::unix::ffi::OsStringExt;
    Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> Result<PathBuf, String> {
    String::from_utf8(bytes)
        .map(PathBuf::from)
        .map_err(|_| "its path is not UTF-8 once decoded".to_string())
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Remote(u) => f.write_str(u.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls_are_classified_once() {
        let base = Path::new("/pipes");
        assert_eq!(
            Location::parse("data/x", base).unwrap(),
            Location::Local(PathBuf::from("/pipes/data/x"))
        );
        assert_eq!(
            Location::parse("/abs/x", base).unwrap(),
            Location::Local(PathBuf::from("/abs/x"))
        );
        assert_eq!(
            Location::parse("file:///tmp/a%20b", base).unwrap(),
            Location::Local(PathBuf::from("/tmp/a b"))
        );
        assert_eq!(
            Location::parse("file://localhost/data/%E2%82%AC%2x?q#f", base).unwrap(),
            Location::Local(PathBuf::from("/data/€%2x"))
        );
        assert_eq!(
            Location::parse("file://server/share/x", base).unwrap_err(),
            "`file://server/share/x` is not a local file:// URL: it names the host `server`"
        );
        assert_eq!(
            Location::parse("file://", base).unwrap_err(),
            "`file://` is not a local file:// URL: it names no path"
        );
        assert_eq!(
            Location::parse("S3://bucket/pre/fix/", base).unwrap(),
            Location::Remote(StoreUrl("s3://bucket/pre/fix".into()))
        );
        assert_eq!(
            Location::parse("hdfs://x/y", base).unwrap_err(),
            "unsupported URL scheme `hdfs://` (supported: file, s3, s3a, gs, az, azure, abfs, abfss)"
        );
        assert_eq!(
            Location::parse("gs:///nobucket", base).unwrap_err(),
            "`gs:///nobucket` names no bucket or container"
        );
        assert_eq!(
            Location::parse("/local/s3:/x", base).unwrap(),
            Location::Local(PathBuf::from("/local/s3:/x"))
        );
    }
}
