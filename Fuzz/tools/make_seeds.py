#!/usr/bin/env python3
"""Regenerates the seed corpora under Fuzz/Corpus/ (deterministic; run from anywhere).

Each file is one input for the target named by its directory; see the fuzz bodies in
Sources/SextantTestSupport/Fuzz*.swift for how the bytes are decoded."""
import json, os, random, struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "Corpus")

def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# ---- FuzzFilterParser: SQL and JSON predicate texts (both parsers see every input).
sql = [
    "", "TRUE", "FALSE", "NOT TRUE", "a = 1", "a == 1", "a != 1", "a <> 1", "a < -5", "a <= +5", "b > 2.5", "b >= 1e-3",
    "s = 'jazz'", "s = 'it''s'", "\"order\" = 1", "\"we\"\"ird\" IS NULL", "x IS NOT NULL",
    "year BETWEEN 2000 AND 2010", "year NOT BETWEEN 1 AND 2", "genre IN ('a', 'b')", "genre NOT IN ()",
    "tags CONTAINS 'live'", "ids CONTAINS 3", "flag = TRUE AND NOT flag = FALSE",
    "a = 1 AND b = 2 OR s = 'x'", "a = 1 AND (b = 2 OR s = 'x')", "NOT (a = 1 OR NOT (b = 2 AND x = 3))",
    "((((a = 1))))", "NOT NOT NOT x IS NOT NULL", "x = -9223372036854775808", "x = 9223372036854775807",
    "b = 1.7976931348623157e308", "b = 5e-324", "b = -0.0", "s = '\u00e9\U0001F3B7'", "a = 1 and b = 2 or not c = 3",
    "year >= 2010 AND genre = 'jazz' AND tags CONTAINS 'x' AND flag != FALSE",
    "category IN ('cat1', 'cat2', 'cat3') AND price < 20",
    "NOT " * 127 + "a = 1",
    "NOT (" * 40 + "a = 1 OR b = 2" + ")" * 40,
]
js = [
    'true', 'false', '{"and": []}', '{"or": []}', '{"not": true}',
    '{"field": "a", "op": "=", "value": 1}', '{"field": "b", "op": ">=", "value": 2.5e3}',
    '{"field": "s", "op": "<>", "value": "x\\"y\\u00e9"}', '{"field": "year", "op": "between", "value": [2000, 2010]}',
    '{"field": "genre", "op": "in", "value": ["a", "b"]}', '{"field": "genre", "op": "not_in", "value": []}',
    '{"field": "tags", "op": "contains", "value": "live"}', '{"field": "x", "op": "is_null"}',
    '{"field": "x", "op": "is_not_null"}', '{"field": "flag", "op": "==", "value": true}',
    '{"and": [{"field": "year", "op": ">=", "value": 2010}, {"not": {"field": "tags", "op": "contains", "value": "x"}}]}',
    '{"or": [true, false, {"field": "x", "op": "between", "value": [1, 2.5e3]}]}',
    '{"and": [{"or": [{"field": "a", "op": "<", "value": -1}]}]}',
    '[1, -0.0, 1e-5, "\\u00e9\\ud83c\\udfb7\\n", null, {"a": {"b": []}}]',
    '{"field": "order", "op": "=", "value": 9223372036854775807}', '{"field": "a b", "op": "=", "value": 1}',
    ' {"field":"a","op":"<=","value":1E+2} ',
]
for i, t in enumerate(sql):
    out("FuzzFilterParser", f"sql-{i:02d}", t)
for i, t in enumerate(js):
    out("FuzzFilterParser", f"json-{i:02d}", t)

# ---- FuzzFileReaders: first byte selects the reader; the rest is the file.
# selector & 0x80: LineReader (chunk 16 + (sel & 15) * 3, max line 1 + (sel & 0x70) / 2);
# else extension ["fvecs","ivecs","bvecs","npy","bin"][sel % 5], bit 3 = pass the format explicitly.
def texmex(fmt, rows):
    b = b""
    for r in rows:
        b += struct.pack("<i", len(r))
        for x in r:
            b += struct.pack({"f": "<f", "i": "<i", "b": "<B"}[fmt], x)
    return b

