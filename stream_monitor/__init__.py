"""stream-monitor: drift monitoring for machine-learning models in production.

The package is split the way the data flows:

- ``stream_monitor.core``: the pure engine. Raw messages in, alerts and metric
  updates out. No Kafka, no sockets, no clocks it does not get handed.
- ``stream_monitor.stats``: the statistics and sequential detectors the core
  composes per stream (numpy, batch-updatable, serializable).
- ``stream_monitor.kafka``: the thin worker shell that feeds the core from a
  consumer group and publishes its alerts and dead letters.
- ``stream_monitor.observability``: Prometheus metrics and health.
- ``stream_monitor.embedded`` / ``stream_monitor.simulation``: the embedded
  broker and the synthetic model used by the demo and the tests.
"""

__version__ = "0.1.0"
