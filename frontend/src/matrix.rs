//! Range-query answers as the frontend handles them: parsed from a querier's JSON, cut to a
//! span, merged, and written back in exactly the querier's bytes.
//!
//! Points stay raw JSON (`[t,"v"]` or `[t,{histogram}]`): only their timestamp is read, so a
//! merged answer holds the very text the querier wrote for each point.

use std::collections::BTreeMap;

use muninn_querier::json::{write_labels, write_str};
use muninn_storage::labels::Labels;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{Error, Result};

/// One series of a matrix.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Series {
    pub metric: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub histograms: Vec<Box<RawValue>>,
}

/// A range query's answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Matrix {
    pub series: Vec<Series>,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub infos: Vec<String>,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: Option<Data>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    infos: Vec<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Series>,
}

/// The timestamp (ms) of a raw point `[1700000000.123, ...]`, read from its text exactly.
pub fn point_time(p: &RawValue) -> Result<i64> {
    let s = p.get().trim_start();
    let bad = || Error::Decode(format!("a point without a timestamp: {}", p.get()));
    let rest = s.strip_prefix('[').ok_or_else(bad)?;
    let end = rest.find(',').ok_or_else(bad)?;
    let num = rest[..end].trim();
    let (neg, num) = match num.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, num),
    };
    let (secs, frac) = num.split_once('.').unwrap_or((num, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let ms: i64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    let t = secs
        .checked_mul(1000)
        .and_then(|s| s.checked_add(ms))
        .ok_or_else(bad)?;
    Ok(if neg { -t } else { t })
}

impl Matrix {
    /// Parses a querier's successful `query_range` answer.
    pub fn parse(body: &[u8]) -> Result<Self> {
        let env: Envelope =
            serde_json::from_slice(body).map_err(|e| Error::Decode(e.to_string()))?;
        let data = match (env.status.as_str(), env.data) {
            ("success", Some(d)) if d.result_type == "matrix" => d,
            (s, d) => {
                return Err(Error::Decode(format!(
                    "expected a successful matrix, got status {s:?} type {:?}",
                    d.map(|d| d.result_type)
                )));
            }
        };
        Ok(Self {
            series: data.result,
            warnings: env.warnings,
            infos: env.infos,
        })
    }

    /// The points within `start..=end`; series left without points are dropped.
    pub fn restrict(&self, start: i64, end: i64) -> Result<Self> {
        let keep = |pts: &[Box<RawValue>]| -> Result<Vec<Box<RawValue>>> {
            let mut out = vec![];
            for p in pts {
                let t = point_time(p)?;
                if (start..=end).contains(&t) {
                    out.push(p.clone());
                }
            }
            Ok(out)
        };
        let mut series = vec![];
        for s in &self.series {
            let values = keep(&s.values)?;
            let histograms = keep(&s.histograms)?;
            if !values.is_empty() || !histograms.is_empty() {
                series.push(Series {
                    metric: s.metric.clone(),
                    values,
                    histograms,
                });
            }
        }
        Ok(Self {
            series,
            warnings: self.warnings.clone(),
            infos: self.infos.clone(),
        })
    }

    /// One answer from answers of disjoint (or identical) spans: each series' points in
    /// time order, a timestamp once; series sorted by labels as the querier sorts them;
    /// annotations once each, in the order first seen.
    pub fn merge(parts: Vec<Matrix>) -> Result<Self> {
        type Points = (Vec<(i64, Box<RawValue>)>, Vec<(i64, Box<RawValue>)>);
        let mut by_labels: BTreeMap<Labels, (BTreeMap<String, String>, Points)> = BTreeMap::new();
        let (mut warnings, mut infos) = (Vec::<String>::new(), Vec::<String>::new());
        for part in parts {
            for w in part.warnings {
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            for i in part.infos {
                if !infos.contains(&i) {
                    infos.push(i);
                }
            }
            for s in part.series {
                let labels =
                    Labels::from_pairs(s.metric.iter().map(|(k, v)| (k.clone(), v.clone())));
                let entry = by_labels
                    .entry(labels)
                    .or_insert_with(|| (s.metric.clone(), (vec![], vec![])));
                for p in s.values {
                    entry.1.0.push((point_time(&p)?, p));
                }
                for p in s.histograms {
                    entry.1.1.push((point_time(&p)?, p));
                }
            }
        }
        let mut series = Vec::with_capacity(by_labels.len());
        for (_, (metric, (mut values, mut histograms))) in by_labels {
            for pts in [&mut values, &mut histograms] {
                pts.sort_by_key(|p| p.0);
                pts.dedup_by_key(|p| p.0);
            }
            series.push(Series {
                metric,
                values: values.into_iter().map(|p| p.1).collect(),
                histograms: histograms.into_iter().map(|p| p.1).collect(),
            });
        }
        Ok(Self {
            series,
            warnings,
            infos,
        })
    }

    /// The answer as the querier writes it (`api.rs::query_response`), byte for byte.
    pub fn to_json(&self) -> String {
        let mut s = String::from(
            "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[",
        );
        for (i, series) in self.series.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str("{\"metric\":");
            let labels =
                Labels::from_pairs(series.metric.iter().map(|(k, v)| (k.clone(), v.clone())));
            write_labels(&mut s, &labels);
            for (key, pts) in [
                ("values", &series.values),
                ("histograms", &series.histograms),
            ] {
                if pts.is_empty() {
                    continue;
                }
                s.push_str(&format!(",\"{key}\":["));
                for (j, p) in pts.iter().enumerate() {
                    if j > 0 {
                        s.push(',');
                    }
                    s.push_str(p.get());
                }
                s.push(']');
            }
            s.push('}');
        }
        s.push_str("]}");
        for (key, list) in [("warnings", &self.warnings), ("infos", &self.infos)] {
            if !list.is_empty() {
                s.push_str(&format!(",\"{key}\":["));
                for (i, w) in list.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    write_str(&mut s, w);
                }
                s.push(']');
            }
        }
        s.push('}');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_times_are_read_exactly() {
        let p = |s: &str| RawValue::from_string(s.to_string()).unwrap();
        assert_eq!(
            point_time(&p("[1700000000.123,\"1\"]")).unwrap(),
            1_700_000_000_123
        );
        assert_eq!(
            point_time(&p("[1700000000.5,\"1\"]")).unwrap(),
            1_700_000_000_500
        );
        assert_eq!(point_time(&p("[17,{\"count\":\"1\"}]")).unwrap(), 17_000);
        assert_eq!(point_time(&p("[-1.25,\"NaN\"]")).unwrap(), -1_250);
        assert!(point_time(&p("[1.2345,\"1\"]")).is_err());
    }

    #[test]
    fn merged_pieces_write_the_whole_answer() {
        let whole = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"a","x":"1"},"values":[[10,"1"],[20,"2"],[30,"3"]]},{"metric":{"x":"2"},"values":[[30,"+Inf"]],"histograms":[[10,{"count":"1","sum":"2","buckets":[[0,"0","1","1"]]}]]}]},"infos":["PromQL info: x"]}"#;
        let m = Matrix::parse(whole.as_bytes()).unwrap();
        assert_eq!(m.to_json(), whole);
        let a = m.restrict(0, 15_000).unwrap();
        let b = m.restrict(16_000, 40_000).unwrap();
        assert_eq!(a.series.len(), 2);
        assert_eq!(b.series.len(), 2);
        // Merged in either order, with an overlap, the pieces give the whole answer back.
        let again = Matrix::merge(vec![b.clone(), a.clone(), b]).unwrap();
        assert_eq!(again.to_json(), whole);
    }

    #[test]
    fn errors_and_other_types_are_not_matrices() {
        assert!(
            Matrix::parse(br#"{"status":"error","errorType":"bad_data","error":"x"}"#).is_err()
        );
        assert!(
            Matrix::parse(br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#)
                .is_err()
        );
        assert!(Matrix::parse(b"not json").is_err());
    }
}
