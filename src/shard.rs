//! Which replica polls which account: rendezvous (highest-random-weight)
//! hashing of the account name.
//!
//! Every replica computes, for each account, a weight per shard from a
//! stable hash of (account, shard) and owns the accounts whose highest weight
//! is its own. No coordination is needed, every replica agrees, and changing
//! the shard count from N to N+1 moves only the accounts the new shard wins
//! (about 1/(N+1)); nothing moves between the old shards.
//!
//! The hash must never change between versions or platforms: two replicas of
//! different builds during a rolling update must agree on the owner, or an
//! account would be polled twice (over its vendor budget) or not at all. So
//! it is FNV-1a 64 with the MurmurHash3 `fmix64` finaliser, written out here
//! and pinned by fixed test vectors, not `std`'s `DefaultHasher` (whose
//! algorithm is explicitly unspecified).

use crate::collector::budget;
use crate::config::Config;
use std::fmt;

/// This replica's place among `count` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    /// One shard owning everything: the unsharded exporter.
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Checks `index < count` and `count ≥ 1`.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 {
            return Err("--shard.count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "--shard.index {index} is not below --shard.count {count} (shards are numbered 0..{})",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// The index from a StatefulSet pod's hostname (`cdn-exporter-2` → 2),
    /// so one manifest serves every replica.
    pub fn from_hostname(hostname: &str, count: u32) -> Result<Self, String> {
        let ordinal = hostname
            .rsplit_once('-')
            .map(|(_, n)| n)
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| {
                format!(
                    "--shard.index-from-hostname: hostname {hostname:?} does not end in -<number> \
                     (a StatefulSet pod such as cdn-task-exporter-0); pass --shard.index instead"
                )
            })?;
        Shard::new(ordinal, count).map_err(|e| format!("hostname {hostname:?}: {e}"))
    }

    /// True when this shard polls `account`.
    pub fn owns(&self, account: &str) -> bool {
        owner(account, self.count) == self.index
    }
}

/// The shard (0..count) that owns `account`: the one with the highest weight.
pub fn owner(account: &str, count: u32) -> u32 {
    (0..count.max(1))
        .max_by_key(|&shard| (weight(account, shard), std::cmp::Reverse(shard)))
        .unwrap_or(0)
}

/// The rendezvous weight of `shard` for `account`.
pub fn weight(account: &str, shard: u32) -> u64 {
    let mut h = fnv1a64(account.as_bytes());
    // Mix the shard in after a separator byte no account name contains
    // literally at the end, so ("a", 1) and ("a\x01", …) cannot collide by
    // concatenation.
    h = fnv1a64_continue(h, &[0xff]);
    h = fnv1a64_continue(h, &shard.to_le_bytes());
    fmix64(h)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_continue(FNV_OFFSET, bytes)
}

fn fnv1a64_continue(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// MurmurHash3's 64-bit finaliser: FNV's low bits mix poorly on short,
/// similar names (`acct-001`, `acct-002`), which would skew the split.
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The split of the configured accounts for one shard, for the landing page
/// and `cdn_exporter_shard_accounts`.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub shard: Shard,
    /// Accounts another shard polls, with that shard's index.
    pub unowned: Vec<(String, u32)>,
}

/// Splits `names` into the ones `shard` owns (indices into `names`) and a
/// [`Placement`] listing the rest with their owners.
pub fn place<'a>(
    shard: Shard,
    names: impl IntoIterator<Item = &'a str>,
) -> (Vec<usize>, Placement) {
    let mut owned = Vec::new();
    let mut unowned = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let o = owner(name, shard.count);
        if o == shard.index {
            owned.push(i);
        } else {
            unowned.push((name.to_string(), o));
        }
    }
    (owned, Placement { shard, unowned })
}

