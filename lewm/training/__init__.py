"""Training LeWM from pixels: the loop (loop.py), data-parallel training across processes (distributed.py,
launch.py, global_batchnorm.py) and the benchmarks that chose its designs and precisions."""
