//! The evaluator: walks the AST once per query over all steps (step-vectorised), fetching
//! series from the [`SeriesSource`] per selector.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use muninn_proto::tenant::TenantId;
use muninn_storage::is_stale_nan;
use muninn_storage::labels::METRIC_NAME;
use muninn_storage::matcher::{MatchOp, Matcher};
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use super::limits::{
    ByteSize, SLOT_BYTES, labels_bytes, samples_bytes, series_bytes, step_count, value_bytes,
};
use super::value::{Hist, Matrix, RangeSeries, Series, Value, is_stale_hist};
use super::{aggregate, binary, functions};
use crate::store::{SeriesData, SeriesSource};
use crate::{Error, Result};

/// A `(lo, hi]` time window in milliseconds.
pub type Window = (i64, i64);

/// Evaluation steps: `start, start + interval, ..., end` (ms).
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    pub start: i64,
    pub end: i64,
    pub interval: i64,
}

impl Ctx {
    /// The number of steps (saturating: a caller checks it against the query's budget with
    /// [`Evaluator::check_steps`] before sizing anything by it).
    pub fn len(&self) -> usize {
        usize::try_from(step_count(self.start, self.end, self.interval.max(1)))
            .unwrap_or(usize::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn at(&self, i: usize) -> i64 {
        let i = i64::try_from(i).unwrap_or(i64::MAX);
        self.start.saturating_add(self.interval.saturating_mul(i))
    }
}

/// Warnings and infos collected during evaluation.
#[derive(Debug, Default)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// Evaluates PromQL for one tenant.
pub struct Evaluator<'a> {
    pub store: &'a dyn SeriesSource,
    pub tenant: &'a TenantId,
    pub lookback_ms: i64,
    pub subquery_step_ms: i64,
    pub max_samples: usize,
    /// Start and end of the whole query, for `@ start()` / `@ end()`.
    pub query_start: i64,
    pub query_end: i64,
    /// Step of a range query; 0 for instant queries.
    pub query_step: i64,
    pub annotations: Mutex<Annotations>,
    samples: Mutex<usize>,
    /// Evaluation stops with a timeout error once this instant passes.
    pub deadline: Option<std::time::Instant>,
    /// Most series the query may fetch (0: no limit).
    pub max_series: usize,
    series_fetched: Mutex<usize>,
    work: std::sync::atomic::AtomicU64,
    /// When evaluation last yielded to the runtime (see [`Self::checkpoint`]).
    last_yield: Mutex<std::time::Instant>,
    /// Most bytes the query's values may hold (0: no limit).
    pub max_bytes: usize,
    /// Estimated bytes held now: values of finished sub-expressions still in use plus what
    /// the current operation has charged so far.
    bytes: AtomicUsize,
    /// The most `bytes` reached.
    peak_bytes: AtomicUsize,
    /// Whether the selectors now evaluated only feed `histogram_count/sum/avg`
    /// ([`BUCKETS_SKIPPED`]): their histograms are then read without buckets, with counter
    /// resets detected on the fly, as Prometheus's `HistogramStatsIterator` does; or whether
    /// an enclosing subquery or quantile/fraction needs the buckets ([`BUCKETS_NEEDED`]),
    /// which no inner `histogram_count` overrides.
    skip_buckets: AtomicU8,
    /// `line:col` of expression nodes by address ([`super::parse::positions`]), for
    /// annotations; empty when the query's source is not known.
    pub positions: std::collections::HashMap<usize, String>,
    /// The position suffix annotations raised now get (set by the operator computing).
    pos: Mutex<String>,
}

/// [`Evaluator::enter_buckets`] states.
pub const BUCKETS_SKIPPED: u8 = 1;
pub const BUCKETS_NEEDED: u8 = 2;

/// The error of a query whose steps or samples exceed `--querier.max-samples`.
pub fn too_many_samples() -> Error {
    Error::Execution(
        "query processing would load too many samples into memory in query execution".into(),
    )
}

pub(crate) fn duration_ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => duration_ms(d).saturating_neg(),
        None => 0,
    }
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |v| -v),
    }
}

