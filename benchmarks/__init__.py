"""asv benchmarks for softmaxloss (speed, memory, precision); see benchmarks/common.py."""
