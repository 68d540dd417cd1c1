//! Object stores: `s3://`, `gs://` and `az://` paths through the
//! `object_store` crate.
//!
//! The pipeline itself is synchronous (rayon workers); every store call is
//! driven to completion on one shared tokio runtime with [`block_on`]. Reads
//! are range requests (a footer suffix, then the column chunks of one row
//! group); writes are multipart uploads in [`CHUNK_BYTES`] parts with at most
//! [`PARTS_IN_FLIGHT`] parts in flight per file, so memory stays flat in the
//! size of the data.
//!
//! `file://` URLs are plain local paths and never reach this module.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path as Key;
use object_store::{
    ClientConfigKey, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    StaticCredentialProvider, WriteMultipart,
};
use parquet::file::reader::{ChunkReader, Length};

/// URL schemes that name an object store.
pub const SCHEMES: &[&str] = &["s3", "s3a", "gs", "az", "azure", "abfs", "abfss"];

/// Multipart upload part size (S3 needs at least 5 MiB for all but the last part).
pub const CHUNK_BYTES: usize = 8 << 20;

/// Parts uploading concurrently per file before a write waits.
pub const PARTS_IN_FLIGHT: usize = 2;

/// How a `source.path` / `sink.path` string is to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathKind {
    /// A local path (`file://` URLs are converted).
    Local(PathBuf),
    /// An object store URL, without a trailing slash.
    Remote(String),
}

/// Classifies a path string from the pipeline.
///
/// # Errors
/// A message for an unsupported scheme or a malformed `file://` URL.
pub fn classify(text: &str) -> std::result::Result<PathKind, String> {
    let Some((scheme, _)) = text.split_once("://") else {
        return Ok(PathKind::Local(PathBuf::from(text)));
    };
    let lower = scheme.to_ascii_lowercase();
    if lower == "file" {
        let url = url::Url::parse(text)
            .map_err(|e| format!("`{text}` is not a valid file:// URL: {e}"))?;
        return url
            .to_file_path()
            .map(PathKind::Local)
            .map_err(|()| format!("`{text}` is not a local file:// URL"));
    }
    if SCHEMES.contains(&lower.as_str()) {
        let rest = &text[scheme.len() + 3..];
        if rest.split('/').next().unwrap_or("").is_empty() {
            return Err(format!("`{text}` names no bucket or container"));
        }
        return Ok(PathKind::Remote(format!(
            "{lower}://{}",
            rest.trim_end_matches('/')
        )));
    }
    Err(format!(
        "unsupported URL scheme `{scheme}://` (supported: file, {})",
        SCHEMES.join(", ")
    ))
}

/// The object store URL a resolved plan path stands for, if any.
pub fn remote_url(path: &Path) -> Option<&str> {
    let text = path.to_str()?;
    let (scheme, _) = text.split_once("://")?;
    SCHEMES.contains(&scheme).then_some(text)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("seqwin-io")
            .enable_all()
            .build()
            .expect("the I/O runtime starts")
    })
}

/// Runs a future to completion on the shared I/O runtime (from any
/// non-runtime thread: the coordinator or a rayon worker).
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// An opened object store location: the store, and the key prefix the URL names.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The URL as given (normalized scheme, no trailing slash).
    pub url: String,
    /// `scheme://bucket`.
    base: String,
    /// The store client.
    pub store: Arc<dyn ObjectStore>,
    /// The key the URL names (may be empty: the whole bucket).
    pub prefix: Key,
}

/// Object store errors as `std::io::Error`, so that they travel as
/// [`crate::Error::Io`] (exit code 1) when they happen mid-run.
pub fn io_error(e: object_store::Error) -> std::io::Error {
    let kind = match &e {
        object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => std::io::ErrorKind::PermissionDenied,
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, describe(&e))
}

