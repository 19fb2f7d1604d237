"""The study's seed count comes from a paired-t power calculation that agrees with simulation."""
import math

import numpy as np
from scipy import stats as sps

from analysis.stats import paired_t_power, seeds_for_power


def test_paired_t_power_matches_a_monte_carlo_of_the_test():
    rng = np.random.default_rng(0)
    k, sd, effect = 8, 0.2, math.log(1.2)
    d = rng.normal(effect, sd, size=(20000, k))
    p = sps.ttest_1samp(d, 0.0, axis=1).pvalue
    assert abs(float((p < 0.05).mean()) - paired_t_power(k, sd, effect)) < 0.015


def test_seeds_for_power_is_the_fewest_seeds_reaching_the_power_and_never_below_six():
    sd = 0.3
    k = seeds_for_power(sd, ri=0.2)
    assert paired_t_power(k, sd, math.log(1.2)) >= 0.8 > paired_t_power(k - 1, sd, math.log(1.2))
    assert seeds_for_power(0.01) == 6
