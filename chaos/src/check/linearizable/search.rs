//! The search over one register's operations: Wing & Gong's, with Lowe's memoisation, and the
//! pruning rules unique values allow (see the parent module).

use std::collections::HashSet;

use super::{ABSENT, HEAD, LinOp, NIL, Search, Stuck};

/// One linearized operation on the search stack.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// The operation's invoke node.
    node: usize,
    /// The register's value before it.
    before: usize,
    /// Whether it was a forced move (see [`Searcher`]: if the search fails after it, it fails
    /// without it too, so there is no alternative to try).
    forced: bool,
}

/// Wing & Gong's search with Lowe's memoisation over one register's operations, stopping after
/// `budget` steps; `value_count` is the number of interned values. Returns how it ended and the
/// steps used.
pub(super) fn search(ops: &[LinOp], value_count: usize, budget: u64) -> (Search, u64) {
    Searcher::new(ops, value_count).run(budget)
}

/// The search's state for one key.
///
/// On top of Porcupine's search, pruning rules specific to a register whose values are written
/// once each (sound: none rejects a configuration that has a valid completion):
/// - a minimal read that is legal now is linearized at once, as a forced move: moving it to the
///   front of any valid completion keeps that completion valid (a read changes nothing, and
///   being minimal nothing pending must precede it), so if the search fails after it, the
///   configuration fails, and the search backtracks past it without trying alternatives;
/// - so is a minimal write whose value no read saw, once the current value has no reads left:
///   in a valid completion, whatever follows it is a write (nothing reads its value), and
///   whatever it would jump over is writes too (nothing reads the current value), so moving it
///   to the front changes no read;
/// - a write may not overwrite a value that still has reads to linearize: values never return,
///   so those reads could never be placed. (Values written by more than one write are exempt,
///   so a workload that repeats values gets a slower search, not a wrong verdict.)
///
/// Without them the search explores orders of concurrent writes that the reads already rule
/// out, which costs tens of thousands of steps per key at 16 concurrent operations.
struct Searcher<'a> {
    ops: &'a [LinOp],
    /// Doubly linked list over nodes 1..=2n (node k is the k-th event in time order), node 0
    /// the head. Linearizing an operation unlinks its two nodes; backtracking relinks them
    /// (dancing links), in reverse order, which the stack guarantees.
    next: Vec<usize>,
    prev: Vec<usize>,
    node_op: Vec<usize>,
    node_is_completion: Vec<bool>,
    completion_node: Vec<usize>,
    /// Per value: reads of it not linearized yet.
    unread: Vec<u32>,
    /// Per value: reads of it in all.
    reads: Vec<u32>,
    /// Per value: writes of it.
    writers: Vec<u32>,
    /// The set of linearized operations.
    linearized: Vec<u64>,
    /// Configurations (linearized set, register value) entered before: they failed, since the
    /// search stops at the first success and a set only grows along one path.
    cache: HashSet<(Box<[u64]>, usize)>,
    stack: Vec<Frame>,
    state: usize,
    steps: u64,
    deepest: Option<Stuck>,
}

impl<'a> Searcher<'a> {
    fn new(ops: &'a [LinOp], value_count: usize) -> Self {
        let n = ops.len();
        // Events as (time, is_completion, op): at equal times invokes sort before completions,
        // so operations that touch at an instant count as concurrent.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.invoke, false, i));
            events.push((op.complete, true, i));
        }
        events.sort_unstable();