/// Storage matchers of a selector: its metric name plus its matchers, one set per `or` branch.
pub fn matcher_sets(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>> {
    let convert = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>> {
        let mut out = Vec::with_capacity(ms.len() + 1);
        if let Some(name) = &vs.name {
            out.push(
                Matcher::new(MatchOp::Equal, METRIC_NAME, name.as_str())
                    .map_err(|e| Error::BadData(e.to_string()))?,
            );
        }
        for m in ms {
            let op = match m.op {
                PMatchOp::Equal => MatchOp::Equal,
                PMatchOp::NotEqual => MatchOp::NotEqual,
                PMatchOp::Re(_) => MatchOp::Regex,
                PMatchOp::NotRe(_) => MatchOp::NotRegex,
            };
            out.push(
                Matcher::new(op, m.name.as_str(), m.value.as_str())
                    .map_err(|e| Error::BadData(e.to_string()))?,
            );
        }
        Ok(out)
    };
    if vs.matchers.or_matchers.is_empty() {
        Ok(vec![convert(&vs.matchers.matchers)?])
    } else {
        vs.matchers
            .or_matchers
            .iter()
            .map(|ms| convert(ms))
            .collect()
    }
}

impl<'a> Evaluator<'a> {
    pub fn new(
        store: &'a dyn SeriesSource,
        tenant: &'a TenantId,
        lookback_ms: i64,
        query_start: i64,
        query_end: i64,
    ) -> Self {
        Self {
            store,
            tenant,
            lookback_ms,
            subquery_step_ms: 60_000,
            max_samples: 50_000_000,
            query_start,
            query_end,
            query_step: 0,
            annotations: Mutex::new(Annotations::default()),
            samples: Mutex::new(0),
            deadline: None,
            max_series: 0,
            series_fetched: Mutex::new(0),
            work: std::sync::atomic::AtomicU64::new(0),
            last_yield: Mutex::new(std::time::Instant::now()),
            max_bytes: 0,
            bytes: AtomicUsize::new(0),
            peak_bytes: AtomicUsize::new(0),
            skip_buckets: AtomicU8::new(0),
            positions: std::collections::HashMap::new(),
            pos: Mutex::new(String::new()),
        }
    }

    /// Annotations raised from now on, until the node being evaluated returns, carry the
    /// position of `e`, as Prometheus attaches an operand's position to each.
    pub fn set_pos(&self, e: &Expr) {
        self.set_pos_at(e as *const Expr as usize);
    }

    /// As [`Self::set_pos`], for an operator's payload (a `Call`, `AggregateExpr` or
    /// `BinaryExpr`): the position of the expression it is.
    pub fn set_pos_of<T>(&self, payload: &T) {
        self.set_pos_at(payload as *const T as usize);
    }

    fn set_pos_at(&self, addr: usize) {
        let p = self
            .positions
            .get(&addr)
            .map_or_else(String::new, |p| format!(" ({p})"));
        if let Ok(mut cur) = self.pos.lock() {
            *cur = p;
        }
    }

    fn current_pos(&self) -> String {
        self.pos.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn restore_pos(&self, p: String) {
        if let Ok(mut cur) = self.pos.lock() {
            *cur = p;
        }
    }

    fn with_pos(&self, msg: String) -> String {
        match self.pos.lock() {
            Ok(p) if !p.is_empty() => format!("{msg}{p}"),
            _ => msg,
        }
    }

    /// Enters a subtree that needs histogram buckets (`needed`) or only their count and sum;
    /// returns the state to restore with [`Self::restore_buckets`] once it is evaluated.
    pub fn enter_buckets(&self, needed: bool) -> u8 {
        let prev = self.skip_buckets.load(Ordering::Relaxed);
        let next = if needed || prev == BUCKETS_NEEDED {
            BUCKETS_NEEDED
        } else {
            BUCKETS_SKIPPED
        };
        self.skip_buckets.store(next, Ordering::Relaxed);
        prev
    }

    pub fn restore_buckets(&self, prev: u8) {
        self.skip_buckets.store(prev, Ordering::Relaxed);
    }

    fn skipping_buckets(&self) -> bool {
        self.skip_buckets.load(Ordering::Relaxed) == BUCKETS_SKIPPED
    }

    pub fn warn(&self, msg: String) {
        let msg = self.with_pos(msg);
        if let Ok(mut a) = self.annotations.lock()
            && !a.warnings.contains(&msg)
        {
            a.warnings.push(msg);
        }
    }

    pub fn info(&self, msg: String) {
        let msg = self.with_pos(msg);
        if let Ok(mut a) = self.annotations.lock()
            && !a.infos.contains(&msg)
        {
            a.infos.push(msg);
        }
    }

    /// Fails once the query's deadline has passed; called between units of work, since
    /// evaluation is CPU-bound and an async timeout alone could not interrupt it.
    pub fn check_deadline(&self) -> Result<()> {
        match self.deadline {
            Some(d) if std::time::Instant::now() > d => Err(Error::Timeout(
                "query timed out in expression evaluation".into(),
            )),
            _ => Ok(()),
        }
    }

    /// A point where evaluation may stop: checks the deadline and, every so often, yields to
    /// the runtime so that a dropped request (client gone) cancels the query promptly.
    pub async fn checkpoint(&self) -> Result<()> {
        self.check_deadline()?;
        // Every 256 units of work, or 5 ms, whichever comes first: a unit can be a whole
        // series' range function over thousands of steps.
        let n = self.work.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let due = n % 256 == 255
            || self
                .last_yield
                .lock()
                .is_ok_and(|t| t.elapsed() >= Duration::from_millis(5));
        if due {
            tokio::task::yield_now().await;
            if let Ok(mut t) = self.last_yield.lock() {
                *t = std::time::Instant::now();
            }
        }
        Ok(())
    }

    pub fn count_samples(&self, n: usize) -> Result<()> {
        self.check_deadline()?;
        let mut s = self
            .samples
            .lock()
            .map_err(|_| Error::Corrupt("poisoned lock".into()))?;
        *s = s.saturating_add(n);
        if *s > self.max_samples {
            return Err(too_many_samples());
        }
        Ok(())
    }

    /// Checks a step count against the budget before anything is sized by it: more steps
    /// than `--querier.max-samples`, or steps whose values alone would exceed the memory
    /// budget, are refused. Returns the count as `usize`.
    pub fn check_steps(&self, steps: u64) -> Result<usize> {
        if steps > self.max_samples as u64 {
            return Err(too_many_samples());
        }
        let n = usize::try_from(steps).map_err(|_| too_many_samples())?;
        if self.max_bytes > 0 && n.saturating_mul(SLOT_BYTES) > self.max_bytes {
            return Err(self.memory_error());
        }
        Ok(n)
    }

    /// The error of a query past `--querier.max-memory-per-query`.
    pub fn memory_error(&self) -> Error {
        Error::Execution(format!(
            "query processing would hold more than {} in memory (limit set by --querier.max-memory-per-query)",
            ByteSize(self.max_bytes as u64)
        ))
    }

    /// Charges `n` bytes about to be held, failing past `--querier.max-memory-per-query`.
    /// Call it before allocating what the bytes stand for.
    pub fn charge(&self, n: usize) -> Result<()> {
        let now = self.bytes.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        self.peak_bytes.fetch_max(now, Ordering::Relaxed);
        if self.max_bytes > 0 && now > self.max_bytes {
            return Err(self.memory_error());
        }
        Ok(())
    }

    /// Charges a series of `slots` step slots (or samples), labels included.
    pub fn charge_series(
        &self,
        labels: &muninn_storage::labels::Labels,
        slots: usize,
    ) -> Result<()> {
        self.charge(series_bytes(labels, slots))
    }

    /// Releases `n` bytes charged earlier (what a streaming consumer no longer holds).
    pub fn release(&self, n: usize) {
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            });
    }

    /// The estimated bytes held now.
    pub fn held_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The most bytes held at once so far.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes.load(Ordering::Relaxed)
    }

    /// Once an operation is done, what it charged is replaced by its result: `before` is
    /// what was held when it started, `result` the result's size.
    fn settle(&self, before: usize, result: usize) -> Result<()> {
        self.bytes.store(before, Ordering::Relaxed);
        self.charge(result)
    }

    /// The evaluation time of each step for a selector with `@` and `offset`.
    pub fn selector_times(
        &self,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
        ctx: &Ctx,
    ) -> Vec<i64> {
        let off = offset_ms(offset);
        let fixed = match at {
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
            None => None,
        };
        (0..ctx.len())
            .map(|i| fixed.unwrap_or(ctx.at(i)).saturating_sub(off))
            .collect()
    }

    async fn select(&self, vs: &VectorSelector, mint: i64, maxt: i64) -> Result<Vec<SeriesData>> {
        let sets = matcher_sets(vs)?;
        let mut all: Vec<SeriesData> = Vec::new();
        for ms in &sets {
            all.extend(
                self.store
                    .select(self.tenant, ms, mint, maxt, false)
                    .await?,
            );
        }
        if sets.len() > 1 {
            all.sort_by(|a, b| a.labels.cmp(&b.labels));
            all.dedup_by(|a, b| a.labels == b.labels);
        }
        // Already in memory; charged so that what follows has the rest of the budget.
        self.charge(
            all.iter()
                .map(|s| labels_bytes(&s.labels).saturating_add(samples_bytes(&s.samples)))
                .fold(0usize, usize::saturating_add),
        )?;
        self.count_series(all.len())?;
        Ok(all)
    }

    /// Counts `n` more series fetched against the query's series limit.
    fn count_series(&self, n: usize) -> Result<()> {
        if self.max_series > 0 {
            let mut fetched = self
                .series_fetched
                .lock()
                .map_err(|_| Error::Corrupt("poisoned lock".into()))?;
            *fetched += n;
            if *fetched > self.max_series {
                return Err(Error::Execution(format!(
                    "the query hit the max number of series limit (limit: {} series)",
                    self.max_series
                )));
            }
        }
        Ok(())
    }

    /// An instant vector selector. With `timestamps`, values are the sample timestamps in
    /// seconds (for `timestamp()`).
    pub async fn vector_selector(
        &self,
        vs: &VectorSelector,
        ctx: &Ctx,
        timestamps: bool,
    ) -> Result<Vec<Series>> {
        let times = self.selector_times(&vs.at, &vs.offset, ctx);
        let (Some(&lo), Some(&hi)) = (times.iter().min(), times.iter().max()) else {
            return Ok(vec![]);
        };
        let scan_from = lo.saturating_sub(self.lookback_ms);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut one = |s: SeriesData| -> Result<()> {
            self.charge(times.len().saturating_mul(SLOT_BYTES))?;
            if let Some(s) = self.instant_series(s, &times, scan_from, timestamps, &mut buf)? {
                out.push(s);
            }
            Ok(())
        };
        if vs.matchers.or_matchers.is_empty() {
            // Series by series: only the values are held, not the fetched chunks.
            self.select_each(vs, scan_from, hi, &mut one).await?;
        } else {
            for s in self.select(vs, scan_from, hi).await? {
                one(s)?;
            }
        }
        Ok(out)
    }

    /// One series of an instant vector selector: the latest sample within the lookback of
    /// each of `times` (`None` when it has none at any step).
    fn instant_series(
        &self,
        mut s: SeriesData,
        times: &[i64],
        scan_from: i64,
        timestamps: bool,
        buf: &mut Vec<(i64, f64)>,
    ) -> Result<Option<Series>> {
        if self.skipping_buckets() {
            s.histograms = super::native::stats_view(&s.histograms, scan_from);
        }
        s.samples.decode_into(buf)?;
        let samples = &buf[..];
        let hs = &s.histograms;
        let mut vals = Vec::with_capacity(times.len());
        let mut hists: Vec<Option<Hist>> = Vec::new();
        if !hs.is_empty() && !timestamps {
            hists = vec![None; times.len()];
        }
        let mut any = false;
        for (k, &t) in times.iter().enumerate() {
            // Latest sample in the left-open lookback window (t - lookback, t].
            let fi = samples.partition_point(|(ts, _)| *ts <= t);
            let hi = hs.partition_point(|(ts, _)| *ts <= t);
            let ft = (fi > 0).then(|| samples[fi - 1].0);
            let ht = (hi > 0).then(|| hs[hi - 1].0);
            let oldest = t.saturating_sub(self.lookback_ms);
            let v = match (ft, ht) {
                (_, Some(h)) if ft.is_none_or(|f| h > f) => {
                    let hv = &hs[hi - 1].1;
                    if h > oldest && !is_stale_hist(hv) {
                        any = true;
                        if timestamps {
                            Some(h as f64 / 1000.0)
                        } else {
                            hists[k] = Some(hv.clone());
                            None
                        }
                    } else {
                        None
                    }
                }
                (Some(_), _) => {
                    let (ts, v) = samples[fi - 1];
                    (ts > oldest && !is_stale_nan(v)).then_some(if timestamps {
                        ts as f64 / 1000.0
                    } else {
                        v
                    })
                }
                _ => None,
            };
            any |= v.is_some();
            vals.push(v);
        }
        if !any {
            return Ok(None);
        }
        let n = vals.iter().filter(|v| v.is_some()).count()
            + hists.iter().filter(|h| h.is_some()).count();
        self.count_samples(n)?;
        Ok(Some(Series {
            labels: s.labels,
            vals,
            hists,
            drop_name: false,
        }))
    }

    /// The `(t - range, t]` window of every step, and the overall bounds (none without steps).
    fn windows(
        &self,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
        range: i64,
        ctx: &Ctx,
    ) -> (Vec<Window>, Option<Window>) {
        let windows: Vec<(i64, i64)> = self
            .selector_times(at, offset, ctx)
            .iter()
            .map(|&t| (t.saturating_sub(range), t))
            .collect();
        let lo = windows.iter().map(|w| w.0).min();
        let hi = windows.iter().map(|w| w.1).max();
        let bounds = lo.zip(hi);
        (windows, bounds)
    }

    async fn matrix_selector(&self, vs: &VectorSelector, range: i64, ctx: &Ctx) -> Result<Matrix> {
        let (windows, bounds) = self.windows(&vs.at, &vs.offset, range, ctx);
        let Some((lo, hi)) = bounds else {
            return Ok(Matrix {
                series: vec![],
                windows,
                range_ms: range,
            });
        };
        let series = self.select(vs, lo.saturating_add(1), hi).await?;
        let out = series
            .into_iter()
            .map(|s| self.range_series(s, lo.saturating_add(1)))
            .collect();
        Ok(Matrix {
            series: out,
            windows,
            range_ms: range,
        })
    }

    /// One series of a matrix selector reading from `from`: samples kept as fetched (often
    /// still XOR chunks), decoded one series at a time by the function that consumes the range.
    fn range_series(&self, s: SeriesData, from: i64) -> RangeSeries {
        let mut hists = if self.skipping_buckets() {
            super::native::stats_view(&s.histograms, from)
        } else {
            s.histograms
        };
        hists.retain(|(_, h)| !is_stale_hist(h));
        RangeSeries {
            labels: s.labels,
            samples: s.samples,
            hists,
            drop_name: false,
        }
    }

    /// Evaluates a subquery into a range vector: the inner expression at steps aligned to
    /// multiples of the subquery step.
    /// A subquery's windows and range, and the steps its inner expression is evaluated at
    /// (aligned to multiples of the subquery step; `None` when there are none).
    fn subquery_plan(
        &self,
        sq: &promql_parser::parser::SubqueryExpr,
        ctx: &Ctx,
    ) -> Result<(Matrix, Option<Ctx>)> {
        let range = duration_ms(&sq.range);
        let step = sq
            .step
            .as_ref()
            .map(duration_ms)
            .filter(|s| *s > 0)
            .unwrap_or(self.subquery_step_ms);
        let (windows, bounds) = self.windows(&sq.at, &sq.offset, range, ctx);
        let empty = Matrix {
            series: vec![],
            windows,
            range_ms: range,
        };
        let Some((lo, hi)) = bounds else {
            return Ok((empty, None));
        };
        // First step-aligned timestamp after lo (Go's truncating division, as Prometheus).
        let mut start = step.saturating_mul(lo / step);
        if start <= lo {
            let Some(next) = start.checked_add(step) else {
                // No step-aligned time after lo fits in i64: no steps.
                return Ok((empty, None));
            };
            start = next;
        }
        let inner = Ctx {
            start,
            end: hi,
            interval: step,
        };
        // The budget is checked before the inner expression sizes anything by its steps.
        self.check_steps(step_count(inner.start, inner.end, inner.interval))?;
        Ok((empty, Some(inner)))
    }

    /// One series of a subquery's inner expression as a series of its range vector.
    fn subquery_series(&self, s: Series, inner: &Ctx) -> Result<RangeSeries> {
        let n = s.vals.iter().filter(|v| v.is_some()).count();
        self.charge(n.saturating_mul(SLOT_BYTES))?;
        let hists = s
            .hists
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|h| (inner.at(i), unknown_hint(h))))
            .collect();
        Ok(RangeSeries {
            hists,
            samples: crate::store::Samples::Raw(
                s.vals
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (inner.at(i), v)))
                    .collect(),
            ),
            labels: s.labels,
            drop_name: s.drop_name,
        })
    }

    /// Evaluates a subquery into a range vector.
    async fn subquery(
        &self,
        sq: &promql_parser::parser::SubqueryExpr,
        ctx: &Ctx,
    ) -> Result<Matrix> {
        let (mut m, inner) = self.subquery_plan(sq, ctx)?;
        let Some(inner) = inner else {
            return Ok(m);
        };
        // Counter-reset detection over a subquery's samples needs their buckets.
        let prev = self.enter_buckets(true);
        let v = self.eval(&sq.expr, &inner).await;
        self.restore_buckets(prev);
        m.series = match v? {
            Value::Vector(vs) => {
                let mut out = Vec::with_capacity(vs.len());
                for s in vs {
                    out.push(self.subquery_series(s, &inner)?);
                }
                out
            }
            Value::Scalar(vals) => vec![RangeSeries {
                labels: Default::default(),
                samples: crate::store::Samples::Raw(
                    vals.iter()
                        .enumerate()
                        .map(|(i, v)| (inner.at(i), *v))
                        .collect(),
                ),
                hists: Vec::new(),
                drop_name: false,
            }],
            other => {
                return Err(Error::BadData(format!(
                    "subquery is only allowed on instant vector, got {}",
                    other.type_name()
                )));
            }
        };
        Ok(m)
    }

    /// Whether `expr`, an instant vector, can be evaluated series by series as the store
    /// streams them ([`Self::for_each_series`]): a selector, or a range function over a
    /// range vector that can ([`Self::streams_range`]).
    pub fn streams_vector(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Paren(p) => self.streams_vector(&p.expr),
            Expr::VectorSelector(vs) => vs.matchers.or_matchers.is_empty(),
            Expr::Call(c) => {
                let name = c.func.name;
                functions::RANGE_FUNCTIONS.contains(&name)
                    && name != "absent_over_time"
                    && c.args
                        .args
                        .get(functions::RangeFn::matrix_arg(name))
                        .is_some_and(|a| self.streams_range(a))
            }
            _ => false,
        }
    }

    /// Whether a range vector can be produced series by series: a matrix selector, or a
    /// subquery of an instant vector that can ([`Self::streams_vector`]).
    pub fn streams_range(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Paren(p) => self.streams_range(&p.expr),
            Expr::MatrixSelector(ms) => ms.vs.matchers.or_matchers.is_empty(),
            Expr::Subquery(sq) => self.streams_vector(&sq.expr),
            _ => false,
        }
    }

    /// Streams the series of `vs` in `[mint, maxt]` from the store into `f`, counting them
    /// against the series limit. Nothing of the answer is held but the series at hand.
    async fn select_each(
        &self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        f: &mut (dyn FnMut(SeriesData) -> Result<()> + Send),
    ) -> Result<()> {
        use futures::StreamExt;
        let sets = matcher_sets(vs)?;
        let ms = sets
            .first()
            .ok_or_else(|| Error::Execution("selector without matchers".into()))?;
        let mut stream = self
            .store
            .select_stream(self.tenant, ms, mint, maxt)
            .await?;
        while let Some(s) = stream.next().await {
            let s = s?;
            self.checkpoint().await?;
            self.count_series(1)?;
            f(s)?;
        }
        Ok(())
    }

    /// Evaluates `expr` (one that [`Self::streams_vector`]) series by series into `f`: each
    /// output series is handed over as soon as its input series arrives, so a consumer that
    /// folds them (an aggregation) never holds the input or the output whole. What a series
    /// charged is released once `f` has it.
    pub fn for_each_series<'s>(
        &'s self,
        expr: &'s Expr,
        ctx: &'s Ctx,
        f: &'s mut (dyn FnMut(Series) -> Result<()> + Send),
    ) -> BoxFuture<'s, Result<()>> {
        Box::pin(async move {
            match expr {
                Expr::Paren(p) => self.for_each_series(&p.expr, ctx, f).await,
                Expr::VectorSelector(vs) => {
                    let times = self.selector_times(&vs.at, &vs.offset, ctx);
                    let (Some(&lo), Some(&hi)) = (times.iter().min(), times.iter().max()) else {
                        return Ok(());
                    };
                    let scan_from = lo.saturating_sub(self.lookback_ms);
                    let mut buf = Vec::new();
                    self.select_each(vs, scan_from, hi, &mut |sd| {
                        if let Some(s) =
                            self.instant_series(sd, &times, scan_from, false, &mut buf)?
                        {
                            f(s)?;
                        }
                        Ok(())
                    })
                    .await
                }
                Expr::Call(c) => {
                    let name = c.func.name;
                    let marg = c
                        .args
                        .args
                        .get(functions::RangeFn::matrix_arg(name))
                        .ok_or_else(|| Error::BadData(format!("{name}: missing argument")))?;
                    // The function's annotations carry its first argument's position, as when
                    // it is evaluated whole; the caller's position is back afterwards.
                    let pos = self.current_pos();
                    if let Some(a0) = c.args.args.first() {
                        self.set_pos(a0);
                    }
                    let r = async {
                        let mut rf = functions::RangeFn::prepare(self, c, ctx).await?;
                        self.for_each_range_series(marg, ctx, &mut |m, rs| {
                            // The series' charge is released once it is computed: the
                            // consumer charges what it keeps of it.
                            let before = self.held_bytes();
                            let out = rf.apply(self, m, rs);
                            self.settle(before, 0)?;
                            match out? {
                                Some(s) => f(s),
                                None => Ok(()),
                            }
                        })
                        .await?;
                        rf.finish(self);
                        Ok(())
                    }
                    .await;
                    self.restore_pos(pos);
                    r
                }
                _ => Err(Error::Execution(
                    "expression cannot be evaluated series by series".into(),
                )),
            }
        })
    }

    /// Produces the range vector `expr` (one that [`Self::streams_range`]) series by series
    /// into `f`, with the matrix of its windows (holding no series).
    pub fn for_each_range_series<'s>(
        &'s self,
        expr: &'s Expr,
        ctx: &'s Ctx,
        f: &'s mut (dyn FnMut(&Matrix, RangeSeries) -> Result<()> + Send),
    ) -> BoxFuture<'s, Result<()>> {
        Box::pin(async move {
            match expr {
                Expr::Paren(p) => self.for_each_range_series(&p.expr, ctx, f).await,
                Expr::MatrixSelector(ms) => {
                    let range = duration_ms(&ms.range);
                    let (windows, bounds) = self.windows(&ms.vs.at, &ms.vs.offset, range, ctx);
                    let Some((lo, hi)) = bounds else {
                        return Ok(());
                    };
                    let m = Matrix {
                        series: vec![],
                        windows,
                        range_ms: range,
                    };
                    let from = lo.saturating_add(1);
                    self.select_each(&ms.vs, from, hi, &mut |sd| {
                        f(&m, self.range_series(sd, from))
                    })
                    .await
                }
                Expr::Subquery(sq) => {
                    let (m, inner) = self.subquery_plan(sq, ctx)?;
                    let Some(inner) = inner else {
                        return Ok(());
                    };
                    let prev = self.enter_buckets(true);
                    // What consumes the range vector annotates at its own position, not at
                    // the position the inner expression's functions set.
                    let pos = self.current_pos();
                    let r = self
                        .for_each_series(&sq.expr, &inner, &mut |s| {
                            let rs = self.subquery_series(s, &inner)?;
                            let inner_pos = self.current_pos();
                            self.restore_pos(pos.clone());
                            let r = f(&m, rs);
                            self.restore_pos(inner_pos);
                            r
                        })
                        .await;
                    self.restore_buckets(prev);
                    r
                }
                _ => Err(Error::Execution(
                    "range vector cannot be produced series by series".into(),
                )),
            }
        })
    }

    /// Evaluates `expr` over the steps of `ctx`.
    ///
    /// Memory: whatever the operation charged while it ran (its inputs, what it built) is
    /// replaced, once it returns, by the size of its result, which stays charged while the
    /// caller holds it.
    pub fn eval<'s>(&'s self, expr: &'s Expr, ctx: &'s Ctx) -> BoxFuture<'s, Result<Value>> {
        Box::pin(async move {
            self.checkpoint().await?;
            let mut expr = expr;
            while let Expr::Paren(p) = expr {
                expr = &p.expr;
            }
            let before = self.held_bytes();
            // A node's annotations carry the position its operator chose; its parent's
            // position is back once it returns.
            let pos = self.current_pos();
            let v = self.eval_node(expr, ctx).await;
            self.restore_pos(pos);
            let v = v?;
            self.settle(before, value_bytes(&v))?;
            Ok(v)
        })
    }

    async fn eval_node(&self, expr: &Expr, ctx: &Ctx) -> Result<Value> {
        match expr {
            Expr::NumberLiteral(n) => {
                self.charge(ctx.len().saturating_mul(8))?;
                Ok(Value::Scalar(vec![n.val; ctx.len()]))
            }
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, ctx).await,
            Expr::Unary(u) => match self.eval(&u.expr, ctx).await? {
                Value::Scalar(v) => Ok(Value::Scalar(v.into_iter().map(|x| -x).collect())),
                Value::Vector(series) => Ok(Value::Vector(
                    series
                        .into_iter()
                        .map(|s| Series {
                            labels: s.labels,
                            vals: s.vals.into_iter().map(|v| v.map(|x| -x)).collect(),
                            hists: s
                                .hists
                                .into_iter()
                                .map(|h| {
                                    h.map(|h| {
                                        let mut c = (*h).clone();
                                        c.mul(-1.0);
                                        Hist::new(c)
                                    })
                                })
                                .collect(),
                            drop_name: true,
                        })
                        .collect(),
                )),
                other => Err(Error::BadData(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {:?}",
                    other.type_name()
                ))),
            },
            Expr::Binary(b) => binary::eval(self, b, ctx).await,
            Expr::VectorSelector(vs) => {
                Ok(Value::Vector(self.vector_selector(vs, ctx, false).await?))
            }
            Expr::MatrixSelector(ms) => Ok(Value::Matrix(
                self.matrix_selector(&ms.vs, duration_ms(&ms.range), ctx)
                    .await?,
            )),
            Expr::Subquery(sq) => Ok(Value::Matrix(self.subquery(sq, ctx).await?)),
            Expr::Aggregate(a) => aggregate::eval(self, a, ctx).await,
            Expr::Call(c) => functions::eval(self, c, ctx).await,
            Expr::Extension(_) => Err(Error::Unsupported(
                "extension expressions are not supported".into(),
            )),
        }
    }

    /// Evaluates an argument that must be a scalar (per step).
    pub async fn eval_scalar(&self, expr: &Expr, ctx: &Ctx) -> Result<Vec<f64>> {
        match self.eval(expr, ctx).await? {
            Value::Scalar(v) => Ok(v),
            other => Err(Error::BadData(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates an argument that must be an instant vector.
    pub async fn eval_vector(&self, expr: &Expr, ctx: &Ctx) -> Result<Vec<Series>> {
        match self.eval(expr, ctx).await? {
            Value::Vector(v) => Ok(v),
            other => Err(Error::BadData(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates an argument that must be a range vector.
    pub async fn eval_matrix(&self, expr: &Expr, ctx: &Ctx) -> Result<Matrix> {
        match self.eval(expr, ctx).await? {
            Value::Matrix(m) => Ok(m),
            other => Err(Error::BadData(format!(
                "expected range vector, got {}",
                other.type_name()
            ))),
        }
    }
}

/// A subquery's histogram with "reset"/"not reset" hints made "unknown": its samples may skip
/// or repeat the underlying ones, so those hints cannot be trusted (as Prometheus does).
fn unknown_hint(h: &Hist) -> Hist {
    use muninn_storage::histogram::CounterResetHint as C;
    match h.hint {
        C::Reset | C::NotReset => {
            let mut c = (**h).clone();
            c.hint = C::Unknown;
            Hist::new(c)
        }
        _ => h.clone(),
    }
}
