//! Leader election for replicas sharing an etcd cluster, on an etcd lease:
//! the leader holds a key bound to its lease and renews the lease; when it
//! stops renewing (crash, partition) the key goes with the lease after its
//! TTL and another replica takes it.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::etcd::{self, EtcdClient, EtcdError, pb};

/// One replica's candidacy for `key`.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    client: EtcdClient,
    key: String,
    identity: String,
    ttl: i64,
}

/// Held while this replica leads; dropping it stops renewing (the lead
/// passes on after the TTL), [`resign`](Leadership::resign) hands it over
/// at once.
#[derive(Debug)]
pub struct Leadership {
    client: EtcdClient,
    lease: i64,
    revision: i64,
    lost: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl LeaderElection {
    /// A candidacy for `key` as `identity`, with a lease of `ttl` seconds
    /// (at least 1).
    pub fn new(client: EtcdClient, key: &str, identity: &str, ttl: i64) -> Self {
        LeaderElection {
            client,
            key: key.to_owned(),
            identity: identity.to_owned(),
            ttl: ttl.max(1),
        }
    }

    /// Who leads now, if anyone.
    pub async fn leader(&self) -> Result<Option<String>, EtcdError> {
        let (kv, _) = self.client.get(self.key.as_bytes(), 0).await?;
        Ok(kv.map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
    }

    /// Waits until this replica leads.
    pub async fn acquire(&self) -> Result<Leadership, EtcdError> {
        let period = Duration::from_millis((self.ttl as u64 * 1000 / 3).max(100));
        let lease = self.client.grant(self.ttl).await?;
        loop {
            let txn = pb::TxnRequest {
                compare: vec![etcd::absent(self.key.as_bytes())],
                success: vec![etcd::put(
                    self.key.as_bytes(),
                    self.identity.clone().into_bytes(),
                    lease,
                )],
                failure: Vec::new(),
            };
            let (won, revision) = self.client.txn(txn).await?;
            if won {
                tracing::info!(key = %self.key, identity = %self.identity, "leading");
                let (tx, lost) = watch::channel(false);
                let renewer = tokio::spawn(renew(self.clone(), lease, tx));
                return Ok(Leadership {
                    client: self.client.clone(),
                    lease,
                    revision,
                    lost,
                    renewer,
                });
            }
            // Someone leads: keep our lease alive and wait for the key to go.
            let mut stream = self
                .client
                .watch(self.key.as_bytes(), &[], revision + 1)
                .await?;
            loop {
                if self.client.keep_alive(lease).await? <= 0 {
                    return Err(EtcdError::Protocol("lease expired while waiting".into()));
                }
                match tokio::time::timeout(period, stream.next()).await {
                    Err(_) => continue,
                    Ok(Ok(Some(resp))) => {
                        if resp
                            .events
                            .iter()
                            .any(|e| e.r#type == pb::event::EventType::Delete as i32)
                            || resp.canceled
                        {
                            break;
                        }
                    }
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => return Err(e),
                }
            }
        }
    }
}

/// Renews the lease every third of its TTL and checks the key is still
/// ours. Reports the lead lost, before another replica can hold it, when:
/// a renewal is refused; no renewal succeeded by the time the lease could
/// have run out on etcd's clock (counted from when the last successful
/// renewal was sent, less a safety margin); or the key is gone or someone
/// else's.
async fn renew(election: LeaderElection, lease: i64, lost: watch::Sender<bool>) {
    let ttl = Duration::from_secs(election.ttl as u64);
    // Stop acting a little before etcd could let the lease go.
    let margin = (ttl / 5).max(Duration::from_millis(200));
    let mut valid_until = Instant::now() + ttl.saturating_sub(margin);
    loop {
        tokio::time::sleep(ttl / 3).await;
        let sent = Instant::now();
        let Some(budget) = valid_until.checked_duration_since(sent) else {
            break;
        };
        let renewed = tokio::time::timeout(budget, async {
            let left = election.client.keep_alive(lease).await?;
            let (kv, _) = election.client.get(election.key.as_bytes(), 0).await?;
            let ours =
                kv.is_some_and(|kv| kv.lease == lease && kv.value == election.identity.as_bytes());
            Ok::<_, EtcdError>((left, ours))
        })
        .await;
        match renewed {
            Ok(Ok((left, true))) if left > 0 => {
                valid_until = sent + Duration::from_secs(left as u64).saturating_sub(margin);
            }
            Ok(Ok((_, false))) => {
                tracing::warn!(key = %election.key, "leader key gone or taken over");
                break;
            }
            Ok(Ok(_)) => break,
            Ok(Err(e)) => tracing::warn!(error = %e, "leader lease renewal failed"),
            Err(_) => break,
        }
    }
    tracing::warn!("leadership lost");
    let _ = lost.send(true);
}

impl Leadership {
    /// Whether the lead is still held.
    pub fn is_leader(&self) -> bool {
        !*self.lost.borrow()
    }

    /// The etcd revision at which this lead was taken: a fencing token
    /// that grows with every new leader (compare it to refuse writes of a
    /// deposed one).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Completes when the lead is lost (stop acting as leader then).
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|l| *l).await;
    }

    /// Gives the lead up now (the key goes with the lease).
    pub async fn resign(self) -> Result<(), EtcdError> {
        self.renewer.abort();
        self.client.revoke(self.lease).await
    }
}
