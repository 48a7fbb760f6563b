//! PromQL evaluation, step-vectorised: an expression is evaluated once over all the steps of
//! a query (an instant query is one step), producing a value per series per step.
//!
//! This first engine covers what the foundation needs: instant and range vector selectors with
//! all four matcher types, `offset` and `@` (incl. `start()`/`end()`), staleness markers and
//! the 5m lookback (left-open windows, as Prometheus 3.x), number and string literals,
//! parentheses, unary minus, and arithmetic/comparison between scalars. Anything else is a
//! clear "not supported yet" error rather than a wrong answer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use muninn_proto::tenant::TenantId;
use muninn_storage::is_stale_nan;
use muninn_storage::labels::{Labels, METRIC_NAME};
use muninn_storage::matcher::{MatchOp, Matcher};
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use crate::store::{SeriesData, SeriesSource};
use crate::{Error, Result};

/// Default lookback of instant vector selectors (Prometheus's `--query.lookback-delta`).
pub const DEFAULT_LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// The evaluation steps of a query: `start, start+step, ..., end` in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Steps {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Steps {
    pub fn instant(t: i64) -> Self {
        Self {
            start: t,
            end: t,
            step: 1,
        }
    }

    pub fn len(&self) -> usize {
        ((self.end - self.start) / self.step + 1) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }

    fn at(&self, i: usize) -> i64 {
        self.start + self.step * i as i64
    }
}

/// The value of an expression over all steps.
#[derive(Clone, Debug)]
pub enum StepValue {
    Scalar(Vec<f64>),
    String(String),
    /// Series with a value (or none) per step, sorted by labels.
    Vector(Vec<(Labels, Vec<Option<f64>>)>),
    /// Range-vector selector results (instant queries only): raw samples per series.
    Matrix(Vec<SeriesData>),
}

impl StepValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            StepValue::Scalar(_) => "scalar",
            StepValue::String(_) => "string",
            StepValue::Vector(_) => "vector",
            StepValue::Matrix(_) => "matrix",
        }
    }
}

/// Evaluates expressions of one tenant against a [`SeriesSource`].
pub struct Engine<'a> {
    pub store: &'a dyn SeriesSource,
    pub tenant: &'a TenantId,
    pub lookback_ms: i64,
}

