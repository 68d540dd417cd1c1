//! Object store errors as users read them: one sentence with the
//! service's own code and message, or what to set when credentials are
//! missing.

/// What can go wrong with an object store, with its cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The client cannot be built as configured: an unknown or malformed
    /// storage option, missing credentials, an unusable URL.
    #[error("{0}")]
    Config(String),
    /// The client builder refused the configuration.
    #[error("{}", one_line(.0))]
    Build(#[source] object_store::Error),
    /// A key is not a valid object key.
    #[error("`{key}` is not a valid object key: {source}")]
    Key {
        /// The key as built.
        key: String,
        /// Why it is invalid.
        #[source]
        source: object_store::path::Error,
    },
    /// A request failed (after the client's retries).
    #[error("{}", describe(.0))]
    Request(#[source] object_store::Error),
    /// A Parquet footer read from the store cannot be decoded.
    #[error("not a readable Parquet file: {0}")]
    Footer(#[source] parquet::errors::ParquetError),
}

impl From<String> for StoreError {
    fn from(message: String) -> Self {
        StoreError::Config(message)
    }
}

impl From<&str> for StoreError {
    fn from(message: &str) -> Self {
        StoreError::Config(message.to_string())
    }
}

/// Object store errors as `std::io::Error` (the [`StoreError`] kept as its
/// source), so that they travel as [`crate::Error::Io`] (exit code 1) when
/// they happen mid-run.
pub fn io_error(e: object_store::Error) -> std::io::Error {
    let kind = match &e {
        object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => std::io::ErrorKind::PermissionDenied,
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, StoreError::Request(e))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
