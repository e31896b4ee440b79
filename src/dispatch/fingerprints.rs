//! Sets of alert fingerprints sized for the common case of a group holding one or a few alerts: `Members`, a
//! group's current members (a sorted vector while small, a B-tree beyond), and `Fingerprints`, the sorted, fixed
//! list a notification log entry keeps.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::alert::Fingerprint;

/// Members kept in a sorted vector up to this many; a B-tree beyond.
const FEW: usize = 32;

/// A group's members. Most groups hold one alert: a vector of one costs 8 bytes where a B-tree node costs over 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Members {
    /// Sorted, without repeats, at most `FEW`.
    Few(Vec<Fingerprint>),
    Many(BTreeSet<Fingerprint>),
}

impl Default for Members {
    fn default() -> Self {
        Members::Few(Vec::new())
    }
}

impl Members {
    /// Adds `fingerprint`; false when it was a member already.
    pub fn insert(&mut self, fingerprint: Fingerprint) -> bool {
        match self {
            Members::Few(few) => match few.binary_search(&fingerprint) {
                Ok(_) => false,
                Err(at) if few.len() < FEW => {
                    if few.capacity() == few.len() {
                        // Grow by one at a time while small: most groups stay at one or two members.
                        few.reserve_exact(few.len().max(1));
                    }
                    few.insert(at, fingerprint);
                    true
                }
                Err(_) => {
                    let mut many: BTreeSet<Fingerprint> = few.drain(..).collect();
                    many.insert(fingerprint);
                    *self = Members::Many(many);
                    true
                }
            },
            Members::Many(many) => many.insert(fingerprint),
        }
    }

    /// Removes `fingerprint`; false when it was not a member.
    pub fn remove(&mut self, fingerprint: &Fingerprint) -> bool {
        match self {
            Members::Few(few) => match few.binary_search(fingerprint) {
                Ok(at) => {
                    few.remove(at);
                    if few.is_empty() {
                        *few = Vec::new();
                    }
                    true
                }
                Err(_) => false,
            },
            Members::Many(many) => {
                let removed = many.remove(fingerprint);
                if removed && many.len() <= FEW / 2 {
                    *self = Members::Few(many.iter().copied().collect());
                }
                removed
            }
        }
    }

    pub fn contains(&self, fingerprint: &Fingerprint) -> bool {
        match self {
            Members::Few(few) => few.binary_search(fingerprint).is_ok(),
            Members::Many(many) => many.contains(fingerprint),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Members::Few(few) => few.len(),
            Members::Many(many) => many.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members in ascending order.
    pub fn iter(&self) -> MembersIter<'_> {
        match self {
            Members::Few(few) => MembersIter::Few(few.iter()),
            Members::Many(many) => MembersIter::Many(many.iter()),
        }
    }
}

/// The members of a `Members`, in ascending order.
pub enum MembersIter<'a> {
    Few(std::slice::Iter<'a, Fingerprint>),
    Many(std::collections::btree_set::Iter<'a, Fingerprint>),
}

impl<'a> Iterator for MembersIter<'a> {
    type Item = &'a Fingerprint;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            MembersIter::Few(few) => few.next(),
            MembersIter::Many(many) => many.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            MembersIter::Few(few) => few.size_hint(),
            MembersIter::Many(many) => many.size_hint(),
        }
    }
}

impl<'a> IntoIterator for &'a Members {
    type Item = &'a Fingerprint;
    type IntoIter = MembersIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A fixed set of fingerprints, sorted without repeats, in one allocation of exactly its size (none when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprints(Box<[Fingerprint]>);

impl Fingerprints {
    pub fn contains(&self, fingerprint: &Fingerprint) -> bool {
        self.0.binary_search(fingerprint).is_ok()
    }

    /// Whether every one of `others` is in the set.
    pub fn contains_all<'a>(&self, others: impl IntoIterator<Item = &'a Fingerprint>) -> bool {
        others
            .into_iter()
            .all(|fingerprint| self.contains(fingerprint))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The fingerprints in ascending order.
    pub fn iter(&self) -> std::slice::Iter<'_, Fingerprint> {
        self.0.iter()
    }
}

impl FromIterator<Fingerprint> for Fingerprints {
    fn from_iter<I: IntoIterator<Item = Fingerprint>>(iter: I) -> Self {
        let mut all: Vec<Fingerprint> = iter.into_iter().collect();
        all.sort_unstable();
        all.dedup();
        Fingerprints(all.into_boxed_slice())
    }
}

impl<const N: usize> From<[Fingerprint; N]> for Fingerprints {
    fn from(fingerprints: [Fingerprint; N]) -> Self {
        fingerprints.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a Fingerprints {
    type Item = &'a Fingerprint;
    type IntoIter = std::slice::Iter<'a, Fingerprint>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Serialize for Fingerprints {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Fingerprints {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Fingerprint>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u64) -> Fingerprint {
        Fingerprint(n)
    }

    #[test]
    fn members_stay_sorted_and_unique_as_they_grow_into_a_tree_and_shrink_back() {
        let mut members = Members::default();
        assert!(members.is_empty());
        // An order that is neither ascending nor descending.
        let order: Vec<u64> = (0..100).map(|n| (n * 37) % 100).collect();
        for &n in &order {
            assert!(members.insert(fp(n)), "{n} is new");
            assert!(!members.insert(fp(n)), "{n} is a member already");
        }
        assert!(matches!(members, Members::Many(_)));
        assert_eq!(members.len(), 100);
        let listed: Vec<u64> = members.iter().map(|f| f.0).collect();
        assert_eq!(listed, (0..100).collect::<Vec<_>>());
        for n in 0..90 {
            assert!(members.remove(&fp(n)));
            assert!(!members.remove(&fp(n)));
            assert!(!members.contains(&fp(n)));
        }
        assert!(matches!(members, Members::Few(_)), "back to a vector");
        let listed: Vec<u64> = (&members).into_iter().map(|f| f.0).collect();
        assert_eq!(listed, (90..100).collect::<Vec<_>>());
        for n in 90..100 {
            assert!(members.contains(&fp(n)));
            assert!(members.remove(&fp(n)));
        }
        assert!(members.is_empty());
        assert_eq!(members, Members::Few(Vec::new()));
    }

    #[test]
    fn a_single_member_takes_one_slot() {
        let mut members = Members::default();
        members.insert(fp(7));
        let Members::Few(few) = &members else {
            panic!("one member is kept in a vector");
        };
        assert_eq!(few.capacity(), 1);
    }

    #[test]
    fn fingerprints_are_sorted_once_and_survive_json() {
        let set: Fingerprints = [fp(3), fp(1), fp(3), fp(2)].into_iter().collect();
        assert_eq!(set.len(), 3);
        assert!(set.contains(&fp(2)) && !set.contains(&fp(4)));
        assert!(set.contains_all(&[fp(1), fp(3)]));
        assert!(!set.contains_all(&[fp(1), fp(4)]));
        assert!(set.contains_all(&[]));
        let json = serde_json::to_string(&set).unwrap();
        let back: Fingerprints = serde_json::from_str(&json).unwrap();
        assert_eq!(back, set);
        let listed: Vec<u64> = back.iter().map(|f| f.0).collect();
        assert_eq!(listed, vec![1, 2, 3]);
        assert!(Fingerprints::default().is_empty());
    }
}
