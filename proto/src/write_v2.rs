//! Remote write 2.0 (`io.prometheus.write.v2.Request`, the spec's `types.proto`): decoded
//! borrowed (symbols are slices of the body) and translated into the 1.0 `WriteRequest` the
//! rest of the write path takes, in one pass per series.
//!
//! Translation: label refs resolve through the symbols table; samples are copied as they are
//! (both versions encode `Sample` alike); native histograms are copied into the 1.0 field
//! (same message layout), where the ingester judges them as it judges 1.0 histograms;
//! exemplars get their labels resolved; per-series metadata becomes one 1.0 `MetricMetadata`
//! per metric family (the series' `__name__`). Created timestamps are not stored (1.0 has no
//! field for them); they are counted. A symbol reference out of the table, an odd number of
//! label refs or a malformed message is an error (400).

use crate::varint::read_uvarint;
use crate::write_view::{
    DecodeError, LabelRef, MetadataRef, SeriesRef, WriteRequestView, put_len_field, read_key,
    read_len, skip,
};

const VARINT: u8 = 0;
const LEN: u8 = 2;

/// Why a body is not a valid remote write 2.0 request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum V2Error {
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("symbol reference {reference} is out of the symbols table (length {len})")]
    BadSymbol { reference: u64, len: usize },
    #[error("labels_refs has an odd number of entries ({0})")]
    OddLabelRefs(usize),
}

/// What a request held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct V2Counts {
    pub series: u64,
    pub samples: u64,
    pub histograms: u64,
    pub exemplars: u64,
    pub created_timestamps: u64,
}

/// The symbols table (field 4) of a request, as slices of it.
fn read_symbols(buf: &[u8]) -> Result<Vec<&[u8]>, V2Error> {
    let mut symbols = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let (field, wt) = read_key(buf, &mut pos)?;
        match (field, wt) {
            (4, LEN) => symbols.push(read_len(buf, &mut pos)?),
            (4 | 5, w) if w != LEN => {
                return Err(DecodeError::FieldType {
                    field,
                    got: w,
                    want: LEN,
                }
                .into());
            }
            _ => skip(buf, &mut pos, wt)?,
        }
    }
    Ok(symbols)
}

/// Symbol `r`; an empty table still resolves 0 (the spec's "" first symbol) for optional refs.
fn resolve<'a>(symbols: &[&'a [u8]], r: u64) -> Result<&'a [u8], V2Error> {
    if r == 0 && symbols.is_empty() {
        return Ok(&[]);
    }
    usize::try_from(r)
        .ok()
        .and_then(|i| symbols.get(i).copied())
        .ok_or(V2Error::BadSymbol {
            reference: r,
            len: symbols.len(),
        })
}