fn duration_ms(d: &Duration) -> i64 {
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
fn matcher_sets(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>> {
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

/// Converts promql-parser matchers of a `match[]` selector.
pub fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>> {
    matcher_sets(vs)
}

fn scalar_op(op: TokenType, a: f64, b: f64, return_bool: bool) -> Result<f64> {
    let cmp = |c: bool| {
        if c {
            1.0
        } else if return_bool {
            0.0
        } else {
            f64::NAN
        }
    };
    Ok(match op.id() {
        token::T_ADD => a + b,
        token::T_SUB => a - b,
        token::T_MUL => a * b,
        token::T_DIV => a / b,
        token::T_MOD => a % b,
        token::T_POW => a.powf(b),
        token::T_ATAN2 => a.atan2(b),
        token::T_EQLC => cmp(a == b),
        token::T_NEQ => cmp(a != b),
        token::T_GTR => cmp(a > b),
        token::T_LSS => cmp(a < b),
        token::T_GTE => cmp(a >= b),
        token::T_LTE => cmp(a <= b),
        _ => {
            return Err(Error::Unsupported(format!(
                "operator {op} between scalars is not supported yet"
            )));
        }
    })
}

impl Engine<'_> {
    /// The evaluation timestamp of each step for a selector with `@` and `offset`.
    fn selector_times(&self, vs: &VectorSelector, steps: &Steps, query: &Steps) -> Vec<i64> {
        let off = offset_ms(&vs.offset);
        let fixed = match &vs.at {
            Some(AtModifier::Start) => Some(query.start),
            Some(AtModifier::End) => Some(query.end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
            None => None,
        };
        (0..steps.len())
            .map(|i| fixed.unwrap_or(steps.at(i)) - off)
            .collect()
    }

    async fn select_sets(
        &self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>> {
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
        Ok(all)
    }

    /// Evaluates `expr` over `steps` of the query `query` (the same for top level).
    pub fn eval<'s>(
        &'s self,
        expr: &'s Expr,
        steps: &'s Steps,
    ) -> futures::future::BoxFuture<'s, Result<StepValue>> {
        Box::pin(async move {
            match expr {
                Expr::NumberLiteral(n) => Ok(StepValue::Scalar(vec![n.val; steps.len()])),
                Expr::StringLiteral(s) => Ok(StepValue::String(s.val.clone())),
                Expr::Paren(p) => self.eval(&p.expr, steps).await,
                Expr::Unary(u) => match self.eval(&u.expr, steps).await? {
                    StepValue::Scalar(v) => {
                        Ok(StepValue::Scalar(v.into_iter().map(|x| -x).collect()))
                    }
                    StepValue::Vector(series) => Ok(StepValue::Vector(
                        series
                            .into_iter()
                            .map(|(l, vals)| {
                                (
                                    drop_name(l),
                                    vals.into_iter().map(|v| v.map(|x| -x)).collect(),
                                )
                            })
                            .collect(),
                    )),
                    other => Err(Error::BadData(format!(
                        "unary minus on {}",
                        other.type_name()
                    ))),
                },
                Expr::Binary(b) => {
                    let lhs = self.eval(&b.lhs, steps).await?;
                    let rhs = self.eval(&b.rhs, steps).await?;
                    match (lhs, rhs) {
                        (StepValue::Scalar(a), StepValue::Scalar(c)) => {
                            let rb = b.modifier.as_ref().is_some_and(|m| m.return_bool);
                            let v = a
                                .iter()
                                .zip(&c)
                                .map(|(x, y)| scalar_op(b.op, *x, *y, rb))
                                .collect::<Result<_>>()?;
                            Ok(StepValue::Scalar(v))
                        }
                        _ => Err(Error::Unsupported(
                            "binary operators on vectors are not supported yet".into(),
                        )),
                    }
                }
                Expr::VectorSelector(vs) => self.eval_vector_selector(vs, steps).await,
                Expr::MatrixSelector(ms) => {
                    if steps.len() != 1 {
                        return Err(Error::Unsupported(
                            "range vectors outside functions are not supported yet".into(),
                        ));
                    }
                    let t = self.selector_times(&ms.vs, steps, steps)[0];
                    let range = duration_ms(&ms.range);
                    let mut series = self.select_sets(&ms.vs, t - range + 1, t).await?;
                    for s in &mut series {
                        // Left-open window (t - range, t]; staleness markers are not samples.
                        s.samples
                            .retain(|(ts, v)| *ts > t - range && *ts <= t && !is_stale_nan(*v));
                    }
                    series.retain(|s| !s.samples.is_empty());
                    Ok(StepValue::Matrix(series))
                }
                Expr::Aggregate(_) => Err(Error::Unsupported(
                    "aggregations are not supported yet".into(),
                )),
                Expr::Call(c) => Err(Error::Unsupported(format!(
                    "function {}() is not supported yet",
                    c.func.name
                ))),
                Expr::Subquery(_) => Err(Error::Unsupported(
                    "subqueries are not supported yet".into(),
                )),
                Expr::Extension(_) => Err(Error::Unsupported(
                    "extension expressions are not supported".into(),
                )),
            }
        })
    }

    async fn eval_vector_selector(&self, vs: &VectorSelector, steps: &Steps) -> Result<StepValue> {
        let times = self.selector_times(vs, steps, steps);
        let (Some(&lo), Some(&hi)) = (times.iter().min(), times.iter().max()) else {
            return Ok(StepValue::Vector(vec![]));
        };
        let series = self
            .select_sets(
                vs,
                lo.saturating_sub(self.lookback_ms).saturating_add(1),
                hi,
            )
            .await?;
        let mut out = Vec::with_capacity(series.len());
        for s in series {
            let mut vals = Vec::with_capacity(times.len());
            let mut any = false;
            for &t in &times {
                // Latest sample in the left-open lookback window (t - lookback, t].
                let idx = s.samples.partition_point(|(ts, _)| *ts <= t);
                let v = if idx == 0 {
                    None
                } else {
                    let (ts, v) = s.samples[idx - 1];
                    (ts > t.saturating_sub(self.lookback_ms) && !is_stale_nan(v)).then_some(v)
                };
                any |= v.is_some();
                vals.push(v);
            }
            if any {
                out.push((s.labels, vals));
            }
        }
        Ok(StepValue::Vector(out))
    }
}

/// Drops `__name__`, as operations that change a value's meaning do.
pub fn drop_name(l: Labels) -> Labels {
    Labels(l.0.into_iter().filter(|l| l.name != METRIC_NAME).collect())
}
