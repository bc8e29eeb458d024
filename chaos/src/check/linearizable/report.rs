//! How a failed key is reported: the first failure's message and a witness of the operations
//! around it.

use serde_json::json;

use super::{ABSENT, Failure, KeyHistory, NEVER, Source, WITNESS_CONTEXT, WITNESS_MAX};
use crate::history::{History, Outcome};

/// `details.first_failure` for a key that is not linearizable.
pub(super) fn describe_failure(
    h: &History,
    key: &str,
    kh: &KeyHistory,
    failure: &Failure,
) -> serde_json::Value {
    let value_name = |v: usize| -> serde_json::Value {
        match v {
            ABSENT => serde_json::Value::Null,
            v => kh
                .values
                .get(v)
                .map_or(serde_json::Value::Null, |s| json!(s)),
        }
    };

    let stuck = match failure {
        Failure::Definite {
            reason,
            stuck,
            witness,
        } => {
            let mut witness = witness.clone();
            witness.sort_by_key(|&i| kh.ops.get(i).map(|o| (o.invoke, o.complete, i)));
            return json!({
                "key": key,
                "reason": reason,
                "stuck_op": op_json(h, kh, *stuck, false),
                "linearized_ops": serde_json::Value::Null,
                "register_value": serde_json::Value::Null,
                "witness": witness.iter().map(|&i| op_json(h, kh, i, false)).collect::<Vec<_>>(),
            });
        }
        Failure::Searched(stuck) => stuck.as_ref(),
    };
    let Some(stuck) = stuck else {
        return json!({"key": key, "reason": "no linearization exists", "witness": []});
    };
    let mut in_prefix = vec![false; kh.ops.len()];
    for &i in &stuck.prefix {
        if let Some(slot) = in_prefix.get_mut(i) {
            *slot = true;
        }
    }
    let bound = kh.ops.get(stuck.op).map_or(NEVER, |o| o.complete);
    // The stuck operation, the operations still pending beside it (all invoked before its
    // completion, none completed earlier), the reads still to see the register's value (they
    // are what keeps a write from overwriting it), then the tail of the partial linearization.
    let pending_readers: Vec<usize> = (0..kh.ops.len())
        .filter(|&i| !in_prefix[i] && !kh.ops[i].write && kh.ops[i].value == stuck.state)
        .collect();
    let mut chosen = vec![stuck.op];
    chosen.extend(
        (0..kh.ops.len()).filter(|&i| i != stuck.op && !in_prefix[i] && kh.ops[i].invoke <= bound),
    );
    chosen.extend(pending_readers.iter().copied());
    chosen.extend(stuck.prefix.iter().rev().take(WITNESS_CONTEXT).copied());
    let mut listed = vec![false; kh.ops.len()];
    chosen.retain(|&i| !std::mem::replace(&mut listed[i], true));
    chosen.truncate(WITNESS_MAX);
    chosen.sort_by_key(|&i| (kh.ops[i].invoke, kh.ops[i].complete, i));
    let witness: Vec<_> = chosen
        .iter()
        .map(|&i| op_json(h, kh, i, in_prefix[i]))
        .collect();

    let blocked_write =
        kh.ops.get(stuck.op).is_some_and(|o| o.write) && !pending_readers.is_empty();
    json!({
        "key": key,
        "reason": format!(
            "no order of the operations explains {}: at most {} of {} operations linearize \
             before it must have taken effect, leaving the register at {}{}",
            describe(h, kh, stuck.op),
            stuck.prefix.len(),
            kh.ops.len(),
            value_name(stuck.state),
            if blocked_write {
                format!(
                    ", which {} reads not yet possible still see",
                    pending_readers.len()
                )
            } else {
                String::new()
            },
        ),
        "stuck_op": op_json(h, kh, stuck.op, false),
        "linearized_ops": stuck.prefix.len(),
        "register_value": value_name(stuck.state),
        "witness": witness,
    })
}

/// A short description of search operation `i`, for the failure reason.
pub(super) fn describe(h: &History, kh: &KeyHistory, i: usize) -> String {
    let Some(op) = kh.ops.get(i) else {
        return "an operation".to_string();
    };
    match op.source {
        Source::Op(j) => {
            let Some(o) = h.ops.get(j) else {
                return "an operation".to_string();
            };
            let what = if op.write { "write" } else { "read" };
            format!("op {} ({what} of {:?} on {})", o.id, o.value, o.node)
        }
        Source::Final(j) => {
            let value = h.final_reads.get(j).and_then(|f| f.value.clone());
            format!("the final read (of {value:?})")
        }
    }
}

/// Search operation `i` as a witness entry.
fn op_json(h: &History, kh: &KeyHistory, i: usize, linearized: bool) -> serde_json::Value {
    let Some(op) = kh.ops.get(i) else {
        return serde_json::Value::Null;
    };
    match op.source {
        Source::Op(j) => {
            let Some(o) = h.ops.get(j) else {
                return serde_json::Value::Null;
            };
            let mut v = json!({
                "id": o.id,
                "process": o.process,
                "node": o.node,
                "kind": if op.write { "write" } else { "read" },
                "value": o.value,
                "invoke_us": o.invoke_us,
                "complete_us": o.complete_us,
                "outcome": o.outcome,
                "in_partial_linearization": linearized,
            });
            if o.outcome == Outcome::Unknown {
                // The interval the search used: until the first read that saw the value.
                v["effective_by_us"] = json!(op.complete);
            }
            v
        }
        Source::Final(j) => json!({
            "final_read": true,
            "kind": "read",
            "value": h.final_reads.get(j).and_then(|f| f.value.clone()),
            "invoke_us": kh.final_time,
            "complete_us": kh.final_time,
            "outcome": "ok",
            "in_partial_linearization": linearized,
        }),
    }
}