/// Translates an uncompressed v2 `Request` into an encoded 1.0 `WriteRequest` in `out`.
pub fn translate(buf: &[u8], out: &mut Vec<u8>) -> Result<V2Counts, V2Error> {
    // Pass 1: the symbols (field 4); pass 2: the series (field 5), in order.
    let symbols = read_symbols(buf)?;
    let sym = |r: u64| resolve(&symbols, r);
    out.clear();
    out.reserve(buf.len() * 2);
    let mut counts = V2Counts::default();
    let mut families: Vec<&[u8]> = Vec::new();
    let mut metadata: Vec<u8> = Vec::new();
    let mut series = Vec::with_capacity(256);
    let mut refs: Vec<u64> = Vec::with_capacity(32);
    let mut pos = 0;
    while pos < buf.len() {
        let (field, wt) = read_key(buf, &mut pos)?;
        if (field, wt) != (5, LEN) {
            skip(buf, &mut pos, wt)?;
            continue;
        }
        let ts = read_len(buf, &mut pos)?;
        counts.series += 1;
        series.clear();
        let mut name: &[u8] = &[];
        let mut meta: Option<(u64, u64, u64)> = None;
        // Labels first (1.0 readers expect them before samples in practice, not by rule).
        let mut p = 0;
        while p < ts.len() {
            let (f, w) = read_key(ts, &mut p)?;
            match (f, w) {
                (1, _) => {
                    refs.clear();
                    read_refs(ts, &mut p, w, &mut refs)?;
                    if refs.len() % 2 == 1 {
                        return Err(V2Error::OddLabelRefs(refs.len()));
                    }
                    for pair in refs.chunks(2) {
                        let (n, v) = (sym(pair[0])?, sym(pair[1])?);
                        if n == b"__name__" {
                            name = v;
                        }
                        put_label(&mut series, 1, n, v);
                    }
                }
                _ => skip(ts, &mut p, w)?,
            }
        }
        let mut p = 0;
        while p < ts.len() {
            let (f, w) = read_key(ts, &mut p)?;
            match (f, w) {
                (2, LEN) => {
                    let s = read_len(ts, &mut p)?;
                    crate::write_view::decode_sample(s)?;
                    counts.samples += 1;
                    put_len_field(&mut series, 2, s);
                }
                (3, LEN) => {
                    let h = read_len(ts, &mut p)?;
                    counts.histograms += 1;
                    put_len_field(&mut series, 4, h);
                }
                (4, LEN) => {
                    let e = read_len(ts, &mut p)?;
                    counts.exemplars += 1;
                    let ex = translate_exemplar(e, &sym)?;
                    put_len_field(&mut series, 3, &ex);
                }
                (5, LEN) => {
                    let m = read_len(ts, &mut p)?;
                    meta = Some(decode_metadata(m)?);
                }
                (6, VARINT) => {
                    if read_uvarint(ts, &mut p).ok_or(DecodeError::Varint)? != 0 {
                        counts.created_timestamps += 1;
                    }
                }
                (1, _) => skip(ts, &mut p, w)?,
                (2..=5, got) => {
                    return Err(DecodeError::FieldType {
                        field: f,
                        got,
                        want: LEN,
                    }
                    .into());
                }
                _ => skip(ts, &mut p, w)?,
            }
        }
        put_len_field(out, 1, &series);
        if let Some((kind, help, unit)) = meta {
            let (help, unit) = (sym(help)?, sym(unit)?);
            if !name.is_empty()
                && (kind != 0 || !help.is_empty() || !unit.is_empty())
                && !families.contains(&name)
            {
                families.push(name);
                let mut m = Vec::with_capacity(name.len() + help.len() + unit.len() + 8);
                crate::varint::put_uvarint(&mut m, 1 << 3);
                crate::varint::put_uvarint(&mut m, kind);
                put_len_field(&mut m, 2, name);
                put_len_field(&mut m, 4, help);
                put_len_field(&mut m, 5, unit);
                put_len_field(&mut metadata, 3, &m);
            }
        }
    }
    out.extend_from_slice(&metadata);
    Ok(counts)
}