def npy(descr, shape, payload, fortran=False, version=1):
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape)
    h = d.encode()
    pad = (64 - (10 + len(h) + 1) % 64) % 64 if version == 1 else (64 - (12 + len(h) + 1) % 64) % 64
    h += b" " * pad + b"\n"
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + payload
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(h)) + h + payload

fr = "FuzzFileReaders"
out(fr, "fvecs-2x3", bytes([0]) + texmex("f", [[1.0, 2.0, 3.0], [-1.5, 0.0, 1e30]]))
out(fr, "fvecs-1x1-explicit", bytes([8]) + texmex("f", [[0.25]]))
out(fr, "fvecs-bad-last-dim", bytes([0]) + texmex("f", [[1.0, 2.0], [3.0, 4.0]])[:-12] + struct.pack("<i", 3) + struct.pack("<ff", 1, 2))
out(fr, "fvecs-mid-dim", bytes([0]) + texmex("f", [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).replace(struct.pack("<i", 2), struct.pack("<i", 7), 2).replace(struct.pack("<i", 7), struct.pack("<i", 2), 1))
out(fr, "fvecs-truncated", bytes([0]) + texmex("f", [[1.0, 2.0, 3.0]])[:-1])
out(fr, "fvecs-negative-dim", bytes([0]) + struct.pack("<i", -4) + b"\0" * 16)
out(fr, "fvecs-empty", bytes([0]))
out(fr, "ivecs-3x2", bytes([1]) + texmex("i", [[1, 2], [-1, 100], [7, 8]]))
out(fr, "ivecs-explicit", bytes([9]) + texmex("i", [[5, 6, 7, 8]]))
out(fr, "bvecs-2x4", bytes([2]) + texmex("b", [[0, 1, 2, 255], [9, 8, 7, 6]]))
out(fr, "bvecs-huge-dim", bytes([2]) + struct.pack("<i", 0x7FFFFFFF) + b"\1\2\3")
out(fr, "npy-f4-2x3", bytes([3]) + npy("<f4", "(2, 3)", struct.pack("<6f", 1, 2, 3, 4, 5, 6)))
out(fr, "npy-f2-1d", bytes([3]) + npy("<f2", "(4,)", struct.pack("<4H", 0x3C00, 0x7C00, 0x0001, 0xFE00)))
out(fr, "npy-f8-1x2", bytes([3]) + npy("<f8", "(1, 2)", struct.pack("<2d", 1.5, -1e300)))
out(fr, "npy-i4-2x2", bytes([3]) + npy("<i4", "(2, 2)", struct.pack("<4i", 1, 2, 3, 4)))
out(fr, "npy-v2-f4", bytes([3]) + npy("<f4", "(1, 2)", struct.pack("<2f", 1, 2), version=2))
out(fr, "npy-empty", bytes([3]) + npy("<f4", "(0, 4)", b""))
out(fr, "npy-fortran", bytes([3]) + npy("<f4", "(1, 1)", struct.pack("<f", 1), fortran=True))
out(fr, "npy-bad-dtype", bytes([3]) + npy(">f4", "(1, 1)", struct.pack("<f", 1)))
out(fr, "npy-3d", bytes([3]) + npy("<f4", "(1, 1, 1)", struct.pack("<f", 1)))
out(fr, "npy-short-data", bytes([3]) + npy("<f4", "(2, 2)", struct.pack("<3f", 1, 2, 3)))
out(fr, "npy-as-bin", bytes([4]) + npy("<f4", "(1, 2)", struct.pack("<2f", 3, 4)))
out(fr, "npy-explicit", bytes([11]) + npy("<f4", "[3, 1]", struct.pack("<3f", 3, 4, 5)))
out(fr, "jsonl-small", bytes([0x80]) + b'{"a": 1}\n{"b": [1, 2]}\n\n{"c": "x"}')
out(fr, "jsonl-crlf-bom", bytes([0x85]) + b'\xef\xbb\xbf{"a": 1}\r\n{"b": 2}\r\n')
out(fr, "jsonl-long-line", bytes([0x80]) + b"x" * 200 + b"\nshort\n")
out(fr, "jsonl-limit", bytes([0xF3]) + b"0123456789" * 8 + b"\n" + b"a\n" * 5)
out(fr, "jsonl-no-newline", bytes([0x8F]) + b"only line")
out(fr, "jsonl-empty-lines", bytes([0x81]) + b"\n\n\r\n\n")

# ---- FuzzRecordDecoders: selector % 4 in {0,1}: attribute record for schema (selector / 4) % 12;
# 2: catalog entry (JSON); 3: LZ4 block, size = uint16 LE >> (selector >> 5).
SCHEMAS = [
    [], ["int"], ["string"], ["double"], ["bool"], ["stringList"], ["intList"],
    ["int", "string", "double", "bool", "stringList", "intList"], ["int"] * 8, ["bool"] * 8 + ["string"],
    ["string", "double", "int", "stringList", "bool"], ["int", "string", "stringList"],
]
def varint(v):
    b = b""
    while v >= 0x80:
        b += bytes([(v & 0x7F) | 0x80]); v >>= 7
    return b + bytes([v])
def zz(x):
    return (x << 1) ^ (x >> 63) if x >= 0 else ((x << 1) ^ -1) & (2**64 - 1)
def enc_value(t, v):
    if t == "int": return varint(zz(v))
    if t == "string": s = v.encode(); return varint(len(s)) + s
    if t == "double": return struct.pack("<d", v)
    if t == "bool": return bytes([1 if v else 0])
    if t == "stringList": return varint(len(v)) + b"".join(varint(len(s.encode())) + s.encode() for s in v)
    if t == "intList": return varint(len(v)) + b"".join(varint(zz(x)) for x in v)
def record(types, values):
    nm = bytearray((len(types) + 7) // 8)
    body = b""
    for i, (t, v) in enumerate(zip(types, values)):
        if v is None: continue
        nm[i // 8] |= 1 << (i % 8)
        body += enc_value(t, v)
    return bytes(nm) + body
def lz4_literals(data):
    n = len(data)
    if n < 15:
        return bytes([n << 4]) + data
    ext, rest = b"", n - 15
    while rest >= 255:
        ext += b"\xff"; rest -= 255
    return bytes([0xF0]) + ext + bytes([rest]) + data
def attr_seed(schema_index, values, compressed=False):
    sel = (schema_index * 4) & 0xFF
    payload = record(SCHEMAS[schema_index], values)
    if compressed:
        return bytes([sel, 1]) + varint(len(payload)) + lz4_literals(payload)
    return bytes([sel, 0]) + payload

rd = "FuzzRecordDecoders"
out(rd, "attr-empty-schema", attr_seed(0, []))
out(rd, "attr-int", attr_seed(1, [-3]))
out(rd, "attr-int-null", attr_seed(1, [None]))
out(rd, "attr-int-min", attr_seed(1, [-2**63]))
out(rd, "attr-string", attr_seed(2, ["h\u00e9llo"]))
out(rd, "attr-double-nan", bytes([12, 0, 1]) + struct.pack("<Q", 0x7FF8000000000123))
out(rd, "attr-bool", attr_seed(4, [True]))
out(rd, "attr-bool-2", bytes([16, 0, 1, 2]))
out(rd, "attr-tags", attr_seed(5, [["a", "bb", ""]]))
out(rd, "attr-ints", attr_seed(6, [[1, -1, 2**40]]))
out(rd, "attr-all", attr_seed(7, [5, "x", 2.5, False, ["t"], [3]]))
out(rd, "attr-all-some-null", attr_seed(7, [None, "x", None, True, None, []]))
out(rd, "attr-8-ints", attr_seed(8, list(range(8))))
out(rd, "attr-9-fields", attr_seed(9, [True, False, None, True, None, None, True, True, "z"]))
out(rd, "attr-synthetic", attr_seed(10, ["cat7", 19.99, 20200101, ["red", "sale"], True]))
out(rd, "attr-lz4", attr_seed(10, ["cat" * 40, 1.0, 1, ["tag%d" % i for i in range(10)], None], compressed=True))
out(rd, "attr-lz4-small", attr_seed(2, ["abc"], compressed=True))
out(rd, "attr-trailing", attr_seed(1, [1]) + b"\0")
out(rd, "attr-bad-flags", bytes([4, 2, 1, 2]))
out(rd, "attr-long-varint", bytes([4, 0, 1]) + b"\xff" * 10 + b"\x01")
out(rd, "attr-bad-utf8", bytes([8, 0, 1, 2, 0xC3, 0x28]))
out(rd, "attr-huge-count", bytes([20, 0, 1]) + varint(2**40))
info = {"createdAt": 1700000000.5, "dimension": 4, "id": 1, "indexRecipe": "Flat", "metric": "l2", "name": "c",
        "schema": {"fields": [{"indexed": True, "name": "a", "nullable": True, "type": "int"},
                              {"indexed": False, "name": "tags", "nullable": False, "type": "stringList"}]}}
out(rd, "info-ok", bytes([2]) + json.dumps(info, sort_keys=True, separators=(",", ":")).encode())
info2 = dict(info, metric="cosine", dimension=65536, schema={"fields": []}, name="x.y-z")
out(rd, "info-cosine", bytes([2]) + json.dumps(info2, sort_keys=True).encode())
out(rd, "info-dup-field", bytes([2]) + json.dumps(dict(info, schema={"fields": [info["schema"]["fields"][0]] * 2})).encode())
out(rd, "info-bad-metric", bytes([2]) + json.dumps(dict(info, metric="l3")).encode())
out(rd, "info-neg-dim", bytes([2]) + json.dumps(dict(info, dimension=-1, id=4294967295)).encode())
out(rd, "info-not-json", bytes([2]) + b"{\"name\": ")
lit = b"hello, sextant!!"
out(rd, "lz4-literals", bytes([3]) + struct.pack("<H", len(lit)) + lz4_literals(lit))
out(rd, "lz4-match", bytes([3]) + struct.pack("<H", 17) + bytes([0x44]) + b"abcd" + b"\x04\x00" + bytes([0x50]) + b"wxyzq")
out(rd, "lz4-bad-offset", bytes([3]) + struct.pack("<H", 17) + bytes([0x44]) + b"abcd" + b"\x09\x00" + bytes([0x50]) + b"wxyzq")
out(rd, "lz4-zero", bytes([3]) + b"\0\0")
out(rd, "lz4-long-literal", bytes([3]) + struct.pack("<H", 300) + lz4_literals(bytes(range(256)) + b"x" * 44))

# ---- FuzzOperations: bytes decoded as a program; random seeds of a few lengths plus a few
# hand-shaped ones (see FuzzOperations.swift: header = dim, metric, field count, field bytes).
rng = random.Random(20240611)
for i in range(24):
    n = rng.choice([16, 40, 80, 160, 320])
    out("FuzzOperations", f"random-{i:02d}", bytes(rng.randrange(256) for _ in range(n)))
def program(dim, metric, fields, ops):
    return bytes([dim, metric, len(fields) - 2] + fields) + bytes(ops)
# upsert (op 0) of one row: count-1, defect(>=4 none), id, dim comps, one byte per field
row = lambda id, comps, attrs, defect=4: [defect, id] + comps + attrs
ops = []
for id in range(6):
    ops += [0, 0] + row(id, [4 + id % 5, 5, 3, 8], [2 * 6 + 2, 3, 3])
ops += [4, 4, 1, 2, 0, 1, 0]   # search q=(4,4,1,2) k=1+2, no filter... (bytes as decoded)
ops += [2, 1, 3, 4]            # delete 2 ids
ops += [7]                     # reopen
ops += [0, 1] + row(9, [1, 1, 1, 1], [3, 3, 3]) + row(10, [1, 1, 1, 1], [3, 3, 3], defect=1) + [0, 1]
ops += [5, 2, 3, 4, 5, 4, 2, 7, 9, 1]
ops += [6, 3, 5]
for m in range(3):
    out("FuzzOperations", f"program-metric{m}", program(0, m, [0, 1, 2], ops))
    out("FuzzOperations", f"program-types{m}", program(4, m, [3, 4, 5], ops))
