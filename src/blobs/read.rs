//! Ranged reads, from the data dir or the bucket. For a local store, a blocking reader thread streams large chunks from the
//! file; `object_store`'s own stream reads 8 KiB per blocking task, which cannot keep up
//! with a fast disk.

use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::ops::Range;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt as _};
use object_store::{GetOptions, GetRange, GetResultPayload};
use tokio::sync::mpsc;

use super::{BlobError, BlobStore};
use crate::domain::Digest;

const READ_CHUNK: usize = 256 * 1024;
const QUEUE_CHUNKS: usize = 4;

/// The bytes of a blob range, as a stream.
pub type BlobStream = BoxStream<'static, io::Result<Bytes>>;

impl BlobStore {
    /// Streams `range` of a blob. The range must lie within the blob.
    pub async fn read(&self, digest: &Digest, range: Range<u64>) -> Result<BlobStream, BlobError> {
        if range.is_empty() {
            return Ok(futures_util::stream::empty().boxed());
        }
        let options = GetOptions { range: Some(GetRange::Bounded(range.clone())), ..Default::default() };
        let (store, key) = self.home(digest);
        let result = match store.get_opts(&key, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Err(BlobError::Missing(*digest)),
            Err(e) => return Err(e.into()),
        };
        Ok(match result.payload {
            GetResultPayload::File(file, _) => read_file(file, range),
            GetResultPayload::Stream(stream) => stream.map(|chunk| chunk.map_err(io::Error::other)).boxed(),
        })
    }
}

pub(super) fn read_file(mut file: std::fs::File, range: Range<u64>) -> BlobStream {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(QUEUE_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let send = |item| tx.blocking_send(item).is_ok();
        if let Err(e) = file.seek(SeekFrom::Start(range.start)) {
            send(Err(e));
            return;
        }
        let mut remaining = range.end - range.start;
        while remaining > 0 {
            let want = remaining.min(READ_CHUNK as u64);
            // read_to_end fills spare capacity without zeroing it first.
            let mut buf = Vec::with_capacity(READ_CHUNK);
            let item = match (&mut file).take(want).read_to_end(&mut buf) {
                Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob is shorter than its catalog size")),
                Ok(n) => {
                    remaining -= n as u64;
                    Ok(Bytes::from(buf))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            // A failed send means the client went away: stop reading.
            if !send(item) || failed {
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}
