"""The ablation study: plans, the keep rule, runs, executors, the driver and its report."""