/// Keeps only the accounts `shard` owns in `config` (the others are never
/// polled, not even built into the collector) and scales every owned
/// account's budget by `budget_share`. An error names the account and API
/// whose limit the share cannot split; every account is checked, owned or
/// not, so that all replicas given one config agree.
pub fn partition(config: &mut Config, shard: Shard, budget_share: f64) -> Result<(), String> {
    for a in &mut config.accounts {
        let apis = a.kind.apis();
        for (i, rate) in a.rates.iter_mut().enumerate() {
            let what = format!("account {:?} API {}", a.name, apis[i].name);
            *rate = budget::share(*rate, budget_share, &what)?;
        }
    }
    let accounts = std::mem::take(&mut config.accounts);
    let (owned, placement) = place(shard, accounts.iter().map(|a| a.name.as_str()));
    config.accounts = accounts
        .into_iter()
        .enumerate()
        .filter(|(i, _)| owned.binary_search(i).is_ok())
        .map(|(_, a)| a)
        .collect();
    config.placement = placement;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published FNV-1a 64 vectors, and fixed outputs of the whole weight:
    /// if these change, replicas of different versions disagree on owners.
    #[test]
    fn hash_is_pinned() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fmix64(0), 0);
        assert_eq!(fmix64(1), 0xb456_bcfc_34c2_cb2c);
        let pinned: Vec<u32> = ["acct-000", "acct-001", "prod-aliyun", "中文账号", ""]
            .iter()
            .map(|n| owner(n, 3))
            .collect();
        assert_eq!(pinned, PINNED_OWNERS_OF_3);
        assert_eq!(weight("acct-000", 0), PINNED_WEIGHT);
    }

    const PINNED_OWNERS_OF_3: [u32; 5] = [1, 0, 0, 1, 2];
    const PINNED_WEIGHT: u64 = 0x9392_fc2b_5d69_0b80;

    #[test]
    fn every_account_has_exactly_one_owner() {
        for count in 1..=7 {
            for i in 0..500 {
                let name = format!("acct-{i:03}");
                let owners = (0..count)
                    .filter(|&s| Shard::new(s, count).unwrap().owns(&name))
                    .count();
                assert_eq!(owners, 1, "{name} of {count}");
            }
        }
    }

    #[test]
    fn split_is_even_and_growing_moves_only_to_the_new_shard() {
        let names: Vec<String> = (0..3000).map(|i| format!("acct-{i:04}")).collect();
        let mut per = [0usize; 3];
        let mut moved = 0;
        for n in &names {
            let (a, b) = (owner(n, 3), owner(n, 4));
            per[a as usize] += 1;
            if a != b {
                assert_eq!(b, 3, "{n} moved between old shards");
                moved += 1;
            }
        }
        for p in per {
            assert!((850..=1150).contains(&p), "uneven split {per:?}");
        }
        let fraction = moved as f64 / names.len() as f64;
        assert!((0.2..0.3).contains(&fraction), "moved {fraction}");
    }

    #[test]
    fn hostname_ordinals() {
        assert_eq!(
            Shard::from_hostname("cdn-task-exporter-2", 3).unwrap(),
            Shard { index: 2, count: 3 }
        );
        let e = Shard::from_hostname("cdn-task-exporter-3", 3).unwrap_err();
        assert!(e.contains("not below --shard.count 3"), "{e}");
        for bad in [
            "exporter",
            "exporter-",
            "exporter-x1",
            "exporter-99999999999",
        ] {
            let e = Shard::from_hostname(bad, 3).unwrap_err();
            assert!(e.contains("does not end in -<number>"), "{bad}: {e}");
        }
        assert!(Shard::new(0, 0).is_err());
    }

    #[test]
    fn placement_names_the_owner_of_the_rest() {
        let names = ["a", "b", "c", "d", "e", "f"];
        let shard = Shard::new(1, 3).unwrap();
        let (owned, p) = place(shard, names);
        assert_eq!(owned.len() + p.unowned.len(), names.len());
        for i in &owned {
            assert_eq!(owner(names[*i], 3), 1);
        }
        for (n, o) in &p.unowned {
            assert_ne!(*o, 1);
            assert_eq!(owner(n, 3), *o);
        }
    }
}