/// Decodes an uncompressed v2 `Request` straight into the 1.0 view the head takes (labels
/// borrowed from the symbols table), for a process that applies the request itself. Series
/// carry no raw 1.0 bytes (`SeriesRef::raw` is empty): a router forwarding them to owners
/// uses [`translate`].
pub fn decode_view(buf: &[u8]) -> Result<(WriteRequestView<'_>, V2Counts), V2Error> {
    let symbols = read_symbols(buf)?;
    let sym = |r: u64| resolve(&symbols, r);
    let mut view = WriteRequestView {
        series: Vec::with_capacity(buf.len() / 32 + 1),
        labels: Vec::with_capacity(buf.len() / 4 + 1),
        samples: Vec::with_capacity(buf.len() / 16 + 1),
        metadata: Vec::new(),
        exemplars: Vec::new(),
        exemplar_labels: Vec::new(),
        histograms: Vec::new(),
    };
    let mut counts = V2Counts::default();
    let mut families: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    let mut pos = 0;
    while pos < buf.len() {
        let (field, wt) = read_key(buf, &mut pos)?;
        if (field, wt) != (5, LEN) {
            skip(buf, &mut pos, wt)?;
            continue;
        }
        let ts = read_len(buf, &mut pos)?;
        counts.series += 1;
        let mut s = SeriesRef {
            labels: view.labels.len() as u32..0,
            samples: view.samples.len() as u32..0,
            exemplar_range: view.exemplars.len() as u32..0,
            histogram_range: view.histograms.len() as u32..0,
            ..Default::default()
        };
        let mut name: &[u8] = &[];
        let mut meta = None;
        let mut p = 0;
        while p < ts.len() {
            let (f, w) = read_key(ts, &mut p)?;
            match (f, w) {
                (1, LEN) => {
                    let packed = read_len(ts, &mut p)?;
                    let mut q = 0;
                    let mut n = 0usize;
                    while q < packed.len() {
                        let nr = read_uvarint(packed, &mut q).ok_or(DecodeError::Varint)?;
                        let vr = if q < packed.len() {
                            read_uvarint(packed, &mut q).ok_or(DecodeError::Varint)?
                        } else {
                            return Err(V2Error::OddLabelRefs(n * 2 + 1));
                        };
                        let (nm, v) = (sym(nr)?, sym(vr)?);
                        if nm == b"__name__" {
                            name = v;
                        }
                        view.labels.push(LabelRef { name: nm, value: v });
                        n += 1;
                    }
                }
                (1, VARINT) => {
                    // Unpacked refs: pairs across consecutive fields.
                    let nr = read_uvarint(ts, &mut p).ok_or(DecodeError::Varint)?;
                    let mut q = p;
                    let (f2, w2) = read_key(ts, &mut q)?;
                    if (f2, w2) != (1, VARINT) {
                        return Err(V2Error::OddLabelRefs(1));
                    }
                    let vr = read_uvarint(ts, &mut q).ok_or(DecodeError::Varint)?;
                    p = q;
                    let (nm, v) = (sym(nr)?, sym(vr)?);
                    if nm == b"__name__" {
                        name = v;
                    }
                    view.labels.push(LabelRef { name: nm, value: v });
                }
                (2, LEN) => {
                    let b = read_len(ts, &mut p)?;
                    view.samples.push(crate::write_view::decode_sample(b)?);
                    counts.samples += 1;
                }
                (3, LEN) => {
                    view.histograms.push(read_len(ts, &mut p)?);
                    s.histograms += 1;
                    counts.histograms += 1;
                }
                (4, LEN) => {
                    let e = read_len(ts, &mut p)?;
                    decode_exemplar(e, &sym, &mut view)?;
                    s.exemplars += 1;
                    counts.exemplars += 1;
                }
                (5, LEN) => meta = Some(decode_metadata(read_len(ts, &mut p)?)?),
                (6, VARINT) => {
                    if read_uvarint(ts, &mut p).ok_or(DecodeError::Varint)? != 0 {
                        counts.created_timestamps += 1;
                    }
                }
                (1..=5, got) => {
                    return Err(DecodeError::FieldType {
                        field: f,
                        got,
                        want: LEN,
                    }
                    .into());
                }
                _ => skip(ts, &mut p, w)?,
            }
        }
        s.labels.end = view.labels.len() as u32;
        s.samples.end = view.samples.len() as u32;
        s.exemplar_range.end = view.exemplars.len() as u32;
        s.histogram_range.end = view.histograms.len() as u32;
        view.series.push(s);
        if let Some((kind, help, unit)) = meta {
            let (help, unit) = (sym(help)?, sym(unit)?);
            if !name.is_empty()
                && (kind != 0 || !help.is_empty() || !unit.is_empty())
                && families.insert(name)
            {
                view.metadata.push(MetadataRef {
                    metric_type: i32::try_from(kind).unwrap_or(0),
                    family: name,
                    help,
                    unit,
                    raw: &[],
                });
            }
        }
    }
    Ok((view, counts))
}

