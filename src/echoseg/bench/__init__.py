"""Speed measurements: training throughput and inference latency, on synthetic batches."""
