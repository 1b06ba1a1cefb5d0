//! Sealed batches waiting for their upload, bounded in bytes: when a new batch does not fit, the
//! oldest go first, and every batch and invocation dropped is counted.

use std::collections::VecDeque;

use super::batch::Sealed;

/// A sealed batch and what its upload has been through.
#[derive(Debug)]
pub struct Pending {
    pub batch: Sealed,
    /// Its place in the environment's sequence of objects (the key's `seq`).
    pub seq: u64,
    /// Failed uploads so far.
    pub attempts: u32,
}

/// What the queue let go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub batches: u64,
    pub invocations: u64,
    pub log_events: u64,
    pub bytes: u64,
}

/// The upload queue.
#[derive(Debug)]
pub struct Queue {
    pending: VecDeque<Pending>,
    bytes: usize,
    max_bytes: usize,
    dropped: Dropped,
}

impl Queue {
    /// A queue holding at most `max_bytes` of compressed batches.
    #[must_use]
    pub fn new(max_bytes: usize) -> Self {
        Self {
            pending: VecDeque::new(),
            bytes: 0,
            max_bytes,
            dropped: Dropped::default(),
        }
    }

    /// Queues `pending` behind the others, dropping the oldest until it fits; a batch larger than
    /// the whole bound is dropped itself.
    pub fn push(&mut self, pending: Pending) {
        let size = pending.batch.body.len();
        if size > self.max_bytes {
            self.count_dropped(&pending);
            return;
        }
        while self.bytes + size > self.max_bytes {
            match self.pending.pop_front() {
                Some(oldest) => {
                    self.bytes -= oldest.batch.body.len();
                    self.count_dropped(&oldest);
                }
                None => break,
            }
        }
        self.bytes += size;
        self.pending.push_back(pending);
    }

    /// The oldest batch, taken for an upload.
    pub fn pop(&mut self) -> Option<Pending> {
        let pending = self.pending.pop_front()?;
        self.bytes -= pending.batch.body.len();
        Some(pending)
    }

    /// Puts back a batch whose upload failed, first in line, unless newer batches filled its
    /// room meanwhile (then it is the oldest, and dropped).
    pub fn put_back(&mut self, pending: Pending) {
        let size = pending.batch.body.len();
        if self.bytes + size > self.max_bytes {
            self.count_dropped(&pending);
            return;
        }
        self.bytes += size;
        self.pending.push_front(pending);
    }

    /// Gives up a batch taken for an upload (refused, or out of attempts), counting it.
    pub fn discard(&mut self, pending: &Pending) {
        self.count_dropped(pending);
    }

    /// Drops what is queued (at shutdown, once the deadline leaves no time), counting it.
    pub fn drop_all(&mut self) {
        while let Some(pending) = self.pop() {
            self.count_dropped(&pending);
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Log events in the batches queued.
    #[must_use]
    pub fn log_events(&self) -> usize {
        self.pending.iter().map(|p| p.batch.log_events).sum()
    }

    /// Compressed bytes queued.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    #[must_use]
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    fn count_dropped(&mut self, pending: &Pending) {
        self.dropped.batches += 1;
        self.dropped.invocations += pending.batch.invocations as u64;
        self.dropped.log_events += pending.batch.log_events as u64;
        self.dropped.bytes += pending.batch.body.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::time::Timestamp;

    fn pending(seq: u64, bytes: usize, invocations: usize) -> Pending {
        Pending {
            batch: Sealed {
                body: vec![0; bytes].into(),
                lines: invocations,
                invocations,
                log_events: invocations * 2,
                raw_bytes: bytes * 5,
                opened: Timestamp(1),
            },
            seq,
            attempts: 0,
        }
    }

    fn seqs(queue: &mut Queue) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(p) = queue.pop() {
            out.push(p.seq);
        }
        out
    }

    #[test]
    fn batches_leave_in_order_and_the_bytes_add_up() {
        let mut queue = Queue::new(100);
        for seq in 1..=3 {
            queue.push(pending(seq, 30, 2));
        }
        assert_eq!((queue.len(), queue.bytes()), (3, 90));
        assert_eq!(seqs(&mut queue), [1, 2, 3]);
        assert_eq!(queue.bytes(), 0);
        assert_eq!(queue.dropped(), Dropped::default());
    }

    #[test]
    fn the_oldest_are_dropped_and_counted_when_a_batch_does_not_fit() {
        let mut queue = Queue::new(100);
        queue.push(pending(1, 40, 2));
        queue.push(pending(2, 40, 3));
        queue.push(pending(3, 50, 4));
        assert_eq!(
            queue.dropped(),
            Dropped {
                batches: 1,
                invocations: 2,
                log_events: 4,
                bytes: 40
            }
        );
        assert_eq!(seqs(&mut queue), [2, 3]);
    }

    #[test]
    fn a_batch_larger_than_the_bound_is_dropped_itself() {
        let mut queue = Queue::new(100);
        queue.push(pending(1, 40, 1));
        queue.push(pending(2, 101, 7));
        assert_eq!(queue.dropped().batches, 1);
        assert_eq!(queue.dropped().invocations, 7);
        assert_eq!(seqs(&mut queue), [1]);
    }

    #[test]
    fn a_failed_upload_goes_back_first_unless_its_room_is_gone() {
        let mut queue = Queue::new(100);
        queue.push(pending(1, 40, 1));
        queue.push(pending(2, 40, 1));
        let mut first = queue.pop().unwrap();
        first.attempts += 1;
        queue.put_back(first);
        assert_eq!(queue.pop().map(|p| (p.seq, p.attempts)), Some((1, 1)));

        // While 1 is out, 3 takes its room: 1 cannot come back.
        let out = pending(1, 40, 5);
        queue.push(pending(3, 60, 1));
        queue.put_back(out);
        assert_eq!(queue.dropped().invocations, 5);
        assert_eq!(seqs(&mut queue), [2, 3]);
    }

    #[test]
    fn drop_all_counts_everything() {
        let mut queue = Queue::new(100);
        queue.push(pending(1, 10, 2));
        queue.push(pending(2, 10, 3));
        queue.drop_all();
        assert!(queue.is_empty());
        assert_eq!(
            queue.dropped(),
            Dropped {
                batches: 2,
                invocations: 5,
                log_events: 10,
                bytes: 20
            }
        );
    }
}