/// An object store error as one sentence: the service's own error code and
/// message when the response carries them (`NoSuchBucket: The specified
/// bucket does not exist`), otherwise the error and its causes.
pub fn describe(e: &object_store::Error) -> String {
    let full = one_line(e);
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = full.find(&open)? + open.len();
        let len = full[start..].find(&format!("</{name}>"))?;
        // Azure appends `\nRequestId:…\nTime:…` to the message.
        let text = full[start..start + len].lines().next().unwrap_or_default();
        Some(text.trim().to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => match e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => {
                format!("access denied (check the credentials): {full}")
            }
            // No credentials configured: the client fell back to the
            // instance metadata service, which is not there (or refused).
            object_store::Error::Generic { store, .. }
                if full.contains("Error performing token request") =>
            {
                match *store {
                    "GCS" => format!("no usable Google Cloud credentials: set GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT_KEY (a service account key), run where the metadata server issues tokens, or set STORAGE_EMULATOR_HOST for an emulator (token request failed: {full})"),
                    "MicrosoftAzure" => format!("no usable Azure credentials: set AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY or AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID, run where managed identity issues tokens, or set AZURE_STORAGE_USE_EMULATOR=true for Azurite (token request failed: {full})"),
                    _ => full,
                }
            }
            _ => full,
        },
    }
}

/// An object store error and its causes on one line.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

fn split_options(
    options: &BTreeMap<String, String>,
) -> std::result::Result<(RetryConfig, Vec<(String, String)>), String> {
    let mut retry = RetryConfig::default();
    let mut rest = Vec::new();
    for (k, v) in options {
        match k.to_ascii_lowercase().as_str() {
            "max_retries" => {
                retry.max_retries = v.parse().map_err(|_| {
                    format!("storage option `max_retries` must be a whole number, found `{v}`")
                })?;
            }
            "retry_timeout" => {
                let secs: f64 = v
                    .trim_end_matches('s')
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| {
                        format!("storage option `retry_timeout` must be seconds, found `{v}`")
                    })?;
                retry.retry_timeout = Duration::from_secs_f64(secs);
            }
            _ => rest.push((k.to_ascii_lowercase(), v.clone())),
        }
    }
    Ok((retry, rest))
}

/// reqwest is built without a default TLS crypto provider: use ring
/// (installing it again is a harmless error).
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `STORAGE_EMULATOR_HOST` (Google's client libraries' name for a local GCS
/// emulator such as fake-gcs-server): requests go to `host` over plain http
/// unless it names a scheme, anonymously unless credentials are configured
/// (object_store's own `skip_signature` leaves object requests asking the
/// metadata server for a token). An explicit `google_base_url` wins.
fn gcs_emulator(mut b: GoogleCloudStorageBuilder, host: Option<&str>) -> GoogleCloudStorageBuilder {
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return b;
    };
    if b.get_config_value(&GoogleConfigKey::BaseUrl).is_none() {
        let url = if host.contains("://") {
            host.to_string()
        } else {
            format!("http://{host}")
        };
        b = b.with_base_url(url.trim_end_matches('/'));
    }
    let base_url = b
        .get_config_value(&GoogleConfigKey::BaseUrl)
        .unwrap_or_default();
    if base_url.starts_with("http://") {
        b = b.with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), "true");
    }
    let has = |k: GoogleConfigKey| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
    if has(GoogleConfigKey::ServiceAccount)
        || has(GoogleConfigKey::ServiceAccountKey)
        || has(GoogleConfigKey::ApplicationCredentials)
        || has(GoogleConfigKey::BearerToken)
    {
        return b;
    }
    b.with_skip_signature(true)
        .with_credentials(Arc::new(StaticCredentialProvider::new(GcpCredential {
            bearer: String::new(),
        })))
}

