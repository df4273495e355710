"""What leaves gputab: the JSON vocabulary, documents, CSV export, Prometheus metrics."""
