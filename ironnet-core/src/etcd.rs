//! A small etcd v3 client: what the etcd store and leader election need
//! (ranges, transactions, watches, leases), over tonic with messages
//! generated from `proto/etcd.proto`.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

/// The generated etcd messages and clients (etcd's field numbers and
/// service paths).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("etcdserverpb");
}

use pb::kv_client::KvClient;
use pb::lease_client::LeaseClient;
use pb::watch_client::WatchClient;

/// The largest response the client accepts (a page of a range).
const MAX_MESSAGE: usize = 64 << 20;
/// Keys per page when ranging over a prefix.
const PAGE: i64 = 500;

/// An etcd call that failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// An endpoint that is not a URL.
    #[error("etcd endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// As given.
        endpoint: String,
        /// Why it is refused.
        reason: String,
    },
    /// No endpoint given.
    #[error("no etcd endpoint given")]
    NoEndpoint,
    /// The call failed (unreachable, timeout, refused).
    #[error("etcd: {0}")]
    Rpc(#[from] tonic::Status),
    /// etcd answered something this client cannot use.
    #[error("etcd: {0}")]
    Protocol(String),
}

/// A connection to an etcd cluster (lazy: the first call connects; calls
/// are balanced over the endpoints).
#[derive(Debug, Clone)]
pub struct EtcdClient {
    kv: KvClient<Channel>,
    watch: WatchClient<Channel>,
    lease: LeaseClient<Channel>,
}

/// The key just past every key that starts with `prefix` (etcd's
/// `range_end` for a prefix range).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the keyspace.
    vec![0]
}

impl EtcdClient {
    /// A client for `endpoints` (`host:port` or `http://host:port`).
    pub fn connect(endpoints: &[String]) -> Result<Self, EtcdError> {
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoint);
        }
        let mut list = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            let url = if e.contains("://") {
                e.clone()
            } else {
                format!("http://{e}")
            };
            let ep = Endpoint::from_shared(url).map_err(|err| EtcdError::Endpoint {
                endpoint: e.clone(),
                reason: err.to_string(),
            })?;
            list.push(
                ep.connect_timeout(Duration::from_secs(3))
                    // Until the response head (streams run on).
                    .timeout(Duration::from_secs(10))
                    .tcp_nodelay(true)
                    // Find half-open connections (a watch would wait on
                    // them forever).
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_timeout(Duration::from_secs(5))
                    .keep_alive_while_idle(true),
            );
        }
        let channel = if list.len() == 1 {
            list.remove(0).connect_lazy()
        } else {
            Channel::balance_list(list.into_iter())
        };
        Ok(EtcdClient {
            kv: KvClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            watch: WatchClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE),
            lease: LeaseClient::new(channel),
        })
    }

    /// One key at `revision` (0: latest), and the revision read.
    pub async fn get(
        &self,
        key: &[u8],
        revision: i64,
    ) -> Result<(Option<pb::KeyValue>, i64), EtcdError> {
        let resp = self
            .kv
            .clone()
            .range(pb::RangeRequest {
                key: key.to_vec(),
                revision,
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok((resp.kvs.into_iter().next(), revision_of(resp.header)?))
    }

    /// Every key in `[from, end)` at one revision (0: latest), in key
    /// order, fetched page by page; and that revision.
    pub async fn range(
        &self,
        from: &[u8],
        end: &[u8],
        revision: i64,
    ) -> Result<(Vec<pb::KeyValue>, i64), EtcdError> {
        let mut out = Vec::new();
        let mut start = from.to_vec();
        let mut revision = revision;
        loop {
            let resp = self
                .kv
                .clone()
                .range(pb::RangeRequest {
                    key: start.clone(),
                    range_end: end.to_vec(),
                    limit: PAGE,
                    revision,
                    ..Default::default()
                })
                .await?
                .into_inner();
            if revision == 0 {
                revision = revision_of(resp.header)?;
            }
            let more = resp.more;
            if let Some(last) = resp.kvs.last() {
                start = last.key.clone();
                start.push(0);
            }
            out.extend(resp.kvs);
            if !more {
                return Ok((out, revision));
            }
        }
    }

    /// Runs a transaction; returns whether its comparisons held and the
    /// revision after it.
    pub async fn txn(&self, txn: pb::TxnRequest) -> Result<(bool, i64), EtcdError> {
        let resp = self.kv.clone().txn(txn).await?.into_inner();
        Ok((resp.succeeded, revision_of(resp.header)?))
    }

    /// Discards the history before `revision` (every key of the cluster,
    /// as etcd compaction does).
    pub async fn compact(&self, revision: i64) -> Result<(), EtcdError> {
        self.kv
            .clone()
            .compact(pb::CompactionRequest {
                revision,
                physical: false,
            })
            .await?;
        Ok(())
    }

    /// Watches `[from, end)` from `start_revision`: every change, in
    /// order. The stream ends when the watch is canceled (look at
    /// `compact_revision`) or the connection goes.
    pub async fn watch(
        &self,
        from: &[u8],
        end: &[u8],
        start_revision: i64,
    ) -> Result<WatchStream, EtcdError> {
        let (tx, rx) = mpsc::channel(1);
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: from.to_vec(),
                    range_end: end.to_vec(),
                    start_revision,
                    ..Default::default()
                },
            )),
        };
        tx.send(create)
            .await
            .map_err(|_| EtcdError::Protocol("watch request not sent".into()))?;
        let inbound = self
            .watch
            .clone()
            .watch(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(WatchStream {
            inbound,
            _requests: tx,
        })
    }

    /// A lease of `ttl` seconds; its id.
    pub async fn grant(&self, ttl: i64) -> Result<i64, EtcdError> {
        let resp = self
            .lease
            .clone()
            .lease_grant(pb::LeaseGrantRequest { ttl, id: 0 })
            .await?
            .into_inner();
        if !resp.error.is_empty() {
            return Err(EtcdError::Protocol(resp.error));
        }
        Ok(resp.id)
    }

    /// Renews lease `id` once; its remaining TTL (0 or less: it expired).
    pub async fn keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        let (tx, rx) = mpsc::channel(1);
        tx.send(pb::LeaseKeepAliveRequest { id })
            .await
            .map_err(|_| EtcdError::Protocol("keep-alive not sent".into()))?;
        drop(tx);
        let mut inbound = self
            .lease
            .clone()
            .lease_keep_alive(ReceiverStream::new(rx))
            .await?
            .into_inner();
        match inbound.message().await? {
            Some(resp) => Ok(resp.ttl),
            None => Err(EtcdError::Protocol("keep-alive unanswered".into())),
        }
    }

    /// Ends lease `id` (its keys go with it).
    pub async fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.lease
            .clone()
            .lease_revoke(pb::LeaseRevokeRequest { id })
            .await?;
        Ok(())
    }
}

