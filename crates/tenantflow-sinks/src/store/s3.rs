//! S3 (or an S3-compatible server) through `object_store`: uploads are S3 multipart
//! uploads, whose id and part ETags a checkpoint records; `put_if_absent` is a
//! conditional put (`If-None-Match: *`).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion};

use super::{Listed, Store, StoreError};

/// Part size of S3 uploads: over S3's 5 MiB minimum, 16 parts to a 128 MiB file.
const S3_PART: usize = 8 << 20;

/// A bucket and a prefix in it.
pub struct S3Store {
    bucket: String,
    prefix: String,
    client: Arc<AmazonS3>,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds credentials: never print it.
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn object_error(
    op: &'static str,
    location: &str,
) -> impl FnOnce(object_store::Error) -> StoreError {
    let location = location.to_owned();
    move |source| StoreError::Object {
        op,
        location,
        source,
    }
}

impl S3Store {
    /// `bucket[/prefix]`, configured from the `AWS_*` environment.
    ///
    /// # Errors
    /// A missing bucket name, or a configuration the client rejects.
    pub fn from_env(bucket_and_prefix: &str) -> Result<Self, StoreError> {
        let (bucket, prefix) = bucket_and_prefix
            .split_once('/')
            .unwrap_or((bucket_and_prefix, ""));
        let url = format!("s3://{bucket_and_prefix}");
        if bucket.is_empty() {
            return Err(StoreError::Url {
                url,
                reason: "expected s3://BUCKET[/PREFIX]".into(),
            });
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .ok();
        if let Some(endpoint) = endpoint {
            // A custom endpoint (a local server) is addressed by path, maybe over HTTP.
            builder = builder
                .with_endpoint(&endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        let client = builder.build().map_err(|source| StoreError::Object {
            op: "configuring",
            location: url.clone(),
            source,
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tenantflow-s3")
            .enable_all()
            .build()
            .map_err(StoreError::Runtime)?;
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            client: Arc::new(client),
            runtime,
        })
    }

    fn key(&self, path: &str) -> Path {
        Path::from(super::join(&self.prefix, path))
    }

    /// Listed objects with paths relative to the prefix, sorted.
    fn listed(&self, objects: Vec<ObjectMeta>) -> Vec<Listed> {
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut out: Vec<Listed> = objects
            .into_iter()
            .map(|meta| Listed {
                path: meta
                    .location
                    .as_ref()
                    .get(strip..)
                    .unwrap_or_default()
                    .to_owned(),
                size: meta.size,
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

impl Store for S3Store {
    fn url(&self) -> String {
        format!("s3://{}", super::join(&self.bucket, &self.prefix))
    }

    fn part_size(&self) -> usize {
        S3_PART
    }

    fn put(&self, path: &str, data: Bytes) -> Result<(), StoreError> {
        let key = self.key(path);
        self.runtime
            .block_on(self.client.put(&key, PutPayload::from(data)))
            .map(drop)
            .map_err(object_error("writing", key.as_ref()))
    }

    fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool, StoreError> {
        let key = self.key(path);
        let result = self.runtime.block_on(self.client.put_opts(
            &key,
            PutPayload::from(data),
            PutMode::Create.into(),
        ));
        match result {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(object_error("creating", key.as_ref())(e)),
        }
    }

    fn put_tagged(
        &self,
        path: &str,
        data: Bytes,
        expected: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let key = self.key(path);
        let mode = match expected {
            None => PutMode::Create,
            Some(tag) => PutMode::Update(UpdateVersion {
                e_tag: Some(tag.to_owned()),
                version: None,
            }),
        };
        let result = self.runtime.block_on(self.client.put_opts(
            &key,
            PutPayload::from(data),
            mode.into(),
        ));
        match result {
            Ok(put) => put.e_tag.map(Some).ok_or_else(|| StoreError::State {
                op: "writing on a condition",
                location: key.to_string(),
                message: "the store answered without an ETag".into(),
            }),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. }
                | object_store::Error::NotFound { .. },
            ) => Ok(None),
            Err(e) => Err(object_error("writing on a condition", key.as_ref())(e)),
        }
    }

    fn get_tagged(&self, path: &str) -> Result<Option<(Bytes, String)>, StoreError> {
        let key = self.key(path);
        let result = self.runtime.block_on(async {
            match self.client.get(&key).await {
                Ok(found) => {
                    let tag = found.meta.e_tag.clone();
                    found.bytes().await.map(|bytes| Some((bytes, tag)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        match result.map_err(object_error("reading", key.as_ref()))? {
            Some((bytes, Some(tag))) => Ok(Some((bytes, tag))),
            Some((_, None)) => Err(StoreError::State {
                op: "reading with its version",
                location: key.to_string(),
                message: "the store answered without an ETag".into(),
            }),
            None => Ok(None),
        }
    }

    fn get(&self, path: &str) -> Result<Option<Bytes>, StoreError> {
        let key = self.key(path);
        let result = self.runtime.block_on(async {
            match self.client.get(&key).await {
                Ok(found) => found.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        result.map_err(object_error("reading", key.as_ref()))
    }

    fn size(&self, path: &str) -> Result<Option<u64>, StoreError> {
        let key = self.key(path);
        match self.runtime.block_on(self.client.head(&key)) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(object_error("reading metadata of", key.as_ref())(e)),
        }
    }

    fn copy(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        let (source, target) = (self.key(from), self.key(to));
        match self.runtime.block_on(self.client.copy(&source, &target)) {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(object_error("copying", source.as_ref())(e)),
        }
    }

    fn delete(&self, path: &str) -> Result<(), StoreError> {
        let key = self.key(path);
        match self.runtime.block_on(self.client.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(object_error("deleting", key.as_ref())(e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let key = self.key(prefix);
        let objects: Vec<ObjectMeta> = self
            .runtime
            .block_on(self.client.list(Some(&key)).try_collect())
            .map_err(object_error("listing", key.as_ref()))?;
        Ok(self.listed(objects))
    }

    fn list_folder(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let key = self.key(prefix);
        let listed = self
            .runtime
            .block_on(self.client.list_with_delimiter(Some(&key)))
            .map_err(object_error("listing", key.as_ref()))?;
        Ok(self.listed(listed.objects))
    }

    fn begin_upload(&self, path: &str) -> Result<String, StoreError> {
        let key = self.key(path);
        self.runtime
            .block_on(self.client.create_multipart(&key))
            .map_err(object_error("starting an upload of", key.as_ref()))
    }

    fn put_part(
        &self,
        path: &str,
        upload: &str,
        index: usize,
        _offset: u64,
        data: Bytes,
    ) -> Result<String, StoreError> {
        let key = self.key(path);
        let id = upload.to_owned();
        self.runtime
            .block_on(
                self.client
                    .put_part(&key, &id, index, PutPayload::from(data)),
            )
            .map(|part| part.content_id)
            .map_err(object_error("uploading a part of", key.as_ref()))
    }

    fn complete_upload(
        &self,
        path: &str,
        upload: &str,
        parts: &[String],
        len: u64,
    ) -> Result<(), StoreError> {
        let key = self.key(path);
        let id = upload.to_owned();
        let parts: Vec<PartId> = parts
            .iter()
            .map(|content_id| PartId {
                content_id: content_id.clone(),
            })
            .collect();
        let result = self
            .runtime
            .block_on(self.client.complete_multipart(&key, &id, parts));
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                // Completed before (a recovery re-committing): the object is there.
                match self.runtime.block_on(self.client.head(&key)) {
                    Ok(meta) if meta.size == len => Ok(()),
                    _ => Err(object_error("completing the upload of", key.as_ref())(e)),
                }
            }
        }
    }

    fn abort_upload(&self, path: &str, upload: &str) -> Result<(), StoreError> {
        let key = self.key(path);
        let id = upload.to_owned();
        match self
            .runtime
            .block_on(self.client.abort_multipart(&key, &id))
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, key = %key, "Aborting an upload failed; it may be gone.");
                Ok(())
            }
        }
    }
}
