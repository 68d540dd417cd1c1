//! Building a store client from a URL, the environment (`AWS_*`,
//! `GOOGLE_*`, `AZURE_*`) and `storage_options`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path as Key;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig, StaticCredentialProvider};

use super::{one_line, Remote, StoreError};

fn split_options(
    options: &BTreeMap<String, String>,
) -> std::result::Result<(RetryConfig, Vec<(String, String)>), StoreError> {
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
    ) -> std::result::Result<Remote, StoreError> {
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
                Arc::new(b.with_retry(retry).build().map_err(StoreError::Build)?)
            }
            "gs" => {
                let mut b = GoogleCloudStorageBuilder::from_env().with_url(&base);
                for (k, v) in &rest {
                    let key: GoogleConfigKey = k.parse().map_err(|_| unknown(k, "gcs"))?;
                    b = b.with_config(key, v);
                }
                let emulator = std::env::var("STORAGE_EMULATOR_HOST").ok();
                b = gcs_emulator(b, emulator.as_deref());
                Arc::new(b.with_retry(retry).build().map_err(StoreError::Build)?)
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
                    if one_line(&e).contains("Account must be specified") {
                        StoreError::Config("no Azure storage account: set AZURE_STORAGE_ACCOUNT_NAME, name it in the URL (az://container@account.blob.core.windows.net/…), or set AZURE_STORAGE_USE_EMULATOR=true for Azurite".into())
                    } else {
                        StoreError::Build(e)
                    }
                })?;
                Arc::new(store)
            }
        };
        let prefix = Key::parse(key.trim_end_matches('/')).map_err(|source| StoreError::Key {
            key: url.to_string(),
            source,
        })?;
        Ok(Remote {
            url: url.to_string(),
            base,
            store,
            prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::block_on;
    use futures_util::TryStreamExt;
    use object_store::ObjectStoreExt;

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
        assert_eq!(
            split_options(&o).unwrap_err().to_string(),
            "storage option `max_retries` must be a whole number, found `many`"
        );
        let mut bad = BTreeMap::new();
        bad.insert("no_such_option".to_string(), "1".to_string());
        bad.insert("aws_access_key_id".to_string(), "k".to_string());
        bad.insert("aws_secret_access_key".to_string(), "s".to_string());
        let err = Remote::open("s3://bucket/x", &bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown storage option `no_such_option` for s3 (the object_store crate's s3 keys are accepted, plus max_retries and retry_timeout)"
        );
    }
}
