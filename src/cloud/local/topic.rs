//! MQTT topic names and filters.
