//! The in-flight window of one session: `C` slots, each holding at most one outstanding request.
//!
//! Ids encode their slot: slot `k` issues ids `g * C + k` for generations `g = 1, 2, ...`, so a
//! response finds its slot with one division and is matched by comparing one integer — no map,
//! no allocation. Id 0 is never issued (it is free for `initialize`), and a stale id (a response
//! that arrives after its request timed out, or a duplicate) does not match the slot's current id.

use std::time::Instant;

#[derive(Clone, Copy)]
struct Slot {
    /// Outstanding id, or 0 when free.
    id: u64,
    generation: u64,
    start: Instant,
}

/// Outstanding requests of one session.
pub struct Window {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Window {
    /// A window of `capacity` slots (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        let now = Instant::now();
        Self {
            slots: vec![
                Slot {
                    id: 0,
                    generation: 0,
                    start: now,
                };
                capacity
            ],
            // Popped from the end: slot 0 first.
            free: (0..capacity as u32).rev().collect(),
        }
    }

    /// Slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Free slots.
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// Outstanding requests.
    pub fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Takes a free slot for a request that started at `start`; returns its id.
    pub fn issue(&mut self, start: Instant) -> Option<u64> {
        let k = *self.free.last()? as usize;
        let c = self.slots.len() as u64;
        let s = &mut self.slots[k];
        let generation = s.generation + 1;
        // Overflows only after 2^64 / C requests on one slot.
        let id = generation.checked_mul(c)?.checked_add(k as u64)?;
        self.free.pop();
        *s = Slot {
            id,
            generation,
            start,
        };
        Some(id)
    }

    /// Matches a response id: frees its slot and returns when its request started, or `None` if
    /// the id is not outstanding.
    pub fn complete(&mut self, id: u64) -> Option<Instant> {
        if id == 0 {
            return None;
        }
        let k = (id % self.slots.len() as u64) as usize;
        let s = &mut self.slots[k];
        if s.id != id {
            return None;
        }
        s.id = 0;
        self.free.push(k as u32);
        Some(s.start)
    }

    /// Frees the slots of requests that started before `cutoff`; returns how many.
    pub fn expire(&mut self, cutoff: Instant) -> usize {
        let mut n = 0;
        for (k, s) in self.slots.iter_mut().enumerate() {
            if s.id != 0 && s.start < cutoff {
                s.id = 0;
                self.free.push(k as u32);
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn issues_until_full_and_matches_in_any_order() {
        let t0 = Instant::now();
        let mut w = Window::new(4);
        let ids: Vec<u64> = (0..4)
            .map(|i| w.issue(t0 + Duration::from_micros(i)).unwrap())
            .collect();
        assert_eq!(w.issue(t0), None, "full");
        assert_eq!(w.in_flight(), 4);
        assert!(ids.iter().all(|&id| id != 0));
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 4);

        // Out of order completion returns each request's own start.
        for &i in &[2usize, 0, 3, 1] {
            assert_eq!(
                w.complete(ids[i]),
                Some(t0 + Duration::from_micros(i as u64))
            );
        }
        assert_eq!(w.free(), 4);
    }

    #[test]
    fn unknown_duplicate_and_stale_ids_do_not_match() {
        let t0 = Instant::now();
        let mut w = Window::new(3);
        let a = w.issue(t0).unwrap();
        assert_eq!(w.complete(0), None);
        assert_eq!(w.complete(a + 1), None, "slot not outstanding");
        assert_eq!(w.complete(a + 3), None, "same slot, other generation");
        assert!(w.complete(a).is_some());
        assert_eq!(w.complete(a), None, "duplicate response");
        // The slot is reused with a new id; the old one stays stale.
        let b = w.issue(t0).unwrap();
        assert_ne!(a, b);
        assert_eq!(w.complete(a), None);
        assert!(w.complete(b).is_some());
    }

    #[test]
    fn expiry_frees_old_requests_only() {
        let t0 = Instant::now();
        let mut w = Window::new(4);
        let old = w.issue(t0).unwrap();
        let new = w.issue(t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(w.expire(t0 + Duration::from_secs(5)), 1);
        assert_eq!(w.in_flight(), 1);
        assert_eq!(
            w.complete(old),
            None,
            "a late response to a timed-out request"
        );
        assert!(w.complete(new).is_some());
        assert_eq!(w.expire(t0 + Duration::from_secs(60)), 0);
    }

    #[test]
    fn single_slot_window() {
        let t0 = Instant::now();
        let mut w = Window::new(1);
        for _ in 0..1000 {
            let id = w.issue(t0).unwrap();
            assert_eq!(w.issue(t0), None);
            assert!(w.complete(id).is_some());
        }
    }
}
