"""An independent remote write 1.0 encoder for native histograms: Python's protobuf package
with a descriptor built from prompb/types.proto's field numbers, not Muninn's code.

Usage: rw_hist_encode.py START_MS STEP_MS N [counters|int|float|all] [v2] > body.pb
(uncompressed; with "v2", an io.prometheus.write.v2.Request with a symbols table, whose
Histogram message is field for field the same as 1.0's)

Series (deterministic pseudo-random observations, so buckets appear over time):
  nh_requests{kind="counter",schema="S"}  integer counters, schemas 0 and 3
  nh_requests{kind="reset"}               integer counter reset halfway
  nh_queue{kind="gauge"}                  integer gauge histogram
  nh_float{kind="counter"}                float counter histogram (count_float)
  nh_custom{kind="nhcb"}                  custom buckets (schema -53)   [only with "all"]
"""
import math
import random
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def field(msg, name, number, ftype, label=F.LABEL_OPTIONAL, type_name=None, oneof=None):
    f = msg.field.add()
    f.name, f.number, f.type, f.label = name, number, ftype, label
    if type_name:
        f.type_name = type_name
    if oneof is not None:
        f.oneof_index = oneof
    return f


def build():
    fd = descriptor_pb2.FileDescriptorProto()
    fd.name, fd.package, fd.syntax = "rw1h.proto", "prometheus", "proto3"
    rep = F.LABEL_REPEATED
    req = fd.message_type.add(name="WriteRequest")
    field(req, "timeseries", 1, F.TYPE_MESSAGE, rep, ".prometheus.TimeSeries")
    ts = fd.message_type.add(name="TimeSeries")
    field(ts, "labels", 1, F.TYPE_MESSAGE, rep, ".prometheus.Label")
    field(ts, "histograms", 4, F.TYPE_MESSAGE, rep, ".prometheus.Histogram")
    lb = fd.message_type.add(name="Label")
    field(lb, "name", 1, F.TYPE_STRING)
    field(lb, "value", 2, F.TYPE_STRING)
    sp = fd.message_type.add(name="BucketSpan")
    field(sp, "offset", 1, F.TYPE_SINT32)
    field(sp, "length", 2, F.TYPE_UINT32)
    h = fd.message_type.add(name="Histogram")
    h.oneof_decl.add(name="count")
    h.oneof_decl.add(name="zero_count")
    field(h, "count_int", 1, F.TYPE_UINT64, oneof=0)
    field(h, "count_float", 2, F.TYPE_DOUBLE, oneof=0)
    field(h, "sum", 3, F.TYPE_DOUBLE)
    field(h, "schema", 4, F.TYPE_SINT32)
    field(h, "zero_threshold", 5, F.TYPE_DOUBLE)
    field(h, "zero_count_int", 6, F.TYPE_UINT64, oneof=1)
    field(h, "zero_count_float", 7, F.TYPE_DOUBLE, oneof=1)
    field(h, "negative_spans", 8, F.TYPE_MESSAGE, rep, ".prometheus.BucketSpan")
    field(h, "negative_deltas", 9, F.TYPE_SINT64, rep)
    field(h, "negative_counts", 10, F.TYPE_DOUBLE, rep)
    field(h, "positive_spans", 11, F.TYPE_MESSAGE, rep, ".prometheus.BucketSpan")
    field(h, "positive_deltas", 12, F.TYPE_SINT64, rep)
    field(h, "positive_counts", 13, F.TYPE_DOUBLE, rep)
    field(h, "reset_hint", 14, F.TYPE_INT32)
    field(h, "timestamp", 15, F.TYPE_INT64)
    field(h, "custom_values", 16, F.TYPE_DOUBLE, rep)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


def bucket_index(v, schema):
    """Prometheus's bucket for |v| > 0 at an exponential schema: upper bound inclusive."""
    frac, exp = math.frexp(abs(v))
    if schema > 0:
        # idx = ceil(log2(v) * 2^schema), computed as Prometheus does for exact powers.
        idx = math.ceil(math.log2(abs(v)) * (1 << schema))
        # Guard the boundaries exactly: v equal to a bound belongs to that bucket.
        while 2 ** (idx / (1 << schema)) < abs(v):
            idx += 1
        while idx > -10**6 and 2 ** ((idx - 1) / (1 << schema)) >= abs(v):
            idx -= 1
        return idx
    if frac == 0.5:
        exp -= 1
    offset = (1 << -schema) - 1
    return (exp + offset) >> -schema


def spans_of(idxs):
    """Spans and ordered indexes of a sorted index list (consecutive indexes share a span)."""
    spans, prev = [], None
    for i in idxs:
        if prev is None:
            spans.append([i, 1])
        elif i == prev + 1:
            spans[-1][1] += 1
        else:
            spans.append([i - prev - 1, 1])
        prev = i
    return spans


class Obs:
    """Accumulated observations of one histogram."""

    def __init__(self, schema, zt=0.0):
        self.schema, self.zt = schema, zt
        self.pos, self.neg, self.zero, self.count, self.sum = {}, {}, 0, 0, 0.0

    def observe(self, v):
        self.count += 1
        self.sum += v
        if abs(v) <= self.zt:
            self.zero += 1
            return
        side = self.pos if v > 0 else self.neg
        i = bucket_index(v, self.schema)
        side[i] = side.get(i, 0) + 1


