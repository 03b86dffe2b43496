//! Overlap resolution: turns raw scan results into non-overlapping findings.
//!
//! Order of precedence: existing `[REDACTED:...]` markers are never touched
//! (this is what makes redaction idempotent); known secrets beat rules and
//! PII; among the rest the leftmost wins, then the longest, then the rule
//! listed first. A loser that sticks out of a winner is clipped, not
//! dropped, so every byte any detector claimed is still redacted.

use std::ops::Range;

use crate::Category;
use crate::known::KNOWN_KIND;
use crate::scan::{Candidate, RawScan};

/// One resolved finding, before it becomes a public [`crate::Finding`]
/// (whose kind is an owned `String`); the decoded views feed these back
/// into the scan of the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// Byte range in the resolved text.
    pub(crate) range: Range<usize>,
    /// Rule or detector id.
    pub(crate) kind: &'static str,
    /// Broad class of the match.
    pub(crate) category: Category,
}

/// Widens `r` to the nearest char boundaries of `text`.
fn snap(text: &str, r: &Range<usize>) -> Range<usize> {
    let mut start = r.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = r.end.min(text.len()).max(start);
    while !text.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

/// Sorted, merged union of `ranges`.
fn union(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start < last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Calls `emit` with each part of `r` outside the sorted, disjoint
/// `blocked` ranges.
fn subtract(r: Range<usize>, blocked: &[Range<usize>], mut emit: impl FnMut(Range<usize>)) {
    let mut cur = r.start;
    let first = blocked.partition_point(|b| b.end <= r.start);
    for b in blocked.iter().skip(first) {
        if b.start >= r.end {
            break;
        }
        if b.start > cur {
            emit(cur..b.start);
        }
        cur = cur.max(b.end);
    }
    if cur < r.end {
        emit(cur..r.end);
    }
}

/// Resolves a raw scan into sorted, non-overlapping findings.
pub(crate) fn resolve(text: &str, raw: RawScan) -> Vec<Resolved> {
    let markers = union(raw.markers);
    let mut known: Vec<Range<usize>> = Vec::new();
    for k in union(raw.known.iter().map(|r| snap(text, r)).collect()) {
        subtract(k, &markers, |piece| known.push(piece));
    }
    let mut blocked = union(markers.iter().cloned().chain(known.iter().cloned()).collect());
    blocked.dedup();

    let mut candidates: Vec<Candidate> = raw
        .candidates
        .into_iter()
        .map(|mut c| {
            c.range = snap(text, &c.range);
            c
        })
        .filter(|c| !c.range.is_empty())
        .collect();
    candidates.sort_by_key(|c| (c.range.start, std::cmp::Reverse(c.range.end), c.priority));

    let mut findings: Vec<Resolved> =
        known.into_iter().map(|range| Resolved { kind: KNOWN_KIND, range, category: Category::KnownSecret }).collect();
    let mut last_end = 0usize;
    for c in candidates {
        if c.range.end <= last_end {
            continue;
        }
        let clipped = c.range.start.max(last_end)..c.range.end;
        last_end = c.range.end;
        subtract(clipped, &blocked, |piece| {
            findings.push(Resolved { kind: c.kind, range: piece, category: c.category });
        });
    }
    findings.sort_by_key(|f| f.range.start);
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(r: Range<usize>, kind: &'static str, priority: usize) -> Candidate {
        Candidate { range: r, kind, category: Category::Secret, priority }
    }

    #[test]
    fn leftmost_then_longest_then_priority() {
        let text = "x".repeat(40);
        let raw = RawScan {
            candidates: vec![
                cand(5..10, "b", 1),
                cand(2..8, "a", 5),
                cand(2..8, "c", 0),
                cand(20..30, "d", 0),
                cand(20..25, "e", 0),
            ],
            ..RawScan::default()
        };
        let f = resolve(&text, raw);
        let got: Vec<(&str, Range<usize>)> = f.iter().map(|f| (f.kind, f.range.clone())).collect();
        assert_eq!(got, vec![("c", 2..8), ("b", 8..10), ("d", 20..30)]);
    }

    #[test]
    #[expect(clippy::single_range_in_vec_init, reason = "a list of byte ranges, one of them")]
    fn known_secrets_win_and_rules_are_clipped_around_them() {
        let text = "x".repeat(40);
        let raw = RawScan { known: vec![10..20], candidates: vec![cand(5..25, "r", 0)], markers: vec![] };
        let f = resolve(&text, raw);
        let got: Vec<(&str, Range<usize>)> = f.iter().map(|f| (f.kind, f.range.clone())).collect();
        assert_eq!(got, vec![("r", 5..10), ("credential", 10..20), ("r", 20..25)]);
    }

    #[test]
    #[expect(clippy::single_range_in_vec_init, reason = "a list of byte ranges, one of them")]
    fn markers_are_never_redacted() {
        let text = "x".repeat(40);
        let raw = RawScan { known: vec![0..12], candidates: vec![cand(8..30, "r", 0)], markers: vec![5..15] };
        let f = resolve(&text, raw);
        let got: Vec<Range<usize>> = f.iter().map(|f| f.range.clone()).collect();
        assert_eq!(got, vec![0..5, 15..30]);
    }

    #[test]
    fn ranges_snap_to_char_boundaries() {
        let text = "aé€b";
        assert_eq!(snap(text, &(2..4)), 1..6);
    }
}
