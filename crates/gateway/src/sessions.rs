//! The sessions this node holds, by account and client id: one session per client id
//! (a new connection takes the old one over, as AWS IoT Core does), and the list the
//! enforcement sweep checks against the registry.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

/// Why the gateway ends a session it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kick {
    /// Another connection took the client id.
    TakenOver,
    /// The certificate is no longer ACTIVE (or no longer registered).
    CertificateInactive,
    /// The server is shutting down.
    Shutdown,
}

struct Entry {
    id: String,
    certificate_id: String,
    kick: mpsc::Sender<Kick>,
}

#[derive(Default)]
pub(crate) struct Sessions {
    by_client: Mutex<HashMap<(String, String), Entry>>,
}

impl Sessions {
    /// Registers a session, kicking the one it takes over (same account and client id).
    pub(crate) fn insert(
        &self,
        account: &str,
        client_id: &str,
        id: &str,
        certificate_id: &str,
        kick: mpsc::Sender<Kick>,
    ) {
        let old = self.lock().insert(
            (account.to_owned(), client_id.to_owned()),
            Entry {
                id: id.to_owned(),
                certificate_id: certificate_id.to_owned(),
                kick,
            },
        );
        if let Some(old) = old {
            let _ = old.kick.try_send(Kick::TakenOver);
        }
    }

    /// Kicks the session of this client id, if this node holds one (before the new
    /// connection is set up, so the old one records the takeover as its reason).
    pub(crate) fn take_over(&self, account: &str, client_id: &str) {
        if let Some(e) = self.lock().get(&(account.to_owned(), client_id.to_owned())) {
            let _ = e.kick.try_send(Kick::TakenOver);
        }
    }

    /// Removes the session if it is still the one registered under its client id.
    pub(crate) fn remove(&self, account: &str, client_id: &str, id: &str) {
        let mut map = self.lock();
        let key = (account.to_owned(), client_id.to_owned());
        if map.get(&key).is_some_and(|e| e.id == id) {
            map.remove(&key);
        }
    }

    /// (account, certificate id) of every session held, each pair once.
    pub(crate) fn certificates(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .lock()
            .iter()
            .map(|((account, _), e)| (account.clone(), e.certificate_id.clone()))
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Kicks the sessions of a certificate in an account.
    pub(crate) fn kick_certificate(&self, account: &str, certificate_id: &str) -> usize {
        let map = self.lock();
        let mut n = 0;
        for ((a, _), e) in map.iter() {
            if a == account && e.certificate_id == certificate_id {
                let _ = e.kick.try_send(Kick::CertificateInactive);
                n += 1;
            }
        }
        n
    }

    pub(crate) fn kick_all(&self, why: Kick) {
        for e in self.lock().values() {
            let _ = e.kick.try_send(why);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Entry>> {
        // A panic while holding this lock cannot leave the map half-changed (each
        // operation is one map call), so a poisoned lock is still good to use.
        self.by_client.lock().unwrap_or_else(|e| e.into_inner())
    }
}
