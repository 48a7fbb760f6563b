"""An independent remote write 2.0 encoder: Python's protobuf package with a descriptor built
from the spec's field numbers (io.prometheus.write.v2 types.proto), not Muninn's code.

Usage: rw2_encode.py CASE NOW_MS > body.pb   (uncompressed; the test snappy-compresses it)
"""
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def field(msg, name, number, ftype, label=F.LABEL_OPTIONAL, type_name=None):
    f = msg.field.add()
    f.name, f.number, f.type, f.label = name, number, ftype, label
    if type_name:
        f.type_name = type_name
    return f


def build():
    fd = descriptor_pb2.FileDescriptorProto()
    fd.name, fd.package, fd.syntax = "rw2.proto", "io.prometheus.write.v2", "proto3"
    rep = F.LABEL_REPEATED
    req = fd.message_type.add(name="Request")
    field(req, "symbols", 4, F.TYPE_STRING, rep)
    field(req, "timeseries", 5, F.TYPE_MESSAGE, rep, ".io.prometheus.write.v2.TimeSeries")
    ts = fd.message_type.add(name="TimeSeries")
    field(ts, "labels_refs", 1, F.TYPE_UINT32, rep)
    field(ts, "samples", 2, F.TYPE_MESSAGE, rep, ".io.prometheus.write.v2.Sample")
    field(ts, "exemplars", 4, F.TYPE_MESSAGE, rep, ".io.prometheus.write.v2.Exemplar")
    field(ts, "metadata", 5, F.TYPE_MESSAGE, type_name=".io.prometheus.write.v2.Metadata")
    field(ts, "created_timestamp", 6, F.TYPE_INT64)
    ex = fd.message_type.add(name="Exemplar")
    field(ex, "labels_refs", 1, F.TYPE_UINT32, rep)
    field(ex, "value", 2, F.TYPE_DOUBLE)
    field(ex, "timestamp", 3, F.TYPE_INT64)
    s = fd.message_type.add(name="Sample")
    field(s, "value", 1, F.TYPE_DOUBLE)
    field(s, "timestamp", 2, F.TYPE_INT64)
    md = fd.message_type.add(name="Metadata")
    field(md, "type", 1, F.TYPE_INT32)  # the spec's MetricType enum, as its number
    field(md, "help_ref", 3, F.TYPE_UINT32)
    field(md, "unit_ref", 4, F.TYPE_UINT32)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("io.prometheus.write.v2.Request"))


def main():
    case, now = sys.argv[1], int(sys.argv[2])
    Request = build()
    r = Request()
    syms = ["", "__name__", "rw2_requests_total", "job", "api", "instance", "a", "b",
            "Requests served.", "trace_id", "abc123", "rw2_temperature", "celsius"]
    r.symbols.extend(syms)
    ref = syms.index
    for inst in ["a", "b"]:
        t = r.timeseries.add()
        t.labels_refs.extend([ref("__name__"), ref("rw2_requests_total"), ref("instance"), ref(inst), ref("job"), ref("api")])
        for i in range(3):
            smp = t.samples.add()
            smp.value, smp.timestamp = float(10 * i + (inst == "b")), now - (2 - i) * 15000
        t.metadata.type, t.metadata.help_ref = 1, ref("Requests served.")
        t.created_timestamp = now - 3600000
        e = t.exemplars.add()
        e.labels_refs.extend([ref("trace_id"), ref("abc123")])
        e.value, e.timestamp = 1.0, now
    g = r.timeseries.add()
    g.labels_refs.extend([ref("__name__"), ref("rw2_temperature")])
    smp = g.samples.add()
    smp.value, smp.timestamp = 21.5, now
    g.metadata.type, g.metadata.unit_ref = 2, ref("celsius")
    if case == "bad-symbol":
        g.labels_refs.extend([ref("job"), len(syms) + 5])
    sys.stdout.buffer.write(r.SerializeToString())


main()
