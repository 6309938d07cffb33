"""The statistical kernels the gate families run: numpy functions of counts, batched over
independent rows so the benchmark runs thousands of simulated stages through the same code.

- `special`: log-gamma, log-beta and the other special functions, in numpy alone;
- `proportion`: confidence sequences for one rate (Robbins' Beta-binomial mixture);
- `ratio`: the anytime-valid test of a ratio of two event rates on a grid;
- `counts`: the rate gates' decision (`CountTrack`): the ratio and both rates together;
- `cdf`: time-uniform bands for a distribution function and the shift between two.
"""
