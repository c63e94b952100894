#!/usr/bin/env python3
"""Independent Reed-Solomon parity vectors for kcp-go's FEC (10 data + 3 parity shards).

Written from klauspost/reedsolomon's description of its default matrix (reedsolomon.go
`buildMatrix`, galois.go): GF(2^8) with generating polynomial 29 (x^8+x^4+x^3+x^2+1, 0x11D),
a Vandermonde matrix vm[r][c] = r^c (r, c as field elements; 0^0 = 1), multiplied by the
inverse of its top square so the top 10 rows are the identity. Parity row p is then
matrix[10+p] applied to the data shards byte by byte. Nothing here comes from the Rust crate
under test; `common::transport::fec` tests paste this script's output.

Run: python3 kcp_fec_vectors.py
"""

POLY = 0x11D


def gmul(a, b):
    r = 0
    while b:
        if b & 1:
            r ^= a
        a <<= 1
        if a & 0x100:
            a ^= POLY
        b >>= 1
    return r


def gpow(a, n):
    r = 1
    for _ in range(n):
        r = gmul(r, a)
    return r


def ginv(a):
    # a^254 = a^-1 in GF(2^8)
    return gpow(a, 254)


def invert(m):
    n = len(m)
    a = [row[:] + [1 if i == j else 0 for j in range(n)] for i, row in enumerate(m)]
    for col in range(n):
        piv = next(r for r in range(col, n) if a[r][col])
        a[col], a[piv] = a[piv], a[col]
        inv = ginv(a[col][col])
        a[col] = [gmul(x, inv) for x in a[col]]
        for r in range(n):
            if r != col and a[r][col]:
                f = a[r][col]
                a[r] = [x ^ gmul(f, y) for x, y in zip(a[r], a[col])]
    return [row[n:] for row in a]


def matmul(x, y):
    return [
        [
            __import__("functools").reduce(lambda s, k: s ^ gmul(x[i][k], y[k][j]), range(len(y)), 0)
            for j in range(len(y[0]))
        ]
        for i in range(len(x))
    ]


DATA, PARITY = 10, 3
vm = [[gpow(r, c) for c in range(DATA)] for r in range(DATA + PARITY)]
m = matmul(vm, invert(vm[:DATA]))
assert m[:DATA] == [[1 if i == j else 0 for j in range(DATA)] for i in range(DATA)]

LEN = 8
data = [[(i * 31 + j * 7 + 1) & 0xFF for j in range(LEN)] for i in range(DATA)]
for p in range(PARITY):
    row = m[DATA + p]
    out = []
    for j in range(LEN):
        v = 0
        for i in range(DATA):
            v ^= gmul(row[i], data[i][j])
        out.append(v)
    print(f"parity {p}: {bytes(out).hex()}")
print("matrix rows 10..13:")
for p in range(PARITY):
    print(" ", m[DATA + p])