/// Appends a `Label {name = 1, value = 2}` message as field `field`, without a temporary.
fn put_label(out: &mut Vec<u8>, field: u32, name: &[u8], value: &[u8]) {
    fn uvarint_len(v: u64) -> usize {
        (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
    }
    let len = 2
        + uvarint_len(name.len() as u64)
        + name.len()
        + uvarint_len(value.len() as u64)
        + value.len();
    crate::varint::put_uvarint(out, (u64::from(field) << 3) | u64::from(LEN));
    crate::varint::put_uvarint(out, len as u64);
    put_len_field(out, 1, name);
    put_len_field(out, 2, value);
}

/// A v2 `Exemplar` (label refs, value, timestamp) into the view.
fn decode_exemplar<'a>(
    buf: &[u8],
    sym: &impl Fn(u64) -> Result<&'a [u8], V2Error>,
    view: &mut WriteRequestView<'a>,
) -> Result<(), V2Error> {
    let start = view.exemplar_labels.len() as u32;
    let (mut value, mut timestamp_ms) = (0.0, 0);
    let mut refs = Vec::new();
    let mut p = 0;
    while p < buf.len() {
        let (f, w) = read_key(buf, &mut p)?;
        match (f, w) {
            (1, _) => {
                refs.clear();
                read_refs(buf, &mut p, w, &mut refs)?;
                if refs.len() % 2 == 1 {
                    return Err(V2Error::OddLabelRefs(refs.len()));
                }
                for pair in refs.chunks(2) {
                    view.exemplar_labels.push(LabelRef {
                        name: sym(pair[0])?,
                        value: sym(pair[1])?,
                    });
                }
            }
            (2, 1) => {
                let b: [u8; 8] = buf
                    .get(p..p + 8)
                    .ok_or(DecodeError::Truncated)?
                    .try_into()
                    .map_err(|_| DecodeError::Truncated)?;
                value = f64::from_le_bytes(b);
                p += 8;
            }
            (3, VARINT) => {
                timestamp_ms = read_uvarint(buf, &mut p).ok_or(DecodeError::Varint)? as i64;
            }
            _ => skip(buf, &mut p, w)?,
        }
    }
    view.exemplars.push(crate::write_view::ExemplarRef {
        labels: start..view.exemplar_labels.len() as u32,
        value,
        timestamp_ms,
    });
    Ok(())
}

/// A `repeated uint32` field, packed (one length-delimited run) or not (one varint).
fn read_refs(buf: &[u8], pos: &mut usize, wt: u8, out: &mut Vec<u64>) -> Result<(), V2Error> {
    match wt {
        LEN => {
            let packed = read_len(buf, pos)?;
            let mut q = 0;
            while q < packed.len() {
                out.push(read_uvarint(packed, &mut q).ok_or(DecodeError::Varint)?);
            }
        }
        VARINT => out.push(read_uvarint(buf, pos).ok_or(DecodeError::Varint)?),
        got => {
            return Err(DecodeError::FieldType {
                field: 1,
                got,
                want: LEN,
            }
            .into());
        }
    }
    Ok(())
}

/// `Metadata`: (type, help_ref, unit_ref).
fn decode_metadata(buf: &[u8]) -> Result<(u64, u64, u64), V2Error> {
    let (mut kind, mut help, mut unit) = (0, 0, 0);
    let mut p = 0;
    while p < buf.len() {
        let (f, w) = read_key(buf, &mut p)?;
        match (f, w) {
            (1, VARINT) => kind = read_uvarint(buf, &mut p).ok_or(DecodeError::Varint)?,
            (3, VARINT) => help = read_uvarint(buf, &mut p).ok_or(DecodeError::Varint)?,
            (4, VARINT) => unit = read_uvarint(buf, &mut p).ok_or(DecodeError::Varint)?,
            _ => skip(buf, &mut p, w)?,
        }
    }
    Ok((kind, help, unit))
}

