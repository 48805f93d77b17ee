"""The shared runtime: what the pacing node (:mod:`streams.node`) and the sink (:mod:`connectors`) both use.

Configuration, Kafka clients and topics, the start-up check, alarms and their publisher, confirmed
writes (the outbox), dead-letter headers, metrics and their reporters, process self-monitoring.
It imports only :mod:`schemas`; nothing here knows Faust, the engine, the sink or a tool.
"""
