// Muninn: the source span of every expression node, recorded as the grammar reduces it, so
// callers can report positions (Prometheus's annotations carry `(line:col)`). Reductions
// happen children first, left to right; each node that is a new AST node records one span,
// and a reduction that modifies the node just reduced (`offset`, `@`, unary `+`, a negated
// number) updates that node's span instead. The spans thus come in post-order of the AST,
// with a matrix selector's vector selector as its child.

use std::cell::RefCell;

thread_local! {
    static SPANS: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn reset() {
    SPANS.with(|s| s.borrow_mut().clear());
}

pub(crate) fn record(start: usize, end: usize) {
    SPANS.with(|s| s.borrow_mut().push((start, end)));
}

/// The node just recorded grew: its span becomes `start..end`.
pub(crate) fn replace_last(start: usize, end: usize) {
    SPANS.with(|s| {
        let mut s = s.borrow_mut();
        match s.last_mut() {
            Some(last) => *last = (start.min(last.0), end.max(last.1)),
            None => s.push((start, end)),
        }
    });
}

pub(crate) fn take() -> Vec<(usize, usize)> {
    SPANS.with(|s| std::mem::take(&mut *s.borrow_mut()))
}