        let len = events.len() + 1;
        let next = (1..=len).map(|k| if k < len { k } else { NIL }).collect();
        let prev = (0..len).map(|k| if k == 0 { NIL } else { k - 1 }).collect();
        let mut node_op = vec![0usize; len];
        let mut node_is_completion = vec![false; len];
        let mut completion_node = vec![NIL; n];
        for (k, &(_, is_completion, op)) in events.iter().enumerate() {
            node_op[k + 1] = op;
            node_is_completion[k + 1] = is_completion;
            if is_completion {
                completion_node[op] = k + 1;
            }
        }
        let mut unread = vec![0u32; value_count];
        let mut writers = vec![0u32; value_count];
        for op in ops {
            let counts = if op.write { &mut writers } else { &mut unread };
            if let Some(c) = counts.get_mut(op.value) {
                *c += 1;
            }
        }
        Searcher {
            ops,
            reads: unread.clone(),
            next,
            prev,
            node_op,
            node_is_completion,
            completion_node,
            unread,
            writers,
            linearized: vec![0u64; n.div_ceil(64).max(1)],
            cache: HashSet::new(),
            stack: Vec::with_capacity(n),
            state: ABSENT,
            steps: 0,
            deepest: None,
        }
    }

    fn run(mut self, budget: u64) -> (Search, u64) {
        // `fresh`: a configuration just entered, not yet scanned for a forced move.
        let mut fresh = true;
        let mut entry = self.next[HEAD];
        while self.next[HEAD] != NIL {
            if self.steps >= budget {
                return (Search::Undecided, self.steps);
            }
            if fresh {
                fresh = false;
                if let Some(node) = self.forced_move() {
                    if self.linearize(node, true) {
                        fresh = true;
                        continue;
                    }
                    // Entered before, so it failed; by the forced-move argument so does this
                    // configuration.
                    match self.backtrack() {
                        Some(e) => entry = e,
                        None => return (Search::Violation(self.deepest), self.steps),
                    }
                    continue;
                }
                entry = self.next[HEAD];
            }
            self.steps += 1;
            if entry != NIL && !self.node_is_completion[entry] {
                // No read is legal here (it would have been forced), so only writes can move.
                let op = self.ops[self.node_op[entry]];
                if op.write && self.may_overwrite() && self.linearize(entry, false) {
                    fresh = true;
                    continue;
                }
                entry = self.next[entry];
            } else {
                // The first pending completion: its operation had to be placed by now and
                // could not be. The deepest such point is the violation's witness.
                self.note_stuck(entry);
                match self.backtrack() {
                    Some(e) => entry = e,
                    None => return (Search::Violation(self.deepest), self.steps),
                }
            }
        }
        (Search::Linearizable, self.steps)
    }

    /// A minimal pending operation (invoked before the first pending completion) that can be
    /// linearized as a forced move: a read the register's value allows, or a write nobody reads
    /// when nothing is left to read the current value.
    fn forced_move(&mut self) -> Option<usize> {
        let current_read_out = self.unread.get(self.state).is_none_or(|&u| u == 0);
        let mut node = self.next[HEAD];
        while node != NIL && !self.node_is_completion[node] {
            self.steps += 1;
            let op = self.ops[self.node_op[node]];
            let forced = if op.write {
                current_read_out && self.reads.get(op.value).is_none_or(|&r| r == 0)
            } else {
                op.value == self.state
            };
            if forced {
                return Some(node);
            }
            node = self.next[node];
        }
        None
    }

    /// Whether a write may replace the register's current value now.
    fn may_overwrite(&self) -> bool {
        let unique = self.writers.get(self.state).is_none_or(|&w| w <= 1);
        let unread = self.unread.get(self.state).copied().unwrap_or(0);
        !(unique && unread > 0)
    }

    /// Linearizes the operation whose invoke node is `node`, unless the resulting configuration
    /// was entered before; says whether it did. The caller has checked it is legal.
    fn linearize(&mut self, node: usize, forced: bool) -> bool {
        let i = self.node_op[node];
        let op = self.ops[i];
        let after = if op.write { op.value } else { self.state };
        set_bit(&mut self.linearized, i);
        if !self
            .cache
            .insert((self.linearized.clone().into_boxed_slice(), after))
        {
            clear_bit(&mut self.linearized, i);
            return false;
        }
        self.stack.push(Frame {
            node,
            before: self.state,
            forced,
        });
        self.state = after;
        if !op.write
            && let Some(c) = self.unread.get_mut(op.value)
        {
            *c -= 1;
        }
        unlink(&mut self.next, &mut self.prev, node);
        unlink(&mut self.next, &mut self.prev, self.completion_node[i]);
        true
    }

    /// Undoes linearizations up to and including the last unforced one; returns the node to
    /// scan on from in the configuration reached, or `None` when the stack ran out (no
    /// linearization exists).
    fn backtrack(&mut self) -> Option<usize> {
        while let Some(frame) = self.stack.pop() {
            let i = self.node_op[frame.node];
            let op = self.ops[i];
            self.state = frame.before;
            clear_bit(&mut self.linearized, i);
            if !op.write
                && let Some(c) = self.unread.get_mut(op.value)
            {
                *c += 1;
            }
            relink(&mut self.next, &mut self.prev, self.completion_node[i]);
            relink(&mut self.next, &mut self.prev, frame.node);
            if !frame.forced {
                return Some(self.next[frame.node]);
            }
        }
        None
    }

    /// Records the search being stuck at completion node `node` if it got deeper than before.
    fn note_stuck(&mut self, node: usize) {
        if node == NIL {
            return;
        }
        let depth = self.stack.len();
        if self.deepest.as_ref().is_none_or(|d| depth > d.prefix.len()) {
            self.deepest = Some(Stuck {
                op: self.node_op[node],
                prefix: self.stack.iter().map(|f| self.node_op[f.node]).collect(),
                state: self.state,
            });
        }
    }
}

fn set_bit(bits: &mut [u64], i: usize) {
    if let Some(w) = bits.get_mut(i / 64) {
        *w |= 1 << (i % 64);
    }
}

fn clear_bit(bits: &mut [u64], i: usize) {
    if let Some(w) = bits.get_mut(i / 64) {
        *w &= !(1 << (i % 64));
    }
}

/// Takes `node` out of the list; it keeps its own links for [`relink`].
fn unlink(next: &mut [usize], prev: &mut [usize], node: usize) {
    let (p, n) = (prev[node], next[node]);
    next[p] = n;
    if n != NIL {
        prev[n] = p;
    }
}

/// Puts back a node [`unlink`] took out (the last one taken out first).
fn relink(next: &mut [usize], prev: &mut [usize], node: usize) {
    let (p, n) = (prev[node], next[node]);
    next[p] = node;
    if n != NIL {
        prev[n] = node;
    }
}
