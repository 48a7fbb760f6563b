//! Arithmetic on float histograms with Prometheus's semantics: adding and subtracting across
//! schemas and zero thresholds, Kahan-compensated sums, scaling, counter-reset detection,
//! resolution reduction and compaction.

use super::{
    CUSTOM_BUCKETS_SCHEMA, CounterResetHint, FloatHistogram, HistogramError, exponential_bound,
    from_pairs, is_exponential_schema, pairs, target_idx,
};

/// Neumaier-compensated `sum + inc` with compensation `c`, as Prometheus's `kahansum.Inc`.
#[inline]
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// What an addition noticed besides its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddInfo {
    /// One side said "counter reset", the other "not a reset".
    pub counter_reset_collision: bool,
    /// Custom bounds differed and were reduced to their intersection.
    pub nhcb_bounds_reconciled: bool,
}

type Pairs = Vec<(i32, f64)>;
type KPairs = Vec<(i32, (f64, f64))>;

/// Merges two ascending sparse lists, combining entries with equal index.
fn merge<T: Copy>(
    a: &[(i32, T)],
    b: &[(i32, T)],
    both: impl Fn(T, T) -> T,
    only_b: impl Fn(T) -> T,
) -> Vec<(i32, T)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if j >= b.len() || (i < a.len() && a[i].0 < b[j].0) {
            out.push(a[i]);
            i += 1;
        } else if i >= a.len() || b[j].0 < a[i].0 {
            out.push((b[j].0, only_b(b[j].1)));
            j += 1;
        } else {
            out.push((a[i].0, both(a[i].1, b[j].1)));
            i += 1;
            j += 1;
        }
    }
    out
}