impl Remote {
    /// Builds the store client for `url` from the environment (`AWS_*`,
    /// `GOOGLE_*`, `AZURE_*`) and `options` (which win over the environment).
    ///
    /// # Errors
    /// One sentence: unknown option, missing credentials, invalid URL.
    pub fn open(
        url: &str,
        options: &BTreeMap<String, String>,
    ) -> std::result::Result<Remote, String> {
        install_tls_provider();
        let (scheme, rest) = url.split_once("://").ok_or("not a URL")?;
        let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
        let base = format!("{scheme}://{authority}");
        let (retry, rest) = split_options(options)?;
        tracing::debug!(%base, options = ?rest.iter().map(|(k, _)| k).collect::<Vec<_>>(), "object store client: credentials from the environment and these storage_options");
        let unknown = |k: &str, service: &str| {
            format!("unknown storage option `{k}` for {service} (the object_store crate's {service} keys are accepted, plus max_retries and retry_timeout)")
        };
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" | "s3a" => {
                let mut b = AmazonS3Builder::from_env().with_url(&base);
                for (k, v) in &rest {
                    let key: AmazonS3ConfigKey = k.parse().map_err(|_| unknown(k, "s3"))?;
                    b = b.with_config(key, v);
                }
                // Both AWS_ENDPOINT_URL (the AWS CLI's name) and AWS_ENDPOINT work.
                if b.get_config_value(&AmazonS3ConfigKey::Endpoint).is_none() {
                    if let Ok(e) = std::env::var("AWS_ENDPOINT_URL_S3")
                        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                    {
                        b = b.with_endpoint(e);
                    }
                }
                let endpoint = b
                    .get_config_value(&AmazonS3ConfigKey::Endpoint)
                    .unwrap_or_default();
                if endpoint.starts_with("http://") {
                    b = b.with_allow_http(true);
                }
                let has =
                    |k: AmazonS3ConfigKey| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
                let skip = b
                    .get_config_value(&AmazonS3ConfigKey::SkipSignature)
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                if !(skip
                    || has(AmazonS3ConfigKey::AccessKeyId)
                    || has(AmazonS3ConfigKey::WebIdentityTokenFile)
                    || has(AmazonS3ConfigKey::ContainerCredentialsRelativeUri)
                    || has(AmazonS3ConfigKey::ContainerCredentialsFullUri)
                    || has(AmazonS3ConfigKey::MetadataEndpoint))
                {
                    return Err("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_WEB_IDENTITY_TOKEN_FILE, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, AWS_METADATA_ENDPOINT for an instance role, or AWS_SKIP_SIGNATURE=true for a public bucket)".into());
                }
                if has(AmazonS3ConfigKey::AccessKeyId) && !has(AmazonS3ConfigKey::SecretAccessKey) {
                    return Err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into());
                }
                Arc::new(b.with_retry(retry).build().map_err(|e| one_line(&e))?)
            }
            "gs" => {
                let mut b = GoogleCloudStorageBuilder::from_env().with_url(&base);
                for (k, v) in &rest {
                    let key: GoogleConfigKey = k.parse().map_err(|_| unknown(k, "gcs"))?;
                    b = b.with_config(key, v);
                }
                let emulator = std::env::var("STORAGE_EMULATOR_HOST").ok();
                b = gcs_emulator(b, emulator.as_deref());
                Arc::new(b.with_retry(retry).build().map_err(|e| one_line(&e))?)
            }
            _ => {
                let mut b = MicrosoftAzureBuilder::from_env().with_url(&base);
                for (k, v) in &rest {
                    let key: AzureConfigKey = k.parse().map_err(|_| unknown(k, "azure"))?;
                    b = b.with_config(key, v);
                }
                // The account comes from the URL (`container@account.…`), the
                // environment or the options; only the build knows.
                let store = b.with_retry(retry).build().map_err(|e| {
                    let text = one_line(&e);
                    if text.contains("Account must be specified") {
                        "no Azure storage account: set AZURE_STORAGE_ACCOUNT_NAME, name it in the URL (az://container@account.blob.core.windows.net/…), or set AZURE_STORAGE_USE_EMULATOR=true for Azurite".to_string()
                    } else {
                        text
                    }
                })?;
                Arc::new(store)
            }
        };
        let prefix = Key::parse(key.trim_end_matches('/'))
            .map_err(|e| format!("`{url}` is not a valid object key: {e}"))?;
        Ok(Remote {
            url: url.to_string(),
            base,
            store,
            prefix,
        })
    }

    /// The URL of a key, for messages and the manifest.
    pub fn display(&self, key: &Key) -> PathBuf {
        PathBuf::from(format!("{}/{}", self.base, key.as_ref()))
    }

    /// `prefix/rel`, keeping the key bytes as they are (hive escapes included).
    ///
    /// # Errors
    /// A message when `rel` makes an invalid key (empty or `.`/`..` segments).
    pub fn child(&self, rel: &str) -> std::result::Result<Key, String> {
        let mut k = self.prefix.as_ref().to_string();
        if !k.is_empty() {
            k.push('/');
        }
        k.push_str(rel);
        Key::parse(&k).map_err(|e| format!("`{k}` is not a valid object key: {e}"))
    }

    /// Every object under `prefix` (recursively), sorted by key.
    ///
    /// # Errors
    /// The store's error (missing bucket, no permission, unreachable).
    pub fn list(&self, prefix: &Key) -> std::result::Result<Vec<ObjectMeta>, object_store::Error> {
        let prefix = (!prefix.as_ref().is_empty()).then_some(prefix);
        let mut out: Vec<ObjectMeta> = block_on(self.store.list(prefix).try_collect())?;
        out.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(out)
    }

    /// The metadata of one object, `None` if it does not exist.
    ///
    /// # Errors
    /// The store's error other than "not found".
    pub fn head(&self, key: &Key) -> std::result::Result<Option<ObjectMeta>, object_store::Error> {
        match block_on(self.store.head(key)) {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a small object in one request.
    ///
    /// # Errors
    /// The store's error.
    pub fn put(&self, key: &Key, data: Vec<u8>) -> std::result::Result<(), object_store::Error> {
        block_on(self.store.put(key, PutPayload::from(data))).map(|_| ())
    }

    /// Deletes objects (missing ones are not an error).
    ///
    /// # Errors
    /// The first error of the store other than "not found".
    pub fn delete(&self, keys: &[Key]) -> std::result::Result<(), object_store::Error> {
        block_on(delete_all(self.store.as_ref(), keys.to_vec()))
    }
}

/// Deletes objects with the store's bulk requests (S3 `DeleteObjects`, up to
/// 1000 keys a request); missing ones are not an error.
///
/// # Errors
/// The first error of the store other than "not found".
pub async fn delete_all(
    store: &dyn ObjectStore,
    keys: Vec<Key>,
) -> std::result::Result<(), object_store::Error> {
    let mut results = store.delete_stream(Box::pin(futures_util::stream::iter(
        keys.into_iter().map(Ok),
    )));
    while let Some(r) = results.next().await {
        match r {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads a Parquet footer with range requests: a 64 KiB suffix first, then
/// exactly the bytes the footer says it needs.
///
/// # Errors
/// A message naming what failed (request or decoding).
pub fn read_footer(
    store: &dyn ObjectStore,
    key: &Key,
    size: u64,
) -> std::result::Result<parquet::file::metadata::ParquetMetaData, String> {
    use parquet::errors::ParquetError;
    use parquet::file::metadata::ParquetMetaDataReader;
    let fetch = |n: u64| -> std::result::Result<Bytes, String> {
        let n = n.min(size);
        block_on(store.get_range(key, size - n..size)).map_err(|e| one_line(&e))
    };
    let mut bytes = fetch(64 << 10)?;
    let mut reader = ParquetMetaDataReader::new();
    loop {
        match reader.try_parse_sized(&bytes, size) {
            Ok(()) => break,
            Err(ParquetError::NeedMoreData(needed)) if (needed as u64) > bytes.len() as u64 => {
                bytes = fetch(needed as u64)?;
            }
            Err(e) => return Err(format!("not a readable Parquet file: {e}")),
        }
    }
    reader
        .finish()
        .map_err(|e| format!("not a readable Parquet file: {e}"))
}

/// Byte ranges of one object fetched ahead of decoding, served to the
/// Parquet reader as if they were the file (any read outside them is an error).
#[derive(Debug, Clone)]
pub struct Ranges {
    size: u64,
    /// `(offset, bytes)`, sorted and non-overlapping.
    parts: Vec<(u64, Bytes)>,
}

impl Ranges {
    /// Fetches `ranges` of `key` (adjacent ones are coalesced by the store).
    ///
    /// # Errors
    /// The store's error.
    pub fn fetch(
        store: &dyn ObjectStore,
        key: &Key,
        size: u64,
        mut ranges: Vec<std::ops::Range<u64>>,
    ) -> std::result::Result<Ranges, object_store::Error> {
        ranges.sort_by_key(|r| r.start);
        // Merge overlapping ranges so that every read falls inside one part.
        let mut merged: Vec<std::ops::Range<u64>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        let data = block_on(store.get_ranges(key, &merged))?;
        Ok(Ranges {
            size,
            parts: merged.iter().map(|r| r.start).zip(data).collect(),
        })
    }

    fn slice(&self, start: u64, len: Option<usize>) -> parquet::errors::Result<Bytes> {
        let i = self.parts.partition_point(|(off, _)| *off <= start);
        if i > 0 {
            let (off, bytes) = &self.parts[i - 1];
            let from = (start - off) as usize;
            let to = len.map_or(bytes.len(), |l| from + l);
            if to <= bytes.len() {
                return Ok(bytes.slice(from..to));
            }
        }
        Err(parquet::errors::ParquetError::General(format!(
            "read at offset {start} outside the fetched column chunks"
        )))
    }
}

impl Length for Ranges {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for Ranges {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}

/// A `Write` that streams into a multipart upload: parts of [`CHUNK_BYTES`]
/// go out as they fill, at most [`PARTS_IN_FLIGHT`] at a time. Dropped
/// without [`Upload::finish`], the upload is aborted.
pub struct Upload {
    inner: Option<WriteMultipart>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload").finish_non_exhaustive()
    }
}

impl Upload {
    /// Starts a multipart upload to `key`.
    ///
    /// # Errors
    /// The store's error.
    pub fn start(store: &dyn ObjectStore, key: &Key) -> std::io::Result<Upload> {
        let upload = block_on(store.put_multipart(key)).map_err(io_error)?;
        Ok(Upload {
            inner: Some(WriteMultipart::new_with_chunk_size(upload, CHUNK_BYTES)),
        })
    }

    /// Uploads the last part and completes the upload.
    ///
    /// # Errors
    /// The store's error (the upload is aborted).
    pub fn finish(&mut self) -> std::io::Result<()> {
        match self.inner.take() {
            Some(w) => block_on(w.finish()).map(|_| ()).map_err(io_error),
            None => Ok(()),
        }
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let w = self
            .inner
            .as_mut()
            .ok_or_else(|| std::io::Error::other("upload already finished"))?;
        block_on(w.wait_for_capacity(PARTS_IN_FLIGHT)).map_err(io_error)?;
        // `write` spawns part uploads onto the runtime.
        let _guard = runtime().enter();
        w.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(w) = self.inner.take() {
            let _ = block_on(w.abort());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_paths_and_urls() {
        assert_eq!(
            classify("data/x").unwrap(),
            PathKind::Local(PathBuf::from("data/x"))
        );
        assert_eq!(
            classify("file:///tmp/a%20b").unwrap(),
            PathKind::Local(PathBuf::from("/tmp/a b"))
        );
        assert_eq!(
            classify("S3://bucket/pre/fix/").unwrap(),
            PathKind::Remote("s3://bucket/pre/fix".into())
        );
        assert!(classify("hdfs://x/y")
            .unwrap_err()
            .contains("unsupported URL scheme"));
        assert!(classify("gs:///nobucket")
            .unwrap_err()
            .contains("names no bucket"));
        assert_eq!(remote_url(Path::new("az://c/p")), Some("az://c/p"));
        assert_eq!(remote_url(Path::new("/local/s3:/x")), None);
    }

    #[test]
    fn ranges_serve_only_what_was_fetched() {
        let r = Ranges {
            size: 100,
            parts: vec![
                (10, Bytes::from_static(b"0123456789")),
                (40, Bytes::from_static(b"abcdef")),
            ],
        };
        assert_eq!(&r.get_bytes(12, 3).unwrap()[..], b"234");
        assert_eq!(&r.get_bytes(40, 6).unwrap()[..], b"abcdef");
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut r.get_read(43).unwrap(), &mut rest).unwrap();
        assert_eq!(rest, b"def");
        assert!(r.get_bytes(18, 5).is_err()); // runs past the first range
        assert!(r.get_bytes(5, 2).is_err()); // before any range
        assert!(r.get_bytes(30, 1).is_err()); // between ranges
        assert_eq!(r.len(), 100);
    }

    fn generic(store: &'static str, text: &str) -> object_store::Error {
        object_store::Error::Generic {
            store,
            source: text.into(),
        }
    }

    #[test]
    fn describe_gives_the_service_message_in_one_line() {
        let azure = generic(
            "MicrosoftAzure",
            "Error performing list request: Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?><Error><Code>ContainerNotFound</Code><Message>The specified container does not exist.\nRequestId:5c1e\nTime:2026-11-28T03:11:38.446Z</Message></Error>",
        );
        assert_eq!(
            describe(&azure),
            "ContainerNotFound: The specified container does not exist."
        );
        let gcs = generic(
            "GCS",
            "Error performing token request: Error performing GET http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token",
        );
        let text = describe(&gcs);
        assert!(
            text.starts_with(
                "no usable Google Cloud credentials: set GOOGLE_APPLICATION_CREDENTIALS"
            ),
            "{text}"
        );
        assert!(text.contains("169.254.169.254"), "{text}");
        let azure = generic(
            "MicrosoftAzure",
            "Error performing token request: 403 Forbidden",
        );
        assert!(describe(&azure).starts_with("no usable Azure credentials"));
        assert!(!describe(&azure).contains('\n'));
        let s3 = generic("S3", "Error performing token request: 500");
        assert_eq!(
            describe(&s3),
            "Generic S3 error: Error performing token request: 500"
        );
    }

    #[test]
    fn storage_emulator_host_points_gcs_at_the_emulator() {
        install_tls_provider();
        let b = GoogleCloudStorageBuilder::new().with_url("gs://bucket");
        let store = gcs_emulator(b, Some("127.0.0.1:1"))
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            })
            .build()
            .unwrap();
        // Anonymous, plain http, the emulator's address: the request fails to
        // connect there (nothing listens on port 1) instead of asking the
        // metadata server for a token or refusing http.
        let err = block_on(store.get(&Key::from("k")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("http://127.0.0.1:1/bucket/k"), "{err}");
        assert!(!err.contains("token"), "{err}");
        let err = block_on(store.list(None).try_collect::<Vec<_>>())
            .unwrap_err()
            .to_string();
        assert!(err.contains("127.0.0.1:1"), "{err}");
        // No emulator: the builder is left as it was.
        let b = gcs_emulator(GoogleCloudStorageBuilder::new(), Some(""));
        assert_eq!(b.get_config_value(&GoogleConfigKey::BaseUrl), None);
    }

    #[test]
    fn storage_options_retry_keys() {
        let mut o = BTreeMap::new();
        o.insert("max_retries".to_string(), "3".to_string());
        o.insert("retry_timeout".to_string(), "2.5".to_string());
        o.insert("AWS_REGION".to_string(), "eu-west-1".to_string());
        let (retry, rest) = split_options(&o).unwrap();
        assert_eq!(retry.max_retries, 3);
        assert_eq!(retry.retry_timeout, Duration::from_millis(2500));
        assert_eq!(
            rest,
            vec![("aws_region".to_string(), "eu-west-1".to_string())]
        );
        o.insert("max_retries".to_string(), "many".to_string());
        assert!(split_options(&o).unwrap_err().contains("max_retries"));
        let mut bad = BTreeMap::new();
        bad.insert("no_such_option".to_string(), "1".to_string());
        bad.insert("aws_access_key_id".to_string(), "k".to_string());
        bad.insert("aws_secret_access_key".to_string(), "s".to_string());
        let err = Remote::open("s3://bucket/x", &bad).unwrap_err();
        assert!(
            err.contains("unknown storage option `no_such_option`"),
            "{err}"
        );
    }
}