def fill(h, o, t, floats, hint=0):
    h.timestamp, h.sum, h.schema, h.zero_threshold, h.reset_hint = t, o.sum, o.schema, o.zt, hint
    if floats:
        h.count_float, h.zero_count_float = float(o.count), float(o.zero)
    else:
        h.count_int, h.zero_count_int = o.count, o.zero
    for side, spans_f, deltas_f, counts_f in ((o.pos, h.positive_spans, h.positive_deltas, h.positive_counts),
                                              (o.neg, h.negative_spans, h.negative_deltas, h.negative_counts)):
        idxs = sorted(side)
        for off, ln in spans_of(idxs):
            s = spans_f.add()
            s.offset, s.length = off, ln
        prev = 0
        for i in idxs:
            if floats:
                counts_f.append(float(side[i]))
            else:
                deltas_f.append(side[i] - prev)
                prev = side[i]


def main():
    start, step, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    what = sys.argv[4] if len(sys.argv) > 4 else "int"
    rnd = random.Random(42)
    WriteRequest = build()
    req = WriteRequest()
    series = []
    if what in ("int", "all", "counters"):
        series += [("nh_requests", {"kind": "counter", "schema": "0"}, Obs(0, 0.001), False, False, False),
                   ("nh_requests", {"kind": "counter", "schema": "3"}, Obs(3, 0.001), False, False, False),
                   ("nh_requests", {"kind": "reset"}, Obs(1, 0.001), False, True, False)]
    if what in ("int", "all"):
        series += [("nh_queue", {"kind": "gauge"}, Obs(0, 0.0), False, False, True)]
    if what in ("float", "all"):
        series += [("nh_float", {"kind": "counter"}, Obs(2, 0.001), True, False, False)]
    for name, labels, o, floats, reset, gauge in series:
        ts = req.timeseries.add()
        for k, v in sorted([("__name__", name)] + list(labels.items())):
            l = ts.labels.add()
            l.name, l.value = k, v
        for k in range(n):
            if reset and k == n // 2:
                o.__init__(o.schema, o.zt)
            if gauge:
                o.__init__(o.schema, o.zt)
                for _ in range(rnd.randint(1, 6)):
                    o.observe(rnd.choice([-1, 1]) * rnd.lognormvariate(0, 2))
            else:
                for _ in range(rnd.randint(0, 5)):
                    v = rnd.lognormvariate(0, 1.5)
                    o.observe(v if rnd.random() > 0.1 else -v)
            fill(ts.histograms.add(), o, start + k * step, floats, 3 if gauge else 0)
    if what == "all":
        ts = req.timeseries.add()
        for k, v in [("__name__", "nh_custom"), ("kind", "nhcb")]:
            l = ts.labels.add()
            l.name, l.value = k, v
        bounds = [0.1, 0.5, 1.0, 5.0]
        counts = [0] * (len(bounds) + 1)
        total, s = 0, 0.0
        for k in range(n):
            for _ in range(rnd.randint(0, 4)):
                v = rnd.lognormvariate(0, 1)
                counts[next((i for i, b in enumerate(bounds) if v <= b), len(bounds))] += 1
                total += 1
                s += v
            h = ts.histograms.add()
            h.timestamp, h.sum, h.schema, h.count_int = start + k * step, s, -53, total
            h.custom_values.extend(bounds)
            sp = h.positive_spans.add()
            sp.offset, sp.length = 0, len(counts)
            prev = 0
            for c in counts:
                h.positive_deltas.append(c - prev)
                prev = c
    if len(sys.argv) > 5 and sys.argv[5] == "v2":
        sys.stdout.buffer.write(to_v2(req))
    else:
        sys.stdout.buffer.write(req.SerializeToString())


def to_v2(req):
    """The same series as a remote write 2.0 Request."""
    fd = descriptor_pb2.FileDescriptorProto()
    fd.name, fd.package, fd.syntax = "rw2h.proto", "io.prometheus.write.v2", "proto3"
    rep = F.LABEL_REPEATED
    r = fd.message_type.add(name="Request")
    field(r, "symbols", 4, F.TYPE_STRING, rep)
    field(r, "timeseries", 5, F.TYPE_MESSAGE, rep, ".io.prometheus.write.v2.TimeSeries")
    ts = fd.message_type.add(name="TimeSeries")
    field(ts, "labels_refs", 1, F.TYPE_UINT32, rep)
    # Histogram messages are wire-identical to 1.0's: carried as their encoded bytes.
    field(ts, "histograms", 3, F.TYPE_BYTES, rep)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    Req = message_factory.GetMessageClass(pool.FindMessageTypeByName("io.prometheus.write.v2.Request"))
    out = Req()
    syms = [""]
    index = {"": 0}

    def ref(s):
        if s not in index:
            index[s] = len(syms)
            syms.append(s)
        return index[s]

    for t in req.timeseries:
        o = out.timeseries.add()
        for l in t.labels:
            o.labels_refs.extend([ref(l.name), ref(l.value)])
        for h in t.histograms:
            o.histograms.append(h.SerializeToString())
    out.symbols.extend(syms)
    return out.SerializeToString()


if __name__ == "__main__":
    main()
