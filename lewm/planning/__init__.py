"""Planning in latent space: the solvers (planner.py, numpy only, shared by `lewm plan` and the monitor's plan
mode), the paper's goal-reaching evaluation (evaluation.py) and where a plan's forecast parts from the outcome
(bench_forecast_gap.py)."""
