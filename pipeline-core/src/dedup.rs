//! Duplicate suppression by content hash, independent of the backend.
//!
//! Invariant: of the items in one batch that share a key, exactly the first is processed; the others
//! are counted as repeats. Across batches, the backend's unique index on the same key decides.

use std::collections::HashMap;

/// Keeps the first item of each key, in order, and counts the extra repeats of each key seen more
/// than once.
pub fn first_of_each<T, K: std::hash::Hash + Eq + Copy>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, HashMap<K, i64>) {
    let mut seen: HashMap<K, i64> = HashMap::new();
    let mut firsts = Vec::new();
    for item in items {
        let count = seen.entry(key(&item)).or_insert(0);
        if *count == 0 {
            firsts.push(item);
        }
        *count += 1;
    }
    seen.retain(|_, n| {
        *n -= 1;
        *n > 0
    });
    (firsts, seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_of_each_key_and_counts_the_rest() {
        let (firsts, repeats) = first_of_each(["a1", "b1", "a2", "a3", "c1"], |s| s.as_bytes()[0]);
        assert_eq!(firsts, ["a1", "b1", "c1"]);
        assert_eq!(repeats, HashMap::from([(b'a', 2)]));
    }
}
