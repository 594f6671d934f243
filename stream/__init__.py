"""driftline: streaming online learning and drift detection on Kafka."""
