"""Reference values for the validator's binomial tail: scipy's binomtest p-values.

Run: python3 binomtest.py > binomtest.json   (scipy >= 1.7). Each row is [k, n, p, pvalue].
"""
import json
from scipy.stats import binomtest

rows = []
p = 5e-4  # the network's per-nonce failure rate
for n in [1, 2, 5, 10, 50, 100, 200, 500, 1000, 5000, 10_000, 100_000, 1_000_000]:
    mean = n * p
    ks = {0, 1, 2, 3, 4, 5, 6, 8, 10, 20, n}
    ks |= {int(mean * f) for f in (0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 3.0)}
    ks |= {int(mean) + 1, int(mean) - 1}
    for k in sorted(k for k in ks if 0 <= k <= n):
        v = binomtest(k, n, p, alternative="greater").pvalue
        if v == 0.0 or v > 1e-300:
            rows.append([k, n, p, float(v)])
# Other failure rates, to exercise the other branches.
for n, p in [(30, 0.3), (1000, 0.5), (1_000_000, 0.01), (100, 0.95)]:
    for k in [0, 1, n // 10, n // 3, n // 2, int(n * p), int(n * p) + 1, n - 1, n]:
        v = binomtest(k, n, p, alternative="greater").pvalue
        if v == 0.0 or v > 1e-300:
            rows.append([k, n, p, float(v)])
print(json.dumps(rows))
