"""The live driver: Faust agents on Kafka feed the engine; predictions, alerts and signed snapshots go
out to topics (:mod:`driftline.live.app` builds the worker, :mod:`driftline.live.worker` runs it)."""
