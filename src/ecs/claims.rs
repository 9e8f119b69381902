//! Which services a reconcile or roll-back is running on, among the `Aws` values of one
//! `Clients` (one per daemon run or command): never two at once in one process. Between
//! processes, the lease table (`leases`) decides.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use super::Aws;

/// The claimed services of one `Clients`, shared by every `Aws` it hands out.
#[derive(Clone, Default)]
pub(super) struct Claims(Arc<Mutex<BTreeSet<String>>>);

/// A service's claim; released when dropped.
pub struct Claim {
    claims: Claims,
    key: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

impl Aws {
    /// The service's key: endpoint (the simulator's differ per test), region, cluster, name.
    pub fn service_key(&self, cluster: &str, service: &str) -> String {
        let c = &self.settings;
        format!(
            "{} {} {cluster}/{service}",
            c.endpoint_url.as_deref().unwrap_or("aws"),
            c.region
        )
    }

    /// Claims `service` for one reconcile or roll-back; `None` while another holds it.
    pub fn claim_service(&self, cluster: &str, service: &str) -> Option<Claim> {
        let key = self.service_key(cluster, service);
        let mut set = self.claims.0.lock().unwrap_or_else(PoisonError::into_inner);
        set.insert(key.clone()).then(|| Claim {
            claims: self.claims.clone(),
            key,
        })
    }
}