/// A v2 `Exemplar` (label refs, value, timestamp) as a 1.0 `Exemplar` (labels, value,
/// timestamp: fields 1, 2, 3).
fn translate_exemplar<'a>(
    buf: &[u8],
    sym: &impl Fn(u64) -> Result<&'a [u8], V2Error>,
) -> Result<Vec<u8>, V2Error> {
    let mut out = Vec::with_capacity(buf.len() + 32);
    let mut refs = Vec::new();
    let mut p = 0;
    while p < buf.len() {
        let start = p;
        let (f, w) = read_key(buf, &mut p)?;
        if f == 1 {
            refs.clear();
            read_refs(buf, &mut p, w, &mut refs)?;
            if refs.len() % 2 == 1 {
                return Err(V2Error::OddLabelRefs(refs.len()));
            }
            for pair in refs.chunks(2) {
                put_label(&mut out, 1, sym(pair[0])?, sym(pair[1])?);
            }
        } else {
            skip(buf, &mut p, w)?;
            out.extend_from_slice(&buf[start..p]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::varint::put_uvarint;

    /// A v2 request built by hand from the spec's field numbers.
    fn request(symbols: &[&str], series: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for s in symbols {
            put_len_field(&mut out, 4, s.as_bytes());
        }
        for s in series {
            put_len_field(&mut out, 5, s);
        }
        out
    }

    fn series(refs: &[u64], samples: &[(f64, i64)], meta: Option<(u64, u64, u64)>) -> Vec<u8> {
        let mut ts = Vec::new();
        let mut packed = Vec::new();
        for r in refs {
            put_uvarint(&mut packed, *r);
        }
        put_len_field(&mut ts, 1, &packed);
        for (v, t) in samples {
            let mut s = Vec::new();
            s.push(0x09);
            s.extend_from_slice(&v.to_le_bytes());
            put_uvarint(&mut s, 2 << 3);
            put_uvarint(&mut s, *t as u64);
            put_len_field(&mut ts, 2, &s);
        }
        if let Some((k, h, u)) = meta {
            let mut m = Vec::new();
            for (f, v) in [(1u64, k), (3, h), (4, u)] {
                put_uvarint(&mut m, f << 3);
                put_uvarint(&mut m, v);
            }
            put_len_field(&mut ts, 5, &m);
        }
        put_uvarint(&mut ts, 6 << 3);
        put_uvarint(&mut ts, 1234);
        ts
    }

    #[test]
    fn translates_to_the_same_request_in_1_0() {
        use prost::Message;
        let syms = ["", "__name__", "up", "job", "api", "help text", "seconds"];
        let body = request(
            &syms,
            &[
                series(&[1, 2, 3, 4], &[(1.5, 1000), (2.5, 2000)], Some((2, 5, 6))),
                series(&[1, 2, 3, 0], &[(3.0, 1000)], None),
            ],
        );
        let mut v1 = Vec::new();
        let counts = translate(&body, &mut v1).unwrap();
        assert_eq!(
            counts,
            V2Counts {
                series: 2,
                samples: 3,
                histograms: 0,
                exemplars: 0,
                created_timestamps: 2
            }
        );
        let req = crate::prometheus::WriteRequest::decode(&v1[..]).unwrap();
        assert_eq!(req.timeseries.len(), 2);
        let l: Vec<(String, String)> = req.timeseries[0]
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        assert_eq!(
            l,
            vec![
                ("__name__".into(), "up".into()),
                ("job".into(), "api".into())
            ]
        );
        assert_eq!(req.timeseries[0].samples[1].value, 2.5);
        assert_eq!(req.timeseries[0].samples[1].timestamp, 2000);
        assert_eq!(req.timeseries[1].labels[1].value, "");
        assert_eq!(req.metadata.len(), 1);
        assert_eq!(req.metadata[0].metric_family_name, "up");
        assert_eq!(req.metadata[0].help, "help text");
        assert_eq!(req.metadata[0].unit, "seconds");
        assert_eq!(req.metadata[0].r#type, 2);
        // The view of the rest of the write path reads it too, and the direct view agrees.
        let view = crate::write_view::WriteRequestView::decode(&v1).unwrap();
        assert_eq!(view.samples.len(), 3);
        let (direct, c2) = decode_view(&body).unwrap();
        assert_eq!(c2, counts);
        assert_eq!(direct.labels, view.labels);
        assert_eq!(direct.samples, view.samples);
        assert_eq!(direct.series.len(), 2);
        assert_eq!(
            (
                direct.metadata[0].family,
                direct.metadata[0].help,
                direct.metadata[0].unit
            ),
            (&b"up"[..], &b"help text"[..], &b"seconds"[..])
        );
    }

    #[test]
    fn bad_references_and_garbage_are_errors() {
        let mut out = Vec::new();
        let bad = request(&["", "a"], &[series(&[1, 9], &[(1.0, 1)], None)]);
        assert_eq!(
            translate(&bad, &mut out),
            Err(V2Error::BadSymbol {
                reference: 9,
                len: 2
            })
        );
        let odd = request(&["", "a"], &[series(&[1], &[(1.0, 1)], None)]);
        assert_eq!(translate(&odd, &mut out), Err(V2Error::OddLabelRefs(1)));
        assert!(matches!(decode_view(&bad), Err(V2Error::BadSymbol { .. })));
        assert!(matches!(decode_view(&odd), Err(V2Error::OddLabelRefs(_))));
        let body = request(
            &["", "__name__", "x"],
            &[series(&[1, 2], &[(1.0, 1)], Some((1, 0, 0)))],
        );
        for cut in 0..body.len() {
            let _ = translate(&body[..cut], &mut out);
            let _ = decode_view(&body[..cut]);
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = translate(&bytes, &mut out);
            let _ = decode_view(&bytes);
        }
    }
}
