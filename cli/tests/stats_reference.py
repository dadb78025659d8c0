"""Reference values for `ssm-flags-ctl results`' statistics (cli/src/results/stats.rs), from
statsmodels and scipy as published (requirements-dev.txt).

Reads {"wilson": [[count, nobs], ...], "ztest": [[c1, n1, c0, n0], ...],
"chisquare": [[[observed...], [weights...]], ...]} on stdin (or as its argument) and answers, in the same order,
[low, high] (proportion_confint, method="wilson", alpha=0.05), [z, p]
(proportions_ztest([c1, c0], [n1, n0]), two-sided, pooled) and [statistic, p]
(chisquare(observed, total * weight / sum(weights))). NaN (an undefined test) is null.
"""

import json
import math
import sys
import warnings

import numpy as np
from scipy.stats import chisquare
from statsmodels.stats.proportion import proportion_confint, proportions_ztest


def plain(x):
    x = float(x)
    return None if math.isnan(x) else x


def main():
    cases = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.load(sys.stdin)
    warnings.simplefilter("ignore")  # 0/0 in an undefined z-test: NaN, answered as null
    wilson = [
        [plain(b) for b in proportion_confint(count, nobs, alpha=0.05, method="wilson")]
        for count, nobs in cases["wilson"]
    ]
    ztest = [
        [plain(v) for v in proportions_ztest(np.array([c1, c0]), np.array([n1, n0]))]
        for c1, n1, c0, n0 in cases["ztest"]
    ]
    chi = []
    for observed, weights in cases["chisquare"]:
        observed = np.array(observed, dtype=float)
        weights = np.array(weights, dtype=float)
        expected = observed.sum() * weights / weights.sum()
        result = chisquare(observed, expected)
        chi.append([plain(result.statistic), plain(result.pvalue)])
    json.dump({"wilson": wilson, "ztest": ztest, "chisquare": chi}, sys.stdout)


if __name__ == "__main__":
    main()
