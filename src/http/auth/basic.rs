//! Basic auth against `basic_auth_users` (bcrypt hashes): each check runs on the blocking pool (bcrypt costs tens
//! of milliseconds by design), an unknown user costs as much as a known one, and a password that verified is
//! remembered by a SHA-256 of user, password and hash, so a sender that authenticates on every request pays the
//! cost once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::config::Secret;

/// How many verified passwords are remembered; past it the memory starts over.
const REMEMBERED: usize = 1024;

#[derive(Debug, Default)]
pub struct BasicAuth {
    verified: Mutex<HashSet<[u8; 32]>>,
}

fn fingerprint(user: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut digest = Sha256::new();
    for part in [user, password, hash] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    digest.finalize().into()
}

impl BasicAuth {
    /// Whether `user` is one of `users` and `password` matches its hash.
    pub async fn verify(
        &self,
        users: &BTreeMap<String, Secret>,
        user: &str,
        password: &str,
    ) -> bool {
        let known = users.get(user);
        // An unknown user is checked against another user's hash, so the answer takes as long.
        let Some(hash) = known.or_else(|| users.values().next()) else {
            return false;
        };
        let key = fingerprint(user, password, hash.expose());
        if known.is_some()
            && self
                .verified
                .lock()
                .is_ok_and(|verified| verified.contains(&key))
        {
            return true;
        }
        let (password, hash) = (password.to_owned(), hash.expose().to_owned());
        let matches =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if !(matches && known.is_some()) {
            return false;
        }
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= REMEMBERED {
                verified.clear();
            }
            verified.insert(key);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_against_their_user_hash_only() {
        let alice = bcrypt::hash("wonderland", 4).unwrap();
        let bob = bcrypt::hash("builder", 4).unwrap();
        let users = BTreeMap::from([
            ("alice".to_owned(), Secret::new(alice)),
            ("bob".to_owned(), Secret::new(bob)),
        ]);
        let auth = BasicAuth::default();
        assert!(auth.verify(&users, "alice", "wonderland").await);
        assert!(
            auth.verify(&users, "alice", "wonderland").await,
            "remembered"
        );
        assert!(!auth.verify(&users, "alice", "builder").await);
        assert!(!auth.verify(&users, "bob", "wonderland").await);
        assert!(
            !auth.verify(&users, "carol", "wonderland").await,
            "unknown user with another's password"
        );
        assert!(!auth.verify(&BTreeMap::new(), "alice", "wonderland").await);
    }
}
