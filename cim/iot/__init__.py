"""Live IoT: the sensor registry, MQTT and HTTP ingest, alarm rules, the broker and the simulator (docs/iot.md)."""
