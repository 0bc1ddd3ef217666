//! Crash consistency under power loss, simulated by a storage backend that keeps what a disk
//! would keep: writes go to a working buffer and `sync_data` makes them durable. At EVERY sync of
//! a workload the backend records the crash images around it:
//!
//! - "before": every write so far reached the disk, the sync had not returned;
//! - "torn": the last synced image plus a random half of the writes since (a disk may persist
//!   unsynced writes in any order and any subset);
//! - "after": the sync returned.
//!
//! Each image is opened by a fresh store, which must pass redb's integrity check and `verify()`,
//! and hold exactly the state after the acknowledged operations, or after one more (the one in
//! flight), never anything partial.
//!
//! What "acknowledged" means: with `Durability::Immediate`, redb's commit writes the data, then
//! the header, and syncs; `commit()` returns after that final sync. So an operation counts as
//! acknowledged for an image when it had returned before the sync that the image was taken at.
//! The operation in flight at that sync may or may not be in the image, but whole.

mod support;

use support::*;
use tracestore::{Durability, Store};

#[derive(Debug, Default)]
struct Tally {
    images: usize,
    unopenable_before_create: usize,
    in_flight_landed: usize,
    syncs: u64,
    ops: usize,
}

/// Opens an image and returns the index of the state it holds, checking it is one of
/// `allowed`.
fn check_image(
    img: &CrashImage,
    states: &[Model],
    allowed: std::ops::RangeInclusive<usize>,
    created: bool,
    tally: &mut Tally,
) -> Option<usize> {
    tally.images += 1;
    let mem = SharedMem::from_bytes(img.bytes.clone());
    let mut store = match Store::builder().with_backend(mem.backend()) {
        Ok(s) => s,
        // A power loss before redb finished writing a brand-new file's header may leave a file
        // redb refuses (an error, not a panic); nothing had been acknowledged.
        Err(e) if !created && e.is_storage() => {
            tally.unopenable_before_create += 1;
            return None;
        }
        Err(e) => panic!(
            "image at sync {} ({}): open failed: {e:?}",
            img.sync_no, img.phase
        ),
    };
    let what = format!(
        "image at sync {} ({}, {} acked)",
        img.sync_no, img.phase, img.acked
    );
    assert!(
        store.check_integrity().expect("integrity runs"),
        "{what}: redb integrity"
    );
    let v = store.verify().expect("verify runs");
    assert!(v.is_empty(), "{what}: verify: {v:?}");
    let hi = (*allowed.end()).min(states.len() - 1);
    let lo = *allowed.start();
    for j in (lo..=hi).rev() {
        if store_matches(&store, &states[j]).is_ok() {
            return Some(j);
        }
    }
    panic!(
        "{what}: the store holds none of states {lo}..={hi}; vs the acknowledged one: {:?}",
        store_matches(&store, &states[lo.max(hi.min(img.acked as usize))]).unwrap_err()
    );
}

/// Runs a workload decoded from `bytes` over a power-loss backend, checking every crash image.
fn run(bytes: &[u8], durability: Durability, tally: &mut Tally) {
    let pl = PowerLoss::new(true, 0x5EED ^ bytes.len() as u64);
    let store = Store::builder()
        .durability(durability)
        .with_backend(pl.backend())
        .expect("open");
    let mut states = vec![Model::default()];
    let mut model = Model::default();
    // Images taken while the store was being created.
    for img in pl.take_images() {
        check_image(&img, &states, 0..=0, false, tally);
    }
    let ops: Vec<Op> = ByteGen::new(bytes)
        .ops(60)
        .into_iter()
        .filter(|o| *o != Op::Reopen)
        .collect();
    let mut last_durable = 0usize;
    for op in &ops {
        apply(&store, &mut model, op).unwrap_or_else(|e| panic!("{op:?}: {e:?}"));
        if !op.writes() {
            continue;
        }
        tally.ops += 1;
        states.push(model.clone());
        pl.ack();
        for img in pl.take_images() {
            let a = img.acked as usize;
            let allowed = match durability {
                // Acknowledged means durable: the acked state, or the one in flight.
                Durability::Immediate => a..=a + 1,
                // Deferred commits may be lost, but the store is never corrupt and never holds
                // half an operation: some prefix state, never older than what a sync made durable.
                _ => last_durable..=a + 1,
            };
            let j = check_image(&img, &states, allowed, true, tally).expect("created");
            if j > a {
                tally.in_flight_landed += 1;
            }
            if img.phase == "after" {
                last_durable = last_durable.max(j);
            }
        }
    }
    tally.syncs += pl.syncs();
    // The image a power loss at the very end leaves.
    let img = CrashImage {
        sync_no: pl.syncs(),
        phase: "end",
        acked: states.len() as u64 - 1,
        bytes: pl.durable_image(),
    };
    let end = states.len() - 1;
    let allowed = match durability {
        Durability::Immediate => end..=end,
        _ => last_durable..=end,
    };
    check_image(&img, &states, allowed, true, tally);
}

fn workloads() -> Vec<Vec<u8>> {
    (0..16u64)
        .map(|seed| {
            let mut x = 0x2545_F491_4F6C_DD1D ^ (seed * 0x9E37_79B9);
            (0..900)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect()
        })
        .collect()
}

#[test]
fn every_sync_point_of_an_immediate_workload_recovers_the_acknowledged_state() {
    let mut tally = Tally::default();
    for w in workloads() {
        run(&w, Durability::Immediate, &mut tally);
    }
    println!("crash_powerloss (Immediate): {tally:?}");
    assert!(tally.images > 50, "too few crash images: {tally:?}");
}

#[test]
fn a_deferred_workload_loses_only_unsynced_operations_and_never_corrupts() {
    let mut tally = Tally::default();
    for w in workloads().into_iter().take(6) {
        run(&w, Durability::Deferred, &mut tally);
    }
    println!("crash_powerloss (Deferred): {tally:?}");
}