fn revision_of(header: Option<pb::ResponseHeader>) -> Result<i64, EtcdError> {
    header
        .map(|h| h.revision)
        .ok_or_else(|| EtcdError::Protocol("response without header".into()))
}

/// The responses of one watch.
#[derive(Debug)]
pub struct WatchStream {
    inbound: tonic::Streaming<pb::WatchResponse>,
    _requests: mpsc::Sender<pb::WatchRequest>,
}

impl WatchStream {
    /// The next response; `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<pb::WatchResponse>, EtcdError> {
        Ok(self.inbound.message().await?)
    }
}

/// A comparison that key `key` was last modified at `revision` (0: the
/// key does not exist).
pub fn mod_revision_is(key: &[u8], revision: i64) -> pb::Compare {
    pb::Compare {
        result: pb::compare::CompareResult::Equal as i32,
        target: pb::compare::CompareTarget::Mod as i32,
        key: key.to_vec(),
        target_union: Some(pb::compare::TargetUnion::ModRevision(revision)),
    }
}

/// A comparison that key `key` does not exist.
pub fn absent(key: &[u8]) -> pb::Compare {
    pb::Compare {
        result: pb::compare::CompareResult::Equal as i32,
        target: pb::compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(pb::compare::TargetUnion::CreateRevision(0)),
    }
}

/// A put of `value` at `key`, bound to `lease` (0: none).
pub fn put(key: &[u8], value: Vec<u8>, lease: i64) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
            key: key.to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

/// A delete of `[key, end)` (empty `end`: just `key`).
pub fn delete(key: &[u8], end: &[u8]) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestDeleteRange(
            pb::DeleteRangeRequest {
                key: key.to_vec(),
                range_end: end.to_vec(),
                prev_kv: false,
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn bad_endpoints_are_refused() {
        assert!(matches!(
            EtcdClient::connect(&[]),
            Err(EtcdError::NoEndpoint)
        ));
    }
}