/// Buckets merged into a lower-resolution schema (plain sums).
fn reduce(p: &[(i32, f64)], from: i32, to: i32) -> Pairs {
    let mut out: Pairs = Vec::with_capacity(p.len());
    for &(i, c) in p {
        let t = target_idx(i, from, to);
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// Buckets with compensation merged into a lower-resolution schema (compensated sums).
fn kahan_reduce(p: &[(i32, (f64, f64))], from: i32, to: i32) -> KPairs {
    let mut out: KPairs = Vec::with_capacity(p.len());
    for &(i, (v, c)) in p {
        let t = target_idx(i, from, to);
        match out.last_mut() {
            Some(last) if last.0 == t => {
                let (s, k) = kahan_inc(v, last.1.0, last.1.1);
                last.1 = kahan_inc(c, s, k);
            }
            _ => out.push((t, (v, c))),
        }
    }
    out
}

/// Intersection of two ascending bound lists.
pub fn intersect_custom_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Maps custom buckets of two layouts onto the intersection of their bounds and adds (or
/// subtracts) them with compensated sums; empty results are dropped.
fn add_custom_mismatched(
    negate_b: bool,
    a: &[(i32, f64)],
    bounds_a: &[f64],
    ca: Option<&[f64]>,
    b: &[(i32, f64)],
    bounds_b: &[f64],
    inter: &[f64],
) -> KPairs {
    let mut t = vec![(0.0f64, 0.0f64); inter.len() + 1];
    let mut map = |p: &[(i32, f64)], bounds: &[f64], comp: Option<&[f64]>, neg: bool| {
        let mut ii = 0usize;
        for (k, &(src, v)) in p.iter().enumerate() {
            let mut target = t.len() - 1;
            if src >= 0 && (src as usize) < bounds.len() {
                let sb = bounds[src as usize];
                while ii < inter.len() {
                    if inter[ii] >= sb {
                        target = ii;
                        break;
                    }
                    ii += 1;
                }
            }
            let e = &mut t[target];
            if neg {
                *e = kahan_inc(-v, e.0, e.1);
            } else {
                *e = kahan_inc(v, e.0, e.1);
                if let Some(c) = comp {
                    *e = kahan_inc(c[k], e.0, e.1);
                }
            }
        }
    };
    map(a, bounds_a, ca, false);
    map(b, bounds_b, None, negate_b);
    t.into_iter()
        .enumerate()
        .filter(|(_, (v, c))| *v != 0.0 || *c != 0.0)
        .map(|(i, v)| (i as i32, v))
        .collect()
}

impl FloatHistogram {
    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        match (self.hint, other.hint) {
            (a, b) if a == b => false,
            (Gauge, _) => false,
            (_, Gauge) => {
                self.hint = Gauge;
                false
            }
            (Unknown, _) => false,
            (_, Unknown) => {
                self.hint = Unknown;
                false
            }
            _ => {
                self.hint = Unknown;
                true
            }
        }
    }

    fn check_schemas(&self, other: &FloatHistogram) -> Result<(), HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::IncompatibleSchema);
        }
        Ok(())
    }

    /// The zero count for a threshold at least `larger`, widened further if it would cut a
    /// populated bucket; with `c`, its compensation terms are folded in too.
    fn zero_count_for_larger_threshold(
        &self,
        larger: f64,
        c: Option<&FloatHistogram>,
    ) -> (f64, f64, f64) {
        let mut czc = c.map_or(0.0, |c| c.zero_count);
        if larger == self.zero_threshold {
            return (self.zero_count, larger, czc);
        }
        let mut larger = larger;
        let pos = self.positive_buckets_iter();
        let neg = self.negative_buckets_iter();
        'outer: loop {
            let mut zc = self.zero_count;
            czc = c.map_or(0.0, |c| c.zero_count);
            for (k, b) in pos.iter().enumerate() {
                if b.lower >= larger {
                    break;
                }
                (zc, czc) = kahan_inc(b.count, zc, czc);
                if let Some(c) = c {
                    (zc, czc) = kahan_inc(c.positive_buckets[k], zc, czc);
                }
                if b.upper > larger {
                    if b.count != 0.0 {
                        larger = b.upper;
                    }
                    break;
                }
            }
            for (k, b) in neg.iter().enumerate() {
                if b.upper <= -larger {
                    break;
                }
                (zc, czc) = kahan_inc(b.count, zc, czc);
                if let Some(c) = c {
                    (zc, czc) = kahan_inc(c.negative_buckets[k], zc, czc);
                }
                if b.lower < -larger {
                    if b.count != 0.0 {
                        larger = -b.lower;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (zc, larger, czc);
        }
    }

    /// Empties the buckets now inside the zero bucket and compacts.
    fn trim_buckets_in_zero_bucket(&mut self, mut c: Option<&mut FloatHistogram>) {
        let zt = self.zero_threshold;
        for (k, b) in self.positive_buckets_iter().iter().enumerate() {
            if b.lower >= zt {
                break;
            }
            self.positive_buckets[k] = 0.0;
            if let Some(c) = c.as_deref_mut() {
                c.positive_buckets[k] = 0.0;
            }
        }
        for (k, b) in self.negative_buckets_iter().iter().enumerate() {
            if b.upper <= -zt {
                break;
            }
            self.negative_buckets[k] = 0.0;
            if let Some(c) = c.as_deref_mut() {
                c.negative_buckets[k] = 0.0;
            }
        }
        match c {
            Some(c) => self.kahan_compact(c),
            None => {
                self.compact();
            }
        }
    }

    /// Brings both zero buckets to the larger threshold; returns `other`'s zero count (and
    /// its compensation) at that threshold.
    fn reconcile_zero_buckets(
        &mut self,
        other: &FloatHistogram,
        mut c: Option<&mut FloatHistogram>,
    ) -> (f64, f64) {
        let mut ozc = other.zero_count;
        let mut ozt = other.zero_threshold;
        let mut oczc = 0.0;
        // NaN thresholds never converge (validation refuses them; this guards anyway).
        while ozt != self.zero_threshold && !ozt.is_nan() && !self.zero_threshold.is_nan() {
            if self.zero_threshold > ozt {
                (ozc, ozt, oczc) = other.zero_count_for_larger_threshold(self.zero_threshold, None);
            }
            if ozt > self.zero_threshold {
                let (zc, zt, czc) = self.zero_count_for_larger_threshold(ozt, c.as_deref());
                self.zero_count = zc;
                self.zero_threshold = zt;
                if let Some(c) = c.as_deref_mut() {
                    c.zero_count = czc;
                }
                self.trim_buckets_in_zero_bucket(c.as_deref_mut());
            }
        }
        (ozc, oczc)
    }

    /// Adds `other` (Prometheus's `Add`): schemas reduced to the lower, zero buckets widened to
    /// the wider, custom bounds intersected if they differ.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<AddInfo, HistogramError> {
        self.add_or_sub(other, false)
    }

    /// Subtracts `other` (Prometheus's `Sub`); the counter-reset hint is merged as in `add`.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<AddInfo, HistogramError> {
        self.add_or_sub(other, true)
    }

    fn add_or_sub(
        &mut self,
        other: &FloatHistogram,
        negate: bool,
    ) -> Result<AddInfo, HistogramError> {
        self.check_schemas(other)?;
        let mut info = AddInfo {
            counter_reset_collision: self.adjust_counter_reset(other),
            ..AddInfo::default()
        };
        let sign = if negate { -1.0 } else { 1.0 };
        if !self.uses_custom_buckets() {
            let (ozc, _) = self.reconcile_zero_buckets(other, None);
            self.zero_count += sign * ozc;
        }
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        let a: Pairs = self.positive_pairs().collect();
        let b: Pairs = other.positive_pairs().collect();
        let add = |x: f64, y: f64| if negate { x - y } else { x + y };
        let only_b = |y: f64| if negate { -y } else { y };
        if self.uses_custom_buckets() {
            if self.custom_values == other.custom_values {
                (self.positive_spans, self.positive_buckets) =
                    from_pairs(merge(&a, &b, add, only_b));
            } else {
                info.nhcb_bounds_reconciled = true;
                let inter = intersect_custom_bounds(&self.custom_values, &other.custom_values);
                let m = add_custom_mismatched(
                    negate,
                    &a,
                    &self.custom_values,
                    None,
                    &b,
                    &other.custom_values,
                    &inter,
                );
                (self.positive_spans, self.positive_buckets) =
                    from_pairs(m.into_iter().map(|(i, (v, _))| (i, v)));
                self.custom_values = inter;
            }
            return Ok(info);
        }
        let mut a = a;
        let mut b = b;
        let mut an: Pairs = self.negative_pairs().collect();
        let mut bn: Pairs = other.negative_pairs().collect();
        if other.schema < self.schema {
            a = reduce(&a, self.schema, other.schema);
            an = reduce(&an, self.schema, other.schema);
            self.schema = other.schema;
        } else if other.schema > self.schema {
            b = reduce(&b, other.schema, self.schema);
            bn = reduce(&bn, other.schema, self.schema);
        }
        let (schema, zt) = (self.schema, self.zero_threshold);
        let above = |p: &mut Pairs| {
            p.retain(|(i, _)| {
                !(is_exponential_schema(schema) && exponential_bound(*i, schema) <= zt)
            })
        };
        above(&mut b);
        above(&mut bn);
        (self.positive_spans, self.positive_buckets) = from_pairs(merge(&a, &b, add, only_b));
        (self.negative_spans, self.negative_buckets) = from_pairs(merge(&an, &bn, add, only_b));
        Ok(info)
    }

    /// A compensation histogram for [`Self::kahan_add`]: same layout, all terms zero.
    pub fn new_compensation(&self) -> FloatHistogram {
        FloatHistogram {
            hint: self.hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            custom_values: self.custom_values.clone(),
            positive_spans: self.positive_spans.clone(),
            negative_spans: self.negative_spans.clone(),
            positive_buckets: vec![0.0; self.positive_buckets.len()],
            negative_buckets: vec![0.0; self.negative_buckets.len()],
            ..Default::default()
        }
    }

    /// Adds `other` with Kahan compensation kept in `c` (Prometheus's `KahanAdd`); `c` keeps
    /// this histogram's layout. Finish with `self.add(&c)`.
    pub fn kahan_add(
        &mut self,
        other: &FloatHistogram,
        c: &mut FloatHistogram,
    ) -> Result<AddInfo, HistogramError> {
        self.check_schemas(other)?;
        let mut info = AddInfo {
            counter_reset_collision: self.adjust_counter_reset(other),
            ..AddInfo::default()
        };
        if !self.uses_custom_buckets() {
            let (ozc, oczc) = self.reconcile_zero_buckets(other, Some(c));
            (self.zero_count, c.zero_count) = kahan_inc(ozc, self.zero_count, c.zero_count);
            (self.zero_count, c.zero_count) = kahan_inc(oczc, self.zero_count, c.zero_count);
        }
        (self.count, c.count) = kahan_inc(other.count, self.count, c.count);
        (self.sum, c.sum) = kahan_inc(other.sum, self.sum, c.sum);
        let zip = |p: &[(i32, f64)], cb: &[f64]| -> KPairs {
            p.iter()
                .enumerate()
                .map(|(k, &(i, v))| (i, (v, cb.get(k).copied().unwrap_or(0.0))))
                .collect()
        };
        let both = |x: (f64, f64), y: (f64, f64)| {
            let (s, k) = kahan_inc(y.0, x.0, x.1);
            if y.1 != 0.0 {
                kahan_inc(y.1, s, k)
            } else {
                (s, k)
            }
        };
        let unzip = |h: &mut FloatHistogram, c: &mut FloatHistogram, p: KPairs, positive: bool| {
            let (spans, vals) = from_pairs(p);
            let (v, cv): (Vec<f64>, Vec<f64>) = vals.into_iter().unzip();
            if positive {
                h.positive_spans = spans.clone();
                h.positive_buckets = v;
                c.positive_spans = spans;
                c.positive_buckets = cv;
            } else {
                h.negative_spans = spans.clone();
                h.negative_buckets = v;
                c.negative_spans = spans;
                c.negative_buckets = cv;
            }
        };
        let a = zip(
            &self.positive_pairs().collect::<Vec<_>>(),
            &c.positive_buckets,
        );
        let b = zip(&other.positive_pairs().collect::<Vec<_>>(), &[]);
        if self.uses_custom_buckets() {
            if self.custom_values == other.custom_values {
                unzip(self, c, merge(&a, &b, both, |y| y), true);
            } else {
                info.nhcb_bounds_reconciled = true;
                let inter = intersect_custom_bounds(&self.custom_values, &other.custom_values);
                let ap: Pairs = a.iter().map(|&(i, (v, _))| (i, v)).collect();
                let ac: Vec<f64> = a.iter().map(|&(_, (_, k))| k).collect();
                let bp: Pairs = b.iter().map(|&(i, (v, _))| (i, v)).collect();
                let m = add_custom_mismatched(
                    false,
                    &ap,
                    &self.custom_values,
                    Some(&ac),
                    &bp,
                    &other.custom_values,
                    &inter,
                );
                unzip(self, c, m, true);
                self.custom_values = inter.clone();
                c.custom_values = inter;
            }
            return Ok(info);
        }
        let mut a = a;
        let mut b = b;
        let mut an = zip(
            &self.negative_pairs().collect::<Vec<_>>(),
            &c.negative_buckets,
        );
        let mut bn = zip(&other.negative_pairs().collect::<Vec<_>>(), &[]);
        if other.schema < self.schema {
            a = kahan_reduce(&a, self.schema, other.schema);
            an = kahan_reduce(&an, self.schema, other.schema);
            self.schema = other.schema;
        } else if other.schema > self.schema {
            b = kahan_reduce(&b, other.schema, self.schema);
            bn = kahan_reduce(&bn, other.schema, self.schema);
        }
        let (schema, zt) = (self.schema, self.zero_threshold);
        let above = |p: &mut KPairs| {
            p.retain(|(i, _)| {
                !(is_exponential_schema(schema) && exponential_bound(*i, schema) <= zt)
            })
        };
        above(&mut b);
        above(&mut bn);
        unzip(self, c, merge(&a, &b, both, |y| y), true);
        unzip(self, c, merge(&an, &bn, both, |y| y), false);
        c.schema = self.schema;
        c.zero_threshold = self.zero_threshold;
        Ok(info)
    }

    /// Data equality (Prometheus's `Equals`): same schema, zero bucket and bucket layout,
    /// counts and sum compared bit for bit.
    pub fn equals(&self, o: &FloatHistogram) -> bool {
        let bits = |a: f64, b: f64| a.to_bits() == b.to_bits();
        let same = |a: Vec<(i32, f64)>, b: Vec<(i32, f64)>| {
            a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.0 == y.0 && bits(x.1, y.1))
        };
        self.schema == o.schema
            && bits(self.count, o.count)
            && bits(self.sum, o.sum)
            && (!self.uses_custom_buckets() || self.custom_values == o.custom_values)
            && self.zero_threshold == o.zero_threshold
            && bits(self.zero_count, o.zero_count)
            && same(
                self.negative_pairs().collect(),
                o.negative_pairs().collect(),
            )
            && same(
                self.positive_pairs().collect(),
                o.positive_pairs().collect(),
            )
    }

    /// Multiplies every count and the sum by `f` (a negative factor makes it a gauge).
    pub fn mul(&mut self, f: f64) -> &mut Self {
        self.zero_count *= f;
        self.count *= f;
        self.sum *= f;
        self.positive_buckets.iter_mut().for_each(|b| *b *= f);
        self.negative_buckets.iter_mut().for_each(|b| *b *= f);
        if f < 0.0 {
            self.hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Divides every count and the sum by `d`; dividing by zero also drops all buckets.
    pub fn div(&mut self, d: f64) -> &mut Self {
        self.zero_count /= d;
        self.count /= d;
        self.sum /= d;
        if d == 0.0 {
            self.positive_buckets.clear();
            self.negative_buckets.clear();
            self.positive_spans.clear();
            self.negative_spans.clear();
            return self;
        }
        self.positive_buckets.iter_mut().for_each(|b| *b /= d);
        self.negative_buckets.iter_mut().for_each(|b| *b /= d);
        if d < 0.0 {
            self.hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Drops empty buckets (Prometheus's `Compact(0)`).
    pub fn compact(&mut self) -> &mut Self {
        self.compact_with(0)
    }

    /// Drops empty buckets except runs of at most `max_empty` between populated ones, which
    /// are kept as explicit zeros (Prometheus's `Compact(n)`).
    pub fn compact_with(&mut self, max_empty: usize) -> &mut Self {
        let squeeze = |p: Pairs| -> Pairs {
            let full: Pairs = p.into_iter().filter(|(_, c)| *c != 0.0).collect();
            let mut out: Pairs = Vec::with_capacity(full.len());
            for (i, c) in full {
                if let Some(&(last, _)) = out.last() {
                    let gap = (i - last - 1) as usize;
                    if gap > 0 && gap <= max_empty {
                        out.extend((last + 1..i).map(|k| (k, 0.0)));
                    }
                }
                out.push((i, c));
            }
            out
        };
        let p = squeeze(self.positive_pairs().collect());
        let n = squeeze(self.negative_pairs().collect());
        (self.positive_spans, self.positive_buckets) = from_pairs(p);
        (self.negative_spans, self.negative_buckets) = from_pairs(n);
        self
    }

    fn kahan_compact(&mut self, c: &mut FloatHistogram) {
        let keep = |h: &[f64], cb: &[f64], spans: &[super::Span]| -> KPairs {
            pairs(spans, h)
                .enumerate()
                .map(|(k, (i, v))| (i, (v, cb.get(k).copied().unwrap_or(0.0))))
                .filter(|(_, (v, c))| *v != 0.0 || *c != 0.0)
                .collect()
        };
        for positive in [true, false] {
            let p = if positive {
                keep(
                    &self.positive_buckets,
                    &c.positive_buckets,
                    &self.positive_spans,
                )
            } else {
                keep(
                    &self.negative_buckets,
                    &c.negative_buckets,
                    &self.negative_spans,
                )
            };
            let (spans, vals) = from_pairs(p);
            let (v, cv): (Vec<f64>, Vec<f64>) = vals.into_iter().unzip();
            if positive {
                (self.positive_spans, self.positive_buckets) = (spans.clone(), v);
                (c.positive_spans, c.positive_buckets) = (spans, cv);
            } else {
                (self.negative_spans, self.negative_buckets) = (spans.clone(), v);
                (c.negative_spans, c.negative_buckets) = (spans, cv);
            }
        }
    }

    /// Reduces the resolution to `target` (< the current exponential schema).
    pub fn reduce_resolution(&mut self, target: i32) {
        if self.uses_custom_buckets() || target == CUSTOM_BUCKETS_SCHEMA || target >= self.schema {
            return;
        }
        let p = reduce(
            &self.positive_pairs().collect::<Vec<_>>(),
            self.schema,
            target,
        );
        let n = reduce(
            &self.negative_pairs().collect::<Vec<_>>(),
            self.schema,
            target,
        );
        (self.positive_spans, self.positive_buckets) = from_pairs(p);
        (self.negative_spans, self.negative_buckets) = from_pairs(n);
        self.schema = target;
    }

    /// A copy at `target` schema (≤ the current one), hint reset to unknown.
    pub fn copy_to_schema(&self, target: i32) -> FloatHistogram {
        if target == self.schema {
            return self.clone();
        }
        let mut c = self.clone();
        c.hint = CounterResetHint::Unknown;
        c.reduce_resolution(target);
        c
    }

    /// Whether `self` follows `previous` only after a counter reset (Prometheus's
    /// `DetectReset`): a lower count, a lost or shrunk bucket, a finer schema, a narrower zero
    /// bucket. The hint decides first when it says reset or not-reset.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.hint {
            CounterResetHint::Reset => return true,
            CounterResetHint::NotReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() {
            if !previous.uses_custom_buckets() {
                return true;
            }
            if self.custom_values != previous.custom_values {
                return self.reset_with_mismatched_bounds(previous);
            }
        } else if previous.uses_custom_buckets() {
            // Exponential after custom: treated through the schema comparison below.
            return true;
        }
        if self.schema > previous.schema {
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (pzc, thr, _) = previous.zero_count_for_larger_threshold(self.zero_threshold, None);
        if thr != self.zero_threshold {
            return true;
        }
        if self.zero_count < pzc {
            return true;
        }
        let (schema, zt) = (self.schema, self.zero_threshold);
        let view = |p: Pairs, from: i32| -> Pairs {
            let mut r = if from != schema {
                reduce(&p, from, schema)
            } else {
                p
            };
            if is_exponential_schema(schema) && zt != 0.0 {
                let first = r
                    .iter()
                    .position(|(i, _)| exponential_bound(*i, schema) > zt)
                    .unwrap_or(r.len());
                r.drain(..first);
            }
            r
        };
        for positive in [true, false] {
            let (cur, prev) = if positive {
                (
                    self.positive_pairs().collect(),
                    previous.positive_pairs().collect(),
                )
            } else {
                (
                    self.negative_pairs().collect(),
                    previous.negative_pairs().collect(),
                )
            };
            let cur = view(cur, self.schema);
            let prev = view(prev, previous.schema);
            let mut j = 0;
            for &(pi, pc) in &prev {
                while j < cur.len() && cur[j].0 < pi {
                    j += 1;
                }
                let cc = if j < cur.len() && cur[j].0 == pi {
                    Some(cur[j].1)
                } else {
                    None
                };
                match cc {
                    None if pc != 0.0 => return true,
                    Some(cc) if cc < pc => return true,
                    _ => {}
                }
            }
        }
        false
    }

    /// Reset detection across differing custom bounds: cumulative counts compared at each
    /// bound both layouts share.
    fn reset_with_mismatched_bounds(&self, prev: &FloatHistogram) -> bool {
        let cur_b = self.positive_buckets_iter();
        let prev_b = prev.positive_buckets_iter();
        let mut common = intersect_custom_bounds(&self.custom_values, &prev.custom_values);
        common.push(f64::INFINITY);
        let (mut i, mut j) = (0, 0);
        for bound in common {
            let mut cs = 0.0;
            while i < cur_b.len() && cur_b[i].upper <= bound {
                cs += cur_b[i].count;
                i += 1;
            }
            let mut ps = 0.0;
            while j < prev_b.len() && prev_b[j].upper <= bound {
                ps += prev_b[j].count;
                j += 1;
            }
            if cs < ps {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::Span;
    use super::*;

    fn fh(schema: i32, count: f64, pos: &[(i32, f64)]) -> FloatHistogram {
        let (positive_spans, positive_buckets) = from_pairs(pos.iter().copied());
        FloatHistogram {
            schema,
            count,
            sum: count,
            positive_spans,
            positive_buckets,
            ..Default::default()
        }
    }

    #[test]
    fn add_reduces_to_the_lower_schema() {
        let mut a = fh(1, 3.0, &[(1, 1.0), (2, 2.0)]);
        let b = fh(0, 2.0, &[(1, 2.0)]);
        a.add(&b).unwrap();
        assert_eq!(a.schema, 0);
        assert_eq!(a.positive_pairs().collect::<Vec<_>>(), vec![(1, 5.0)]);
        assert_eq!(a.count, 5.0);
    }

    #[test]
    fn sub_and_compact() {
        let mut a = fh(0, 3.0, &[(0, 1.0), (1, 2.0)]);
        let b = fh(0, 1.0, &[(0, 1.0)]);
        a.sub(&b).unwrap();
        a.compact();
        assert_eq!(
            a.positive_spans,
            vec![Span {
                offset: 1,
                length: 1
            }]
        );
        assert_eq!(a.count, 2.0);
    }

    #[test]
    fn resets() {
        let a = fh(0, 3.0, &[(0, 1.0), (1, 2.0)]);
        let b = fh(0, 4.0, &[(0, 2.0), (1, 2.0)]);
        assert!(!b.detect_reset(&a));
        let c = fh(0, 4.0, &[(1, 4.0)]);
        assert!(c.detect_reset(&a));
        let finer = fh(1, 5.0, &[(1, 1.0)]);
        assert!(finer.detect_reset(&a));
    }

    #[test]
    fn kahan_add_compensates() {
        let mut a = fh(0, 1.0, &[(0, 1.0)]);
        a.sum = 1e100;
        let mut c = a.new_compensation();
        let mut b = fh(0, 1.0, &[(0, 1.0)]);
        b.sum = 1.0;
        a.kahan_add(&b, &mut c).unwrap();
        b.sum = -1e100;
        a.kahan_add(&b, &mut c).unwrap();
        a.add(&c).unwrap();
        assert_eq!(a.sum, 1.0);
        assert_eq!(a.count, 3.0);
    }

    #[test]
    fn mismatched_custom_bounds_intersect() {
        let mut a = fh(CUSTOM_BUCKETS_SCHEMA, 3.0, &[(0, 1.0), (1, 2.0)]);
        a.custom_values = vec![1.0, 2.0];
        let mut b = fh(CUSTOM_BUCKETS_SCHEMA, 1.0, &[(0, 1.0)]);
        b.custom_values = vec![2.0];
        let info = a.add(&b).unwrap();
        assert!(info.nhcb_bounds_reconciled);
        assert_eq!(a.custom_values, vec![2.0]);
        assert_eq!(a.positive_pairs().collect::<Vec<_>>(), vec![(0, 4.0)]);
    }
}
