#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::*;

fn id(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn store(capacity: usize) -> Store {
    Store::new(capacity, fixed_clock(1_700_000_000_000_000_000))
}

fn invoke(s: &Store, request_id: &str) -> u64 {
    s.begin(request_id, Source::Invoke, |_, _| {})
}

fn ids(s: &Store) -> Vec<String> {
    s.records().iter().map(|r| r.request_id.to_string()).collect()
}

#[test]
fn evicts_the_oldest_and_counts_what_it_dropped() {
    let s = store(3);
    for n in 1..=5 {
        invoke(&s, &id(n));
    }
    assert_eq!(ids(&s), [id(3), id(4), id(5)]);
    let c = s.counts();
    assert_eq!((c.served, c.retained, c.dropped), (5, 3, 2));
    assert!(s.get(&id(2)).is_none(), "an evicted record is gone from the index too");
    assert_eq!(s.get(&id(4)).unwrap().sequence, 4);
}

#[test]
fn append_stamps_sequence_time_and_cold_start() {
    let tick = Arc::new(AtomicI64::new(10));
    let clock = Arc::clone(&tick);
    let s = Store::new(10, Arc::new(move || crate::time::Timestamp(clock.fetch_add(1, Ordering::SeqCst))));
    invoke(&s, "first");
    invoke(&s, "second");
    let records = s.records();
    assert_eq!(
        records
            .iter()
            .map(|r| (r.sequence, r.invocated_at.0, r.cold_start))
            .collect::<Vec<_>>(),
        [(1, 10, true), (2, 11, false)]
    );
}

#[test]
fn window_selects_after_then_most_recent_limit() {
    let s = store(5);
    for n in 1..=8 {
        invoke(&s, &id(n));
    }
    // Retained: 4..=8.
    let cases = [
        (Query { after: 0, limit: 0 }, (3, 8)),
        (Query { after: 6, limit: 0 }, (6, 8)),
        (Query { after: 0, limit: 2 }, (6, 8)),
        (Query { after: 7, limit: 3 }, (7, 8)),
        (Query { after: 8, limit: 0 }, (8, 8)),
        (Query { after: 100, limit: 0 }, (8, 8)),
        (Query { after: 1, limit: 100 }, (3, 8)),
    ];
    for (query, (after, up_to)) in cases {
        let (w, counts) = s.window(query);
        assert_eq!((w.after, w.up_to), (after, up_to), "{query:?}");
        assert_eq!(counts.retained, 5);
    }
}

#[test]
fn visit_pages_and_skips_records_evicted_since_the_window() {
    let s = store(4);
    for n in 1..=4 {
        invoke(&s, &id(n));
    }
    let (w, _) = s.window(Query::default());
    let mut seen = Vec::new();
    let next = s.visit(w.after, w.up_to, 2, |r| seen.push(r.sequence));
    assert_eq!((seen.clone(), next), (vec![1, 2], 2));
    invoke(&s, &id(5));
    invoke(&s, &id(6)); // evicts 1 and 2; 3 is the oldest now
    let next = s.visit(1, w.up_to, 10, |r| seen.push(r.sequence));
    assert_eq!(
        (seen, next),
        (vec![1, 2, 3, 4], 4),
        "the window's end holds, evicted records are skipped"
    );
}

#[test]
fn lookups_work_across_growth_and_wrap_around() {
    let s = store(100);
    for n in 1..=250 {
        invoke(&s, &id(n));
        s.update(&id(n), 0, move |r| r.billed_duration_ms = u32::try_from(n).unwrap());
    }
    for n in 151..=250 {
        let r = s.get(&id(n)).unwrap();
        assert_eq!((r.sequence, u64::from(r.billed_duration_ms)), (n, n));
    }
    assert!(s.get(&id(150)).is_none());
    assert_eq!(s.counts().pending_updates, 0);
}

#[test]
fn the_ring_grows_by_doubling_and_stops_at_the_capacity() {
    let s = store(1000);
    invoke(&s, &id(1));
    assert_eq!(s.lock().ring.capacity(), INITIAL_RING);
    for n in 2..=65 {
        invoke(&s, &id(n));
    }
    assert_eq!(s.lock().ring.capacity(), 2 * INITIAL_RING);
    for n in 66..=2000 {
        invoke(&s, &id(n));
    }
    assert_eq!(s.lock().ring.capacity(), 1000);
}

#[test]
fn begin_merges_sources_and_a_repeat_from_one_source_is_a_retry() {
    let s = store(10);
    let first = s.begin("a", Source::Invoke, |r, created| {
        assert!(created);
        r.deadline_ms = 5;
    });
    let same = s.begin("a", Source::Runtime, |r, created| {
        assert!(!created, "the proxy completes INVOKE's record");
        r.outcome = Some(Outcome::Success);
    });
    assert_eq!(first, same);
    let retry = s.begin("a", Source::Invoke, |_, created| assert!(created, "INVOKE again: a retry"));
    assert_eq!(retry, 2);
    let retry_proxy = s.begin("a", Source::Runtime, |_, created| assert!(!created));
    assert_eq!(retry_proxy, 2, "the proxy's report of the retry completes the retry's record");
    let records = s.records();
    assert_eq!(records[0].deadline_ms, 5);
    assert_eq!(records[0].outcome, Some(Outcome::Success));
    assert_eq!(s.get("a").unwrap().sequence, 2, "lookups find the latest attempt");
}

#[test]
fn an_update_before_its_record_is_held_then_applied() {
    let s = store(10);
    s.update("late", 10, |r| r.status = Some(Status::Timeout));
    s.update("late", 10, |r| r.billed_duration_ms = 7);
    assert_eq!(s.counts().pending_updates, 1);
    invoke(&s, "late");
    let r = s.get("late").unwrap();
    assert_eq!((r.status, r.billed_duration_ms), (Some(Status::Timeout), 7));
    let c = s.counts();
    assert_eq!((c.pending_updates, c.pending_updates_dropped), (0, 0));
    assert_eq!(s.lock().pending_bytes, 0);
}

#[test]
fn held_updates_are_bounded_in_ids_and_the_oldest_goes_first() {
    let s = store(10);
    for n in 0..(MAX_PENDING_IDS as u64 + 5) {
        s.update(&id(n), 0, |r| r.billed_duration_ms = 1);
    }
    let c = s.counts();
    assert_eq!((c.pending_updates, c.pending_updates_dropped), (MAX_PENDING_IDS as u64, 5));
    invoke(&s, &id(0));
    assert_eq!(s.get(&id(0)).unwrap().billed_duration_ms, 0, "the oldest id's update was dropped");
    invoke(&s, &id(5));
    assert_eq!(s.get(&id(5)).unwrap().billed_duration_ms, 1);
}

#[test]
fn held_updates_of_one_id_are_bounded() {
    let s = store(10);
    for n in 0..MAX_PENDING_PER_ID + 3 {
        s.update("busy", 0, move |r| r.billed_duration_ms = u32::try_from(n).unwrap());
    }
    assert_eq!(s.counts().pending_updates_dropped, 3);
    invoke(&s, "busy");
    assert_eq!(
        s.get("busy").unwrap().billed_duration_ms,
        u32::try_from(MAX_PENDING_PER_ID - 1).unwrap()
    );
}

#[test]
fn held_updates_are_bounded_in_bytes() {
    let s = store(10);
    let big = MAX_PENDING_BYTES / 4;
    for n in 0..10u64 {
        s.update(&id(n), big, |_| {});
    }
    let inner = s.lock();
    assert!(inner.pending_bytes <= MAX_PENDING_BYTES, "{} held bytes", inner.pending_bytes);
    assert_eq!(inner.pending.len(), 3);
    assert_eq!(inner.pending_dropped, 7);
    drop(inner);
    s.update("huge", MAX_PENDING_BYTES + 1, |_| {});
    assert_eq!(
        s.counts().pending_updates_dropped,
        8,
        "an update larger than the budget is refused and counted"
    );
}

#[test]
fn applied_pending_ids_do_not_cause_drops() {
    let s = store(10_000);
    for n in 0..3 * MAX_PENDING_IDS as u64 {
        s.update(&id(n), 0, |_| {});
        invoke(&s, &id(n));
    }
    assert_eq!(s.counts().pending_updates_dropped, 0);
}

#[test]
fn records_share_one_arn_and_keep_their_own_when_it_changes() {
    let s = store(10);
    let set = |arn: &'static str| move |r: &mut Record, _| r.invoked_function_arn = Some(Arc::from(arn));
    s.begin("a", Source::Invoke, set("arn:one"));
    s.begin("b", Source::Invoke, set("arn:one"));
    s.begin("c", Source::Invoke, set("arn:two"));
    let records = s.records();
    let arns: Vec<_> = records.iter().map(|r| r.invoked_function_arn.clone().unwrap()).collect();
    assert!(Arc::ptr_eq(&arns[0], &arns[1]));
    assert_eq!([&*arns[0], &*arns[1], &*arns[2]], ["arn:one", "arn:one", "arn:two"]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiter_sees_a_record_appended_later() {
    let s = Arc::new(store(10));
    let writer = Arc::clone(&s);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        writer.begin("later", Source::Invoke, |_, _| {});
    });
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let appended = s.appended();
            if s.get("later").is_some() {
                return true;
            }
            appended.await;
        }
    })
    .await;
    assert_eq!(found, Ok(true));
    assert!(s.lock().wakers.is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiter_that_gives_up_leaves_no_waker_behind() {
    let s = store(10);
    let waited = tokio::time::timeout(Duration::from_millis(10), s.appended()).await;
    assert!(waited.is_err());
    assert!(s.lock().wakers.is_empty());
}

#[test]
fn concurrent_writers_and_readers_see_consistent_windows() {
    let s = Arc::new(store(500));
    std::thread::scope(|scope| {
        for w in 0..2u64 {
            let s = Arc::clone(&s);
            scope.spawn(move || {
                for n in 0..5_000u64 {
                    let rid = id(w * 1_000_000 + n);
                    s.begin(&rid, Source::Invoke, |_, _| {});
                    s.update(&rid, 0, |r| r.status = Some(Status::Success));
                }
            });
        }
        for _ in 0..2 {
            let s = Arc::clone(&s);
            scope.spawn(move || {
                for _ in 0..200 {
                    let (w, counts) = s.window(Query { after: 0, limit: 100 });
                    assert!(counts.retained <= 500);
                    let mut last = w.after;
                    s.visit(w.after, w.up_to, 100, |r| {
                        assert!(r.sequence > last);
                        last = r.sequence;
                    });
                }
            });
        }
    });
    let c = s.counts();
    assert_eq!((c.served, c.retained, c.dropped), (10_000, 500, 9_500));
    assert!(s.records().iter().all(|r| r.status == Some(Status::Success)));
}

#[test]
fn the_eviction_order_stays_bounded_while_one_id_waits_forever() {
    let s = store(10);
    s.update("never", 0, |_| {});
    for n in 0..10 * MAX_PENDING_IDS as u64 {
        s.update(&id(n), 0, |_| {});
        invoke(&s, &id(n));
    }
    assert!(s.lock().pending_order.len() <= 2 * MAX_PENDING_IDS + 1);
    assert_eq!(s.counts().pending_updates, 1);
}

#[test]
fn a_full_store_never_grows_its_index_however_long_it_runs() {
    let s = store(1000);
    for n in 0..1000 {
        invoke(&s, &id(n));
    }
    let full = s.lock().index.heap_bytes();
    for n in 1000..50_000 {
        invoke(&s, &id(n));
    }
    assert_eq!(s.lock().index.heap_bytes(), full, "the index grew");
    assert_eq!(s.lock().index.len(), 1000);
    for n in 49_000..50_000 {
        assert_eq!(s.get(&id(n)).map(|r| r.sequence), Some(n + 1));
    }
}
